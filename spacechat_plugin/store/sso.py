"""Single sign-on: each organisation's OpenID Connect provider, the sign-ins under way, and which
provider subject is which person (identity/sso.py speaks the protocol; the SQL is here)."""

from __future__ import annotations

import hashlib
from typing import Any

from ..errors import BadRequest, Gone
from ..events import now_rfc3339
from .db import Database, WriteTx, dumps, loads


def provider_json(row: Any) -> dict[str, Any]:
    """A provider's settings as the API shows them: never the client secret."""
    return {
        "issuer": row["issuer"],
        "client_id": row["client_id"],
        "client_secret_set": bool(row["client_secret"]),
        "allowed_domains": loads(row["allowed_domains"]),
        "role_claim": row["role_claim"],
        "role_mapping": loads(row["role_mapping"]),
        "default_role": row["default_role"],
        "enabled": bool(row["enabled"]),
        "updated_at": row["updated_at"],
        "updated_by": row["updated_by"],
    }


async def get_provider(db: Database, org_id: str) -> Any:
    return await db.fetchone("SELECT * FROM sso_providers WHERE org_id = ?", (org_id,))


async def enabled_providers(db: Database) -> list[Any]:
    """The organisations that offer single sign-on, for the sign-in page."""
    return await db.fetchall(
        "SELECT o.id AS org_id, o.name AS org_name FROM sso_providers p JOIN orgs o ON o.id = p.org_id"
        " WHERE p.enabled = 1 ORDER BY o.name"
    )


def put_provider(tx: WriteTx, org_id: str, settings: dict[str, Any], updated_by: str) -> dict[str, Any]:
    """Create or replace the organisation's provider. A `client_secret` of None keeps the one
    stored (an admin changing the role mapping need not paste the secret again)."""
    old = tx.one("SELECT client_secret FROM sso_providers WHERE org_id = ?", (org_id,))
    secret = settings["client_secret"] if settings["client_secret"] is not None else (old[0] if old else None)
    if not secret:
        raise BadRequest(
            "client_secret is needed the first time a provider is set",
            code="invalid_request",
            details=[{"path": "client_secret", "message": "required"}],
        )
    row = {
        "org_id": org_id,
        "issuer": settings["issuer"],
        "client_id": settings["client_id"],
        "client_secret": secret,
        "allowed_domains": dumps(settings["allowed_domains"]),
        "role_claim": settings["role_claim"],
        "role_mapping": dumps(settings["role_mapping"]),
        "default_role": settings["default_role"],
        "enabled": int(settings["enabled"]),
        "updated_at": now_rfc3339(),
        "updated_by": updated_by,
    }
    tx.execute(
        "INSERT INTO sso_providers (org_id, issuer, client_id, client_secret, allowed_domains, role_claim,"
        " role_mapping, default_role, enabled, updated_at, updated_by) VALUES (:org_id, :issuer, :client_id,"
        " :client_secret, :allowed_domains, :role_claim, :role_mapping, :default_role, :enabled, :updated_at,"
        " :updated_by) ON CONFLICT (org_id) DO UPDATE SET issuer = excluded.issuer, client_id = excluded.client_id,"
        " client_secret = excluded.client_secret, allowed_domains = excluded.allowed_domains,"
        " role_claim = excluded.role_claim, role_mapping = excluded.role_mapping,"
        " default_role = excluded.default_role, enabled = excluded.enabled, updated_at = excluded.updated_at,"
        " updated_by = excluded.updated_by",
        row,
    )
    return provider_json(row)


def delete_provider(tx: WriteTx, org_id: str) -> bool:
    tx.execute("DELETE FROM sso_logins WHERE org_id = ?", (org_id,))
    return bool(tx.execute("DELETE FROM sso_providers WHERE org_id = ?", (org_id,)).rowcount)


# --- sign-ins under way ---------------------------------------------------------------------


def state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def begin_login(
    tx: WriteTx, *, state: str, org_id: str, nonce: str, code_verifier: str, return_to: str, expires_at: str
) -> None:
    """Record a sign-in under way, forgetting those that expired (a table that only grows would
    be a way to fill the disk from the public login route)."""
    now = now_rfc3339()
    tx.execute("DELETE FROM sso_logins WHERE expires_at < ?", (now,))
    tx.execute(
        "INSERT INTO sso_logins (state_hash, org_id, nonce, code_verifier, return_to, created_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (state_hash(state), org_id, nonce, code_verifier, return_to, now, expires_at),
    )


def claim_login(tx: WriteTx, state: str) -> dict[str, Any]:
    """The sign-in this state belongs to, marked used in the same transaction: a state answers
    once, so a replayed callback is refused, on whichever gateway it lands."""
    row = tx.one("SELECT * FROM sso_logins WHERE state_hash = ?", (state_hash(state),))
    if row is None:
        raise BadRequest("this sign-in is not known here; start again", code="sso_state_invalid")
    if row["used_at"] is not None:
        raise BadRequest("this sign-in was already used; start again", code="sso_state_used")
    now = now_rfc3339()
    if row["expires_at"] <= now:
        raise Gone("this sign-in took too long; start again", code="sso_state_expired")
    tx.execute("UPDATE sso_logins SET used_at = ? WHERE state_hash = ?", (now, row["state_hash"]))
    return dict(row)


# --- who a subject is ------------------------------------------------------------------------


def user_by_subject(tx: WriteTx, org_id: str, issuer: str, subject: str) -> Any:
    return tx.one(
        "SELECT u.* FROM sso_identities i JOIN users u ON u.id = i.user_id"
        " WHERE i.org_id = ? AND i.issuer = ? AND i.subject = ?",
        (org_id, issuer, subject),
    )


def person_by_email(tx: WriteTx, org_id: str, email: str) -> Any:
    return tx.one("SELECT * FROM users WHERE org_id = ? AND email = ? AND kind = 'human'", (org_id, email))


def link_identity(tx: WriteTx, *, org_id: str, issuer: str, subject: str, user_id: str) -> None:
    now = now_rfc3339()
    tx.execute(
        "INSERT INTO sso_identities (org_id, issuer, subject, user_id, created_at, last_login_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (org_id, issuer, subject) DO UPDATE SET"
        " last_login_at = excluded.last_login_at",
        (org_id, issuer, subject, user_id, now, now),
    )
