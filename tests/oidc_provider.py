"""An OpenID Connect provider for the single sign-on tests, built from authlib's server components.

A packaged provider runs beside it: django-oidc-provider from PyPI (tests/oidc_django/, driven by
tests/test_sso_packaged.py). This one stays for the forgeries a packaged provider cannot be made
to produce (an ID token with another sign-in's nonce, or signed by a key it does not publish
under that key's id) and for test_ui_sso.py. It is authlib's authorization server with the
authorization code grant, the OpenID Connect extension (ID tokens signed RS256 with the
provider's own key, the nonce carried through) and PKCE required, serving discovery, authorize,
token and JWKS over real HTTP on loopback (Starlette under uvicorn, in a thread).

The person who signs in is whoever `user` names (a dict of claims), as if they had typed their
password at the provider: the authorize endpoint grants at once. Three knobs make it misbehave
the way a forged or replayed token would: `issuer_claim` (an ID token from another issuer),
`sign_with` (a key whose signature the published key set does not verify) and `nonce_claim`
(an ID token minted for another sign-in).
"""

from __future__ import annotations

import secrets
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from authlib.oauth2 import AuthorizationServer, OAuth2Request
from authlib.oauth2.rfc6749 import ClientMixin, OAuth2Error
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oauth2.rfc6749.requests import OAuth2Payload
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import AuthorizationCodeMixin, OpenIDCode, UserInfo
from authlib.oidc.discovery import OpenIDProviderMetadata
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .loopback import ThreadedServer

KID = "test-key-1"
SCOPES = ["openid", "email", "profile"]


@dataclass
class Client(ClientMixin):  # type: ignore[misc]
    client_id: str
    client_secret: str
    redirect_prefix: str = ""  # the relying party's address: its callback must be under it

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        return " ".join(s for s in (scope or "").split() if s in SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return bool(self.redirect_prefix) and redirect_uri.startswith(self.redirect_prefix)

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class Code(AuthorizationCodeMixin):  # type: ignore[misc]
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: dict[str, Any]
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


class Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._data = dict(pairs)
        self._datalist: dict[str, list[str]] = defaultdict(list)
        for key, value in pairs:
            self._datalist[key].append(value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> dict[str, list[str]]:
        return self._datalist


class Incoming(OAuth2Request):  # type: ignore[misc]
    """A Starlette request (its body already read) as authlib's grants read one."""

    def __init__(self, request: Request, form: list[tuple[str, str]]) -> None:
        super().__init__(request.method, str(request.url), headers=request.headers)
        self._args = dict(request.query_params)
        self._form = dict(form)
        self.payload = Payload(list(request.query_params.multi_items()) + form)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class Server(AuthorizationServer):  # type: ignore[misc]
    """authlib's authorization server, answering with Starlette responses."""

    def __init__(self, provider: Provider) -> None:
        super().__init__(scopes_supported=SCOPES)
        self.provider = provider

    def query_client(self, client_id: str) -> Client | None:
        client = self.provider.client
        return client if client_id == client.client_id else None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        pass

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        return request

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> Response:
        if isinstance(body, dict):
            return JSONResponse(body, status_code=status, headers=dict(headers))
        return Response(body or b"", status_code=status, headers=dict(headers))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass


class CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
    """The authorization code grant, its codes kept in the provider's memory."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["client_secret_basic", "client_secret_post"]

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        data = request.payload.data
        self.server.provider.codes[code] = Code(
            code=code,
            client_id=request.client.client_id,
            redirect_uri=data.get("redirect_uri", ""),
            scope=request.scope,
            user=dict(request.user),
            nonce=data.get("nonce"),
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
        )

    def query_authorization_code(self, code: str, client: Client) -> Code | None:
        found: Code | None = self.server.provider.codes.get(code)
        return found if found is not None and found.client_id == client.client_id else None

    def delete_authorization_code(self, authorization_code: Code) -> None:
        self.server.provider.codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: Code) -> dict[str, Any]:
        return authorization_code.user


class IDTokens(OpenIDCode):  # type: ignore[misc]
    """OpenID Connect on the code grant: an RS256 ID token with the person's claims (and the
    provider's knobs for forging one)."""

    def __init__(self, provider: Provider) -> None:
        super().__init__(require_nonce=True)
        self.provider = provider

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        return any(code.nonce == nonce for code in self.provider.codes.values())

    def resolve_client_private_key(self, client: Client) -> RSAKey:
        return self.provider.sign_with or self.provider.key

    def get_client_algorithm(self, client: Client) -> str:
        return "RS256"

    def get_encode_header(self, client: Client) -> dict[str, str]:
        return {"alg": "RS256", "kid": KID}

    def get_client_claims(self, client: Client) -> dict[str, Any]:
        issuer = self.provider.issuer_claim or self.provider.issuer
        return {"iss": issuer, "aud": [client.client_id], "exp": int(time.time()) + 300}

    def get_authorization_code_claims(self, authorization_code: Code) -> dict[str, Any]:
        claims: dict[str, Any] = super().get_authorization_code_claims(authorization_code)
        if self.provider.nonce_claim is not None:
            claims["nonce"] = self.provider.nonce_claim
        return claims

    def generate_user_info(self, user: dict[str, Any], scope: str) -> UserInfo:
        return UserInfo(user)


class Provider:
    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": KID, "use": "sig", "alg": "RS256"})
        self.client = Client("spacechat-test", secrets.token_urlsafe(24))
        self.user: dict[str, Any] = {}
        self.issuer_claim: str | None = None
        self.sign_with: RSAKey | None = None
        self.nonce_claim: str | None = None
        self.token_requests: list[dict[str, str]] = []
        self.nonces: list[str] = []  # of every authorization request, in order
        self.codes: dict[str, Code] = {}
        self.url = ""
        self._server: ThreadedServer | None = None
        self.authorization = self._authorization_server()

    @property
    def issuer(self) -> str:
        return self.url

    def reset(self) -> None:
        self.issuer_claim = self.sign_with = self.nonce_claim = None

    def _authorization_server(self) -> AuthorizationServer:
        server = Server(self)
        server.register_token_generator(
            "default", BearerTokenGenerator(lambda **_: secrets.token_urlsafe(32), expires_generator=300)
        )
        server.register_grant(CodeGrant, [IDTokens(self), CodeChallenge(required=True)])
        return server

    # -- the endpoints ---------------------------------------------------------------------------

    async def discovery(self, request: Request) -> Response:
        metadata = OpenIDProviderMetadata(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token",
                "jwks_uri": f"{self.url}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": SCOPES,
                "grant_types_supported": ["authorization_code"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "code_challenge_methods_supported": ["S256"],
                "claims_supported": ["sub", "email", "email_verified", "name", "groups"],
            }
        )
        metadata.validate()
        return JSONResponse(dict(metadata))

    async def jwks(self, request: Request) -> Response:
        return JSONResponse(KeySet([self.key]).as_dict(private=False))

    async def authorize(self, request: Request) -> Response:
        incoming = Incoming(request, [])
        self.nonces.append(request.query_params.get("nonce", ""))
        try:
            grant = self.authorization.get_consent_grant(incoming, end_user=self.user)
        except OAuth2Error as refused:
            return self.authorization.handle_error_response(incoming, refused)  # type: ignore[no-any-return]
        return self.authorization.create_authorization_response(incoming, grant_user=self.user, grant=grant)  # type: ignore[no-any-return]

    async def token(self, request: Request) -> Response:
        form = parse_qsl((await request.body()).decode(), keep_blank_values=True)
        self.token_requests.append({**dict(form), "authorization": request.headers.get("authorization", "")})
        return self.authorization.create_token_response(Incoming(request, form))  # type: ignore[no-any-return]

    # -- running -----------------------------------------------------------------------------------

    def start(self) -> Provider:
        app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery, methods=["GET"]),
                Route("/jwks", self.jwks, methods=["GET"]),
                Route("/authorize", self.authorize, methods=["GET"]),
                Route("/token", self.token, methods=["POST"]),
            ]
        )
        self._server = ThreadedServer(app, "OpenID provider")
        self.url = self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
