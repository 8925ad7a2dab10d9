"""People, bots and agents; sessions, API tokens, setup links, invitations; memberships."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import Conflict, Gone
from ..events import (
    Actor,
    CredentialRevoked,
    Event,
    MemberAdded,
    MemberJoined,
    MemberRemoved,
    MemberUpdated,
    TeamCreated,
    new_id,
    now_rfc3339,
)
from . import chat
from .db import Database, WriteTx, dumps, loads

TOKEN_PREFIX = "sc_"


def secret_token(prefix: str = TOKEN_PREFIX) -> str:
    return prefix + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def later(**delta: float) -> str:
    moment = datetime.now(UTC) + timedelta(**delta)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def user_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "org_id": row["org_id"],
        "kind": row["kind"],
        "name": row["name"],
        "email": row["email"],
        "role": row["role"],
        "handle": row["handle"],
        "created_at": row["created_at"],
        "deactivated": row["deactivated_at"] is not None,
        "avatar_url": _avatar_url(row),
    }


def _avatar_url(row: Any) -> str | None:
    """Where a person's picture is served; the attachment id in the query busts caches."""
    # `in` on a sqlite3.Row looks at its values: its keys() are the column names.
    picture = row["avatar_attachment_id"] if "avatar_attachment_id" in row.keys() else None  # noqa: SIM118
    return f"/v1/users/{row['id']}/avatar?v={picture}" if picture else None


def session_json(row: Any, current: str | None = None) -> dict[str, Any]:
    return {
        "id": row["id"],
        "user_id": row["user_id"],
        "device_name": row["device_name"],
        "user_agent": row["user_agent"],
        "ip": row["ip"],
        "created_at": row["created_at"],
        "last_seen_at": row["last_seen_at"],
        "expires_at": row["expires_at"],
        "revoked": row["revoked_at"] is not None,
        "current": row["id"] == current,
    }


def token_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "user_id": row["user_id"],
        "scopes": loads(row["scopes"]),
        "created_at": row["created_at"],
        "expires_at": row["expires_at"],
        "revoked": row["revoked_at"] is not None,
        "last_used_at": row["last_used_at"],
    }


def invitation_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "email": row["email"],
        "role": row["role"],
        "channel_ids": loads(row["channel_ids"]),
        "created_by": row["created_by"],
        "created_at": row["created_at"],
        "expires_at": row["expires_at"],
        "used": row["used_at"] is not None,
        "revoked": row["revoked_at"] is not None,
    }


# --- users ---------------------------------------------------------------------------------


def create_user(
    tx: WriteTx,
    *,
    org_id: str,
    kind: str,
    name: str,
    role: str,
    email: str | None = None,
    password_hash: str | None = None,
    user_id: str | None = None,
    instance_admin: bool = False,
    actor: Actor,
) -> dict[str, Any]:
    if email is not None and tx.one("SELECT 1 FROM users WHERE org_id = ? AND email = ?", (org_id, email)):
        raise Conflict("an account with this email already exists", code="email_taken")
    # An agent of the host (whose id is its own, `spacebot`) is mentioned by its id; anyone else,
    # bots included, by their name.
    named_by_id = kind == "agent" and user_id is not None and chat.MENTION.fullmatch("@" + user_id)
    user_id = user_id or new_id("usr")
    wanted = user_id if named_by_id else chat.slug(name)
    row = {
        "id": user_id,
        "handle": chat.unique_handle(tx, org_id, wanted),
        "org_id": org_id,
        "kind": kind,
        "email": email,
        "name": name,
        "password_hash": password_hash,
        "role": role,
        "instance_admin": int(instance_admin),
        "created_at": now_rfc3339(),
        "deactivated_at": None,
    }
    tx.execute(
        "INSERT INTO users (id, org_id, kind, email, name, password_hash, role, instance_admin, created_at,"
        " deactivated_at, handle) VALUES (:id, :org_id, :kind, :email, :name, :password_hash, :role,"
        " :instance_admin, :created_at, :deactivated_at, :handle)",
        row,
    )
    for team in tx.all("SELECT id FROM teams WHERE org_id = ?", (org_id,)):
        tx.execute("INSERT OR IGNORE INTO team_members VALUES (?, ?, ?)", (team["id"], row["id"], row["created_at"]))
    user = user_json(row)
    tx.emit(Event(MemberJoined(user=user), actor=actor, org_id=org_id))
    return user


def user_row(tx: WriteTx, user_id: str) -> Any:
    return tx.one("SELECT * FROM users WHERE id = ?", (user_id,))


def active_person(tx: WriteTx, org_id: str, id_or_email: str) -> Any:
    """The active human of the organisation with this id or email, or None."""
    return tx.one(
        "SELECT * FROM users WHERE org_id = ? AND kind = 'human' AND deactivated_at IS NULL AND (id = ? OR email = ?)",
        (org_id, id_or_email, id_or_email),
    )


def set_role(tx: WriteTx, user_id: str, role: str, actor: Actor) -> dict[str, Any]:
    tx.execute("UPDATE users SET role = ? WHERE id = ?", (role, user_id))
    user = user_json(user_row(tx, user_id))
    tx.emit(Event(MemberUpdated(user=user), actor=actor, org_id=user["org_id"]))
    return user


def deactivate(tx: WriteTx, user_id: str, actor: Actor) -> tuple[dict[str, Any], list[str]]:
    """Deactivate a user, revoking every session and token; returns the user and the ids of the
    sessions and tokens that were live (read in the same transaction, so none is missed)."""
    now = now_rfc3339()
    live = [row[0] for row in tx.all("SELECT id FROM sessions WHERE user_id = ? AND revoked_at IS NULL", (user_id,))]
    live += [row[0] for row in tx.all("SELECT id FROM api_tokens WHERE user_id = ? AND revoked_at IS NULL", (user_id,))]
    tx.execute("UPDATE users SET deactivated_at = COALESCE(deactivated_at, ?) WHERE id = ?", (now, user_id))
    tx.execute(
        "UPDATE sessions SET revoked_at = ?, revoked_by = ? WHERE user_id = ? AND revoked_at IS NULL",
        (now, actor.id, user_id),
    )
    tx.execute("UPDATE api_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL", (now, user_id))
    user = user_json(user_row(tx, user_id))
    tx.emit(Event(MemberUpdated(user=user), actor=actor, org_id=user["org_id"]))
    return user, live


def owners_left(tx: WriteTx, org_id: str) -> int:
    row = tx.one("SELECT COUNT(*) FROM users WHERE org_id = ? AND role = 'owner' AND deactivated_at IS NULL", (org_id,))
    return int(row[0])


async def get_user(db: Database, user_id: str) -> dict[str, Any] | None:
    row = await db.fetchone("SELECT * FROM users WHERE id = ?", (user_id,))
    return None if row is None else user_json(row)


async def find_login(db: Database, email: str, org_id: str | None) -> list[Any]:
    if org_id:
        return await db.fetchall(
            "SELECT * FROM users WHERE email = ? AND org_id = ? AND kind = 'human'", (email, org_id)
        )
    return await db.fetchall("SELECT * FROM users WHERE email = ? AND kind = 'human'", (email,))


async def list_users(db: Database, org_id: str) -> list[dict[str, Any]]:
    rows = await db.fetchall("SELECT * FROM users WHERE org_id = ? ORDER BY kind DESC, name", (org_id,))
    return [user_json(row) for row in rows]


async def any_owner(db: Database, org_id: str) -> bool:
    return await db.fetchone("SELECT 1 FROM users WHERE org_id = ? AND role = 'owner'", (org_id,)) is not None


# --- sessions ------------------------------------------------------------------------------


def create_session(
    tx: WriteTx, *, user_id: str, org_id: str, device_name: str, user_agent: str, ip: str | None, days: float
) -> dict[str, Any]:
    now = now_rfc3339()
    row = {
        "id": new_id("ses"),
        "user_id": user_id,
        "org_id": org_id,
        "device_name": device_name,
        "user_agent": user_agent[:300],
        "ip": ip,
        "created_at": now,
        "last_seen_at": now,
        "expires_at": later(days=days),
        "revoked_at": None,
        "revoked_by": None,
    }
    tx.execute(
        "INSERT INTO sessions (id, user_id, org_id, device_name, user_agent, ip, created_at, last_seen_at, expires_at,"
        " revoked_at, revoked_by) VALUES (:id, :user_id, :org_id, :device_name, :user_agent, :ip, :created_at,"
        " :last_seen_at, :expires_at, :revoked_at, :revoked_by)",
        row,
    )
    return row


def revoke_session(tx: WriteTx, session_id: str, by: str | None) -> bool:
    return bool(
        tx.execute(
            "UPDATE sessions SET revoked_at = ?, revoked_by = ? WHERE id = ? AND revoked_at IS NULL",
            (now_rfc3339(), by, session_id),
        ).rowcount
    )


async def session_with_user(db: Database, session_id: str) -> Any:
    return await db.fetchone(
        "SELECT s.id AS session_id, s.expires_at, s.revoked_at, s.last_seen_at, u.* FROM sessions s"
        " JOIN users u ON u.id = s.user_id WHERE s.id = ?",
        (session_id,),
    )


async def list_sessions(db: Database, user_id: str) -> list[Any]:
    return await db.fetchall("SELECT * FROM sessions WHERE user_id = ? ORDER BY last_seen_at DESC", (user_id,))


async def get_session(db: Database, session_id: str) -> Any:
    return await db.fetchone("SELECT * FROM sessions WHERE id = ?", (session_id,))


def touch_sessions(tx: WriteTx, seen: dict[str, str]) -> None:
    tx.conn.executemany("UPDATE sessions SET last_seen_at = ? WHERE id = ?", [(t, s) for s, t in seen.items()])


# --- API tokens ----------------------------------------------------------------------------


def create_token(
    tx: WriteTx, *, org_id: str, user_id: str, name: str, scopes: list[str], expires_at: str | None, created_by: str
) -> tuple[str, dict[str, Any]]:
    """Create a token; return the secret (shown once) and its description (without it)."""
    secret = secret_token()
    row = {
        "id": new_id("tok"),
        "org_id": org_id,
        "user_id": user_id,
        "name": name,
        "token_hash": hash_token(secret),
        "scopes": dumps(sorted(scopes)),
        "created_at": now_rfc3339(),
        "expires_at": expires_at,
        "revoked_at": None,
        "last_used_at": None,
        "created_by": created_by,
    }
    tx.execute(
        "INSERT INTO api_tokens (id, org_id, user_id, name, token_hash, scopes, created_at, expires_at, revoked_at,"
        " last_used_at, created_by) VALUES (:id, :org_id, :user_id, :name, :token_hash, :scopes, :created_at,"
        " :expires_at, :revoked_at, :last_used_at, :created_by)",
        row,
    )
    return secret, token_json(row)


async def token_with_user(db: Database, secret: str) -> Any:
    return await db.fetchone(
        "SELECT t.id AS token_id, t.scopes, t.expires_at, t.revoked_at, u.* FROM api_tokens t"
        " JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?",
        (hash_token(secret),),
    )


async def list_tokens(db: Database, user_id: str) -> list[dict[str, Any]]:
    rows = await db.fetchall("SELECT * FROM api_tokens WHERE user_id = ? ORDER BY created_at DESC", (user_id,))
    return [token_json(row) for row in rows]


async def get_token(db: Database, token_id: str) -> Any:
    return await db.fetchone("SELECT * FROM api_tokens WHERE id = ?", (token_id,))


def revoke_token(tx: WriteTx, token_id: str) -> bool:
    return bool(
        tx.execute(
            "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (now_rfc3339(), token_id)
        ).rowcount
    )


def access_ended(tx: WriteTx, org_id: str, actor: Actor, keys: list[str]) -> None:
    """Access under these credential or user ids ended in this transaction: the event that tells
    every gateway, in its place in the log, to drop cached credentials and end those streams."""
    if keys:
        tx.emit(Event(CredentialRevoked(keys=keys), actor=actor, org_id=org_id))


# --- setup links and invitations -----------------------------------------------------------


def create_setup_token(tx: WriteTx, org_id: str, *, instance_admin: bool) -> str:
    """A one-time link secret to create an organisation's first owner; older unused ones die."""
    tx.execute("UPDATE setup_tokens SET used_at = ? WHERE org_id = ? AND used_at IS NULL", (now_rfc3339(), org_id))
    secret = secret_token("setup_")
    tx.execute(
        "INSERT INTO setup_tokens (id, org_id, token_hash, instance_admin, created_at) VALUES (?, ?, ?, ?, ?)",
        (new_id("setup"), org_id, hash_token(secret), int(instance_admin), now_rfc3339()),
    )
    return secret


def claim_setup_token(tx: WriteTx, secret: str) -> Any:
    row = tx.one("SELECT * FROM setup_tokens WHERE token_hash = ?", (hash_token(secret),))
    if row is None or row["used_at"] is not None:
        raise Gone(
            "this setup link is not valid any more (it was used, or a newer one was made)", code="setup_link_used"
        )
    tx.execute("UPDATE setup_tokens SET used_at = ? WHERE id = ?", (now_rfc3339(), row["id"]))
    return row


def create_invitation(
    tx: WriteTx, *, org_id: str, role: str, email: str | None, channel_ids: list[str], hours: float, created_by: str
) -> tuple[str, dict[str, Any]]:
    secret = secret_token("inv_")
    row = {
        "id": new_id("inv"),
        "org_id": org_id,
        "token_hash": hash_token(secret),
        "email": email,
        "role": role,
        "channel_ids": dumps(channel_ids),
        "created_by": created_by,
        "created_at": now_rfc3339(),
        "expires_at": later(hours=hours),
        "used_at": None,
        "used_by": None,
        "revoked_at": None,
    }
    tx.execute(
        "INSERT INTO invitations (id, org_id, token_hash, email, role, channel_ids, created_by, created_at, expires_at,"
        " used_at, used_by, revoked_at) VALUES (:id, :org_id, :token_hash, :email, :role, :channel_ids, :created_by,"
        " :created_at, :expires_at, :used_at, :used_by, :revoked_at)",
        row,
    )
    return secret, invitation_json(row)


def invitation_by_secret(tx: WriteTx, secret: str) -> Any:
    return tx.one("SELECT * FROM invitations WHERE token_hash = ?", (hash_token(secret),))


async def peek_invitation(db: Database, secret: str) -> Any:
    return await db.fetchone(
        "SELECT i.*, o.name AS org_name FROM invitations i JOIN orgs o ON o.id = i.org_id WHERE i.token_hash = ?",
        (hash_token(secret),),
    )


async def list_invitations(db: Database, org_id: str) -> list[dict[str, Any]]:
    rows = await db.fetchall("SELECT * FROM invitations WHERE org_id = ? ORDER BY created_at DESC", (org_id,))
    return [invitation_json(row) for row in rows]


# --- memberships ---------------------------------------------------------------------------


def add_member(tx: WriteTx, channel: dict[str, Any], user_id: str, actor: Actor) -> bool:
    added = tx.execute(
        "INSERT OR IGNORE INTO channel_members (channel_id, user_id, added_at, added_by) VALUES (?, ?, ?, ?)",
        (channel["id"], user_id, now_rfc3339(), actor.id),
    ).rowcount
    if added:
        tx.emit(
            Event(
                MemberAdded(user_id=user_id, added_by=actor.id),
                actor=actor,
                org_id=channel["org_id"],
                team_id=channel["team_id"],
                channel_id=channel["id"],
            )
        )
    return bool(added)


def remove_member(tx: WriteTx, channel: dict[str, Any], user_id: str, actor: Actor) -> bool:
    removed = tx.execute(
        "DELETE FROM channel_members WHERE channel_id = ? AND user_id = ?", (channel["id"], user_id)
    ).rowcount
    if removed:
        tx.emit(
            Event(
                MemberRemoved(user_id=user_id, removed_by=actor.id),
                actor=actor,
                org_id=channel["org_id"],
                team_id=channel["team_id"],
                channel_id=channel["id"],
            )
        )
    return bool(removed)


async def all_memberships(db: Database) -> list[tuple[str, str]]:
    return [(row[0], row[1]) for row in await db.fetchall("SELECT channel_id, user_id FROM channel_members")]


async def channel_members(db: Database, channel_id: str) -> list[dict[str, Any]]:
    rows = await db.fetchall(
        "SELECT u.*, m.added_at FROM channel_members m JOIN users u ON u.id = m.user_id WHERE m.channel_id = ?"
        " ORDER BY u.name",
        (channel_id,),
    )
    return [{**user_json(row), "added_at": row["added_at"]} for row in rows]


def emit_team_created(tx: WriteTx, team: dict[str, Any], actor: Actor) -> None:
    tx.emit(Event(TeamCreated(team=team), actor=actor, org_id=team["org_id"], team_id=team["id"]))


def has_owner(tx: WriteTx, org_id: str) -> bool:
    return tx.one("SELECT 1 FROM users WHERE org_id = ? AND role = 'owner'", (org_id,)) is not None


def use_invitation(tx: WriteTx, invitation_id: str, user_id: str) -> None:
    tx.execute("UPDATE invitations SET used_at = ?, used_by = ? WHERE id = ?", (now_rfc3339(), user_id, invitation_id))


async def get_invitation(db: Database, invitation_id: str) -> Any:
    return await db.fetchone("SELECT * FROM invitations WHERE id = ?", (invitation_id,))


def revoke_invitation(tx: WriteTx, invitation_id: str) -> None:
    tx.execute(
        "UPDATE invitations SET revoked_at = strftime('%Y-%m-%dT%H:%M:%fZ') WHERE id = ? AND revoked_at IS NULL",
        (invitation_id,),
    )


async def login_of(db: Database, user_id: str) -> Any:
    """`(email, password_hash)` of a user, or None."""
    return await db.fetchone("SELECT email, password_hash FROM users WHERE id = ?", (user_id,))


def rename(tx: WriteTx, user_id: str, name: str) -> None:
    tx.execute("UPDATE users SET name = ? WHERE id = ?", (name, user_id))


def set_avatar(tx: WriteTx, user_id: str, attachment_id: str | None) -> None:
    tx.execute("UPDATE users SET avatar_attachment_id = ? WHERE id = ?", (attachment_id, user_id))


def profile_changed(tx: WriteTx, user_id: str, actor: Actor) -> dict[str, Any]:
    """A person's name or picture changed: everyone sees it live (member.updated)."""
    user = user_json(user_row(tx, user_id))
    tx.emit(Event(MemberUpdated(user=user), actor=actor, org_id=user["org_id"]))
    return user


async def avatar_of(db: Database, user_id: str) -> Any:
    """The attachment row of a person's picture, or None."""
    return await db.fetchone(
        "SELECT a.* FROM users u JOIN attachments a ON a.id = u.avatar_attachment_id WHERE u.id = ?", (user_id,)
    )


def set_password(tx: WriteTx, user_id: str, password_hash: str, keep_session: str | None) -> None:
    """A new password signs out every other device (all sessions but `keep_session`)."""
    tx.execute("UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id))
    tx.execute(
        "UPDATE sessions SET revoked_at = strftime('%Y-%m-%dT%H:%M:%fZ'), revoked_by = ?"
        " WHERE user_id = ? AND revoked_at IS NULL AND id IS NOT ?",
        (user_id, user_id, keep_session),
    )


async def org_of_user(db: Database, user_id: str) -> str | None:
    row = await db.fetchone("SELECT org_id FROM users WHERE id = ?", (user_id,))
    return None if row is None else str(row["org_id"])


def shared_secret(tx: WriteTx, candidate: str) -> str:
    """The signing secret every gateway of a database shares (issue 17: a session signed by one
    gateway is read by any other): the first gateway's candidate is kept, and returned to all."""
    tx.execute("INSERT INTO meta (key, value) VALUES ('session_secret', ?) ON CONFLICT (key) DO NOTHING", (candidate,))
    return str(tx.one("SELECT value FROM meta WHERE key = 'session_secret'")[0])
