"""Who is calling: resolve a request's credentials to a Principal.

Until people and sessions arrive (issue 3), the one credential is the admin API token created
at first start: printed once, stored only as a SHA-256 hash.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from starlette.requests import HTTPConnection

from .errors import Unauthorized
from .events import Actor, new_id, now_rfc3339
from .permissions import SCOPES, Principal
from .store.db import Database, WriteTx, dumps, loads

TOKEN_PREFIX = "sc_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_api_token(tx: WriteTx, *, org_id: str, name: str, scopes: list[str]) -> tuple[str, dict[str, Any]]:
    """Create a token; return the secret (shown once) and the stored row (without it)."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = {
        "id": new_id("tok"),
        "org_id": org_id,
        "name": name,
        "token_hash": hash_token(secret),
        "scopes": dumps(sorted(scopes)),
        "created_at": now_rfc3339(),
    }
    tx.execute(
        "INSERT INTO api_tokens (id, org_id, name, token_hash, scopes, created_at)"
        " VALUES (:id, :org_id, :name, :token_hash, :scopes, :created_at)",
        row,
    )
    return secret, {k: v for k, v in row.items() if k != "token_hash"}


def bearer_token(conn: HTTPConnection) -> str | None:
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


async def authenticate(db: Database, conn: HTTPConnection) -> Principal:
    """The principal behind a request, or Unauthorized."""
    token = bearer_token(conn)
    if token is None:
        raise Unauthorized("sign in, or send an API token as 'Authorization: Bearer <token>'")
    row = await db.fetchone(
        "SELECT id, org_id, name, scopes, expires_at, revoked_at FROM api_tokens WHERE token_hash = ?",
        (hash_token(token),),
    )
    if row is None or row["revoked_at"] is not None:
        raise Unauthorized("this API token is not valid")
    if row["expires_at"] is not None and row["expires_at"] <= now_rfc3339():
        raise Unauthorized("this API token has expired")
    scopes = frozenset(loads(row["scopes"])) & frozenset(SCOPES)
    return Principal(
        actor=Actor("user", row["id"]),
        org_id=row["org_id"],
        scopes=scopes,
        name=row["name"],
        role="admin" if scopes == frozenset(SCOPES) else "token",
        credential_id=row["id"],
    )
