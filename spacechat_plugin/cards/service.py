"""Cards at work: posting them, their live state, interactions on them, and what follows.

An interaction is checked against the card it targets (a declared action, allowed values, a
valid form, the action's required scope, poll rules), recorded with its `interaction.submitted`
event in one transaction, and then handed on, once: to Spacechat's own handlers (task buttons,
a worker's question or permission request), to hook plugins (`spacechat_interaction_submitted`),
to anyone waiting on the card, and otherwise to the agent that posted the card (HostAPI
`deliver_interaction`). Interactions never expire: an approval card waits as long as the
decision takes, across restarts.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from ..errors import BadRequest, Conflict, Forbidden, Unprocessable
from ..events import SYSTEM, Actor, Event, InteractionSubmitted, new_id, now_rfc3339
from ..hookspecs import HostAPI, PluginHooks
from ..identity.permissions import SCOPES, Principal
from ..store import audit
from ..store import cards as card_store
from ..store import messages as message_store
from ..store import tasks as task_store
from ..store.db import Database, WriteTx, dumps
from . import validate as cards

log = logging.getLogger("spacechat.cards")

TASK_ACTIONS = {"task.approve": "approve", "task.reject": "reject", "task.start": "start", "task.complete": "complete"}


def initial_state(blocks: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """The live state a new card starts with: empty poll tallies."""
    polls = {
        block["block_id"]: {
            "tallies": {option["value"]: 0 for option in block["options"]},
            **({} if block.get("anonymous") else {"voters": {option["value"]: [] for option in block["options"]}}),
            "closed": False,
        }
        for block in blocks or []
        if block["type"] == "poll"
    }
    return {"polls": polls} if polls else None


def check_card(blocks: Any) -> list[dict[str, Any]]:
    """Validate a card and the scopes its actions ask for; raise CardError with clean paths."""
    checked = cards.validate_card(blocks)
    problems = []
    for index, block in enumerate(checked):
        elements = block.get("elements") if block["type"] == "actions" else [block] if block["type"] == "form" else []
        for position, element in enumerate(elements or []):
            scope = element.get("scope") if isinstance(element, dict) else None
            if scope is not None and scope not in SCOPES:
                where = (
                    f"blocks[{index}].elements[{position}].scope"
                    if block["type"] == "actions"
                    else f"blocks[{index}].scope"
                )
                problems.append({"path": where, "message": f"unknown scope {scope!r}"})
    if problems:
        raise cards.CardError(problems)
    return checked


def agent_card(blocks: Any) -> list[dict[str, Any]] | None:
    """An agent's card, validated like anyone's; an invalid one is dropped (and logged), so a
    model's malformed card never breaks its reply."""
    if not blocks:
        return None
    try:
        return check_card(list(blocks))
    except cards.CardError as exc:
        log.warning("an agent's card was dropped: %s", exc.details[:3])
        return None


def task_card_blocks(task: dict[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [{"type": "task", "block_id": "task", "task_id": task["id"]}]
    if task["status"] == "pending_approval":
        blocks.append(
            {
                "type": "actions",
                "block_id": "approval",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "task.approve",
                        "label": "Approve",
                        "style": "primary",
                        "scope": "tasks:approve",
                    },
                    {
                        "type": "button",
                        "action_id": "task.reject",
                        "label": "Reject",
                        "style": "danger",
                        "scope": "tasks:approve",
                        "confirm": {"title": "Reject this task?", "text": "It goes back to the backlog."},
                    },
                ],
            }
        )
    return cards.validate_card(blocks)


def _envelope(message: Mapping[str, Any], actor: Actor) -> dict[str, Any]:
    return {
        "actor": actor,
        "org_id": message["org_id"],
        "team_id": message["team_id"],
        "channel_id": message["channel_id"],
        "thread_id": message["thread_id"],
    }


def _tally(tx: WriteTx, message: Mapping[str, Any], block: Mapping[str, Any]) -> dict[str, Any]:
    tallies = {option["value"]: 0 for option in block["options"]}
    voters: dict[str, list[str]] = {option["value"]: [] for option in block["options"]}
    for voter_name, choice in card_store.votes(tx, message["id"], block["block_id"]):
        for value in choice:
            if value in tallies:
                tallies[value] += 1
                voters[value].append(voter_name)
    poll: dict[str, Any] = {"tallies": tallies, "closed": False}
    if not block.get("anonymous"):
        poll["voters"] = voters
    return poll


# A button's label said as what was done ("Approve" -> "Approved by Olivia at 14:06").
DONE = {
    "approve": "Approved",
    "reject": "Rejected",
    "allow": "Allowed",
    "deny": "Denied",
    "accept": "Accepted",
    "decline": "Declined",
    "confirm": "Confirmed",
    "cancel": "Cancelled",
    "yes": "Yes",
    "no": "No",
}


def decision_label(target: cards.Target, values: Any) -> str:
    """What a decided actions block shows: the act, in words (who and when are added by the UI)."""
    element = target.element
    if target.kind == "button":
        label = str(element.get("label", target.action_id))
        return DONE.get(label.strip().lower(), f"“{label}” chosen")
    chosen = values if isinstance(values, list) else [values]
    labels = {str(o.get("value")): str(o.get("label", o.get("value"))) for o in element.get("options") or []}
    return ", ".join(f"“{labels.get(str(v), str(v))}”" for v in chosen) + " chosen"


def settles(message: Mapping[str, Any], target: cards.Target) -> bool:
    """An agent's buttons and menus ask for one decision: the first act settles the block for
    everyone (as a Slack app replaces its buttons with the outcome). Task cards settle when the
    task moves (act_on_task); polls and forms take everyone's answers."""
    author = message.get("author") or {}
    return (
        target.kind in ("button", "select")
        and author.get("kind") == "agent"
        and not (message.get("card_state") or {}).get("tasks")
    )


def _still_open(message: Mapping[str, Any], target: cards.Target) -> None:
    """A decided block and a closed poll take no more interactions (409)."""
    state = message.get("card_state") or {}
    if target.block_id in (state.get("decided") or {}):
        raise Conflict("this was already decided", code="already_decided", details=state["decided"][target.block_id])
    if target.kind == "poll" and (
        cards.poll_closed(target.element, datetime.now(UTC))
        or (state.get("polls") or {}).get(target.block_id, {}).get("closed")
    ):
        raise Conflict("this poll is closed", code="poll_closed")


class CardHandler(Protocol):
    """A part of Spacechat that owns some cards (operations, incidents): it may refuse an
    interaction before it is recorded, and takes the ones it owns after. Registered by the
    composition root, so the card service never imports the services that own cards."""

    async def check_interaction(self, who: Principal, message: Mapping[str, Any], action_id: str) -> None: ...

    async def handle_interaction(
        self, who: Principal, interaction: dict[str, Any], message: dict[str, Any]
    ) -> bool: ...


class RemoteTasks(Protocol):
    """Acts on tasks another system owns (a running Spacebot's, mirrored here): set by the
    composition root, so the card service never imports the service that mirrors them."""

    async def act(
        self, task: dict[str, Any], action: str, actor: Actor, changes: Mapping[str, Any], ip: str | None = None
    ) -> tuple[dict[str, Any], str | None]: ...


class CardService:
    def __init__(self, db: Database, host: HostAPI | None, hooks: PluginHooks) -> None:
        self.db, self.host, self.hooks = db, host, hooks
        self.remote: RemoteTasks | None = None
        self.handlers: list[CardHandler] = []
        self._waiters: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self._submitting: Counter[str] = Counter()  # message ids with an interaction being submitted here
        self.inflight: set[tuple[str, str]] = set()

    # -- posting ------------------------------------------------------------------------------

    def post_task_card(
        self,
        tx: WriteTx,
        task: dict[str, Any],
        channel: dict[str, Any],
        actor: Actor,
        thread_id: str | None = None,
        text: str | None = None,
    ) -> dict[str, Any]:
        blocks = task_card_blocks(task)
        result = message_store.post_message(
            tx,
            actor=actor,
            channel=channel,
            thread_id=thread_id,
            text=text or f"Task #{task['number']}: {task['title']}",
            blocks=blocks,
            card_state={"tasks": {task["id"]: task_store.card_snapshot(task)}},
        )
        task_store.bind_card(tx, task["id"], result.message["id"])
        return result.message

    async def post(
        self,
        channel: Mapping[str, Any],
        text: str,
        *,
        thread_id: str | None = None,
        blocks: list[dict[str, Any]] | None = None,
        author: Actor = SYSTEM,
        metadata: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Post a message as the system or an agent (a card when `blocks` are given; they are
        validated like any card)."""
        checked = check_card(blocks) if blocks else None
        result = await self.db.write(
            lambda tx: message_store.post_message(
                tx,
                actor=author,
                channel=dict(channel),
                thread_id=thread_id,
                text=text,
                blocks=checked,
                metadata=dict(metadata or {}),
                card_state=initial_state(checked),
            )
        )
        return result.message

    # -- tasks --------------------------------------------------------------------------------

    async def act_on_task(
        self,
        task: dict[str, Any],
        action: str,
        actor: Actor,
        *,
        assignee_id: str | None = None,
        reason: str | None = None,
        ip: str | None = None,
    ) -> tuple[dict[str, Any], str | None]:
        """Approve, reject, assign, complete, start, fail or reopen a task (permission already checked).
        A task another system owns is acted on there (its answer changes it here)."""
        if task.get("source") and self.remote is not None:
            changes = {"assignee_id": assignee_id, "reason": reason}
            return await self.remote.act(task, action, actor, changes, ip)

        def act(tx: WriteTx) -> tuple[dict[str, Any], str | None]:
            if action == "assign":
                return task_store.assign(tx, task["id"], assignee_id, actor), None
            updated, previous = task_store.transition(
                tx, task["id"], task_store.ACTION_TARGET[action], actor, reason=reason, kind=action
            )
            if action in ("approve", "reject"):
                audit.append(
                    tx,
                    org_id=task["org_id"],
                    actor=actor,
                    action=f"task.{action}d",
                    target_type="task",
                    target_id=task["id"],
                    ip=ip,
                    details={"number": task["number"], "reason": reason},
                )
                if action == "reject" or task["status"] == "pending_approval":
                    self._mark_decided(tx, task, action, actor)
            return updated, previous

        updated, previous = await self.db.write(act)
        await self.task_changed(updated, previous, "assigned" if action == "assign" else "status")
        return updated, previous

    def _mark_decided(self, tx: WriteTx, task: dict[str, Any], action: str, actor: Actor) -> None:
        """An approval card shows who decided, and offers its buttons no more."""
        for message_id, blocks, state in card_store.task_cards(tx, task["id"]):
            if not any(block.get("block_id") == "approval" for block in blocks):
                continue
            state.setdefault("decided", {})["approval"] = {
                "label": "Approved" if action == "approve" else "Rejected",
                "by": actor.id,
                "at": now_rfc3339(),
            }
            card_store.set_state(tx, message_id, state, actor)

    async def settle_approval(self, task: dict[str, Any], label: str, actor: Actor) -> None:
        """A task's approval was decided elsewhere (in Spacebot): its cards show it."""

        def settle(tx: WriteTx) -> None:
            self._mark_decided(tx, task, "approve" if label == "Approved" else "reject", actor)

        await self.db.write(settle)

    async def task_changed(self, task: dict[str, Any], previous: str | None, change: str) -> None:
        await self.hooks.call("spacechat_task_changed", task=task, previous_status=previous, change=change)

    # -- interactions -------------------------------------------------------------------------

    async def submit(
        self,
        who: Principal,
        message: dict[str, Any],
        *,
        action_id: str,
        block_id: str | None,
        values: Any,
        key: str | None,
        connector: str | None = None,
        external_user: Mapping[str, Any] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Validate, record and hand on one interaction. Returns (status, body)."""
        target, normalized = self._target(who, message, action_id, block_id, values)
        for handler in self.handlers:
            await handler.check_interaction(who, message, action_id)
        claim = None
        if key is not None:
            fingerprint = message_store.fingerprint(message["id"], {"a": action_id, "b": block_id, "v": values})
            claim = message_store.IdempotencyClaim(who.user_id, f"interaction:{key}", fingerprint)
            if (who.user_id, key) in self.inflight:
                raise Conflict("an interaction with this key is still in progress", code="idempotency_key_in_use")
            self.inflight.add((who.user_id, key))
        # With several gateways the commit's own event comes back through `observe_relayed`
        # before the write returns: it leaves this card's waiters to `_hand_on`, which hands the
        # interaction to them or else to the card's agent (not to both).
        self._submitting[message["id"]] += 1
        try:
            try:
                status, body, fresh = await self.db.write(
                    lambda tx: self._record(tx, who, message, target, normalized, claim, connector, external_user)
                )
            finally:
                if key is not None:
                    self.inflight.discard((who.user_id, key))
            if fresh:
                await self._hand_on(who, body["interaction"], body["message"])
            elif body.get("interaction") is not None:
                body = {**body, "replayed": True}
        finally:
            self._submitting[message["id"]] -= 1
            if not self._submitting[message["id"]]:
                del self._submitting[message["id"]]
        return status, body

    @staticmethod
    def _target(
        who: Principal, message: Mapping[str, Any], action_id: str, block_id: str | None, values: Any
    ) -> tuple[cards.Target, Any]:
        """The card's element the interaction acts on, and its values normalized; refuses an act
        the card does not declare, one the caller may not do, and values it does not allow."""
        blocks = message.get("blocks")
        if not blocks:
            raise Unprocessable("this message has no card", code="no_card")
        if message["metadata"].get("superseded_by_turn"):
            raise Conflict("this card was replaced by a newer reply", code="card_superseded")
        target = cards.find_target(blocks, action_id=action_id, block_id=block_id)
        if target is None:
            raise Unprocessable(
                f"the card declares no action {action_id!r}",
                code="unknown_action",
                details={"action_id": action_id, "block_id": block_id},
            )
        if target.scope and target.scope not in who.scopes:
            raise Forbidden(f"this action needs the {target.scope} permission", details={"scope": target.scope})
        try:
            return target, cards.validate_values(target, values)
        except cards.CardError as exc:
            raise BadRequest(
                f"the values are not valid: {exc.details[0]['path']}: {exc.details[0]['message']}",
                code="invalid_values",
                details=exc.details,
            ) from None

    def _record(
        self,
        tx: WriteTx,
        who: Principal,
        message: dict[str, Any],
        target: cards.Target,
        values: Any,
        claim: message_store.IdempotencyClaim | None,
        connector: str | None,
        external_user: Mapping[str, Any] | None,
    ) -> tuple[int, dict[str, Any], bool]:
        if claim is not None and (replay := message_store.replay_claim(tx, claim)) is not None:
            return replay[0], replay[1], False  # a retried act answers as the first did, decided or not
        current = card_store.message(tx, message["id"])
        _still_open(current, target)  # in the transaction: of two acts at once, one wins
        name = (external_user or {}).get("name") or who.name
        if target.kind == "poll":
            choice = dumps(sorted(values))
            if card_store.vote_choice(tx, message["id"], target.block_id, who.user_id) == choice:
                # The same vote again changes nothing and reaches nobody.
                return 200, {"interaction": None, "message": current, "changed": False}, False
            card_store.record_vote(tx, message["id"], target.block_id, who.user_id, name, choice)
            state = current.get("card_state") or {}
            state.setdefault("polls", {})[target.block_id] = _tally(tx, current, target.element)
            current = card_store.set_state(tx, message["id"], state, who.actor)
        elif settles(current, target):
            state = current.get("card_state") or {}
            decided = {"label": decision_label(target, values), "by": who.user_id, "at": now_rfc3339()}
            state.setdefault("decided", {})[target.block_id] = decided
            current = card_store.set_state(tx, message["id"], state, who.actor)
        elif target.kind == "form":
            # How many answers came, live for everyone; what they say is for the poster (api/forms.py).
            state = current.get("card_state") or {}
            counts = state.setdefault("forms", {}).setdefault(target.block_id, {"responses": 0})
            counts["responses"] += 1
            current = card_store.set_state(tx, message["id"], state, who.actor)
        interaction = {
            "id": new_id("int"),
            "message_id": message["id"],
            "channel_id": message["channel_id"],
            "thread_id": message["thread_id"],
            "block_id": target.block_id,
            "action_id": target.action_id,
            "kind": target.kind,
            "values": values,
            "user": {"kind": who.actor.kind, "id": who.user_id, "name": name},
            "connector": connector,
            "external_user": dict(external_user) if external_user else None,
            "created_at": now_rfc3339(),
        }
        card_store.record_interaction(tx, interaction, message["org_id"])
        tx.emit(Event(InteractionSubmitted(interaction=interaction), **_envelope(message, who.actor)))
        body = {"interaction": interaction, "message": current, "changed": True}
        if claim is not None:
            message_store.remember_claim(tx, claim, 201, body)
        return 201, body, True

    async def _hand_on(self, who: Principal, interaction: dict[str, Any], message: dict[str, Any]) -> None:
        """After commit: built-in handlers, hook plugins, waiters, then the card's agent."""
        handled = await self._builtin(who, interaction, message)
        if not handled:
            handled = bool(
                await self.hooks.first("spacechat_interaction_submitted", interaction=interaction, message=message)
            )
        for future in self._waiters.pop(message["id"], []):
            if not future.done():
                future.set_result(interaction)
                handled = True
        author = message["author"]
        host = self.host
        if not handled and author["kind"] == "agent" and host is not None:
            try:
                labelled = {**interaction, "label": self._label(message, interaction)}
                await host.deliver_interaction(agent_id=author["id"], interaction=labelled)
            except LookupError:
                log.info("interaction %s: agent %s is not run by this host", interaction["id"], author["id"])

    async def _builtin(self, who: Principal, interaction: dict[str, Any], message: dict[str, Any]) -> bool:
        metadata = message.get("metadata") or {}
        for handler in self.handlers:
            if await handler.handle_interaction(who, interaction, message):
                return True
        action = TASK_ACTIONS.get(interaction["action_id"])
        task_ids = list((message.get("card_state") or {}).get("tasks") or {})
        if action is not None and task_ids:
            task = await task_store.get(self.db, task_ids[0])
            if task is not None:
                try:
                    await self.act_on_task(task, action, who.actor)
                except Conflict as exc:
                    log.info("task button %s on task %s: %s", action, task["id"], exc.message)
                return True
        ask = metadata.get("worker_question") or metadata.get("worker_permission")
        if ask and self.host is not None:
            await self._answer_worker(who, ask, interaction, message)
            return True
        return False

    async def _answer_worker(
        self, who: Principal, ask: Mapping[str, Any], interaction: dict[str, Any], message: dict[str, Any]
    ) -> None:
        """A worker's question or permission request was answered: the worker resumes."""
        assert self.host is not None
        answer: dict[str, Any] = {**interaction}
        if "question_id" in ask:
            values = interaction["values"]
            if isinstance(values, dict):
                values = values.get("answer")
            elif isinstance(values, list):
                values = values[0] if values else None
            answer.update(question_id=ask["question_id"], answer=values)
        else:
            answer.update(permission_id=ask["permission_id"], allow=interaction["action_id"] == "permission.allow")
        await self.host.deliver_interaction(agent_id=ask["agent_id"], interaction=answer)
        decided = (message.get("card_state") or {}).get("decided") or {}
        if interaction["block_id"] not in decided:  # a form's answer; buttons and menus settled already
            await self.decide(message["id"], interaction["block_id"] or "", "Answered", who.actor)

    @staticmethod
    def _label(message: Mapping[str, Any], interaction: Mapping[str, Any]) -> str:
        values = interaction.get("values")
        if isinstance(values, list) and values:
            return ", ".join(str(v) for v in values)
        for block in message.get("blocks") or []:
            for element in block.get("elements", []) if isinstance(block.get("elements"), list) else []:
                if isinstance(element, dict) and element.get("action_id") == interaction["action_id"]:
                    return str(element.get("label", interaction["action_id"]))
        return str(interaction["action_id"])

    # -- for hook plugins (sdk.py) ------------------------------------------------------------

    def observe_relayed(self, events: Iterable[Event]) -> None:
        """With several gateways (issue 17): an answer to a card whose agent waits here may be
        given on another gateway; its `interaction.submitted` resolves the wait here."""
        for event in events:
            if event.event_type == "interaction.submitted":
                interaction: dict[str, Any] = event.payload.interaction  # type: ignore[attr-defined]
                if interaction["message_id"] in self._submitting:  # submitted here: `submit` hands it on
                    continue
                for future in self._waiters.pop(interaction["message_id"], []):
                    if not future.done():
                        future.set_result(interaction)

    def wait_for(self, message_id: str) -> asyncio.Future[dict[str, Any]]:
        """A future resolved by the next interaction on a card."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(message_id, []).append(future)
        return future

    async def decide(self, message_id: str, block_id: str, label: str, actor: Actor = SYSTEM) -> dict[str, Any]:
        """Mark a block decided (its buttons are then refused with 409) and show who decided."""

        def mark(tx: WriteTx) -> dict[str, Any]:
            state = card_store.state(tx, message_id)
            state.setdefault("decided", {})[block_id] = {"label": label, "by": actor.id, "at": now_rfc3339()}
            return card_store.set_state(tx, message_id, state, actor)

        return await self.db.write(mark)
