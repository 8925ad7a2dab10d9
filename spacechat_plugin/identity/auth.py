"""Who is calling: credentials to a Principal.

- **Sessions** are server-side rows (device, user agent, created, last seen, revoked). The
  browser holds an itsdangerous-signed reference in an HttpOnly, SameSite=Lax cookie; other
  clients send the same signed reference as `Authorization: Bearer`. Revoking the row ends the
  session everywhere at once.
- **API tokens** (`sc_…`) are random, shown once and stored as SHA-256 hashes; they act as their
  owner with explicit scopes, cut down to what the owner's role still grants.
- **CSRF**: a write authenticated by the cookie must carry `X-CSRF-Token`, an HMAC of the
  session id that only a page of ours can read (from the login answer or GET /v1/me). A
  WebSocket authenticated by the cookie must come from our own origin.
- **Passwords** are hashed with argon2id; login is rate limited per account and per address.

The signing secret is made at first start and kept in the data directory with mode 0600. No
password, token or session reference is ever logged, put in an event, an error or the audit log.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import os
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from starlette.requests import HTTPConnection

from ..config import Settings
from ..errors import Forbidden, TooManyRequests, Unauthorized
from ..events import Actor, now_rfc3339
from ..store import identity
from ..store.db import Database, loads
from .permissions import Access, Principal, granted_scopes

SESSION_COOKIE = "spacechat_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
TOUCH_EVERY_SECONDS = 60
CACHE_SECONDS = 5.0
CACHE_ENTRIES = 10_000

_hasher = PasswordHasher()
# Verified against when an email is unknown, so a miss costs as much time as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


def load_or_create_secret(data_dir: Path) -> bytes:
    path = data_dir / "secret.key"
    if path.exists():
        return bytes.fromhex(path.read_text().strip())
    secret = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret.hex())
    return secret


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(stored: str | None, password: str) -> bool:
    def check() -> bool:
        try:
            return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


@functools.lru_cache(maxsize=4096)
def token_scopes(stored: str, role: str, instance_operator: bool) -> frozenset[str]:
    """A token's scopes (its stored JSON list) within what its owner's role grants. Remembered:
    one set shared by every request and stream of the same grant (a set of ~40 scopes is ~2 KiB,
    held by each open stream; #16), not parsed again per request."""
    return frozenset(loads(stored)) & granted_scopes(role, instance_operator)


class RateLimiter:
    """At most `limit` events per key within `window` seconds (a sliding window, in memory:
    one process serves an installation).

    Memory is bounded: a key whose events have all left the window is forgotten, and past
    `max_keys` the keys idle longest go first (issue 10: every address ever tried stayed, so a
    sweep of addresses grew it without end). Evicting a key can only let it try sooner, never
    block anyone wrongly, and a sweep large enough to evict a hot key is itself rate limited per
    account."""

    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic, max_keys: int = 50_000
    ) -> None:
        self.limit, self.window, self.clock, self.max_keys = limit, window, clock, max_keys
        # Ordered by last hit (a hit moves its key to the end), so the oldest come first.
        self._events: dict[str, deque[float]] = {}

    def __len__(self) -> int:
        return len(self._events)

    def _recent(self, key: str) -> deque[float]:
        events = self._events.get(key)
        if events is None:
            return deque()
        cutoff = self.clock() - self.window
        while events and events[0] < cutoff:
            events.popleft()
        if not events:
            del self._events[key]
        return events

    def blocked_for(self, key: str) -> float:
        """Seconds until `key` may try again (0 when it may now)."""
        events = self._recent(key)
        if len(events) < self.limit:
            return 0.0
        return max(0.0, events[0] + self.window - self.clock())

    def hit(self, key: str) -> None:
        events = self._recent(key)
        events.append(self.clock())
        self._events.pop(key, None)
        self._events[key] = events
        self._forget_old()

    def _forget_old(self) -> None:
        """Drop the longest idle keys: first those with nothing left in the window, then as many
        as it takes. Keys are in order of their last hit, so this stops at the first recent one
        (amortised constant time, even under a sweep)."""
        cutoff = self.clock() - self.window
        while self._events:
            oldest = next(iter(self._events))
            if self._events[oldest][-1] >= cutoff and len(self._events) <= self.max_keys:
                return
            del self._events[oldest]

    def clear(self, key: str) -> None:
        self._events.pop(key, None)


class Authenticator:
    def __init__(self, db: Database, access: Access, settings: Settings, secret: bytes) -> None:
        self.db, self.access, self.settings = db, access, settings
        self._secret = secret
        self._signer = URLSafeTimedSerializer(secret, salt="spacechat-session")
        self.login_by_account = RateLimiter(limit=5, window=15 * 60)
        self.login_by_address = RateLimiter(limit=20, window=15 * 60)
        self._seen: dict[str, float] = {}
        self._rows: dict[str, tuple[float, Any]] = {}
        self._touch: dict[str, str] = {}
        # With several gateways (issue 17) each sign-in attempt is told to every other gateway,
        # so the limits hold for a client spread over them.
        self.share: Callable[[str, dict[str, str]], None] | None = None
        # With `--workers`: changes whenever any worker revokes a credential (Database
        # `revocation_mark`); a change empties this process's cache before the next lookup, so a
        # session signed out on one worker is refused by the next request on any other.
        self.revocations: Callable[[], int] | None = None
        self._revocations_seen = 0

    # -- session references -------------------------------------------------------------------

    def sign(self, session_id: str) -> str:
        return str(self._signer.dumps(session_id))

    def unsign(self, reference: str) -> str | None:
        max_age = int(self.settings.auth.session_days * 86400)
        try:
            value = self._signer.loads(reference, max_age=max_age)
        except (BadSignature, SignatureExpired):
            return None
        return value if isinstance(value, str) else None

    def csrf_token(self, session_id: str) -> str:
        return hmac.new(self._secret, f"csrf:{session_id}".encode(), hashlib.sha256).hexdigest()[:40]

    def cookie_options(self) -> dict[str, Any]:
        return {
            "key": SESSION_COOKIE,
            "httponly": True,
            "samesite": "lax",
            "secure": self.settings.public_url.startswith("https://"),
            "path": "/",
            "max_age": int(self.settings.auth.session_days * 86400),
        }

    # -- authentication -----------------------------------------------------------------------

    async def authenticate(self, conn: HTTPConnection) -> Principal:
        bearer = _bearer(conn)
        if bearer is not None:
            if bearer.startswith(identity.TOKEN_PREFIX):
                return await self._from_token(bearer)
            return await self._from_session(bearer, via_cookie=False, conn=conn)
        cookie = conn.cookies.get(SESSION_COOKIE)
        if cookie:
            return await self._from_session(cookie, via_cookie=True, conn=conn)
        raise Unauthorized("sign in, or send 'Authorization: Bearer <token>'")

    async def _from_session(self, reference: str, *, via_cookie: bool, conn: HTTPConnection) -> Principal:
        session_id = self.unsign(reference)
        if session_id is None:
            raise Unauthorized("the session is not valid; sign in again", code="session_invalid")
        row = await self._cached(f"s:{session_id}", lambda: identity.session_with_user(self.db, session_id))
        now = now_rfc3339()
        if row is None or row["revoked_at"] is not None or row["expires_at"] <= now:
            raise Unauthorized("the session has ended; sign in again", code="session_invalid")
        if row["deactivated_at"] is not None:
            raise Unauthorized("this account is deactivated", code="account_deactivated")
        if via_cookie:
            self._check_csrf(conn, session_id)
        self._remember_seen(session_id, now)
        scopes = granted_scopes(row["role"], bool(row["instance_admin"]))
        return self._principal(row, credential="session", credential_id=session_id, scopes=scopes)

    def gateway_signature(self, text: str) -> str:
        """A gateway vouching for what it forwards to another (api/forward.py): the secret
        every gateway shares signs it."""
        return hmac.new(self._secret, f"gateway:{text}".encode(), hashlib.sha256).hexdigest()

    async def _from_token(self, secret: str) -> Principal:
        row = await self._cached(f"t:{identity.hash_token(secret)}", lambda: identity.token_with_user(self.db, secret))
        if row is None or row["revoked_at"] is not None:
            raise Unauthorized("this API token is not valid", code="token_invalid")
        if row["expires_at"] is not None and row["expires_at"] <= now_rfc3339():
            raise Unauthorized("this API token has expired", code="token_expired")
        if row["deactivated_at"] is not None:
            raise Unauthorized("this account is deactivated", code="account_deactivated")
        scopes = token_scopes(row["scopes"], row["role"], bool(row["instance_admin"]))
        return self._principal(row, credential="token", credential_id=row["token_id"], scopes=scopes)

    async def _cached(self, key: str, load: Callable[[], Awaitable[Any]]) -> Any:
        """A credential's row, read at most every CACHE_SECONDS (a read per request showed in the
        send benchmark). Revoking, deactivating or changing a role calls `forget`, so those take
        effect at once; the age bound covers changes made outside this process."""
        if self.revocations is not None and (mark := self.revocations()) != self._revocations_seen:
            self._revocations_seen = mark
            self._rows.clear()
        now = time.monotonic()
        hit = self._rows.get(key)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
        row = await load()
        if row is not None:
            if len(self._rows) >= CACHE_ENTRIES:
                self._rows.clear()
            self._rows[key] = (now, row)
        return row

    def forget(self) -> None:
        """Drop every cached credential: the next request of each reads its row again."""
        self._rows.clear()

    def _principal(self, row: Any, *, credential: str, credential_id: str, scopes: frozenset[str]) -> Principal:
        return Principal(
            actor=Actor("agent" if row["kind"] == "agent" else "user", row["id"]),
            org_id=row["org_id"],
            scopes=scopes,
            role=row["role"],
            name=row["name"],
            credential=credential,
            credential_id=credential_id,
            instance_admin=bool(row["instance_admin"]),
            channels=self.access.memberships(row["id"]),
        )

    def _check_csrf(self, conn: HTTPConnection, session_id: str) -> None:
        if conn.scope["type"] == "websocket":
            origin = conn.headers.get("origin")
            if origin is not None and origin.split("://", 1)[-1] != conn.headers.get("host", ""):
                raise Forbidden("this WebSocket comes from another site", code="csrf_failed")
            return
        if conn.scope.get("method", "GET") in SAFE_METHODS:
            return
        sent = conn.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent, self.csrf_token(session_id)):
            raise Forbidden("a cookie-authenticated write needs the X-CSRF-Token header", code="csrf_failed")

    def _remember_seen(self, session_id: str, now: str) -> None:
        """Last seen is written at most once a minute per session, in a batch."""
        moment = time.monotonic()
        if moment - self._seen.get(session_id, 0.0) >= TOUCH_EVERY_SECONDS:
            self._seen[session_id] = moment
            self._touch[session_id] = now

    async def flush_seen(self) -> None:
        if self._touch:
            batch, self._touch = self._touch, {}
            await self.db.write(lambda tx: identity.touch_sessions(tx, batch))

    # -- login rate limits --------------------------------------------------------------------

    def check_login_allowed(self, email: str, address: str) -> None:
        wait = max(self.login_by_account.blocked_for(email), self.login_by_address.blocked_for(address))
        if wait > 0:
            raise TooManyRequests(
                "too many failed sign-in attempts; try again later",
                details={"retry_after_seconds": int(wait) + 1},
                headers={"Retry-After": str(int(wait) + 1)},
            )

    def login_failed(self, email: str, address: str, *, share: bool = True) -> None:
        self.login_by_account.hit(email)
        self.login_by_address.hit(address)
        if share and self.share is not None:
            self.share("login_failed", {"email": email, "address": address})

    def login_succeeded(self, email: str, *, share: bool = True) -> None:
        self.login_by_account.clear(email)
        if share and self.share is not None:
            self.share("login_succeeded", {"email": email})


def _bearer(conn: HTTPConnection) -> str | None:
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def client_address(conn: HTTPConnection) -> str:
    return conn.client.host if conn.client else "unknown"
