"""Cards: the schema and its rules, values sent to a card, the Slack/Discord/text renderings and
the clicks that come back from them.

Expected results live in tests/golden/cards/: `blocks/<type>.json` and `card.json` hold valid cards
with their normalized form and invalid cards with their exact error paths (and whether the JSON
Schema alone catches them); `render/<case>.json` is a card with live state, rendered to
`<case>.slack.json`, `<case>.discord.json` and `<case>.txt`. After a deliberate change, rewrite the
outputs with `UPDATE_GOLDEN=1 python -m pytest tests/test_cards.py` and review the diff. In golden
files a string "${x*3001}" stands for "x" repeated 3001 times.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from spacechat_plugin.cards.render import (
    interaction_from_discord,
    interaction_from_slack,
    render_discord,
    render_slack,
    render_text,
    to_mrkdwn,
    to_plain,
)
from spacechat_plugin.cards.validate import (
    BLOCK_TYPES,
    CARD_VERSION,
    CardError,
    Target,
    card_schema,
    find_target,
    poll_closed,
    schema_text,
    validate_card,
    validate_values,
)

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "cards"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
SCHEMA = Draft202012Validator(card_schema())
REPEAT = re.compile(r"^\$\{(.)\*(\d+)\}$")


# --- golden files --------------------------------------------------------------------------


def expand(value: Any) -> Any:
    if isinstance(value, str) and (match := REPEAT.match(value)):
        return match[1] * int(match[2])
    if isinstance(value, list):
        return [expand(item) for item in value]
    if isinstance(value, dict):
        return {key: expand(item) for key, item in value.items()}
    return value


def compress(value: Any) -> Any:
    if isinstance(value, str) and len(value) > 40 and len(set(value)) == 1:
        return f"${{{value[0]}*{len(value)}}}"
    if isinstance(value, list):
        return [compress(item) for item in value]
    if isinstance(value, dict):
        return {key: compress(item) for key, item in value.items()}
    return value


def dump(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def golden_case(path: Path, kind: str, index: int, key: str, actual: Any) -> None:
    """Compare `actual` with case `index` of `path`'s `kind` list, or record it (UPDATE_GOLDEN=1)."""
    data = json.loads(path.read_text())
    if UPDATE:
        data[kind][index][key] = compress(actual)
        path.write_text(dump(data))
        return
    expected = data[kind][index].get(key)
    assert expected is not None, f"{path.name} has no {key} yet: run with UPDATE_GOLDEN=1 and review"
    assert actual == expand(expected)


def golden_text(path: Path, actual: str) -> None:
    if UPDATE:
        path.write_text(actual)
        return
    assert path.exists(), f"{path.name} is missing: run with UPDATE_GOLDEN=1 and review"
    assert actual == path.read_text()


def cases(kind: str) -> list[Any]:
    found = []
    for path in [*sorted((GOLDEN / "blocks").glob("*.json")), GOLDEN / "card.json"]:
        for index, case in enumerate(json.loads(path.read_text())[kind]):
            found.append(pytest.param(path, index, id=f"{path.stem}: {case['name']}"))
    return found


# --- validating cards ----------------------------------------------------------------------


def test_every_block_type_has_golden_cases() -> None:
    assert sorted(path.stem for path in (GOLDEN / "blocks").glob("*.json")) == sorted(BLOCK_TYPES)
    for path in (GOLDEN / "blocks").glob("*.json"):
        data = json.loads(path.read_text())
        assert data["valid"] and data["invalid"], path.name


@pytest.mark.parametrize(("path", "index"), cases("valid"))
def test_valid_card(path: Path, index: int) -> None:
    card = expand(json.loads(path.read_text())["valid"][index]["card"])
    normalized = validate_card(card)
    golden_case(path, "valid", index, "normalized", normalized)
    assert validate_card(normalized) == normalized
    SCHEMA.validate(card)
    SCHEMA.validate(normalized)


@pytest.mark.parametrize(("path", "index"), cases("invalid"))
def test_invalid_card(path: Path, index: int) -> None:
    case = json.loads(path.read_text())["invalid"][index]
    card = expand(case["card"])
    with pytest.raises(CardError) as raised:
        validate_card(card)
    golden_case(path, "invalid", index, "errors", raised.value.details)
    # What JSON Schema can express it catches; the golden says which rules only validate_card checks.
    assert bool(list(SCHEMA.iter_errors(card))) == case["json_schema_catches"]


def test_card_error_message_and_details() -> None:
    with pytest.raises(CardError) as raised:
        validate_card([{"type": "section"}, {"type": "divider", "x": 1}])
    assert str(raised.value) == "blocks[0].text: Field required (and 1 more)"
    assert isinstance(raised.value, ValueError)
    assert raised.value.details[1] == {"path": "blocks[1].x", "message": "unknown field"}


def test_at_most_fifty_blocks() -> None:
    assert len(validate_card([{"type": "divider"}] * 50)) == 50
    with pytest.raises(CardError) as raised:
        validate_card([{"type": "divider"}] * 51)
    assert raised.value.details == [{"path": "blocks", "message": "List should have at most 50 items, not 51"}]
    assert list(SCHEMA.iter_errors([{"type": "divider"}] * 51))


def test_normalized_card_is_plain_json() -> None:
    card = json.loads((GOLDEN / "render" / "every_block.json").read_text())["card"]
    normalized = validate_card(card)
    assert json.loads(json.dumps(normalized)) == normalized
    assert card[0] is not normalized[0]


def test_pattern_matching_is_linear() -> None:
    # (a+)+$ takes Python's re exponential time on "aaa...b"; cards match in linear time.
    blocks = validate_card(
        [{"type": "form", "block_id": "f", "action_id": "go", "fields": [
            {"type": "text", "name": "t", "label": "T", "pattern": "(a+)+"}]}]
    )  # fmt: skip
    form = find_target(blocks, action_id="go", block_id="f")
    assert form is not None
    with pytest.raises(CardError):
        validate_values(form, {"t": "a" * 2900 + "b"})
    assert validate_values(form, {"t": "a" * 2900}) == {"t": "a" * 2900}


# --- the JSON Schema -----------------------------------------------------------------------


def test_schema_file_is_the_generated_one() -> None:
    golden_text(ROOT / "docs" / "cards.schema.json", schema_text())


def test_schema_is_a_valid_json_schema() -> None:
    schema = card_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["type"] == "array" and schema["maxItems"] == 50
    assert sorted(schema["items"]["discriminator"]["mapping"]) == sorted(BLOCK_TYPES)
    assert schema["$id"] == f"urn:spacechat:card:{CARD_VERSION}"


def test_schema_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "spacechat_plugin.cards", "--schema"], capture_output=True, text=True, check=True
    )
    assert done.stdout == schema_text()


# --- interactions --------------------------------------------------------------------------

INTERACTIVE = validate_card(
    [
        {"type": "actions", "block_id": "deploy", "elements": [
            {"type": "button", "action_id": "approve", "label": "Approve", "value": "v2.3", "scope": "ops:restart"},
            {"type": "button", "action_id": "reject", "label": "Reject"},
            {"type": "select", "action_id": "env", "options": [
                {"label": "Staging", "value": "staging"}, {"label": "Production", "value": "prod"}]},
            {"type": "select", "action_id": "teams", "multiple": True, "max": 2, "options": [
                {"label": "SRE", "value": "sre"}, {"label": "Ops", "value": "ops"}, {"label": "Dev", "value": "dev"}]},
            {"type": "select", "action_id": "any", "multiple": True, "min": 0, "options": [
                {"label": "A", "value": "a"}]},
        ]},
        {"type": "form", "block_id": "incident", "action_id": "file", "scope": "tasks:approve", "fields": [
            {"type": "text", "name": "title", "label": "Title", "required": True, "min": 3, "max": 20,
             "pattern": "[A-Z][a-z ]+", "pattern_message": "Must start with a capital letter"},
            {"type": "text", "name": "ref", "label": "Ticket", "pattern": "[0-9]+"},
            {"type": "textarea", "name": "notes", "label": "Notes"},
            {"type": "number", "name": "severity", "label": "Severity", "min": 1, "max": 4},
            {"type": "select", "name": "team", "label": "Team", "options": [
                {"label": "SRE", "value": "sre"}, {"label": "Ops", "value": "ops"}]},
            {"type": "multiselect", "name": "regions", "label": "Regions", "max": 2, "options": [
                {"label": "EU", "value": "eu"}, {"label": "US", "value": "us"}, {"label": "AP", "value": "ap"}]},
            {"type": "checkbox", "name": "ack", "label": "Read the runbook", "required": True},
            {"type": "checkbox", "name": "page", "label": "Page someone"},
            {"type": "date", "name": "due", "label": "Due", "min": "2025-01-01", "max": "2025-12-31"},
        ]},
        {"type": "poll", "block_id": "lunch", "question": "Lunch?", "options": [
            {"label": "Pizza", "value": "pizza"}, {"label": "Sushi", "value": "sushi"}]},
        {"type": "poll", "block_id": "langs", "question": "Languages?", "multiple": True, "options": [
            {"label": "Python", "value": "py"}, {"label": "Rust", "value": "rs"}, {"label": "Go", "value": "go"}]},
    ]
)  # fmt: skip
GOOD_FORM = {"title": "Disk full", "ack": True}


def target(action_id: str, block_id: str | None = None) -> Target:
    found = find_target(INTERACTIVE, action_id=action_id, block_id=block_id)
    assert found is not None
    return found


def test_find_target() -> None:
    approve = target("approve", "deploy")
    assert (approve.kind, approve.block_id, approve.scope) == ("button", "deploy", "ops:restart")
    assert approve.element["label"] == "Approve"
    assert target("env").kind == "select" and target("env").block_id == "deploy"
    form = target("file", "incident")
    assert (form.kind, form.scope, form.element["type"]) == ("form", "tasks:approve", "form")
    vote = target("vote", "lunch")
    assert (vote.kind, vote.action_id, vote.scope, vote.element["question"]) == ("poll", "vote", None, "Lunch?")
    assert find_target(INTERACTIVE, action_id="approve", block_id="incident") is None
    assert find_target(INTERACTIVE, action_id="nope", block_id=None) is None
    assert find_target(INTERACTIVE, action_id="vote", block_id=None) is None
    assert find_target(INTERACTIVE, action_id="vote", block_id="deploy") is None


VALUES_ACCEPTED: list[tuple[str, str | None, object, object]] = [
    # (action_id, block_id, values sent, what validate_values returns)
    ("approve", "deploy", None, "v2.3"),
    ("reject", "deploy", None, None),
    ("env", None, ["prod"], ["prod"]),
    ("teams", None, ["sre", "dev"], ["sre", "dev"]),
    ("any", None, [], []),
    ("vote", "lunch", ["pizza"], ["pizza"]),
    ("vote", "langs", ["py", "go"], ["py", "go"]),
    (
        "file",
        None,
        GOOD_FORM,
        {
            "title": "Disk full",
            "ref": None,
            "notes": None,
            "severity": None,
            "team": None,
            "regions": [],
            "ack": True,
            "page": False,
            "due": None,
        },
    ),
    (
        "file",
        None,
        {**GOOD_FORM, "notes": "", "severity": 2.5, "team": "ops", "regions": ["eu", "ap"], "due": "2025-07-01"},
        {
            "title": "Disk full",
            "ref": None,
            "notes": None,
            "severity": 2.5,
            "team": "ops",
            "regions": ["eu", "ap"],
            "ack": True,
            "page": False,
            "due": "2025-07-01",
        },
    ),
]
VALUES_REFUSED: list[tuple[str, str | None, object, list[tuple[str, str]]]] = [
    # (action_id, block_id, values sent, the errors: (path, message))
    ("approve", "deploy", ["x"], [("values", "a button takes no values")]),
    ("env", None, "prod", [("values", "Input should be a valid list")]),
    ("env", None, [], [("values", "choose exactly 1 option")]),
    ("env", None, ["prod", "staging"], [("values", "choose exactly 1 option")]),
    ("env", None, ["dev"], [("values[0]", "Input should be one of the options")]),
    ("teams", None, [], [("values", "choose at least 1 option")]),
    ("teams", None, ["sre", "ops", "dev"], [("values", "choose at most 2 options")]),
    ("teams", None, ["sre", "sre"], [("values[1]", "duplicate value 'sre'")]),
    ("teams", None, [1], [("values[0]", "Input should be one of the options")]),
    ("vote", "lunch", ["pizza", "sushi"], [("values", "choose exactly 1 option")]),
    ("vote", "lunch", None, [("values", "Input should be a valid list")]),
    ("vote", "langs", [], [("values", "choose at least 1 option")]),
    ("vote", "langs", ["py", "java"], [("values[1]", "Input should be one of the options")]),
    ("file", None, ["x"], [("values", "Input should be an object of field name to value")]),
    ("file", None, {}, [("values.title", "Field required"), ("values.ack", "Field required")]),
    ("file", None, {**GOOD_FORM, "title": ""}, [("values.title", "Field required")]),
    ("file", None, {**GOOD_FORM, "extra": 1}, [("values.extra", "unknown field")]),
    ("file", None, {**GOOD_FORM, "title": 5}, [("values.title", "Input should be a valid string")]),
    ("file", None, {**GOOD_FORM, "title": "Ab"}, [("values.title", "String should have at least 3 characters")]),
    ("file", None, {**GOOD_FORM, "title": "A" * 21}, [("values.title", "String should have at most 20 characters")]),
    ("file", None, {**GOOD_FORM, "title": "disk"}, [("values.title", "Must start with a capital letter")]),
    ("file", None, {**GOOD_FORM, "ref": "T-1"}, [("values.ref", "Should match the pattern [0-9]+")]),
    (
        "file",
        None,
        {**GOOD_FORM, "notes": "n" * 3001},
        [("values.notes", "String should have at most 3000 characters")],
    ),
    ("file", None, {**GOOD_FORM, "severity": "2"}, [("values.severity", "Input should be a finite number")]),
    ("file", None, {**GOOD_FORM, "severity": True}, [("values.severity", "Input should be a finite number")]),
    ("file", None, {**GOOD_FORM, "severity": float("nan")}, [("values.severity", "Input should be a finite number")]),
    ("file", None, {**GOOD_FORM, "severity": 0}, [("values.severity", "Input should be greater than or equal to 1")]),
    ("file", None, {**GOOD_FORM, "severity": 5}, [("values.severity", "Input should be less than or equal to 4")]),
    ("file", None, {**GOOD_FORM, "team": "dev"}, [("values.team", "Input should be one of the options")]),
    ("file", None, {**GOOD_FORM, "team": ["sre"]}, [("values.team", "Input should be one of the options")]),
    ("file", None, {**GOOD_FORM, "regions": "eu"}, [("values.regions", "Input should be a valid list")]),
    ("file", None, {**GOOD_FORM, "regions": ["eu", "us", "ap"]}, [("values.regions", "choose at most 2 options")]),
    (
        "file",
        None,
        {**GOOD_FORM, "regions": ["eu", "xx"]},
        [("values.regions[1]", "Input should be one of the options")],
    ),
    ("file", None, {**GOOD_FORM, "ack": False}, [("values.ack", "must be checked")]),
    ("file", None, {**GOOD_FORM, "page": "yes"}, [("values.page", "Input should be a valid boolean")]),
    ("file", None, {**GOOD_FORM, "due": "07/01/2025"}, [("values.due", "should be a date: YYYY-MM-DD")]),
    ("file", None, {**GOOD_FORM, "due": "2025-02-30"}, [("values.due", "Input should be a real date (YYYY-MM-DD)")]),
    ("file", None, {**GOOD_FORM, "due": "2024-12-31"}, [("values.due", "Date should be on or after 2025-01-01")]),
    ("file", None, {**GOOD_FORM, "due": "2026-01-01"}, [("values.due", "Date should be on or before 2025-12-31")]),
]


@pytest.mark.parametrize(("action_id", "block_id", "values", "expected"), VALUES_ACCEPTED)
def test_values_accepted(action_id: str, block_id: str | None, values: object, expected: object) -> None:
    assert validate_values(target(action_id, block_id), values) == expected


@pytest.mark.parametrize(("action_id", "block_id", "values", "errors"), VALUES_REFUSED)
def test_values_refused(action_id: str, block_id: str | None, values: object, errors: list[tuple[str, str]]) -> None:
    with pytest.raises(CardError) as raised:
        validate_values(target(action_id, block_id), values)
    assert raised.value.details == [{"path": path, "message": message} for path, message in errors]


def test_poll_closed() -> None:
    block = validate_card(
        [{"type": "poll", "block_id": "p", "question": "Q", "closes_at": "2025-07-04T11:00:00+02:00",
          "options": [{"label": "A", "value": "a"}, {"label": "B", "value": "b"}]}]
    )[0]  # fmt: skip
    assert block["closes_at"] == "2025-07-04T09:00:00Z"
    closes = datetime(2025, 7, 4, 9, tzinfo=UTC)
    assert not poll_closed(block, closes - timedelta(seconds=1))
    assert poll_closed(block, closes)
    assert poll_closed(block, closes.astimezone(timezone(timedelta(hours=-5))))
    assert not poll_closed({**block, "closes_at": None}, closes + timedelta(days=999))
    assert not poll_closed({key: value for key, value in block.items() if key != "closes_at"}, closes)
    with pytest.raises(ValueError, match="timezone-aware"):
        poll_closed(block, datetime(2025, 7, 4, 12))


# --- renderings ----------------------------------------------------------------------------

RENDER_CASES = sorted(path for path in (GOLDEN / "render").glob("*.json") if path.name.count(".") == 1)


def render(path: Path, connector: str) -> Any:
    data = json.loads(path.read_text())
    blocks = validate_card(data["card"])
    renderer = {"slack": render_slack, "discord": render_discord, "text": render_text}[connector]
    return renderer(blocks, state=data.get("state"), message_url=data["message_url"])


@pytest.mark.parametrize("connector", ["slack", "discord", "text"])
@pytest.mark.parametrize("path", RENDER_CASES, ids=lambda path: path.stem)
def test_render_golden(path: Path, connector: str) -> None:
    rendered = render(path, connector)
    if connector == "text":
        golden_text(path.with_suffix(".txt"), rendered + "\n")
    else:
        golden_text(path.with_suffix(f".{connector}.json"), dump(rendered))
        (check_slack if connector == "slack" else check_discord)(rendered)


def test_every_block_type_is_rendered() -> None:
    card = json.loads((GOLDEN / "render" / "every_block.json").read_text())["card"]
    assert {block["type"] for block in card} == set(BLOCK_TYPES)


def test_anonymous_voters_never_shown() -> None:
    data = json.loads((GOLDEN / "render" / "answered.json").read_text())
    data["state"]["polls"]["offsite"]["voters"] = {"lisbon": ["Secret Sam"]}
    blocks = validate_card(data["card"])
    for renderer in (render_slack, render_discord, render_text):
        out = renderer(blocks, state=data["state"], message_url=data["message_url"])
        assert "Secret Sam" not in json.dumps(out)


def test_render_without_state() -> None:
    blocks = validate_card(json.loads((GOLDEN / "render" / "every_block.json").read_text())["card"])
    assert "status unavailable" in render_text(blocks, message_url="https://x.example/m")
    check_slack(render_slack(blocks, message_url="https://x.example/m"))
    check_discord(render_discord(blocks, state={"polls": None, "tasks": {"task_42": "?"}}, message_url="https://x/m"))


def oversized_card() -> list[dict[str, Any]]:
    """The largest card the schema allows, for the renderers' limits."""
    long_id = "b" * 60
    options = [{"label": "o" * 75, "value": f"{i:03d}" + "v" * 97} for i in range(100)]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": "<&>" * 1000},
        {"type": "fields", "fields": [{"label": "l" * 75, "value": "&" * 2000} for _ in range(10)]},
        {"type": "context", "elements": ["c" * 300] * 10},
        {"type": "image", "url": "https://i.example/" + "p" * 1900, "alt_text": "a" * 2000, "title": "t" * 75},
        {"type": "actions", "block_id": long_id + "act", "elements": [
            {"type": "select", "action_id": "s" * 64, "placeholder": "p" * 150, "options": options,
             "multiple": True, "initial": [option["value"] for option in options]},
            *[{"type": "button", "action_id": f"{i}" + "a" * 62, "label": "x" * 75, "value": "v" * 2000,
               "confirm": {"title": "t" * 75, "text": "c" * 3000, "confirm_label": "y" * 75, "deny_label": "n" * 75}}
              for i in range(10, 19)],
        ]},
        {"type": "status", "label": "s" * 75, "state": "ok", "detail": "d" * 3000},
        {"type": "tool_run", "tool": "t" * 75, "arguments_summary": "`" * 3000, "outcome": "failed",
         "detail": "e" * 3000},
    ]  # fmt: skip
    for i in range(50 - len(blocks)):
        blocks.append(
            {"type": "poll", "block_id": f"{i:02d}" + "p" * 62, "question": "q" * 3000, "multiple": i % 2 == 0,
             "options": [{"label": "l" * 75, "value": f"{j:02d}" + "v" * 98} for j in range(20)]}
        )  # fmt: skip
    return validate_card(blocks)


def test_renderers_truncate_to_limits() -> None:
    blocks = oversized_card()
    poll, first = blocks[7]["block_id"], blocks[7]["options"][0]["value"]
    state = {"polls": {poll: {"tallies": {first: 10**9}, "voters": {first: ["n" * 80] * 500}}}}
    slack = render_slack(blocks, state=state, message_url="https://chat.example/m")
    check_slack(slack)
    assert len(slack) == 50 and "More in Spacechat" in slack[-1]["elements"][0]["text"]
    discord = render_discord(blocks, state=state, message_url="https://chat.example/m")
    check_discord(discord)
    assert discord["components"][-1]["components"][0]["label"] == "More in Spacechat"
    assert discord["content"].endswith("[More in Spacechat](https://chat.example/m)")
    text = render_text(blocks, state=state, message_url="https://chat.example/m")
    assert text.endswith("Respond in Spacechat: https://chat.example/m")


def test_discord_custom_id_fits() -> None:
    blocks = validate_card(
        [{"type": "actions", "block_id": "b" * 64, "elements": [
            {"type": "button", "action_id": "a" * 64, "label": "Go"},
            {"type": "button", "action_id": "short", "label": "Go"}]},
         {"type": "poll", "block_id": "p" * 64, "question": "Q", "options": [
             {"label": "A", "value": "a" * 40}, {"label": "B", "value": "b"}]}]
    )  # fmt: skip
    rendered = render_discord(blocks, message_url="https://x.example/m")
    check_discord(rendered)
    row, poll_row = (row["components"] for row in rendered["components"])
    assert [button["custom_id"] for button in row] == ["a||" + "a" * 64, f"a|{'b' * 64}|short"]
    assert poll_row[0]["type"] == 3 and poll_row[0]["custom_id"] == "v|" + "p" * 64  # buttons would not fit


def check_slack(blocks: list[dict[str, Any]]) -> None:
    """Slack Block Kit's documented limits."""
    assert len(blocks) <= 50
    block_ids = [block["block_id"] for block in blocks if "block_id" in block]
    assert len(block_ids) == len(set(block_ids)) and all(len(i) <= 255 for i in block_ids)
    for block in blocks:
        if block["type"] == "section":
            assert "text" in block or "fields" in block
            assert len(block.get("text", {}).get("text", "")) <= 3000
            assert len(block.get("fields", [])) <= 10 and all(len(f["text"]) <= 2000 for f in block.get("fields", []))
            elements = [block["accessory"]] if "accessory" in block else []
        elif block["type"] == "context":
            assert 1 <= len(block["elements"]) <= 10 and all(len(e["text"]) <= 3000 for e in block["elements"])
            elements = []
        elif block["type"] == "image":
            assert len(block["image_url"]) <= 3000 and len(block["alt_text"]) <= 2000
            assert len(block.get("title", {}).get("text", "")) <= 2000
            elements = []
        else:
            assert block["type"] in ("divider", "actions")
            elements = block.get("elements", [])
            assert len(elements) <= 25
        action_ids = [element["action_id"] for element in elements]
        assert len(action_ids) == len(set(action_ids))
        for element in elements:
            assert len(element["action_id"]) <= 255
            if element["type"] == "button":
                assert len(element["text"]["text"]) <= 75 and len(element.get("value", "")) <= 2000
                assert element.get("style", "primary") in ("primary", "danger")
                if "confirm" in element:
                    confirm = element["confirm"]
                    assert len(confirm["title"]["text"]) <= 100 and len(confirm["text"]["text"]) <= 300
                    assert len(confirm["confirm"]["text"]) <= 30 and len(confirm["deny"]["text"]) <= 30
            else:
                assert element["type"] in ("static_select", "multi_static_select")
                assert len(element["placeholder"]["text"]) <= 150 and len(element["options"]) <= 100
                assert all(len(o["text"]["text"]) <= 75 and len(o["value"]) <= 150 for o in element["options"])


def check_discord(message: dict[str, Any]) -> None:
    """Discord's documented limits for a message, its embeds and components."""
    assert set(message) == {"content", "embeds", "components", "allowed_mentions"}
    assert message["allowed_mentions"] == {"parse": []} and len(message["content"]) <= 2000
    embeds = message["embeds"]
    assert len(embeds) <= 10
    total = 0
    for embed in embeds:
        assert len(embed.get("title", "")) <= 256 and len(embed.get("description", "")) <= 4096
        assert len(embed.get("fields", [])) <= 25 and len(embed.get("footer", {}).get("text", "")) <= 2048
        for field in embed.get("fields", []):
            assert 1 <= len(field["name"]) <= 256 and 1 <= len(field["value"]) <= 1024
        total += (
            len(embed.get("title", ""))
            + len(embed.get("description", ""))
            + len(embed.get("footer", {}).get("text", ""))
        )
        total += sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", []))
    assert total <= 6000
    rows = message["components"]
    assert len(rows) <= 5
    custom_ids = []
    for row in rows:
        assert row["type"] == 1 and row["components"]
        kinds = {component["type"] for component in row["components"]}
        assert (kinds == {2} and len(row["components"]) <= 5) or (kinds == {3} and len(row["components"]) == 1)
        for component in row["components"]:
            if component["type"] == 2 and component["style"] == 5:
                assert "custom_id" not in component and component["url"]
            else:
                custom_ids.append(component["custom_id"])
                assert len(component["custom_id"]) <= 100
            if component["type"] == 2:
                assert 1 <= len(component["label"]) <= 80 and component["style"] in (1, 2, 4, 5)
            else:
                assert 1 <= len(component["options"]) <= 25 and len(component.get("placeholder", "")) <= 150
                assert all(len(o["label"]) <= 100 and len(o["value"]) <= 100 for o in component["options"])
                assert 0 <= component.get("min_values", 1) <= component.get("max_values", 1) <= 25
    assert len(custom_ids) == len(set(custom_ids))


@pytest.mark.parametrize(
    ("markdown", "mrkdwn", "plain"),
    [
        ("**bold** and __also__", "*bold* and *also*", "bold and also"),
        ("*it* and _it_", "_it_ and _it_", "it and it"),
        ("~~gone~~", "~gone~", "gone"),
        (
            "[docs](https://x.example/a?b=1&c=2)",
            "<https://x.example/a?b=1&amp;c=2|docs>",
            "docs (https://x.example/a?b=1&c=2)",
        ),
        ("# Title\n- one\n* two", "*Title*\n• one\n• two", "Title\n- one\n* two"),
        ("a < b & c > d", "a &lt; b &amp; c &gt; d", "a < b & c > d"),
        ("> quoted", "> quoted", "> quoted"),
        ("`**kept**` and ```\n**kept**\n```", "`**kept**` and ```\n**kept**\n```", "`**kept**` and ```\n**kept**\n```"),
        ("snake_case_name and 2*3*4", "snake_case_name and 2*3*4", "snake_case_name and 2*3*4"),
    ],
)
def test_markdown_conversion(markdown: str, mrkdwn: str, plain: str) -> None:
    assert to_mrkdwn(markdown) == mrkdwn
    assert to_plain(markdown) == plain


# --- interactions coming back from connectors ----------------------------------------------

SLACK_USER = {"id": "U024BE7LH", "username": "ann", "name": "ann", "team_id": "T1"}
DISCORD_MEMBER = {"user": {"id": "80351110224678912", "username": "ann", "global_name": "Ann A."}}


def slack_payload(action: dict[str, Any]) -> dict[str, Any]:
    return {"type": "block_actions", "user": SLACK_USER, "actions": [action]}


def slack_act(**action: Any) -> dict[str, Any]:
    return slack_payload({"type": "button", "action_id": "a", "block_id": "b", **action})


def discord_payload(data: dict[str, Any]) -> dict[str, Any]:
    return {"type": 3, "member": DISCORD_MEMBER, "data": data}


@pytest.mark.parametrize("name", ["every_block", "answered"])
def test_every_slack_element_maps_back(name: str) -> None:
    """Click everything rendered for Slack; each click finds its target and passes validation."""
    data = json.loads((GOLDEN / "render" / f"{name}.json").read_text())
    blocks = validate_card(data["card"])
    clicked = []
    for block in render_slack(blocks, state=data["state"], message_url="https://x.example/m"):
        for element in block.get("elements", []) if block["type"] == "actions" else []:
            action = {"type": element["type"], "action_id": element["action_id"], "block_id": block["block_id"]}
            if element["type"] == "button" and "value" in element:
                action["value"] = element["value"]
            elif element["type"] == "static_select":
                action["selected_option"] = element["options"][0]
            elif element["type"] == "multi_static_select":
                action["selected_options"] = element["options"][:1]
            interaction = interaction_from_slack(slack_payload(action))
            assert interaction["connector"] == "slack"
            assert interaction["external_user"] == {"id": "U024BE7LH", "name": "ann"}
            found = find_target(blocks, action_id=interaction["action_id"], block_id=interaction["block_id"])
            assert found is not None
            validate_values(found, interaction["values"])
            clicked.append((found.kind, interaction["action_id"], interaction["values"]))
    assert (
        clicked
        == {
            "every_block": [
                ("button", "approve", None),
                ("button", "reject", None),
                ("button", "later", None),
                ("select", "env", ["staging"]),
                ("select", "notify", ["sre"]),
                ("poll", "vote", ["pizza"]),
                ("poll", "vote", ["sushi"]),
                ("poll", "vote", ["salad"]),
            ],
            "answered": [("poll", "vote", ["py"])],
        }[name]
    )


@pytest.mark.parametrize("name", ["every_block", "answered"])
def test_every_discord_component_maps_back(name: str) -> None:
    data = json.loads((GOLDEN / "render" / f"{name}.json").read_text())
    blocks = validate_card(data["card"])
    clicked = []
    for row in render_discord(blocks, state=data["state"], message_url="https://x.example/m")["components"]:
        for component in row["components"]:
            if component.get("style") == 5:
                continue
            data = {"custom_id": component["custom_id"], "component_type": component["type"]}
            if component["type"] == 3:
                data["values"] = [option["value"] for option in component["options"][: component.get("min_values", 1)]]
            interaction = interaction_from_discord(discord_payload(data))
            assert interaction["external_user"] == {"id": "80351110224678912", "name": "Ann A."}
            found = find_target(blocks, action_id=interaction["action_id"], block_id=interaction["block_id"])
            assert found is not None
            validate_values(found, interaction["values"])
            clicked.append((found.kind, interaction["block_id"], interaction["action_id"], interaction["values"]))
    assert (
        clicked
        == {
            "every_block": [
                ("button", "deploy", "approve", None),  # "reject" asks for confirmation: a link to Spacechat
                ("button", "deploy", "later", None),
                ("select", "deploy", "env", ["staging"]),
                ("select", "deploy", "notify", []),
                ("poll", "lunch", "vote", ["pizza"]),
                ("poll", "lunch", "vote", ["sushi"]),
                ("poll", "lunch", "vote", ["salad"]),
            ],
            "answered": [("poll", "stack", "vote", ["py"])],  # decided blocks and closed polls take no clicks
        }[name]
    )


def test_slack_mappings() -> None:
    vote = {"type": "button", "action_id": "vote/1", "block_id": "lunch:1", "value": "vote:lunch:1:a:b"}
    assert interaction_from_slack(slack_payload(vote)) == {
        "block_id": "lunch:1",
        "action_id": "vote",
        "values": ["a:b"],
        "connector": "slack",
        "external_user": {"id": "U024BE7LH", "name": "ann"},
    }
    multi = {"type": "multi_static_select", "action_id": "t", "block_id": "b", "selected_options": []}
    assert interaction_from_slack(slack_payload(multi))["values"] == []
    poll = {**multi, "action_id": "vote/select", "selected_options": [{"value": "py"}, {"value": "go"}]}
    mapped = interaction_from_slack(slack_payload(poll))
    assert (mapped["block_id"], mapped["action_id"], mapped["values"]) == ("b", "vote", ["py", "go"])


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        ({"type": "view_submission", "user": SLACK_USER}, "payload.type"),
        ({"type": "block_actions", "user": SLACK_USER, "actions": []}, "payload.actions"),
        ({"type": "block_actions", "user": SLACK_USER, "actions": [{}, {}]}, "payload.actions"),
        ({"type": "block_actions", "actions": [{"type": "button", "action_id": "a"}]}, "payload.user.id"),
        (slack_act(block_id="has space"), "payload.actions[0].block_id"),
        (slack_act(action_id="a/b"), "payload.actions[0].action_id"),
        (slack_act(action_id="spacechat/open"), "payload.actions[0].action_id"),
        (slack_act(action_id="vote/0", block_id="p", value="vote:q:a"), "payload.actions[0].value"),
        (slack_act(action_id="vote/0", block_id="p", value="vote:p:"), "payload.actions[0].value"),
        (slack_act(type="static_select"), "payload.actions[0].selected_option.value"),
        (slack_act(type="multi_static_select", selected_options=[{"value": 1}]), "payload.actions[0].selected_options"),
        (slack_act(type="datepicker"), "payload.actions[0].type"),
    ],
)
def test_slack_payloads_that_do_not_map(payload: dict[str, Any], path: str) -> None:
    with pytest.raises(CardError) as raised:
        interaction_from_slack(payload)
    assert raised.value.details[0]["path"] == path


def test_discord_mappings() -> None:
    dm = {"type": 3, "user": {"id": "42", "username": "bob"}, "data": {"custom_id": "a||approve", "component_type": 2}}
    assert interaction_from_discord(dm) == {
        "block_id": None,
        "action_id": "approve",
        "values": None,
        "connector": "discord",
        "external_user": {"id": "42", "name": "bob"},
    }
    vote = interaction_from_discord(discord_payload({"custom_id": "v|p:1|a|b", "component_type": 2}))
    assert (vote["block_id"], vote["action_id"], vote["values"]) == ("p:1", "vote", ["a|b"])
    select = interaction_from_discord(discord_payload({"custom_id": "v|p", "component_type": 3, "values": ["x", "y"]}))
    assert (select["block_id"], select["action_id"], select["values"]) == ("p", "vote", ["x", "y"])


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        ({"type": 2, "data": {"name": "ping"}}, "payload.type"),
        ({"type": 3, "member": DISCORD_MEMBER, "data": {}}, "payload.data.custom_id"),
        ({"type": 3, "data": {"custom_id": "a|b|c", "component_type": 2}}, "payload.member.user.id"),
        (discord_payload({"custom_id": "other-bot:thing", "component_type": 2}), "payload.data.custom_id"),
        (discord_payload({"custom_id": "a|b|", "component_type": 2}), "payload.data.custom_id"),
        (discord_payload({"custom_id": "a|b b|c", "component_type": 2}), "payload.data.custom_id"),
        (discord_payload({"custom_id": "a|b|c", "component_type": 3}), "payload.data.values"),
        (discord_payload({"custom_id": "a|b|c", "component_type": 3, "values": [1]}), "payload.data.values"),
        (discord_payload({"custom_id": "v|p", "component_type": 2}), "payload.data.custom_id"),
        (discord_payload({"custom_id": "v|p|", "component_type": 2}), "payload.data.custom_id"),
    ],
)
def test_discord_payloads_that_do_not_map(payload: dict[str, Any], path: str) -> None:
    with pytest.raises(CardError) as raised:
        interaction_from_discord(payload)
    assert raised.value.details[0]["path"] == path


# --- documentation -------------------------------------------------------------------------

CARDS_DOC = (ROOT / "docs" / "cards.md").read_text()
CONNECTORS_DOC = (ROOT / "docs" / "connectors.md").read_text()


@pytest.mark.parametrize("block_type", BLOCK_TYPES)
def test_block_type_is_documented(block_type: str) -> None:
    assert f"### `{block_type}`" in CARDS_DOC, f"docs/cards.md has no section for {block_type}"
    assert f"| `{block_type}` |" in CONNECTORS_DOC, f"docs/connectors.md's table lacks {block_type}"


def test_documented_examples_are_valid() -> None:
    examples = re.findall(r"```json\n(.*?)```", CARDS_DOC, re.DOTALL)
    documented = set()
    for example in examples:
        blocks = validate_card(json.loads(example))
        documented |= {block["type"] for block in blocks}
    assert documented == set(BLOCK_TYPES)
