"""Single sign-on against a packaged OpenID Connect provider (issue 17: "tested against a real
OIDC provider if one is packaged"): django-oidc-provider from PyPI, in a minimal Django project
(tests/oidc_django/) over HTTP on loopback, and a real `spacechat serve`.

The person signs in at the provider with a password on Django's own sign-in page; the provider
puts their e-mail, name and groups in the ID token through its documented hooks. Each refusal is
one this provider really causes: it is renamed (another issuer) or its client set to HS256 as
its administrators could do, and it refuses a wrong client secret itself; a rotated signing key
is read again, not refused. The one forgery it cannot make (its own token with raised groups,
signature kept) is made on the wire between it and Spacechat (tests/oidc_django/wire.py).
"""

from __future__ import annotations

import html
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from .oidc_django.provider import Account, Provider
from .support import Server, toml_config

ADMINS = "spacechat-admins"


@dataclass
class Setup:
    server: Server
    idp: Provider
    org_id: str


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    server = Server(tmp_path_factory.mktemp("sso") / "data", toml_config(runtime={"mode": "none"})).start()
    idp = Provider(tmp_path_factory.mktemp("django-oidc-provider"), f"{server.url}/v1/auth/sso/callback")
    try:
        idp.start()
        with server.sync_client() as owner:
            org_id = owner.get("/v1/me").json()["user"]["org_id"]
            saved = owner.put("/v1/org/sso", json=settings(idp))
            assert saved.status_code == 200, saved.text
        yield Setup(server, idp, org_id)
    finally:
        server.stop()
        idp.stop()


def settings(idp: Provider, **changes: Any) -> dict[str, Any]:
    return {
        "issuer": idp.issuer,
        "client_id": idp.client_id,
        "client_secret": idp.client_secret,
        "allowed_domains": ["example.com"],
        "role_claim": "groups",
        "role_mapping": [{"value": ADMINS, "role": "admin"}, {"value": "ops", "role": "operator"}],
        "default_role": "member",
        **changes,
    }


def person(sso: Setup, *groups: str, domain: str = "example.com") -> Account:
    """Someone new in the provider's directory."""
    tag = secrets.token_hex(3)
    return sso.idp.directory.add_person(f"ann-{tag}@{domain}", f"Ann {tag}", groups)


@dataclass
class Trip:
    """One browser's round trip: whether the provider asked for a password, the callback URL it
    sent the browser to, and Spacechat's answer to that callback."""

    asked_password: bool
    callback: str
    answer: httpx.Response

    @property
    def session(self) -> str:
        return str(self.answer.cookies["spacechat_session"])

    def me(self) -> dict[str, Any]:
        assert self.answer.status_code == 303, self.answer.text
        got = httpx.get(self.callback.split("/v1/")[0] + "/v1/me", headers={"Authorization": f"Bearer {self.session}"})
        assert got.status_code == 200, got.text
        return dict(got.json()["user"])


def sign_in(sso: Setup, account: Account, browser: httpx.Client | None = None) -> Trip:
    """Click "Sign in with SSO", sign in at the provider as `account` (if it asks), and follow
    it back. A browser that signed in at the provider before is not asked again."""
    if browser is None:
        with httpx.Client(timeout=30) as fresh:
            return sign_in(sso, account, fresh)
    start = browser.get(f"{sso.server.url}/v1/auth/sso/{sso.org_id}/login", params={"next": "/channels/general"})
    assert start.status_code == 302, start.text
    at_provider = browser.get(start.headers["location"])
    asked = _at_login_page(sso, at_provider)
    if asked:
        at_provider = _type_password(browser, at_provider, account)
    assert at_provider.status_code == 302, at_provider.text
    callback = at_provider.headers["location"]
    assert callback.startswith(f"{sso.server.url}/v1/auth/sso/callback?"), callback
    return Trip(asked, callback, browser.get(callback))


def _at_login_page(sso: Setup, answer: httpx.Response) -> bool:
    return answer.status_code == 302 and answer.headers["location"].startswith(sso.idp.login_path)


def _type_password(browser: httpx.Client, sent_to_login: httpx.Response, account: Account) -> httpx.Response:
    """Django's sign-in form, filled in and sent; then on to where it sends the browser (the
    authorization endpoint again)."""
    page = browser.get(sent_to_login.url.join(sent_to_login.headers["location"]))
    assert page.status_code == 200, page.text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    following = re.search(r'name="next" value="([^"]+)"', page.text)
    assert token and following, page.text
    form = {
        "csrfmiddlewaretoken": token[1],
        "next": html.unescape(following[1]),
        "username": account.username,
        "password": account.password,
    }
    signed_in = browser.post(page.url, data=form)
    assert signed_in.status_code == 302, signed_in.text  # a wrong password shows the form again
    return browser.get(page.url.join(signed_in.headers["location"]))


def refused(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert "spacechat_session" not in answer.cookies
    return dict(body["error"])


def users(sso: Setup) -> list[dict[str, Any]]:
    with sso.server.sync_client() as owner:
        return list(owner.get("/v1/users").json()["users"])


def emails(sso: Setup) -> set[str]:
    return {user["email"] for user in users(sso)}


def test_first_sign_in_makes_the_account_with_the_role_its_group_maps_to(sso: Setup) -> None:
    ann = person(sso, "everyone", ADMINS)
    trip = sign_in(sso, ann)
    assert trip.asked_password
    assert trip.answer.headers["location"] == "/channels/general"
    me = trip.me()
    assert me["email"] == ann.email and me["name"] == ann.name and me["role"] == "admin"
    with sso.server.sync_client() as owner:
        audit = owner.get("/v1/audit", params={"limit": 50}).json()["entries"]
    made = [e for e in audit if e["action"] == "auth.sso_account_created" and e["target"]["id"] == me["id"]]
    assert made and made[0]["details"]["role"] == "admin"


def test_signing_in_again_finds_the_same_account_by_its_subject(sso: Setup) -> None:
    ann = person(sso)
    with httpx.Client(timeout=30) as browser:
        first = sign_in(sso, ann, browser).me()
        assert first["role"] == "member"  # no group maps: the default role
        # Her address and groups changed at the provider, her subject did not. The browser still
        # has its session there, so the provider sends it straight back, no password asked.
        ann = sso.idp.directory.set_email(ann, "renamed-" + ann.email)
        sso.idp.directory.set_groups(ann, ("ops",))
        trip = sign_in(sso, ann, browser)
    assert not trip.asked_password
    again = trip.me()
    assert again["id"] == first["id"] and again["role"] == "operator"
    assert [user["id"] for user in users(sso)].count(first["id"]) == 1


def test_an_email_of_another_domain_is_refused(sso: Setup) -> None:
    mallory = person(sso, ADMINS, domain="elsewhere.example")
    error = refused(sign_in(sso, mallory).answer, 403, "sso_domain_not_allowed")
    assert error["details"]["domain"] == "elsewhere.example"
    assert error["message"] == "accounts of this e-mail domain may not sign in here"
    assert mallory.email not in emails(sso)


def test_an_id_token_with_a_bad_signature_is_refused(sso: Setup) -> None:
    # The provider's own token, signed with its published key, its groups raised on the way.
    ann = person(sso, "everyone")
    with sso.idp.altered_in_transit(lambda claims: {**claims, "groups": [*claims["groups"], ADMINS]}):
        error = refused(sign_in(sso, ann).answer, 401, "sso_token_invalid")
    assert error["details"]["reason"] == "signature"
    assert error["message"] == "the ID token's signature does not check out"
    assert ann.email not in emails(sso)


def test_an_id_token_from_another_issuer_is_refused(sso: Setup) -> None:
    ann = person(sso)
    other = sso.idp.url.replace("127.0.0.1", "localhost")
    with httpx.Client(timeout=30) as browser:
        start = browser.get(f"{sso.server.url}/v1/auth/sso/{sso.org_id}/login")
        assert start.status_code == 302, start.text
        # Spacechat has read the discovery document (it keeps it an hour); now the provider is
        # renamed, and the ID tokens it makes name the new issuer, at the endpoints it had.
        with sso.idp.site_url(other):
            at_provider = _type_password(browser, browser.get(start.headers["location"]), ann)
            answer = browser.get(at_provider.headers["location"])
            issued = httpx.get(f"{other}/openid/.well-known/openid-configuration").json()["issuer"]
    assert issued == f"{other}/openid" != sso.idp.issuer
    error = refused(answer, 401, "sso_token_invalid")
    assert error["details"]["reason"] == "iss"
    assert error["message"] == "the ID token's iss claim is not what it must be"
    assert ann.email not in emails(sso)


def test_an_id_token_signed_with_the_client_secret_is_refused(sso: Setup) -> None:
    # The provider offers HS256 and signs with the client secret when the client is set so:
    # anyone holding the secret could make such a token, so Spacechat takes none.
    ann = person(sso, ADMINS)
    with sso.idp.id_token_algorithm("HS256"):
        error = refused(sign_in(sso, ann).answer, 401, "sso_token_invalid")
    assert error["details"]["reason"] == "unsupported_algorithm"
    assert ann.email not in emails(sso)


def test_a_rotated_signing_key_is_read_again(sso: Setup) -> None:
    assert sign_in(sso, person(sso)).me()["role"] == "member"  # Spacechat holds the key set now
    sso.idp.directory.rotate_key()
    assert sign_in(sso, person(sso, "ops")).me()["role"] == "operator"


def test_a_wrong_client_secret_is_refused_by_the_provider(sso: Setup) -> None:
    with sso.server.sync_client() as owner:
        wrong = settings(sso.idp, client_secret="not-the-secret-" + secrets.token_hex(8))
        assert owner.put("/v1/org/sso", json=wrong).status_code == 200
    try:
        error = refused(sign_in(sso, person(sso)).answer, 401, "sso_code_refused")
        assert error["details"] == {"provider_status": 400, "provider_error": "invalid_client"}
    finally:
        with sso.server.sync_client() as owner:
            owner.put("/v1/org/sso", json=settings(sso.idp))
