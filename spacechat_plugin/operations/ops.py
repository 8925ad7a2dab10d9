"""Operations: retry a channel's last turn, restart an agent, reconnect a provider, recover the
instance. Each needs its scope, calls the HostAPI, emits `system.recovery.invoked` with its
outcome, and is audited with who, what, why (a reason) and the result.

The two-person rule (`ops.require_second_approval`): a chosen operation first waits, as an
approval card in the ops channel, until a second person holding the same scope approves it; the
one who asked cannot approve their own.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..errors import Conflict, Forbidden, NotFound
from ..events import Actor, Event, SystemRecoveryInvoked, new_id, now_rfc3339
from ..identity.permissions import Principal
from ..store import audit
from ..store import messages as message_store
from ..store.db import WriteTx, dumps, loads

if TYPE_CHECKING:
    from ..app import Spacechat

log = logging.getLogger("spacechat.ops")

SCOPES = {"retry": "ops:retry", "restart": "ops:restart", "reconnect": "ops:reconnect", "recover": "ops:recover"}


def pending_json(row: Any) -> dict[str, Any]:
    return {
        key: row[key]
        for key in (
            "id",
            "action",
            "target",
            "reason",
            "requested_by",
            "requested_at",
            "status",
            "decided_by",
            "decided_at",
            "message_id",
        )
    } | {"result": loads(row["result"])}


class Ops:
    def __init__(self, app: Spacechat) -> None:
        self.app = app

    async def request(
        self, who: Principal, action: str, target: str, reason: str, *, ip: str | None, thread_id: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Run an operation now, or, under the two-person rule, ask for a second approval (202)."""
        if action in self.app.settings.ops.require_second_approval:
            return 202, await self._ask_second(who, action, target, reason, ip, thread_id)
        return 200, await self.execute(who.actor, who.org_id, action, target, reason, ip=ip, thread_id=thread_id)

    async def execute(
        self,
        actor: Actor,
        org_id: str,
        action: str,
        target: str,
        reason: str,
        *,
        ip: str | None,
        thread_id: str | None = None,
        operation_id: str | None = None,
        approved_by: str | None = None,
    ) -> dict[str, Any]:
        host = self.app.host
        outcome, result = "ok", {}
        try:
            if host is None:
                raise RuntimeError("no agent host is running")
            if action == "retry":
                last = await self._last_reply(target, thread_id)
                lost = await self.app.turn_input(last) if last else {}
                result = await host.retry_turn(
                    channel_id=target, thread_id=thread_id or (last or {}).get("thread_id"), **lost
                )
                await self._supersede(target, thread_id or result.get("thread_id"), result["turn_id"], actor)
            elif action == "restart":
                result = await host.restart_agent(agent_id=target)
            elif action == "reconnect":
                result = await host.reconnect_provider(name=target)
            else:
                result = await host.recover_instance()
        except LookupError as exc:
            outcome, result = "failed", {"error": str(exc) or "not found"}
        except RuntimeError as exc:
            outcome, result = "failed", {"error": str(exc)}
        details = {
            "target": target,
            "reason": reason,
            "outcome": outcome,
            "result": result,
            "approved_by": approved_by,
            "operation_id": operation_id,
        }

        def record(tx: WriteTx) -> None:
            tx.emit(
                Event(
                    SystemRecoveryInvoked(
                        action=action,
                        target=target,
                        reason=reason,
                        outcome=outcome,
                        result=result,
                        operation_id=operation_id,
                    ),
                    actor=actor,
                    org_id=org_id,
                )
            )
            audit.append(
                tx,
                org_id=org_id,
                actor=actor,
                action=f"ops.{action}",
                target_type=action,
                target_id=target,
                ip=ip,
                outcome=outcome,
                details=details,
            )
            if operation_id is not None:
                tx.execute(
                    "UPDATE pending_ops SET status = ?, result = ? WHERE id = ?",
                    ("done" if outcome == "ok" else "failed", dumps(result), operation_id),
                )

        await self.app.db.write(record)
        return {"action": action, "target": target, "outcome": outcome, "result": result}

    async def _last_reply(self, channel_id: str, thread_id: str | None) -> dict[str, Any] | None:
        """The channel's (or thread's) last agent reply: the turn a retry runs again."""
        where, params = ("thread_id = ?", [thread_id]) if thread_id else ("channel_id = ?", [channel_id])
        row = await self.app.db.fetchone(
            f"SELECT id FROM messages WHERE {where} AND author_kind = 'agent' AND blocks IS NULL"
            " ORDER BY seq DESC LIMIT 1",
            params,
        )
        return None if row is None else await message_store.get_message(self.app.db, row["id"])

    async def _supersede(self, channel_id: str, thread_id: str | None, turn_id: str, actor: Actor) -> None:
        """Retry marks the failed reply it replaces as superseded."""
        where, params = "channel_id = ?", [channel_id]
        if thread_id:
            where, params = "thread_id = ?", [thread_id]
        row = await self.app.db.fetchone(
            f"SELECT id, metadata FROM messages WHERE {where} AND author_kind = 'agent' AND state = 'failed'"
            " ORDER BY seq DESC LIMIT 1",
            params,
        )
        if row is None or loads(row["metadata"]).get("superseded_by_turn"):
            return
        metadata = {**loads(row["metadata"]), "superseded_by_turn": turn_id}
        await self.app.db.write(lambda tx: message_store.update_message(tx, row["id"], metadata=metadata))

    async def _ask_second(
        self, who: Principal, action: str, target: str, reason: str, ip: str | None, thread_id: str | None
    ) -> dict[str, Any]:
        channel = self.app.sdk.channel_named(self.app.settings.ops.ops_channel, who.org_id)
        operation_id = new_id("op")
        scope = SCOPES[action]
        blocks: list[dict[str, Any]] = [
            {
                "type": "status",
                "label": f"Waiting for a second operator: {action} {target}",
                "state": "warning",
                "detail": reason[:300],
            },
            {
                "type": "section",
                "text": f"**{who.name or who.user_id}** asks to **{action}** `{target}`.\n\n> {reason}",
            },
            {
                "type": "actions",
                "block_id": "second",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "ops.approve",
                        "label": "Approve",
                        "style": "primary",
                        "scope": scope,
                    },
                    {"type": "button", "action_id": "ops.deny", "label": "Deny", "style": "danger", "scope": scope},
                ],
            },
        ]
        message = None
        if channel is not None:
            message = await self.app.sdk.post(
                channel["id"],
                f"{action} {target} needs a second operator",
                blocks=blocks,
                author=who.actor,
                metadata={"pending_op": operation_id},
            )

        def create(tx: WriteTx) -> dict[str, Any]:
            tx.execute(
                "INSERT INTO pending_ops (id, org_id, action, target, reason, requested_by, requested_at, status,"
                " message_id, result) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                (
                    operation_id,
                    who.org_id,
                    action,
                    target,
                    reason,
                    who.user_id,
                    now_rfc3339(),
                    message["id"] if message else None,
                    dumps({"thread_id": thread_id}),
                ),
            )
            tx.emit(
                Event(
                    SystemRecoveryInvoked(
                        action=action,
                        target=target,
                        reason=reason,
                        outcome="pending",
                        result={},
                        operation_id=operation_id,
                    ),
                    actor=who.actor,
                    org_id=who.org_id,
                )
            )
            audit.append(
                tx,
                org_id=who.org_id,
                actor=who.actor,
                action=f"ops.{action}",
                target_type=action,
                target_id=target,
                ip=ip,
                outcome="pending",
                details={"reason": reason, "operation_id": operation_id},
            )
            return pending_json(tx.one("SELECT * FROM pending_ops WHERE id = ?", (operation_id,)))

        return await self.app.db.write(create)

    async def decide(self, who: Principal, operation_id: str, approve: bool, *, ip: str | None) -> dict[str, Any]:
        row = await self.app.db.fetchone("SELECT * FROM pending_ops WHERE id = ?", (operation_id,))
        if row is None or row["org_id"] != who.org_id:
            raise NotFound("no such operation")
        scope = SCOPES[row["action"]]
        if scope not in who.scopes:
            raise Forbidden(f"this needs the {scope} permission", details={"scope": scope})
        if row["requested_by"] == who.user_id:
            raise Forbidden("the operator who asked cannot approve their own operation", code="same_operator")
        if row["status"] != "pending":
            raise Conflict(f"this operation is already {row['status']}", code="already_decided")

        def mark(tx: WriteTx) -> bool:
            changed = tx.execute(
                "UPDATE pending_ops SET status = ?, decided_by = ?, decided_at = ? WHERE id = ? AND status = 'pending'",
                ("approved" if approve else "denied", who.user_id, now_rfc3339(), operation_id),
            ).rowcount
            if changed and not approve:
                tx.emit(
                    Event(
                        SystemRecoveryInvoked(
                            action=row["action"],
                            target=row["target"],
                            reason=row["reason"],
                            outcome="denied",
                            result={},
                            operation_id=operation_id,
                        ),
                        actor=who.actor,
                        org_id=who.org_id,
                    )
                )
                audit.append(
                    tx,
                    org_id=who.org_id,
                    actor=who.actor,
                    action=f"ops.{row['action']}",
                    target_type=row["action"],
                    target_id=row["target"],
                    ip=ip,
                    outcome="denied",
                    details={"operation_id": operation_id, "requested_by": row["requested_by"]},
                )
            return bool(changed)

        if not await self.app.db.write(mark):
            raise Conflict("this operation was decided meanwhile", code="already_decided")
        if row["message_id"]:
            await self.app.cards.decide(
                row["message_id"],
                "second",
                f"{'Approved' if approve else 'Denied'} by {who.name or who.user_id}",
                who.actor,
            )
        if not approve:
            return {"operation_id": operation_id, "status": "denied"}
        requester = Actor("user", row["requested_by"])
        result = await self.execute(
            requester,
            who.org_id,
            row["action"],
            row["target"],
            row["reason"],
            ip=ip,
            thread_id=(loads(row["result"]) or {}).get("thread_id"),
            operation_id=operation_id,
            approved_by=who.user_id,
        )
        return {"operation_id": operation_id, "status": "approved", **result}

    async def pending(self, org_id: str) -> list[dict[str, Any]]:
        rows = await self.app.db.fetchall(
            "SELECT * FROM pending_ops WHERE org_id = ? ORDER BY requested_at DESC LIMIT 100", (org_id,)
        )
        return [pending_json(row) for row in rows]
