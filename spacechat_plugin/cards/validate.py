"""Cards: what the server does with the block schema (cards/schema.py) when a card is posted,
when someone acts on it in Spacechat, and when the act comes from Slack or Discord.

Why one API module: a card is validated when it is posted; every click, vote and form submission
is then checked against the stored card (a declared action, allowed values; the caller checks
`Target.scope`); and an act relayed from Slack or Discord is decoded into the same interaction
shape first, with the encodings `cards/render.py` puts into those messages defined here, next to
their decoding. Errors always look like the HTTP API's (api/common.py): `{"path":
"blocks[2].elements[0].action_id", "message": ...}`, with pydantic's union tags taken out of paths.

`python -m spacechat_plugin.cards --schema > docs/cards.schema.json` writes the published schema;
docs/cards.md is the reference for card authors, docs/connectors.md the connector table.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from .schema import (
    BLOCK_TYPES,
    ID_PATTERN,
    PATTERN_MESSAGES,
    POLL_ACTION,
    ActionsBlock,
    Card,
    FormBlock,
    Problem,
    check_answers,
    check_choices,
)

__all__ = [
    "BLOCK_TYPES",
    "CARD_VERSION",
    "ID_PATTERN",
    "POLL_ACTION",
    "CardError",
    "Target",
    "card_schema",
    "discord_custom_id",
    "find_target",
    "interaction_from_discord",
    "interaction_from_slack",
    "poll_closed",
    "schema_text",
    "slack_vote_value",
    "validate_card",
    "validate_values",
]

CARD_VERSION = 1

# How cards/render.py encodes acts in Slack and Discord messages (decoded below). '/' and '|' are
# outside card ids, so these can never collide with an author's action_id or block_id.
SLACK_OPEN_ACTION = "spacechat/open"  # a link button back to Spacechat: not an interaction
SLACK_VOTE_PREFIX = "vote/"  # action_id of a poll's option button: vote/<option index>
SLACK_VOTE_SELECT = "vote/select"  # action_id of a multiple-choice poll's menu
DISCORD_CUSTOM_ID = 100  # Discord's custom_id limit


class CardError(ValueError):
    """A card, values sent to one, or a connector payload broke the rules. `details` lists every
    problem found as {"path", "message"}."""

    def __init__(self, details: list[dict[str, str]]) -> None:
        self.details = details
        more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
        super().__init__(f"{details[0]['path']}: {details[0]['message']}{more}")


_CARD: TypeAdapter[Card] = TypeAdapter(Card)


# --- validating a card ---------------------------------------------------------------------


def _clean_path(loc: tuple[int | str, ...]) -> str:
    """blocks + pydantic's location, without the tags it adds after entering a tagged union:
    (2, 'actions', 'elements', 0, 'button', 'action_id') -> blocks[2].elements[0].action_id."""
    parts = list(loc)
    if len(parts) > 1:
        tag = parts.pop(1)
        nested = {"actions": "elements", "form": "fields"}.get(str(tag))
        if nested and len(parts) > 3 and parts[1] == nested:
            del parts[3]
    path = "blocks"
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _shape_details(error: ValidationError) -> list[dict[str, str]]:
    details = []
    for item in error.errors(include_url=False):
        path, kind, ctx = _clean_path(tuple(item["loc"])), item["type"], item.get("ctx") or {}
        message = item["msg"]
        if kind == "extra_forbidden":
            message = "unknown field"
        elif kind == "union_tag_not_found":
            path, message = f"{path}.type", "Field required"
        elif kind == "union_tag_invalid":
            path, message = f"{path}.type", f"unknown type {ctx['tag']!r}; expected one of: {ctx['expected_tags']}"
        elif kind in ("too_long", "too_short"):
            message = message.replace(" after validation", "")
        elif kind in ("model_type", "model_attributes_type", "dict_type"):
            message = "Input should be an object"
        elif kind == "string_pattern_mismatch" and ctx.get("pattern") in PATTERN_MESSAGES:
            message = PATTERN_MESSAGES[ctx["pattern"]]
        details.append({"path": path, "message": message})
    return details


def _rules(blocks: list[Any]) -> list[dict[str, str]]:
    problems: list[Problem] = []
    block_ids: dict[str, int] = {}
    action_ids: dict[str, str] = {}
    for i, block in enumerate(blocks):
        at = f"blocks[{i}]"
        block_id = getattr(block, "block_id", None)
        if block_id is not None:
            if block_id in block_ids:
                problems.append(
                    (f"{at}.block_id", f"block_id {block_id!r} is already used by blocks[{block_ids[block_id]}]")
                )
            block_ids.setdefault(block_id, i)
        actions: list[tuple[str, str]] = []
        if isinstance(block, ActionsBlock):
            actions = [(f"{at}.elements[{j}].action_id", e.action_id) for j, e in enumerate(block.elements)]
        elif isinstance(block, FormBlock):
            actions = [(f"{at}.action_id", block.action_id)]
        for path, action_id in actions:
            if action_id == POLL_ACTION:
                problems.append((path, f"action_id {POLL_ACTION!r} is reserved for poll votes"))
            elif action_id in action_ids:
                problems.append((path, f"action_id {action_id!r} is already used at {action_ids[action_id]}"))
            action_ids.setdefault(action_id, path)
        problems.extend(block.problems(at))
    return [{"path": path, "message": message} for path, message in problems]


def validate_card(blocks: object) -> list[dict[str, Any]]:
    """Check a card (a list of blocks) and return it normalized: defaults filled in, absent
    optional fields left out, times in UTC, as plain JSON. Raises CardError listing every problem."""
    try:
        models = _CARD.validate_python(blocks)
    except ValidationError as exc:
        raise CardError(_shape_details(exc)) from None
    broken = _rules(models)
    if broken:
        raise CardError(broken)
    normalized: list[dict[str, Any]] = _CARD.dump_python(models, mode="json", exclude_none=True)
    return normalized


class _SchemaGenerator(GenerateJsonSchema):
    """Optional fields as they are validated: absent or a value, never null."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False  # "title": "Block Id" on every property is noise

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        if schema.get("default", 0) is None:
            return self.generate_inner(schema["schema"])
        return super().default_schema(schema)


def card_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of a card: an array of blocks. It expresses the shape; the rules
    listed in docs/cards.md (unique ids, min <= max, ...) are checked by validate_card only."""
    generated = _CARD.json_schema(schema_generator=_SchemaGenerator)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:spacechat:card:{CARD_VERSION}",
        "title": f"Spacechat card, version {CARD_VERSION}",
        "description": "A list of blocks. Rules beyond the shape are listed in docs/cards.md.",
        **generated,
    }


def schema_text() -> str:
    """docs/cards.schema.json exactly as it should be committed."""
    return json.dumps(card_schema(), indent=2, ensure_ascii=False) + "\n"


# --- interactions --------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What an interaction acts on: a button or select of an actions block, a form, or a poll.
    `element` is that button, select, form block or poll block (a normalized dict)."""

    kind: Literal["button", "select", "form", "poll"]
    block_id: str
    action_id: str
    element: dict[str, Any]
    scope: str | None


def find_target(blocks: list[dict[str, Any]], *, action_id: str, block_id: str | None) -> Target | None:
    """The element of a validated card that `action_id` names (within `block_id`, when given).
    A poll vote is `action_id="vote"` with the poll's `block_id`. None when nothing matches."""
    for block in blocks:
        kind = block["type"]
        if block_id is not None and block.get("block_id") != block_id:
            continue
        if action_id == POLL_ACTION:
            if kind == "poll" and block_id is not None:
                return Target("poll", block["block_id"], POLL_ACTION, block, None)
        elif kind == "actions":
            for element in block["elements"]:
                if element["action_id"] == action_id:
                    return Target(element["type"], block["block_id"], action_id, element, element.get("scope"))
        elif kind == "form" and block["action_id"] == action_id:
            return Target("form", block["block_id"], action_id, block, block.get("scope"))
    return None


def poll_closed(block: dict[str, Any], now: datetime) -> bool:
    """Whether a poll's `closes_at` has passed at `now` (which must be timezone-aware)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    closes_at = block.get("closes_at")
    return closes_at is not None and now >= datetime.fromisoformat(closes_at)


def validate_values(target: Target, values: object) -> Any:
    """Check what a person sent to `target` and return it normalized: a button's own `value`
    (or None), a list of option values for a select or a poll, a dict name -> value for a form.
    Raises CardError with paths rooted at `values` (e.g. `values.due`)."""
    errors: list[dict[str, str]] = []
    element = target.element
    result: Any = None
    if target.kind == "button":
        if values is not None:
            errors.append({"path": "values", "message": "a button takes no values"})
        result = element.get("value")
    elif target.kind in ("select", "poll"):
        count = len(element["options"])
        if not element.get("multiple", False):
            low = high = 1
        elif target.kind == "select":
            low, high = element.get("min", 1), element.get("max", count)
        else:
            low, high = 1, count
        result = check_choices(element["options"], values, "values", errors, low=low, high=high)
    elif not isinstance(values, dict):
        errors.append({"path": "values", "message": "Input should be an object of field name to value"})
    else:
        result, problems = check_answers(element["fields"], values)
        errors.extend(problems)
    if errors:
        raise CardError(errors)
    return result


# --- acts relayed from Slack and Discord ---------------------------------------------------


def slack_vote_value(block_id: str, value: str) -> str:
    """The value of a poll option's Slack button."""
    return f"vote:{block_id}:{value}"


def discord_custom_id(kind: Literal["a", "v"], block_id: str, rest: str | None = None) -> str:
    """`a|<block_id>|<action_id>` for a button or select, `v|<block_id>|<value>` for a poll
    option's button, `v|<block_id>` for a poll's menu. An element whose ids are too long for
    Discord's 100 characters leaves out the block_id (`a||<action_id>`): action_ids are unique in
    a card, and find_target accepts block_id=None."""
    custom_id = "|".join(part for part in (kind, block_id, rest) if part is not None)
    if len(custom_id) > DISCORD_CUSTOM_ID and kind == "a" and rest is not None:
        custom_id = f"a||{rest}"
    return custom_id


def _fail(path: str, message: str) -> CardError:
    return CardError([{"path": path, "message": message}])


def _card_id(value: object, path: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(ID_PATTERN, value):
        raise _fail(path, "not a Spacechat card id")
    return value


def _strings(value: object, path: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _fail(path, "should be a list of strings")
    return list(value)


def _interaction(
    block_id: str | None, action_id: str, values: list[str] | None, connector: str, user: dict[str, Any]
) -> dict[str, Any]:
    return {
        "block_id": block_id,
        "action_id": action_id,
        "values": values,
        "connector": connector,
        "external_user": user,
    }


def _selected(action: dict[str, Any]) -> list[str]:
    selected = action.get("selected_options")
    if not isinstance(selected, list) or not all(isinstance(option, dict) for option in selected):
        raise _fail("payload.actions[0].selected_options", "should be a list of options")
    return _strings([option.get("value") for option in selected], "payload.actions[0].selected_options")


def _slack_action(payload: Any) -> dict[str, Any]:
    """The one action of a Slack `block_actions` payload."""
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        raise _fail("payload.type", "not a Slack block_actions payload")
    actions = payload.get("actions")
    if not isinstance(actions, list) or len(actions) != 1 or not isinstance(actions[0], dict):
        raise _fail("payload.actions", "should hold exactly one action")
    return actions[0]


def _slack_person(user: Any) -> dict[str, str]:
    if not isinstance(user, dict) or not isinstance(user.get("id"), str):
        raise _fail("payload.user.id", "Field required")
    return {"id": user["id"], "name": str(user.get("username") or user.get("name") or user["id"])}


def interaction_from_slack(payload: dict[str, Any]) -> dict[str, Any]:
    """A Slack `block_actions` payload (one action) as a Spacechat interaction. Poll buttons
    carry `vote:<block_id>:<value>`; selects send their selected option values."""
    action = _slack_action(payload)
    person = _slack_person(payload.get("user"))
    block_id = _card_id(action.get("block_id"), "payload.actions[0].block_id")
    action_id, kind = action.get("action_id"), action.get("type")
    if action_id == SLACK_OPEN_ACTION:
        raise _fail("payload.actions[0].action_id", "a link to Spacechat, not an interaction")
    if kind == "multi_static_select" and action_id == SLACK_VOTE_SELECT:
        return _interaction(block_id, POLL_ACTION, _selected(action), "slack", person)
    if kind == "button" and isinstance(action_id, str) and action_id.startswith(SLACK_VOTE_PREFIX):
        value, prefix = action.get("value"), slack_vote_value(block_id, "")
        if not isinstance(value, str) or not value.startswith(prefix) or len(value) == len(prefix):
            raise _fail("payload.actions[0].value", f"should be {prefix}<option value>")
        return _interaction(block_id, POLL_ACTION, [value[len(prefix) :]], "slack", person)
    action_id = _card_id(action_id, "payload.actions[0].action_id")
    if kind == "button":
        return _interaction(block_id, action_id, None, "slack", person)
    if kind == "static_select":
        selected = action.get("selected_option")
        if not isinstance(selected, dict) or not isinstance(selected.get("value"), str):
            raise _fail("payload.actions[0].selected_option.value", "Field required")
        return _interaction(block_id, action_id, [selected["value"]], "slack", person)
    if kind == "multi_static_select":
        return _interaction(block_id, action_id, _selected(action), "slack", person)
    raise _fail("payload.actions[0].type", f"Spacechat cards have no Slack {kind!r} elements")


def interaction_from_discord(payload: dict[str, Any]) -> dict[str, Any]:
    """A Discord MESSAGE_COMPONENT interaction (type 3) as a Spacechat interaction, from
    `data.custom_id` (see `discord_custom_id`) and, for selects, `data.values`."""
    if not isinstance(payload, dict) or payload.get("type") != 3:
        raise _fail("payload.type", "not a Discord message component interaction (type 3)")
    data = payload.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("custom_id"), str):
        raise _fail("payload.data.custom_id", "Field required")
    member = payload.get("member")
    user = member.get("user") if isinstance(member, dict) else payload.get("user")
    if not isinstance(user, dict) or not isinstance(user.get("id"), str):
        raise _fail("payload.member.user.id", "Field required")
    person = {"id": user["id"], "name": str(user.get("global_name") or user.get("username") or user["id"])}
    kind, _, rest = data["custom_id"].partition("|")
    is_select = data.get("component_type") == 3
    if kind == "a":
        block_id, _, action_id = rest.partition("|")
        values = _strings(data.get("values"), "payload.data.values") if is_select else None
        found = _card_id(block_id, "payload.data.custom_id") if block_id else None
        return _interaction(found, _card_id(action_id, "payload.data.custom_id"), values, "discord", person)
    if kind == "v":
        block_id, bar, value = rest.partition("|")
        _card_id(block_id, "payload.data.custom_id")
        if bar and value:
            return _interaction(block_id, POLL_ACTION, [value], "discord", person)
        if is_select and not bar:
            return _interaction(
                block_id, POLL_ACTION, _strings(data.get("values"), "payload.data.values"), "discord", person
            )
    raise _fail("payload.data.custom_id", "not a Spacechat component")


# --- command line --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spacechat_plugin.cards", description="Spacechat card tools.")
    parser.add_argument("--schema", action="store_true", help="print the card JSON Schema (docs/cards.schema.json)")
    if not parser.parse_args(argv).schema:
        parser.print_help()
        return 2
    sys.stdout.write(schema_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
