"""The instance role's holders (`spacechat instance grant | revoke | list`): SQL for the CLI.

The role is a flag on a person (`users.instance_admin`), not an organisation role: the first
owner holds it from setup, and only the CLI (someone with the machine) grants or revokes it, so no
organisation's owner can give it to themselves. Changing it writes no event (nothing in the
realtime log depends on it), so the CLI may do it beside a running server: SQLite serialises the
two writers, and the server reads a credential's row again within seconds.
"""

from __future__ import annotations

from typing import Any

from ..events import Actor
from . import audit
from .db import Database, WriteTx

CLI = Actor("system", "cli")


def people_with_email(tx: WriteTx, email: str, org: str | None) -> list[Any]:
    """Active people with this email, in the organisation named or with this id when given."""
    rows = tx.all(
        "SELECT users.*, orgs.name AS org_name FROM users JOIN orgs ON orgs.id = users.org_id"
        " WHERE users.email = ? AND users.kind = 'human' AND users.deactivated_at IS NULL ORDER BY users.created_at",
        (email.lower(),),
    )
    return [row for row in rows if org is None or org in (row["org_id"], row["org_name"])]


def set_role(tx: WriteTx, user: Any, *, granted: bool, by: str) -> bool:
    """Grant or revoke; False when it was already so. Audited in the person's organisation."""
    changed = tx.execute(
        "UPDATE users SET instance_admin = ? WHERE id = ? AND instance_admin != ?",
        (int(granted), user["id"], int(granted)),
    ).rowcount
    if changed:
        audit.append(
            tx,
            org_id=user["org_id"],
            actor=CLI,
            action="instance.role_granted" if granted else "instance.role_revoked",
            target_type="user",
            target_id=user["id"],
            details={"email": user["email"], "by": by},
        )
    return bool(changed)


async def holders(db: Database) -> list[dict[str, Any]]:
    rows = await db.fetchall(
        "SELECT users.id, users.email, users.name, users.org_id, orgs.name AS org_name FROM users"
        " JOIN orgs ON orgs.id = users.org_id WHERE users.instance_admin = 1 AND users.deactivated_at IS NULL"
        " ORDER BY users.created_at"
    )
    return [dict(row) for row in rows]
