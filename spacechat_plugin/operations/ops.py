"""Operations: retry a channel's last turn, restart an agent, reconnect a provider, recover the
instance. Each needs its scope, calls the HostAPI, emits `system.recovery.invoked` with its
outcome, and is audited with who, what, why (a reason) and the result.

The two-person rule (`ops.require_second_approval`): a chosen operation first waits, as an
approval card in the ops channel, until a second person holding the same scope approves it; the
one who asked cannot approve their own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from ..agents.replies import turn_input
from ..cards.service import CardService, check_card, initial_state
from ..config import OpsConfig
from ..errors import Conflict, Forbidden, NotFound
from ..events import Actor, Event, SystemRecoveryInvoked, new_id, now_rfc3339
from ..hookspecs import HostAPI
from ..identity.permissions import Access, Principal
from ..store import audit
from ..store import incidents as incident_store
from ..store import messages as message_store
from ..store import ops as ops_store
from ..store.db import Database, WriteTx, loads

log = logging.getLogger("spacechat.ops")

SCOPES = {"retry": "ops:retry", "restart": "ops:restart", "reconnect": "ops:reconnect", "recover": "ops:recover"}


class Ops:
    def __init__(
        self,
        *,
        db: Database,
        settings: OpsConfig,
        host: HostAPI | None,
        access: Access,
        cards: CardService,
        runs_agents: Callable[[], bool] = lambda: True,
    ) -> None:
        self.db, self.settings, self.host, self.access, self.cards = db, settings, host, access, cards
        # With several gateways only the lease holder's host runs turns (the API forwards
        # operations there: api/forward.py); an operation reaching another is refused, not run twice.
        self.runs_agents = runs_agents

    async def request(
        self, who: Principal, action: str, target: str, reason: str, *, ip: str | None, thread_id: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Run an operation now, or, under the two-person rule, ask for a second approval (202)."""
        if action in self.settings.require_second_approval:
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
        host = self.host
        outcome, result = "ok", {}
        try:
            if host is None:
                raise RuntimeError("no agent host is running")
            if not self.runs_agents():
                raise RuntimeError("this gateway does not run the agents now; another gateway holds the lease")
            if action == "retry":
                last = await self._last_reply(target, thread_id)
                lost = await turn_input(self.db, last) if last else {}
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
                ops_store.finish_pending(tx, operation_id, outcome == "ok", result)

        await self.db.write(record)
        return {"action": action, "target": target, "outcome": outcome, "result": result}

    async def _last_reply(self, channel_id: str, thread_id: str | None) -> dict[str, Any] | None:
        """The channel's (or thread's) last agent reply: the turn a retry runs again."""
        reply_id = await ops_store.last_agent_reply_id(self.db, channel_id, thread_id)
        return None if reply_id is None else await message_store.get_message(self.db, reply_id)

    async def _supersede(self, channel_id: str, thread_id: str | None, turn_id: str, actor: Actor) -> None:
        """Retry marks the failed reply it replaces as superseded."""
        found = await ops_store.last_failed_reply(self.db, channel_id, thread_id)
        if found is None or found[1].get("superseded_by_turn"):
            return
        reply_id, metadata = found
        metadata = {**metadata, "superseded_by_turn": turn_id}
        await self.db.write(lambda tx: message_store.update_message(tx, reply_id, metadata=metadata))

    async def _ask_second(
        self, who: Principal, action: str, target: str, reason: str, ip: str | None, thread_id: str | None
    ) -> dict[str, Any]:
        channel = self.access.channel_named(self.settings.ops_channel, who.org_id)
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
        checked = check_card(blocks)

        def create(tx: WriteTx) -> dict[str, Any]:
            # The approval card and the pending operation are one change: one transaction.
            message = None
            if channel is not None:
                message = message_store.post_message(
                    tx,
                    actor=who.actor,
                    channel=channel,
                    thread_id=None,
                    text=f"{action} {target} needs a second operator",
                    blocks=checked,
                    metadata={"pending_op": operation_id},
                    card_state=initial_state(checked),
                ).message
            pending = ops_store.insert_pending(
                tx,
                operation_id=operation_id,
                org_id=who.org_id,
                action=action,
                target=target,
                reason=reason,
                requested_by=who.user_id,
                requested_at=now_rfc3339(),
                message_id=message["id"] if message else None,
                thread_id=thread_id,
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
            return pending

        return await self.db.write(create)

    async def decide(self, who: Principal, operation_id: str, approve: bool, *, ip: str | None) -> dict[str, Any]:
        row = await ops_store.get_pending(self.db, operation_id)
        if row is None or row["org_id"] != who.org_id:
            raise NotFound("no such operation")
        _check_decider(who, row)

        def mark(tx: WriteTx) -> bool:
            changed = ops_store.decide_pending(
                tx, operation_id, "approved" if approve else "denied", who.user_id, now_rfc3339()
            )
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

        if not await self.db.write(mark):
            raise Conflict("this operation was decided meanwhile", code="already_decided")
        if row["message_id"]:
            await self.cards.decide(
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
        return await ops_store.list_pending(self.db, org_id)

    # -- cards this service owns (cards.service.CardHandler) ---------------------------------

    async def check_interaction(self, who: Principal, message: Mapping[str, Any], action_id: str) -> None:
        pending_op = (message.get("metadata") or {}).get("pending_op")
        if (
            pending_op
            and action_id in ("ops.approve", "ops.deny")
            and await ops_store.requested_by(self.db, pending_op) == who.user_id
        ):
            raise Forbidden("the operator who asked cannot approve their own operation", code="same_operator")

    async def handle_interaction(self, who: Principal, interaction: dict[str, Any], message: dict[str, Any]) -> bool:
        """A second operator's Approve/Deny, and Retry on an incident's card."""
        metadata = message.get("metadata") or {}
        action_id = interaction["action_id"]
        try:
            if metadata.get("pending_op") and action_id in ("ops.approve", "ops.deny"):
                await self.decide(who, metadata["pending_op"], action_id == "ops.approve", ip=None)
            elif metadata.get("incident_id") and action_id == "ops.retry":
                incident = await incident_store.get(self.db, metadata["incident_id"])
                retry = (incident["details"] or {}).get("retry") if incident else None
                if incident is not None and retry:
                    await self.execute(
                        who.actor,
                        who.org_id,
                        "retry",
                        retry["channel_id"],
                        f"retry from incident #{incident['number']}",
                        ip=None,
                        thread_id=retry.get("thread_id"),
                    )
            else:
                return False
        except (Conflict, Forbidden, NotFound) as exc:
            log.info("%s on %s: %s", action_id, message["id"], exc.message)
        return True


def _check_decider(who: Principal, row: Mapping[str, Any]) -> None:
    """Who may decide a waiting operation: a second person holding its scope (and, for an
    instance-wide one, the instance role, as asking for it needed), while it still waits."""
    scope = SCOPES[row["action"]]
    if scope not in who.scopes:
        raise Forbidden(f"this needs the {scope} permission", details={"scope": scope})
    if row["action"] == "recover" and "instance:operate" not in who.scopes:
        raise Forbidden("this needs the instance:operate permission", details={"scope": "instance:operate"})
    if row["requested_by"] == who.user_id:
        raise Forbidden("the operator who asked cannot approve their own operation", code="same_operator")
    if row["status"] != "pending":
        raise Conflict(f"this operation is already {row['status']}", code="already_decided")
