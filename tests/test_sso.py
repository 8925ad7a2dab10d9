"""Single sign-on with OpenID Connect (issue 17, point 5; docs/sso.md), against a real provider
on loopback (tests/oidc_provider.py: authlib's authorization server, over HTTP) and a real
`spacechat serve`: a browser's round trip through both, a just-in-time account with the role its
group maps to, and each forged or replayed answer refused with the JSON error shape."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc.jwk import RSAKey

from .oidc_provider import KID, Provider
from .support import Server, invite, toml_config

ADMINS = "spacechat-admins"


@dataclass
class Setup:
    server: Server
    idp: Provider
    org_id: str


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    idp = Provider().start()
    server = Server(tmp_path_factory.mktemp("sso") / "data", toml_config(runtime={"mode": "none"})).start()
    idp.client.redirect_prefix = f"{server.url}/v1/auth/sso/callback"
    with server.sync_client() as owner:
        org_id = owner.get("/v1/me").json()["user"]["org_id"]
        saved = owner.put("/v1/org/sso", json=settings(idp))
        assert saved.status_code == 200, saved.text
    yield Setup(server, idp, org_id)
    server.stop()
    idp.stop()


@pytest.fixture(autouse=True)
def honest_provider(sso: Setup) -> None:
    sso.idp.reset()


def settings(idp: Provider, **changes: Any) -> dict[str, Any]:
    return {
        "issuer": idp.issuer,
        "client_id": idp.client.client_id,
        "client_secret": idp.client.client_secret,
        "allowed_domains": ["example.com"],
        "role_mapping": [{"value": ADMINS, "role": "admin"}, {"value": "ops", "role": "operator"}],
        "default_role": "member",
        **changes,
    }


def person(email: str | None = None, **claims: Any) -> dict[str, Any]:
    tag = secrets.token_hex(3)
    return {
        "sub": f"subject-{tag}",
        "email": email or f"ann-{tag}@example.com",
        "email_verified": True,
        "name": f"Ann {tag}",
        "groups": [],
        **claims,
    }


@dataclass
class Trip:
    """One browser's round trip: the callback URL the provider sent it to, and Spacechat's answer
    to that callback."""

    callback: str
    answer: httpx.Response

    @property
    def session(self) -> str:
        return str(self.answer.cookies["spacechat_session"])

    def me(self) -> dict[str, Any]:
        got = httpx.get(self.callback.split("/v1/")[0] + "/v1/me", headers={"Authorization": f"Bearer {self.session}"})
        assert got.status_code == 200, got.text
        return dict(got.json())


def sign_in(sso: Setup, claims: dict[str, Any], **headers: str) -> Trip:
    """Click "Sign in with SSO", let the provider sign `claims` in, and follow it back."""
    sso.idp.user = claims
    with httpx.Client(timeout=30, headers=headers) as browser:
        start = browser.get(f"{sso.server.url}/v1/auth/sso/{sso.org_id}/login", params={"next": "/channels/general"})
        assert start.status_code == 302, start.text
        at_provider = browser.get(start.headers["location"])
        assert at_provider.status_code == 302, at_provider.text
        callback = at_provider.headers["location"]
        assert callback.startswith(f"{sso.server.url}/v1/auth/sso/callback?"), callback
        return Trip(callback, browser.get(callback))


def refused(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert "spacechat_session" not in answer.cookies
    return dict(body["error"])


def users(sso: Setup) -> list[dict[str, Any]]:
    with sso.server.sync_client() as owner:
        return list(owner.get("/v1/users").json()["users"])


def test_first_sign_in_makes_the_account_with_the_role_its_group_maps_to(sso: Setup) -> None:
    claims = person(groups=["everyone", ADMINS])
    trip = sign_in(sso, claims)
    assert trip.answer.status_code == 303, trip.answer.text
    assert trip.answer.headers["location"] == "/channels/general"
    me = trip.me()
    assert me["user"]["email"] == claims["email"] and me["user"]["name"] == claims["name"]
    assert me["user"]["role"] == "admin" and "members:manage" in me["scopes"]
    # The usual session row: listed among the person's devices, and revocable like any other.
    with httpx.Client(base_url=sso.server.url, headers={"Authorization": f"Bearer {trip.session}"}) as client:
        devices = client.get("/v1/me/sessions").json()["sessions"]
    assert [d["device_name"] for d in devices] == ["browser (single sign-on)"]
    # The provider was asked with PKCE and the client's secret (HTTP Basic), and gave a token.
    asked = sso.idp.token_requests[-1]
    assert asked["code_verifier"] and asked["authorization"].startswith("Basic ")
    with sso.server.sync_client() as owner:
        audit = owner.get("/v1/audit", params={"limit": 50}).json()["entries"]
    made = [e for e in audit if e["action"] == "auth.sso_account_created" and e["target"]["id"] == me["user"]["id"]]
    assert made and made[0]["details"]["role"] == "admin"


def test_signing_in_again_finds_the_same_account_by_its_subject(sso: Setup) -> None:
    claims = person()
    first = sign_in(sso, claims).me()["user"]
    assert first["role"] == "member"  # no group maps: the default role
    # The e-mail changed at the provider; the subject did not: still the same person here.
    again = sign_in(sso, {**claims, "email": "renamed-" + claims["email"], "groups": ["ops"]}).me()["user"]
    assert again["id"] == first["id"] and again["role"] == "operator"
    assert [u["id"] for u in users(sso)].count(first["id"]) == 1


def test_an_invited_person_is_matched_by_their_verified_email(sso: Setup) -> None:
    invited = invite(sso.server, sso.server.token, "member")
    me = sign_in(sso, person(email=invited.user["email"])).me()["user"]
    assert me["id"] == invited.id
    assert me["role"] == "member"


def test_an_id_token_from_another_issuer_is_refused(sso: Setup) -> None:
    sso.idp.issuer_claim = "http://127.0.0.1:9/impostor"
    claims = person()
    error = refused(sign_in(sso, claims).answer, 401, "sso_token_invalid")
    assert error["details"]["reason"] == "iss"
    assert claims["email"] not in {u["email"] for u in users(sso)}


def test_an_id_token_with_a_bad_signature_is_refused(sso: Setup) -> None:
    # Signed by a key that claims the provider's key id, but is not the key the provider publishes.
    sso.idp.sign_with = RSAKey.generate_key(2048, parameters={"kid": KID, "use": "sig", "alg": "RS256"})
    claims = person()
    error = refused(sign_in(sso, claims).answer, 401, "sso_token_invalid")
    assert error["details"]["reason"] == "signature"
    assert claims["email"] not in {u["email"] for u in users(sso)}


def test_an_email_of_another_domain_is_refused(sso: Setup) -> None:
    error = refused(sign_in(sso, person(email="mallory@elsewhere.example")).answer, 403, "sso_domain_not_allowed")
    assert error["details"]["domain"] == "elsewhere.example"


def test_an_unverified_email_is_refused(sso: Setup) -> None:
    invited = invite(sso.server, sso.server.token, "member")
    # Whoever controls an unverified address at the provider must not become the invited person.
    answer = sign_in(sso, person(email=invited.user["email"], email_verified=False)).answer
    refused(answer, 403, "sso_email_unverified")


def test_a_replayed_callback_is_refused(sso: Setup) -> None:
    trip = sign_in(sso, person())
    assert trip.answer.status_code == 303
    # The same state (and so the same nonce and code) a second time, from the same browser.
    replay = httpx.get(trip.callback, cookies={"spacechat_sso": _state(trip.callback)})
    refused(replay, 400, "sso_state_used")


def test_an_id_token_minted_for_another_sign_in_is_refused(sso: Setup) -> None:
    earlier = sign_in(sso, person())
    assert earlier.answer.status_code == 303
    # The provider answers with the nonce of an earlier sign-in: a token replayed into this one.
    sso.idp.nonce_claim = sso.idp.nonces[-1]
    error = refused(sign_in(sso, person()).answer, 401, "sso_token_invalid")
    assert error["details"]["reason"] == "nonce"


def test_a_callback_started_in_another_browser_is_refused(sso: Setup) -> None:
    sso.idp.user = person()
    with httpx.Client(timeout=30) as starter:
        start = starter.get(f"{sso.server.url}/v1/auth/sso/{sso.org_id}/login")
        callback = starter.get(start.headers["location"]).headers["location"]
        # Login CSRF: the attacker's callback link opened by someone else's browser.
        refused(httpx.get(callback), 400, "sso_state_mismatch")
        # ... and the state is still good for the browser that started it.
        assert starter.get(callback).status_code == 303


def test_a_browser_is_shown_a_page_when_refused(sso: Setup) -> None:
    answer = sign_in(sso, person(email="mallory@elsewhere.example"), accept="text/html").answer
    assert answer.status_code == 403
    assert answer.headers["content-type"].startswith("text/html")
    assert "may not sign in here" in answer.text and "href='/login'" in answer.text


def test_the_sign_in_page_learns_which_organisations_offer_it(sso: Setup) -> None:
    offered = httpx.get(f"{sso.server.url}/v1/auth/sso").json()["providers"]
    assert [p["login_url"] for p in offered] == [f"/v1/auth/sso/{sso.org_id}/login"]
    refused(httpx.get(f"{sso.server.url}/v1/auth/sso/org_nowhere/login"), 404, "sso_not_configured")


def test_the_settings_never_show_the_client_secret(sso: Setup, tmp_path: Path) -> None:
    secret = sso.idp.client.client_secret
    with sso.server.sync_client() as owner:
        shown = owner.get("/v1/org/sso")
        assert shown.status_code == 200
        assert shown.json()["sso"]["client_secret_set"] is True
        assert shown.json()["redirect_uri"] == f"{sso.server.url}/v1/auth/sso/callback"
        # Changing the mapping without the secret keeps the stored one: sign-in still works.
        kept = owner.put("/v1/org/sso", json={**settings(sso.idp), "client_secret": None, "default_role": "guest"})
        assert kept.status_code == 200 and secret not in kept.text
        audit = owner.get("/v1/audit", params={"limit": 20}).text
    assert secret not in shown.text and secret not in audit
    assert sign_in(sso, person()).me()["user"]["role"] == "guest"
    with sso.server.sync_client() as owner:
        owner.put("/v1/org/sso", json=settings(sso.idp))
    # Nor did any line the server logged while it used the secret for each sign-in above.
    assert secret not in "".join(sso.server.output)


def test_only_owners_and_admins_see_or_change_the_settings(sso: Setup) -> None:
    member = invite(sso.server, sso.server.token, "member")
    with httpx.Client(base_url=sso.server.url, headers=member.auth) as client:
        for method in ("GET", "PUT", "DELETE"):
            answer = client.request(method, "/v1/org/sso", json=settings(sso.idp) if method == "PUT" else None)
            assert refused(answer, 403, "forbidden")["details"]["scope"] == "members:manage"


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"issuer": "http://idp.example.com"}, "issuer"),  # plain http beyond loopback
        ({"issuer": "https://idp.example.com/?tenant=1"}, "issuer"),  # a query is no issuer
        ({"allowed_domains": ["Example.COM"]}, "allowed_domains[0]"),
        ({"role_mapping": [{"value": "x", "role": "owner"}]}, "role_mapping[0].role"),  # no claim makes owners
        ({"default_role": "agent"}, "default_role"),
    ],
)
def test_settings_are_checked(sso: Setup, change: dict[str, Any], path: str) -> None:
    with sso.server.sync_client() as owner:
        answer = owner.put("/v1/org/sso", json=settings(sso.idp, **change))
    assert refused(answer, 400, "invalid_request")["details"][0]["path"] == path


def test_a_wrong_client_secret_is_refused_without_naming_it(sso: Setup) -> None:
    wrong = "not-the-secret-" + secrets.token_hex(8)
    with sso.server.sync_client() as owner:
        assert owner.put("/v1/org/sso", json=settings(sso.idp, client_secret=wrong)).status_code == 200
    try:
        answer = sign_in(sso, person()).answer
        error = refused(answer, 401, "sso_code_refused")
        assert error["details"]["provider_error"] == "invalid_client"
        assert wrong not in answer.text and wrong not in "".join(sso.server.output)
    finally:
        with sso.server.sync_client() as owner:
            owner.put("/v1/org/sso", json=settings(sso.idp))


@pytest.mark.parametrize("issuer", ["{url}/tenant-b", "{url}/"], ids=["no-discovery", "another-issuer"])
def test_a_provider_whose_discovery_does_not_check_out_is_refused(sso: Setup, issuer: str) -> None:
    """No document at the issuer, or one naming another issuer (`/` differs from none at all):
    refused before the browser is sent anywhere."""
    with sso.server.sync_client() as owner:
        changed = owner.put("/v1/org/sso", json=settings(sso.idp, issuer=issuer.format(url=sso.idp.url)))
        assert changed.status_code == 200, changed.text
    try:
        started = httpx.get(f"{sso.server.url}/v1/auth/sso/{sso.org_id}/login")
        refused(started, 502, "sso_discovery_failed")
        assert "spacechat_sso" not in started.cookies
    finally:
        with sso.server.sync_client() as owner:
            owner.put("/v1/org/sso", json=settings(sso.idp))


def _state(callback: str) -> str:
    return str(httpx.URL(callback).params["state"])
