"""Single sign-on with OpenID Connect, one provider per organisation (issue 17, point 5).

The authorization code flow with PKCE (RFC 7636), as OpenID Connect Core 1.0 section 3.1 has it:

1. `begin`: a random state, nonce and code verifier are stored (store/sso.py, so any gateway can
   finish what another began) and the browser is sent to the provider's authorization endpoint,
   found in its discovery document (`{issuer}/.well-known/openid-configuration`).
2. `finish`: the state is claimed once, the code exchanged at the token endpoint (with the client
   secret and the verifier), and the ID token verified: signature against the provider's JWKS,
   issuer, audience, expiry and the nonce of this sign-in. Then the e-mail must be verified by the
   provider and of an allowed domain.
3. `account`: the person is found by the provider's subject, else by that verified e-mail, else
   made just in time, with the role the configured claim maps to.

authlib supplies the protocol's pieces (the grant URI, the token request and client
authentication, the ID token's claim rules, the discovery document's rules) and joserfc the
signature check; the HTTP calls go through aiohttp, which the package already uses. Without the
`sso` extra installed the routes answer 503 saying what to install.

The client secret and the tokens never reach a log line, an error or the audit log.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from ..errors import BadGateway, Forbidden, NotFound, ServiceUnavailable, Unauthorized
from ..events import SYSTEM
from ..store import identity
from ..store import sso as store
from ..store.db import Database, WriteTx, loads
from .auth import RateLimiter

log = logging.getLogger("spacechat.sso")

try:  # the `sso` extra
    from authlib.oauth2.auth import ClientAuth
    from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
    from authlib.oauth2.rfc7636 import create_s256_code_challenge
    from authlib.oidc.core import CodeIDToken
    from authlib.oidc.discovery import OpenIDProviderMetadata
    from joserfc import jwt
    from joserfc.errors import ClaimError, ExpiredTokenError, InvalidKeyIdError, JoseError
    from joserfc.jwk import KeySet

    AVAILABLE = True
except ImportError:  # pragma: no cover - exercised only without the extra
    AVAILABLE = False

SCOPE = "openid email profile"
LOGIN_SECONDS = 600  # how long a sign-in may take at the provider
METADATA_SECONDS = 3600  # discovery documents and key sets are read again after this
LEEWAY_SECONDS = 60  # clock skew allowed on exp and iat
MAX_DOCUMENT = 1 << 20  # no provider answer is larger than this
# Asymmetric signatures only: "none" is never accepted, and HMAC with the client secret would let
# anyone holding the secret mint ID tokens.
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


@dataclass(frozen=True)
class Provider:
    """One organisation's provider settings, as stored."""

    org_id: str
    issuer: str
    client_id: str
    client_secret: str
    allowed_domains: tuple[str, ...]
    role_claim: str
    role_mapping: tuple[tuple[str, str], ...]
    default_role: str

    @classmethod
    def from_row(cls, row: Any) -> Provider:
        return cls(
            org_id=row["org_id"],
            issuer=row["issuer"],
            client_id=row["client_id"],
            client_secret=row["client_secret"],
            allowed_domains=tuple(loads(row["allowed_domains"])),
            role_claim=row["role_claim"],
            role_mapping=tuple((rule["value"], rule["role"]) for rule in loads(row["role_mapping"])),
            default_role=row["default_role"],
        )

    def mapped_role(self, claims: Mapping[str, Any]) -> str | None:
        """The role of the first mapping rule whose value the claim holds (a string, or a list
        such as `groups`), or None when none matches."""
        value = claims.get(self.role_claim)
        if isinstance(value, str):
            held = {value}
        elif isinstance(value, list):
            held = {item for item in value if isinstance(item, str)}
        else:
            held = set()
        return next((role for wanted, role in self.role_mapping if wanted in held), None)

    def domain_allowed(self, email: str) -> bool:
        return not self.allowed_domains or email.rsplit("@", 1)[-1] in self.allowed_domains


@dataclass(frozen=True)
class Person:
    """Who the provider vouched for, from a verified ID token."""

    subject: str
    email: str
    name: str
    role: str | None  # from the role claim; None: no rule matched


class SingleSignOn:
    def __init__(self, db: Database, *, timeout: float = 10) -> None:
        self.db = db
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._documents: dict[str, tuple[float, dict[str, Any]]] = {}
        # Each start writes a row: a bound per address keeps the public route from filling the table.
        self.starts = RateLimiter(limit=60, window=60)
        # Tells the other gateways of a start (their limiters count it too); set with a bus.
        self.share: Callable[[str, dict[str, str]], None] | None = None

    def started(self, address: str, *, share: bool = True) -> None:
        """Count a sign-in started from `address`, here and (over the bus) on every gateway."""
        self.starts.hit(address)
        if share and self.share is not None:
            self.share("sso_started", {"address": address})

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def provider(self, org_id: str) -> Provider:
        row = await store.get_provider(self.db, org_id)
        if row is None or not row["enabled"]:
            raise NotFound("this organisation does not offer single sign-on", code="sso_not_configured")
        return Provider.from_row(row)

    # -- the flow -----------------------------------------------------------------------------

    async def begin(self, provider: Provider, *, redirect_uri: str, return_to: str) -> tuple[str, str]:
        """Record a sign-in and return (the provider's authorization URL, the state)."""
        _require_extra()
        metadata = await self.metadata(provider.issuer)
        state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48)
        expires = identity.later(seconds=LOGIN_SECONDS)
        await self.db.write(
            lambda tx: store.begin_login(
                tx,
                state=state,
                org_id=provider.org_id,
                nonce=nonce,
                code_verifier=verifier,
                return_to=return_to,
                expires_at=expires,
            )
        )
        url = prepare_grant_uri(
            metadata["authorization_endpoint"],
            client_id=provider.client_id,
            response_type="code",
            redirect_uri=redirect_uri,
            scope=SCOPE,
            state=state,
            nonce=nonce,
            code_challenge=create_s256_code_challenge(verifier),
            code_challenge_method="S256",
        )
        return str(url), state

    async def finish(self, provider: Provider, login: Mapping[str, Any], *, code: str, redirect_uri: str) -> Person:
        """Exchange the code and verify what comes back; the person it names, or a refusal."""
        _require_extra()
        metadata = await self.metadata(provider.issuer)
        verifier = login["code_verifier"]
        tokens = await self._exchange(provider, metadata, code=code, verifier=verifier, redirect_uri=redirect_uri)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise _token_refused("id_token", "the provider sent no ID token")
        access_token = tokens.get("access_token")
        claims = await self._verify(provider, metadata, id_token, nonce=login["nonce"], access_token=access_token)
        return _person(provider, claims)

    # -- discovery and keys -------------------------------------------------------------------

    async def metadata(self, issuer: str) -> dict[str, Any]:
        """The issuer's discovery document, checked by OpenID Connect Discovery's rules; its
        `issuer` must be the configured one exactly (Discovery 1.0, section 4.3)."""
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = await self._document(url)
        try:
            OpenIDProviderMetadata(document).validate()
        except (ValueError, TypeError, KeyError, AttributeError) as problem:
            message = f"the provider's discovery document is not valid: {problem}"
            raise BadGateway(message, code="sso_discovery_failed") from None
        if document["issuer"] != issuer:
            raise BadGateway(
                "the provider's discovery document names another issuer",
                code="sso_discovery_failed",
                details={"configured": issuer, "document": document["issuer"]},
            )
        return document

    async def _keys(self, metadata: Mapping[str, Any], *, fresh: bool = False) -> Any:
        document = await self._document(metadata["jwks_uri"], fresh=fresh)
        try:
            return KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, ValueError, KeyError, TypeError):
            raise BadGateway("the provider's key set is not valid", code="sso_discovery_failed") from None

    async def _document(self, url: str, *, fresh: bool = False) -> dict[str, Any]:
        cached = self._documents.get(url)
        if cached is not None and not fresh and time.monotonic() - cached[0] < METADATA_SECONDS:
            return cached[1]
        status, body = await self._http("GET", url)
        if status != 200 or not isinstance(body, dict):
            raise BadGateway(f"the provider answered {status} at {url}", code="sso_discovery_failed")
        self._documents[url] = (time.monotonic(), body)
        return body

    # -- the token endpoint and the ID token ---------------------------------------------------

    async def _exchange(
        self, provider: Provider, metadata: Mapping[str, Any], *, code: str, verifier: str, redirect_uri: str
    ) -> dict[str, Any]:
        methods = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        method = "client_secret_basic" if "client_secret_basic" in methods else "client_secret_post"
        body = prepare_token_request("authorization_code", code=code, redirect_uri=redirect_uri, code_verifier=verifier)
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        auth = ClientAuth(provider.client_id, provider.client_secret, method)
        url, headers, body = auth.prepare("POST", metadata["token_endpoint"], headers, body)
        status, answer = await self._http("POST", url, headers=headers, data=body)
        if status != 200 or not isinstance(answer, dict):
            error = answer.get("error") if isinstance(answer, dict) else None
            raise Unauthorized(
                "the provider refused the sign-in code",
                code="sso_code_refused",
                details={"provider_status": status, "provider_error": error if isinstance(error, str) else None},
            )
        return answer

    async def _verify(
        self, provider: Provider, metadata: Mapping[str, Any], id_token: str, *, nonce: str, access_token: Any
    ) -> dict[str, Any]:
        offered = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [alg for alg in offered if alg in SIGNING_ALGORITHMS]
        try:
            try:
                token = jwt.decode(id_token, await self._keys(metadata), algorithms=algorithms)
            except InvalidKeyIdError:  # the provider rotated its keys since we read them
                token = jwt.decode(id_token, await self._keys(metadata, fresh=True), algorithms=algorithms)
            claims = CodeIDToken(
                token.claims,
                token.header,
                {
                    "iss": {"essential": True, "value": provider.issuer},
                    "aud": {"essential": True, "value": provider.client_id},
                    "sub": {"essential": True},
                },
                {"nonce": nonce, "client_id": provider.client_id, "access_token": access_token},
            )
            claims.validate(leeway=LEEWAY_SECONDS)
        except ExpiredTokenError:
            raise _token_refused("exp", "the ID token has expired") from None
        except ClaimError as problem:
            message = f"the ID token's {problem.claim} claim is not what it must be"
            raise _token_refused(problem.claim, message) from None
        except JoseError as problem:
            reason = "signature" if problem.error == "bad_signature" else problem.error
            raise _token_refused(reason, "the ID token's signature does not check out") from None
        return dict(claims)

    async def _http(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, data: str | None = None
    ) -> tuple[int, Any]:
        """One call to the provider: (status, the JSON answer or None). The URL is named in
        errors (it carries no secret); the request body and headers never are."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        chunks: list[bytes] = []
        try:
            async with self._session.request(method, url, headers=headers, data=data, allow_redirects=False) as answer:
                async for chunk in answer.content.iter_chunked(64 * 1024):
                    chunks.append(chunk)
                    if sum(map(len, chunks)) > MAX_DOCUMENT:
                        raise BadGateway(f"the provider's answer at {url} is too large", code="sso_discovery_failed")
                status = answer.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as problem:
            log.warning("the identity provider at %s could not be reached: %s", url, type(problem).__name__)
            raise BadGateway(f"the identity provider could not be reached at {url}", code="sso_unreachable") from None
        try:
            return status, orjson.loads(b"".join(chunks))
        except orjson.JSONDecodeError:
            return status, None


# --- accounts ------------------------------------------------------------------------------


def account(tx: WriteTx, provider: Provider, person: Person) -> tuple[dict[str, Any], bool]:
    """The person's account here: by the provider's subject, else by the verified e-mail, else
    made now (just in time). Returns the user's row and whether it was made now.

    A role rule that matches sets the role at every sign-in (the provider is the source of truth
    for the groups it names); when none matches a new account gets the default role and an
    existing one keeps its own. Owners keep theirs: no claim makes or unmakes an owner."""
    row = store.user_by_subject(tx, provider.org_id, provider.issuer, person.subject)
    if row is None:
        row = store.person_by_email(tx, provider.org_id, person.email)
    created = row is None
    if row is None:
        user = identity.create_user(
            tx,
            org_id=provider.org_id,
            kind="human",
            name=person.name,
            role=person.role or provider.default_role,
            email=person.email,
            actor=SYSTEM,
        )
        row = identity.user_row(tx, user["id"])
    elif row["deactivated_at"] is not None:
        raise Forbidden("this account is deactivated", code="account_deactivated")
    elif person.role and row["role"] not in ("owner", person.role):
        identity.set_role(tx, row["id"], person.role, SYSTEM)
        row = identity.user_row(tx, row["id"])
    store.link_identity(tx, org_id=provider.org_id, issuer=provider.issuer, subject=person.subject, user_id=row["id"])
    return dict(row), created


def _person(provider: Provider, claims: Mapping[str, Any]) -> Person:
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise Forbidden("the provider did not share an e-mail address", code="sso_email_missing")
    email = email.strip().lower()
    # An unverified address proves nothing: it must not match someone's account or pass the
    # domain rule (OpenID Connect Core 1.0, section 5.7).
    if claims.get("email_verified") not in (True, "true"):
        raise Forbidden("the provider has not verified this e-mail address", code="sso_email_unverified")
    if not provider.domain_allowed(email):
        raise Forbidden(
            "accounts of this e-mail domain may not sign in here",
            code="sso_domain_not_allowed",
            details={"domain": email.rsplit("@", 1)[-1]},
        )
    return Person(subject=str(claims["sub"]), email=email, name=_name(claims, email), role=provider.mapped_role(claims))


def _name(claims: Mapping[str, Any], email: str) -> str:
    """A display name from the claims, without control or bidi-override characters (which
    would make it show as something else), at most 80 characters."""
    for key in ("name", "preferred_username"):
        value = claims.get(key)
        if isinstance(value, str):
            cleaned = "".join(ch for ch in value if ch.isprintable()).strip()[:80]
            if cleaned:
                return cleaned
    return email.split("@", 1)[0][:80]


def _token_refused(reason: str, message: str) -> Unauthorized:
    return Unauthorized(message, code="sso_token_invalid", details={"reason": reason})


def _require_extra() -> None:
    if not AVAILABLE:
        raise ServiceUnavailable(
            "single sign-on needs the sso extra: pip install 'spacechat[sso]'", code="sso_unavailable"
        )
