"""Tool approvals without fatigue: a policy per agent and tool, rules people make by deciding,
a pending inbox, escalation and timeout (#15).

Policies (`always`, `once_per_thread`, `auto`, `never`, each with a risk level shown on the
card) come from the API (`/v1/approvals/policies`) over the config (`[approvals]`); the most
specific one wins: this agent and this tool, any agent and this tool, this agent and any tool,
then the default. Before a policy, the rules people made apply: "Deny and remember" denies the
tool for that agent everywhere from then on; "Approve for this thread" (and the first approval
under `once_per_thread`) allows it in that thread. Every decision, a person's or a rule's, is an
`approval.decided` event and an audit row naming the rule that applied. `auto` asks nobody and
records nothing but the tool call itself (it is not a decision).

A pending approval older than `approvals.escalate_after_minutes` is escalated to
`approvals.escalate_to`; one older than `approvals.timeout_minutes` is denied. Time comes from a
clock given at construction, so tests move it by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ..cards.service import CardService, check_card, initial_state
from ..config import ApprovalsConfig
from ..errors import Conflict, NotFound
from ..events import SYSTEM, Actor, ApprovalDecided, ApprovalEscalated, ApprovalRequested, Event, Payload, new_id
from ..hookspecs import HostAPI
from ..identity.permissions import Access, Principal
from ..operations.clock import Clock, SystemClock, parse, stamp
from ..store import approvals as store
from ..store import audit, identity
from ..store import messages as message_store
from ..store.db import Database, WriteTx

log = logging.getLogger("spacechat.approvals")

DECISIONS = {
    "tool.approve": "approve",
    "tool.approve_thread": "approve_thread",
    "tool.deny": "deny",
    "tool.deny_remember": "deny_remember",
}
ALLOWING = ("approve", "approve_thread")


@dataclass(frozen=True)
class Policy:
    policy: str
    risk: str
    source: str  # what set it, for the audit: "api (set by u_1)", "config", "default", ...

    def describe(self, agent_id: str, tool: str) -> str:
        return f"policy {self.policy} for {agent_id}/{tool} ({self.source})"


def approval_card(approval: Mapping[str, Any]) -> list[dict[str, Any]]:
    shown = json.dumps(approval["arguments"], ensure_ascii=False)[:1500]
    scope = "tasks:approve"
    return [
        {
            "type": "tool_run",
            "tool": approval["tool"],
            "arguments_summary": shown[:200],
            "outcome": "running",
            "detail": "waiting for approval",
        },
        {
            "type": "section",
            "text": f"**{approval['agent_id']}** wants to run `{approval['tool']}` with:\n```json\n{shown}\n```",
        },
        {
            "type": "context",
            "elements": [f"Risk: **{approval['risk']}** · policy: {approval['policy']}"],
        },
        {
            "type": "actions",
            "block_id": "decision",
            "elements": [
                {"type": "button", "action_id": "tool.approve", "label": "Approve", "style": "primary", "scope": scope},
                {
                    "type": "button",
                    "action_id": "tool.approve_thread",
                    "label": "Approve for this thread",
                    "scope": scope,
                },
                {"type": "button", "action_id": "tool.deny", "label": "Deny", "style": "danger", "scope": scope},
                {"type": "button", "action_id": "tool.deny_remember", "label": "Deny and remember", "scope": scope},
            ],
        },
    ]


class Approvals:
    def __init__(
        self,
        *,
        db: Database,
        access: Access,
        settings: ApprovalsConfig,
        always_tools: Sequence[str],
        cards: CardService,
        host: HostAPI | None,
        clock: Clock | None = None,
        runs_agents: Callable[[], bool] = lambda: True,
    ) -> None:
        self.db, self.access, self.settings, self.cards, self.host = db, access, settings, cards, host
        self.always_tools = set(always_tools)
        self.clock: Clock = clock or SystemClock()
        # Whether this process runs the agents (several gateways or workers: the lease holder).
        self.runs_agents = runs_agents
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        # With several gateways (set by the app): every commit comes back through
        # `observe_relayed`, which releases or runs the calls decided on other gateways; those
        # decided here (`_handled`, marked before the commit, whose event comes back inside it)
        # are left to `decide`.
        self.relayed = False
        self._handled: set[str] = set()
        self._running: set[asyncio.Task[None]] = set()

    # -- policies -----------------------------------------------------------------------------

    async def policy_for(self, org_id: str, agent_id: str, tool: str) -> Policy:
        """The most specific policy: this agent and tool, any agent and this tool, this agent and
        any tool, any and any; the API's before the config's at each level."""
        stored = {(p["agent_id"], p["tool"]): p for p in await store.policies(self.db, org_id)}
        configured = {(p.agent, p.tool): p for p in self.settings.policies}
        for key in ((agent_id, tool), ("*", tool), (agent_id, "*"), ("*", "*")):
            if key in stored:
                found = stored[key]
                return Policy(found["policy"], found["risk"], f"set by {found['updated_by']}")
            if key in configured:
                return Policy(configured[key].policy, configured[key].risk, "config")
        if tool in self.always_tools:
            return Policy("always", "high", "hooks.tool_approval.tools")
        return Policy(self.settings.default, "low" if self.settings.default == "auto" else "medium", "default")

    async def _admin(
        self,
        who: Principal,
        change: Callable[[WriteTx], bool],
        *,
        action: str,
        target: tuple[str, str],
        ip: str | None,
        details: dict[str, Any] | None = None,
    ) -> bool:
        """A change to the policies or rules, audited in the same transaction; False (and no audit
        row) when it changed nothing."""

        def write(tx: WriteTx) -> bool:
            if not change(tx):
                return False
            audit.append(
                tx,
                org_id=who.org_id,
                actor=who.actor,
                action=action,
                target_type=target[0],
                target_id=target[1],
                ip=ip,
                details=details,
            )
            return True

        return bool(await self.db.write(write))

    async def set_policy(
        self, who: Principal, agent_id: str, tool: str, policy: str, risk: str, ip: str | None
    ) -> dict[str, Any]:
        at = stamp(self.clock.now())

        def put(tx: WriteTx) -> bool:
            store.put_policy(tx, who.org_id, agent_id, tool, policy, risk, who.user_id, at)
            return True

        details = {"policy": policy, "risk": risk}
        target = ("approval_policy", f"{agent_id}/{tool}")
        await self._admin(who, put, action="approval.policy_set", target=target, ip=ip, details=details)
        return {"agent_id": agent_id, "tool": tool, "policy": policy, "risk": risk, "updated_by": who.user_id}

    async def delete_policy(self, who: Principal, agent_id: str, tool: str, ip: str | None) -> None:
        target = ("approval_policy", f"{agent_id}/{tool}")
        if not await self._admin(
            who,
            lambda tx: store.delete_policy(tx, who.org_id, agent_id, tool),
            action="approval.policy_deleted",
            target=target,
            ip=ip,
        ):
            raise NotFound("no such policy")

    async def forget_rule(self, who: Principal, rule_id: str, ip: str | None) -> None:
        at = stamp(self.clock.now())
        if not await self._admin(
            who,
            lambda tx: store.revoke_rule(tx, who.org_id, rule_id, at),
            action="approval.rule_revoked",
            target=("approval_rule", rule_id),
            ip=ip,
        ):
            raise NotFound("no such rule")

    # -- a tool call --------------------------------------------------------------------------

    async def before_tool_call(
        self,
        *,
        agent_id: str,
        channel_id: str,
        thread_id: str,
        turn_id: str | None,
        call_id: str,
        tool: str,
        arguments: Mapping[str, Any],
    ) -> dict[str, Any] | None:
        """None lets the call run unasked (`auto`); else `{"decision": "allow" | "deny", "reason"}`,
        after a rule decided or people did (as long as that takes)."""
        channel = self.access.channels.get(channel_id)
        if channel is None:
            return None
        org_id = channel["org_id"]
        policy = await self.policy_for(org_id, agent_id, tool)
        call = {
            "org_id": org_id,
            "agent_id": agent_id,
            "channel_id": channel_id,
            "thread_id": thread_id,
            "turn_id": turn_id,
            "call_id": call_id,
            "tool": tool,
            "arguments": dict(arguments),
            "policy": policy.policy,
            "risk": policy.risk,
        }
        for rule in await store.matching_rules(self.db, org_id, agent_id, tool, thread_id):
            if rule["decision"] == "deny":
                return await self._by_rule(call, "deny", f"remembered denial {rule['id']} by {rule['created_by']}")
            return await self._by_rule(
                call, "allow", f"approved for this thread ({rule['id']}) by {rule['created_by']}"
            )
        if policy.policy == "auto":
            return None
        if policy.policy == "never":
            return await self._by_rule(call, "deny", policy.describe(agent_id, tool))
        approval_id = await self._ask(call, channel, policy.describe(agent_id, tool))
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[approval_id] = future
        try:
            return await future
        finally:
            # Cancelled (the turn was stopped or the host restarts): the card stays pending, and an
            # approval later runs the call in a new turn (`decide`).
            self._waiting.pop(approval_id, None)

    async def _by_rule(self, call: dict[str, Any], decision: str, rule: str) -> dict[str, Any]:
        """A call decided by a rule, recorded like any decision."""
        at = stamp(self.clock.now())
        approval = {
            **call,
            "id": new_id("apv"),
            "status": "approved" if decision == "allow" else "denied",
            "requested_at": at,
            "decision": "rule",
            "decided_at": at,
            "rule": rule,
        }

        def write(tx: WriteTx) -> None:
            store.insert(tx, approval)
            self._record(tx, approval, SYSTEM, ip=None)

        await self.db.write(write)
        verb = "allowed" if decision == "allow" else "denied"
        return {"decision": decision, "reason": f"{verb} by rule: {rule}"}

    async def _ask(self, call: dict[str, Any], channel: dict[str, Any], rule: str) -> str:
        approval = {**call, "id": new_id("apv"), "status": "pending", "requested_at": stamp(self.clock.now())}
        blocks = check_card(approval_card(approval))
        author = Actor("agent", call["agent_id"])

        def write(tx: WriteTx) -> None:
            store.insert(tx, approval)
            posted = message_store.post_message(
                tx,
                actor=author,
                channel=channel,
                thread_id=call["thread_id"],
                text=f"{call['agent_id']} asks to run {call['tool']}",
                blocks=blocks,
                metadata={"approval_id": approval["id"]},
                card_state=initial_state(blocks),
            ).message
            store.set_message(tx, approval["id"], posted["id"])
            approval["message_id"] = posted["id"]
            tx.emit(self._event(ApprovalRequested(approval={**approval, "rule": rule}), approval, author))

        await self.db.write(write)
        return str(approval["id"])

    def _event(self, payload: Payload, approval: Mapping[str, Any], actor: Actor) -> Event:
        channel = self.access.channels.get(approval["channel_id"]) or {}
        return Event(
            payload,
            actor=actor,
            org_id=approval["org_id"],
            team_id=channel.get("team_id"),
            channel_id=approval["channel_id"],
            thread_id=approval["thread_id"],
        )

    def _record(self, tx: WriteTx, approval: dict[str, Any], actor: Actor, *, ip: str | None) -> None:
        """The decision's event and audit row, with the rule that applied."""
        tx.emit(self._event(ApprovalDecided(approval=approval), approval, actor))
        audit.append(
            tx,
            org_id=approval["org_id"],
            actor=actor,
            action="approval.decided",
            target_type="approval",
            target_id=approval["id"],
            ip=ip,
            outcome=approval["status"],
            details={
                "agent_id": approval["agent_id"],
                "tool": approval["tool"],
                "thread_id": approval["thread_id"],
                "decision": approval["decision"],
                "rule": approval["rule"],
            },
        )

    # -- people decide ------------------------------------------------------------------------

    async def decide(
        self, approval_id: str, decision: str, actor: Actor, *, who_name: str = "", ip: str | None = None
    ) -> dict[str, Any]:
        """A person's decision (approve, approve_thread, deny, deny_remember) or the timeout's.
        Raises NotFound, or Conflict when it was decided already."""
        at = stamp(self.clock.now())
        name = who_name or actor.id or "the system"

        def write(tx: WriteTx) -> dict[str, Any]:
            approval = store.row(tx, approval_id)
            if approval is None:
                raise NotFound("no such approval")
            allow = decision in ALLOWING
            rule = self._rule_made(tx, approval, decision, actor, at)
            status = "timed_out" if decision == "timeout" else "approved" if allow else "denied"
            if not store.decide(tx, approval_id, status=status, decision=decision, by=actor.id, at=at, rule=rule):
                raise Conflict(f"this approval is already {approval['status']}", code="already_decided")
            approval.update(status=status, decision=decision, decided_by=actor.id, decided_at=at, rule=rule)
            self._record(tx, approval, actor, ip=ip)
            return approval

        if self.relayed:
            self._handled.add(approval_id)
        try:
            approval = await self.db.write(write)
        except BaseException:
            self._handled.discard(approval_id)
            raise
        allow = approval["status"] == "approved"
        label = {
            "approve": f"Approved by {name}",
            "approve_thread": f"Approved for this thread by {name}",
            "deny": f"Denied by {name}",
            "deny_remember": f"Denied and remembered by {name}",
            "timeout": f"Denied: no decision within {self.settings.timeout_minutes:g} minutes",
            "stopped": f"Not run: {name} stopped the turn",
        }[decision]
        if approval["message_id"]:
            await self.cards.decide(approval["message_id"], "decision", label, actor)
        answer = {"decision": "allow" if allow else "deny", "reason": label}
        future = self._waiting.pop(approval_id, None)
        if future is not None and not future.done():
            future.set_result(answer)
        elif allow and self.host is not None and self.runs_agents():
            await self._run_later(approval)
        return {"approval": approval, **answer}

    def observe_relayed(self, events: Iterable[Event]) -> None:
        """With several gateways (issue 17): a tool call waiting here may be decided on another
        gateway; its `approval.decided` releases the call here."""
        for event in events:
            if event.event_type != "approval.decided":
                continue
            approval: dict[str, Any] = event.payload.approval  # type: ignore[attr-defined]
            if approval["id"] in self._handled:  # decided here: released or run already
                self._handled.discard(approval["id"])
                continue
            allow = approval["status"] == "approved"
            future = self._waiting.pop(approval["id"], None)
            if future is not None and not future.done():
                reason = f"{approval['decision']} by {approval.get('decided_by') or 'the system'}"
                future.set_result({"decision": "allow" if allow else "deny", "reason": reason})
            elif allow and self.host is not None and self.runs_agents():
                # Decided elsewhere after the call that asked was lost: it runs here, once.
                task = asyncio.get_running_loop().create_task(self._run_later(approval))
                self._running.add(task)
                task.add_done_callback(self._running.discard)

    def _rule_made(self, tx: WriteTx, approval: dict[str, Any], decision: str, actor: Actor, at: str) -> str:
        """The rule a decision applies (and makes, for the thread or for good); its text."""
        who = actor.id or "the system"
        thread_rule = decision == "approve_thread" or (
            decision == "approve" and approval["policy"] == "once_per_thread"
        )
        if not (thread_rule or decision == "deny_remember"):
            if decision == "timeout":
                return f"timed out after {self.settings.timeout_minutes:g} minutes"
            if decision == "stopped":
                return f"the turn that asked was stopped by {who}"
            return f"{decision} by {who} under policy {approval['policy']}"
        rule_id = new_id("rule")
        store.add_rule(
            tx,
            {
                "id": rule_id,
                "org_id": approval["org_id"],
                "agent_id": approval["agent_id"],
                "tool": approval["tool"],
                "thread_id": approval["thread_id"] if thread_rule else None,
                "decision": "allow" if thread_rule else "deny",
                "approval_id": approval["id"],
                "created_by": actor.id,
                "created_at": at,
            },
        )
        if thread_rule:
            return f"{decision} by {who}: allowed in this thread from now on ({rule_id})"
        return f"deny_remember by {who}: denied for {approval['agent_id']} from now on ({rule_id})"

    async def _run_later(self, approval: Mapping[str, Any]) -> None:
        """Approved after the turn that asked was lost (a restart): run the call in a new turn."""
        assert self.host is not None
        try:
            await self.host.deliver_interaction(
                agent_id=approval["agent_id"],
                interaction={
                    "kind": "approved_tool_call",
                    "channel_id": approval["channel_id"],
                    "thread_id": approval["thread_id"],
                    "call_id": approval["call_id"],
                    "tool": approval["tool"],
                    "arguments": approval["arguments"],
                    "message_id": approval["message_id"],
                },
            )
        except (LookupError, RuntimeError) as exc:
            log.warning("approved call %s could not run: %s", approval["id"], exc)

    async def turn_stopped(self, turn_id: str, actor: Actor, who_name: str) -> None:
        """A stopped turn's pending approvals are settled as not run (approving one later would run
        the call in a new turn, which the stop meant not to happen)."""
        for approval_id in await store.pending_of_turn(self.db, turn_id):
            with contextlib.suppress(Conflict):  # decided meanwhile
                await self.decide(approval_id, "stopped", actor, who_name=who_name)

    # -- time: escalation and timeout ---------------------------------------------------------

    async def sweep(self) -> dict[str, list[str]]:
        """Escalate approvals waiting longer than `escalate_after_minutes`, deny those waiting
        longer than `timeout_minutes`. Returns the ids of each."""
        now = self.clock.now()
        done: dict[str, list[str]] = {"escalated": [], "timed_out": []}
        for approval in await store.pending(self.db, None):
            age = now - parse(approval["requested_at"])
            timeout = self.settings.timeout_minutes
            if timeout and age >= timedelta(minutes=timeout):
                try:
                    await self.decide(approval["id"], "timeout", SYSTEM)
                    done["timed_out"].append(approval["id"])
                except Conflict:
                    pass
                continue
            after = self.settings.escalate_after_minutes
            due = after and not approval["escalated_at"] and age >= timedelta(minutes=after)
            if due and await self._escalate(approval, stamp(now)):
                done["escalated"].append(approval["id"])
        return done

    async def _escalate(self, approval: dict[str, Any], at: str) -> bool:
        channel = self.access.channels.get(approval["channel_id"])
        minutes = self.settings.escalate_after_minutes

        def write(tx: WriteTx) -> bool:
            to, whom, mentions = self._escalation_target(tx, approval["org_id"])
            if not store.escalate(tx, approval["id"], to, at):
                return False
            approval.update(escalated_to=to, escalated_at=at)
            tx.emit(self._event(ApprovalEscalated(approval=approval), approval, SYSTEM))
            audit.append(
                tx,
                org_id=approval["org_id"],
                actor=SYSTEM,
                action="approval.escalated",
                target_type="approval",
                target_id=approval["id"],
                details={"to": to, "tool": approval["tool"], "after_minutes": minutes},
            )
            if channel is not None:
                message_store.post_message(
                    tx,
                    actor=SYSTEM,
                    channel=channel,
                    thread_id=approval["thread_id"],
                    text=f"Approval of `{approval['tool']}` has waited {minutes:g} minutes: escalated to {whom}.",
                    mentions=mentions,
                )
            return True

        return bool(await self.db.write(write))

    def _escalation_target(self, tx: WriteTx, org_id: str) -> tuple[str, str, list[str]]:
        """`approvals.escalate_to` as (what is recorded, how the line names it, handles it
        mentions). A person (by id or email) is @mentioned, so the thread lands in their inbox;
        one who is not an active member of the organisation falls back to its admins."""
        to = self.settings.escalate_to
        if to.startswith("role:"):
            return to, to.removeprefix("role:") + "s", []
        person = identity.active_person(tx, org_id, to)
        if person is None:
            log.warning("approvals.escalate_to %r is no active member: escalating to admins", to)
            return "role:admin", "admins", []
        return str(person["id"]), f"@{person['handle']}", [str(person["handle"])]

    async def sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_seconds)
            try:
                await self.sweep()
            except Exception:
                log.exception("sweeping pending approvals failed")

    async def inbox(self, org_id: str) -> list[dict[str, Any]]:
        """Pending approvals, oldest first, each with its age in seconds."""
        now = self.clock.now()
        found = await store.pending(self.db, org_id)
        return [{**a, "age_seconds": int((now - parse(a["requested_at"])).total_seconds())} for a in found]

    # -- the card (cards.service.CardHandler) ------------------------------------------------

    async def check_interaction(self, who: Principal, message: Mapping[str, Any], action_id: str) -> None:
        return None

    async def handle_interaction(self, who: Principal, interaction: dict[str, Any], message: dict[str, Any]) -> bool:
        approval_id = (message.get("metadata") or {}).get("approval_id")
        decision = DECISIONS.get(interaction["action_id"])
        if not approval_id or decision is None:
            return False
        try:
            await self.decide(approval_id, decision, who.actor, who_name=who.name or who.user_id)
        except (Conflict, NotFound) as exc:
            log.info("%s on %s: %s", interaction["action_id"], message["id"], exc.message)
        return True
