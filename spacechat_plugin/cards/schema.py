"""The card schema, version 1: the block models, their rules, and how one answer is checked.

Why a module of its own: these strict pydantic models are the single source for validating a card,
for the JSON Schema published in docs/cards.schema.json and for checking what people send back, so
the documented schema cannot drift from what the server enforces. `validate.py` is the API built on
them; docs/cards.md is the reference for card authors.

Each model checks its shape (strict types, no unknown fields, lengths, patterns) through pydantic,
and `problems()` yields what a JSON Schema cannot say (unique option values and names, min <= max,
initial values among the options, defaults a field would accept), with exact paths. This module
imports nothing else of the package.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Annotated, Any, Literal, TypeVar

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
    create_model,
)
from pydantic_core import PydanticCustomError, SchemaError, SchemaValidator, core_schema

MAX_BLOCKS = 50
MAX_TEXT = 3000  # Markdown text: sections, details, confirm text, submitted text
MAX_LABEL = 75  # Slack's button text limit; labels are plain text
MAX_VALUE = 2000  # button and field values (Slack's button value limit)
MAX_OPTION_VALUE = 100  # option values travel unchanged through Discord (100) and Slack (150) selects
MAX_PLACEHOLDER = 150  # Slack's and Discord's placeholder limit
MAX_ELEMENTS = 10  # elements of an actions block, fields of a fields block, context elements
MAX_CONTEXT_TEXT = 300
MAX_SELECT_OPTIONS = 100  # Slack's static_select limit
MAX_FORM_FIELDS = 25
MAX_POLL_OPTIONS = 20
MAX_PATTERN = 200

ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"  # no dots: form values are reported at values.<name>
SCOPE_PATTERN = r"^[a-z][a-z0-9_-]{0,31}:[a-z][a-z0-9_-]{0,31}$"
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
DATE_TIME_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$"
# https with a host, or a Spacechat attachment; never javascript:, data: or http:. No characters
# that would break out of Slack's <url|text> or a Markdown link.
IMAGE_URL_PATTERN = (
    r"^(https://[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?([/?#][^\s<>|\"'`\\]*)?"
    r"|/v1/attachments/att_[A-Za-z0-9_-]{1,64})$"
)
POLL_ACTION = "vote"  # the action_id of every poll vote; reserved, so no element may use it

PATTERN_MESSAGES = {
    ID_PATTERN: "should be 1-64 characters: letters, digits, '.', '_', ':' or '-'",
    NAME_PATTERN: "should be 1-64 characters: a letter or '_', then letters, digits, '_' or '-'",
    SCOPE_PATTERN: "should be a permission scope such as 'tasks:approve'",
    DATE_PATTERN: "should be a date: YYYY-MM-DD",
    DATE_TIME_PATTERN: "should be an RFC 3339 time with an offset, e.g. 2025-07-01T17:00:00Z",
    IMAGE_URL_PATTERN: "should be an https:// URL or a Spacechat attachment path (/v1/attachments/att_...)",
}


# --- field types ---------------------------------------------------------------------------


def _number(value: object) -> int | float:
    # Strict pydantic turns an int into a float for a float field; a card keeps what it was given.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("number_type", "Input should be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError("finite_number", "Input should be a finite number")
    return value


def _present(value: object) -> object:
    # An optional field is left out, not sent as null: one spelling per card, and a schema
    # without `anyOf: [..., null]` everywhere.
    if value is None:
        raise PydanticCustomError("null", "Input should not be null; leave the field out instead")
    return value


def _real_date(value: str) -> str:
    try:
        date.fromisoformat(value)
    except ValueError:
        raise PydanticCustomError("date", "Input should be a real date (YYYY-MM-DD)") from None
    return value


def _utc_time(value: str) -> str:
    try:
        moment = datetime.fromisoformat(value).astimezone(UTC)
    except (ValueError, OverflowError):  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise PydanticCustomError("date_time", "Input should be a real RFC 3339 time") from None
    return moment.isoformat().replace("+00:00", "Z")


@lru_cache(maxsize=256)
def _matcher(pattern: str) -> SchemaValidator:
    # Card authors write patterns and anyone may send text to them, so patterns are matched with
    # pydantic-core's Rust engine, which runs in linear time (Python's re can backtrack for ever).
    return SchemaValidator(core_schema.str_schema(pattern=f"^(?:{pattern})$", regex_engine="rust-regex"))


def _simple_regex(value: str) -> str:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # "[[:alpha:]]" warns, and means different things elsewhere
            re.compile(value)
    except (re.error, Warning) as exc:
        raise PydanticCustomError("regex", "not a valid regular expression: {error}", {"error": str(exc)}) from None
    try:
        _matcher(value)
    except SchemaError:
        raise PydanticCustomError(
            "regex_unsupported", "the pattern uses backreferences, look-around or is too large; keep it simple"
        ) from None
    return value


def _fullmatch(pattern: str, text: str) -> bool:
    """Whether `text` matches all of a form field's `pattern` (in linear time)."""
    try:
        _matcher(pattern).validate_python(text)
    except ValidationError:
        return False
    return True


T = TypeVar("T")
Maybe = Annotated[T | None, BeforeValidator(_present)]  # optional: absent or a T, never null
Id = Annotated[str, Field(pattern=ID_PATTERN)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Scope = Annotated[
    str, Field(pattern=SCOPE_PATTERN, description="A Spacechat permission scope the person acting must hold.")
]
Markdown = Annotated[str, Field(min_length=1, max_length=MAX_TEXT, description="Markdown.")]
Label = Annotated[str, Field(min_length=1, max_length=MAX_LABEL, description="Plain text.")]
Placeholder = Annotated[str, Field(min_length=1, max_length=MAX_PLACEHOLDER)]
OptionValue = Annotated[str, Field(min_length=1, max_length=MAX_OPTION_VALUE)]
Number = Annotated[int | float, PlainValidator(_number), WithJsonSchema({"type": "number"})]
Count = Annotated[int, Field(ge=0, le=MAX_SELECT_OPTIONS)]
Length = Annotated[int, Field(ge=0, le=MAX_TEXT)]
DateStr = Annotated[str, Field(pattern=DATE_PATTERN, json_schema_extra={"format": "date"}), AfterValidator(_real_date)]
Time = Annotated[
    str,
    Field(pattern=DATE_TIME_PATTERN, json_schema_extra={"format": "date-time"}),
    AfterValidator(_utc_time),
]
Regex = Annotated[str, Field(min_length=1, max_length=MAX_PATTERN), AfterValidator(_simple_regex)]
ImageUrl = Annotated[str, Field(max_length=MAX_VALUE, pattern=IMAGE_URL_PATTERN)]

Problem = tuple[str, str]  # (path, message) of a rule broken beyond the shape


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    def problems(self, at: str) -> Iterator[Problem]:
        """The rules this part breaks that its shape does not show; `at` is its path."""
        return iter(())


class Option(_Strict):
    """A choice of a select, form field or poll: `label` is shown, `value` is sent."""

    label: Label
    value: OptionValue


def _option_problems(options: list[Option], at: str) -> Iterator[Problem]:
    seen: set[str] = set()
    for i, option in enumerate(options):
        if option.value in seen:
            yield f"{at}.options[{i}].value", f"duplicate option value {option.value!r}"
        seen.add(option.value)


def _bounds_problems(low: Any, high: Any, at: str, larger: str = "larger than") -> Iterator[Problem]:
    if low is not None and high is not None and low > high:
        yield f"{at}.min", f"min is {larger} max"


def _count_problems(low: int | None, high: int | None, options: list[Option], at: str) -> Iterator[Problem]:
    for name, bound in (("min", low), ("max", high)):
        if bound is not None and bound > len(options):
            yield f"{at}.{name}", f"{name} is larger than the number of options ({len(options)})"
    yield from _bounds_problems(low, high, at)


# --- blocks --------------------------------------------------------------------------------


class SectionBlock(_Strict):
    """A paragraph of Markdown."""

    type: Literal["section"]
    block_id: Maybe[Id] = None
    text: Markdown


class FieldItem(_Strict):
    """One label and value pair of a fields block."""

    label: Label
    value: Annotated[str, Field(min_length=1, max_length=MAX_VALUE, description="Markdown.")]


class FieldsBlock(_Strict):
    """Label and value pairs shown as a grid."""

    type: Literal["fields"]
    block_id: Maybe[Id] = None
    fields: list[FieldItem] = Field(min_length=1, max_length=MAX_ELEMENTS)


class ContextBlock(_Strict):
    """Small secondary Markdown lines (sources, timestamps, who asked)."""

    type: Literal["context"]
    block_id: Maybe[Id] = None
    elements: list[Annotated[str, Field(min_length=1, max_length=MAX_CONTEXT_TEXT)]] = Field(
        min_length=1, max_length=MAX_ELEMENTS
    )


class DividerBlock(_Strict):
    """A horizontal rule."""

    type: Literal["divider"]


class ImageBlock(_Strict):
    """An image from an https URL or a Spacechat attachment; `alt_text` is required."""

    type: Literal["image"]
    block_id: Maybe[Id] = None
    url: ImageUrl
    alt_text: Annotated[str, Field(min_length=1, max_length=MAX_VALUE)]
    title: Maybe[Label] = None


class Confirm(_Strict):
    """A confirmation dialog shown before a button's action is sent."""

    title: Label
    text: Markdown
    confirm_label: Label = "Confirm"
    deny_label: Label = "Cancel"


class Button(_Strict):
    """A button; a click sends its `value` (if any) to the agent."""

    type: Literal["button"]
    action_id: Id
    label: Label
    style: Literal["default", "primary", "danger"] = "default"
    value: Maybe[Annotated[str, Field(min_length=1, max_length=MAX_VALUE)]] = None
    confirm: Maybe[Confirm] = None
    scope: Maybe[Scope] = None


class Select(_Strict):
    """A menu of options; one choice, or several when `multiple` (within `min`..`max`)."""

    type: Literal["select"]
    action_id: Id
    placeholder: Maybe[Placeholder] = None
    options: list[Option] = Field(min_length=1, max_length=MAX_SELECT_OPTIONS)
    multiple: bool = False
    min: Maybe[Count] = None
    max: Maybe[Annotated[int, Field(ge=1, le=MAX_SELECT_OPTIONS)]] = None
    initial: Maybe[list[OptionValue]] = Field(None, max_length=MAX_SELECT_OPTIONS)
    scope: Maybe[Scope] = None

    def problems(self, at: str) -> Iterator[Problem]:
        yield from _option_problems(self.options, at)
        if not self.multiple:
            for name in ("min", "max"):
                if getattr(self, name) is not None:
                    yield f"{at}.{name}", "only a select with multiple: true takes min and max"
        else:
            yield from _count_problems(self.min, self.max, self.options, at)
        initial = self.initial or []
        values = {option.value for option in self.options}
        for i, value in enumerate(initial):
            if value not in values:
                yield f"{at}.initial[{i}]", f"{value!r} is not one of the options"
            elif value in initial[:i]:
                yield f"{at}.initial[{i}]", f"duplicate value {value!r}"
        if not self.multiple and len(initial) > 1:
            yield f"{at}.initial", "a select without multiple: true takes at most one initial value"
        if self.max is not None and len(initial) > self.max:
            yield f"{at}.initial", f"more initial values than max ({self.max})"


Element = Annotated[Button | Select, Field(discriminator="type")]


class ActionsBlock(_Strict):
    """A row of buttons and selects."""

    type: Literal["actions"]
    block_id: Id
    elements: list[Element] = Field(min_length=1, max_length=MAX_ELEMENTS)

    def problems(self, at: str) -> Iterator[Problem]:
        for i, element in enumerate(self.elements):
            yield from element.problems(f"{at}.elements[{i}]")


class _Input(_Strict):
    type: str  # each input narrows it to its own Literal; declared here so that it comes first
    name: Name
    label: Label
    required: bool = False

    def problems(self, at: str) -> Iterator[Problem]:
        default = getattr(self, "default", None)
        if default is not None:
            field = self.model_dump(mode="json", exclude_none=True)
            _, errors = check_answers([field], {self.name: default}, defaults=True, at="")
            prefix = len(f".{self.name}")  # errors at `.name` or `.name[i]`: the default's own path
            yield from ((f"{at}.default{error['path'][prefix:]}", error["message"]) for error in errors)


class TextInput(_Input):
    """One line (`text`) or several (`textarea`); `min`/`max` bound the length."""

    type: Literal["text", "textarea"]
    placeholder: Maybe[Placeholder] = None
    min: Maybe[Length] = None
    max: Maybe[Annotated[int, Field(ge=1, le=MAX_TEXT)]] = None
    pattern: Maybe[Regex] = Field(None, description="Must match the whole value; no backreferences or look-around.")
    pattern_message: Maybe[Annotated[str, Field(min_length=1, max_length=MAX_LABEL * 2)]] = Field(
        None, description="What a person is told when the value does not match `pattern`."
    )
    default: Maybe[Annotated[str, Field(max_length=MAX_TEXT)]] = None

    def problems(self, at: str) -> Iterator[Problem]:
        yield from _bounds_problems(self.min, self.max, at)
        if self.pattern_message is not None and self.pattern is None:
            yield f"{at}.pattern_message", "only a field with a pattern takes a pattern_message"
        yield from super().problems(at)


class NumberInput(_Input):
    """A number; `min`/`max` bound the value."""

    type: Literal["number"]
    placeholder: Maybe[Placeholder] = None
    min: Maybe[Number] = None
    max: Maybe[Number] = None
    default: Maybe[Number] = None

    def problems(self, at: str) -> Iterator[Problem]:
        yield from _bounds_problems(self.min, self.max, at)
        yield from super().problems(at)


class SelectInput(_Input):
    """One of `options`."""

    type: Literal["select"]
    placeholder: Maybe[Placeholder] = None
    options: list[Option] = Field(min_length=1, max_length=MAX_SELECT_OPTIONS)
    default: Maybe[OptionValue] = None

    def problems(self, at: str) -> Iterator[Problem]:
        yield from _option_problems(self.options, at)
        yield from super().problems(at)


class MultiselectInput(_Input):
    """Any of `options`; `min`/`max` bound how many."""

    type: Literal["multiselect"]
    placeholder: Maybe[Placeholder] = None
    options: list[Option] = Field(min_length=1, max_length=MAX_SELECT_OPTIONS)
    min: Maybe[Count] = None
    max: Maybe[Annotated[int, Field(ge=1, le=MAX_SELECT_OPTIONS)]] = None
    default: Maybe[list[OptionValue]] = Field(None, max_length=MAX_SELECT_OPTIONS)

    def problems(self, at: str) -> Iterator[Problem]:
        yield from _option_problems(self.options, at)
        yield from _count_problems(self.min, self.max, self.options, at)
        yield from super().problems(at)


class CheckboxInput(_Input):
    """A yes/no box; when `required`, it must be ticked."""

    type: Literal["checkbox"]
    default: Maybe[bool] = None


class DateInput(_Input):
    """A calendar date, YYYY-MM-DD; `min`/`max` are the earliest and latest allowed."""

    type: Literal["date"]
    placeholder: Maybe[Placeholder] = None
    min: Maybe[DateStr] = None
    max: Maybe[DateStr] = None
    default: Maybe[DateStr] = None

    def problems(self, at: str) -> Iterator[Problem]:
        yield from _bounds_problems(self.min, self.max, at, "later than")
        yield from super().problems(at)


FormInput = Annotated[
    TextInput | NumberInput | SelectInput | MultiselectInput | CheckboxInput | DateInput,
    Field(discriminator="type"),
]


class FormBlock(_Strict):
    """Several inputs sent together with one submit button."""

    type: Literal["form"]
    block_id: Id
    action_id: Id
    submit_label: Label = "Submit"
    scope: Maybe[Scope] = None
    fields: list[FormInput] = Field(min_length=1, max_length=MAX_FORM_FIELDS)

    def problems(self, at: str) -> Iterator[Problem]:
        seen: set[str] = set()
        for i, field in enumerate(self.fields):
            if field.name in seen:
                yield f"{at}.fields[{i}].name", f"duplicate field name {field.name!r}"
            seen.add(field.name)
            yield from field.problems(f"{at}.fields[{i}]")


class PollBlock(_Strict):
    """A question with 2-20 options; one vote per person (several options when `multiple`)."""

    type: Literal["poll"]
    block_id: Id
    question: Markdown
    options: list[Option] = Field(min_length=2, max_length=MAX_POLL_OPTIONS)
    multiple: bool = False
    anonymous: bool = False
    closes_at: Maybe[Time] = None

    def problems(self, at: str) -> Iterator[Problem]:
        yield from _option_problems(self.options, at)


class TaskBlock(_Strict):
    """A Spacechat task, shown with its live title, status and assignee."""

    type: Literal["task"]
    block_id: Maybe[Id] = None
    task_id: Id


class StatusBlock(_Strict):
    """A status chip: a label with a state colour and an optional detail."""

    type: Literal["status"]
    block_id: Maybe[Id] = None
    label: Label
    state: Literal["ok", "warning", "error", "info", "running"]
    detail: Maybe[Markdown] = None


class ToolRunBlock(_Strict):
    """A summary of one tool call an agent made."""

    type: Literal["tool_run"]
    block_id: Maybe[Id] = None
    tool: Label
    arguments_summary: Annotated[str, Field(max_length=MAX_TEXT, description="Plain text; may be empty.")]
    duration_ms: Maybe[Annotated[int, Field(ge=0)]] = None
    outcome: Literal["running", "succeeded", "failed", "denied", "skipped"]
    detail: Maybe[Markdown] = None


Block = Annotated[
    SectionBlock
    | FieldsBlock
    | ContextBlock
    | DividerBlock
    | ImageBlock
    | ActionsBlock
    | FormBlock
    | PollBlock
    | TaskBlock
    | StatusBlock
    | ToolRunBlock,
    Field(discriminator="type"),
]
BLOCK_TYPES = (
    "section",
    "fields",
    "context",
    "divider",
    "image",
    "actions",
    "form",
    "poll",
    "task",
    "status",
    "tool_run",
)
Card = Annotated[list[Block], Field(min_length=1, max_length=MAX_BLOCKS)]


# --- answers -------------------------------------------------------------------------------


def check_choices(
    options: list[dict[str, Any]], value: object, path: str, errors: list[dict[str, str]], *, low: int, high: int
) -> list[str]:
    """A list of distinct option values, between low and high of them."""
    if not isinstance(value, list):
        errors.append({"path": path, "message": "Input should be a valid list"})
        return []
    allowed = {option["value"] for option in options}
    for i, item in enumerate(value):
        if not isinstance(item, str) or item not in allowed:
            errors.append({"path": f"{path}[{i}]", "message": "Input should be one of the options"})
        elif item in value[:i]:
            errors.append({"path": f"{path}[{i}]", "message": f"duplicate value {item!r}"})
    if low == high and len(value) != low:
        errors.append({"path": path, "message": f"choose exactly {low} option" + ("s" if low != 1 else "")})
    elif len(value) < low:
        errors.append({"path": path, "message": f"choose at least {low} option" + ("s" if low != 1 else "")})
    elif len(value) > high:
        errors.append({"path": path, "message": f"choose at most {high} option" + ("s" if high != 1 else "")})
    return list(value)


def _problem(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


def _answer_type(field: dict[str, Any]) -> Any:
    """The type of one form field's answer: pydantic does the work, and every refusal carries a
    message a person can read (the field's own `pattern_message` for a pattern). An empty string
    counts as no answer; an unanswered optional field is None ([] for a multiselect, False for a
    checkbox)."""
    kind = field["type"]

    def unanswered(value: Any, info: ValidationInfo) -> bool:
        if value is None or (value == "" and kind in ("text", "textarea", "select", "date")):
            if field["required"] and not (info.context or {}).get("defaults"):
                raise _problem("missing", "Field required")
            return True
        return False

    if kind == "multiselect":
        # Items are checked one by one (errors at `name[i]`), then the list as a whole.
        def choices(value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
            if unanswered(value, info):
                return []
            return _multiselect_answer(field, handler(value), bool((info.context or {}).get("defaults")))

        item = Annotated[Any, PlainValidator(lambda value: _one_of(field, value, False))]
        return Annotated[list[item], WrapValidator(choices)]

    check = _ANSWER_CHECKS[kind]

    def validate(value: Any, info: ValidationInfo) -> Any:
        if unanswered(value, info):
            return {"checkbox": False}.get(kind)
        return check(field, value, bool((info.context or {}).get("defaults")))

    return Annotated[Any, PlainValidator(validate)]


def _text_answer(field: dict[str, Any], value: Any, _defaults: bool) -> str:
    low, high = field.get("min") or 0, field.get("max") or MAX_TEXT
    if not isinstance(value, str):
        raise _problem("string_type", "Input should be a valid string")
    if len(value) < low:
        raise _problem("too_short", f"String should have at least {low} characters")
    if len(value) > high:
        raise _problem("too_long", f"String should have at most {high} characters")
    if "pattern" in field and not _fullmatch(field["pattern"], value):
        raise _problem("pattern", field.get("pattern_message") or f"Should match the pattern {field['pattern']}")
    return value


def _number_answer(field: dict[str, Any], value: Any, _defaults: bool) -> float:
    low, high = field.get("min"), field.get("max")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _problem("finite_number", "Input should be a finite number")
    if low is not None and value < low:
        raise _problem("greater_than_equal", f"Input should be greater than or equal to {low}")
    if high is not None and value > high:
        raise _problem("less_than_equal", f"Input should be less than or equal to {high}")
    return value


def _one_of(field: dict[str, Any], value: Any, _defaults: bool) -> str:
    if not isinstance(value, str) or value not in {option["value"] for option in field["options"]}:
        raise _problem("option", "Input should be one of the options")
    return value


def _multiselect_answer(field: dict[str, Any], chosen: list[str], defaults: bool) -> list[str]:
    """Distinct options (each already one of the options), as many as the field allows."""
    for i, value in enumerate(chosen):
        if value in chosen[:i]:
            raise _problem("duplicate", f"duplicate value {value!r}")
    low: int = field["min"] if field.get("min") is not None else (1 if field["required"] and not defaults else 0)
    high: int = field.get("max") or len(field["options"])
    plural = "s" if (high if len(chosen) > high else low) != 1 else ""
    if low == high and len(chosen) != low:
        raise _problem("count", f"choose exactly {low} option{plural}")
    if len(chosen) < low:
        raise _problem("count", f"choose at least {low} option{plural}")
    if len(chosen) > high:
        raise _problem("count", f"choose at most {high} option{plural}")
    return chosen


def _checkbox_answer(field: dict[str, Any], value: Any, defaults: bool) -> bool:
    if not isinstance(value, bool):
        raise _problem("bool_type", "Input should be a valid boolean")
    if field["required"] and not value and not defaults:
        raise _problem("unchecked", "must be checked")
    return value


def _date_answer(field: dict[str, Any], value: Any, _defaults: bool) -> str:
    low, high = field.get("min"), field.get("max")
    if not isinstance(value, str) or not re.fullmatch(DATE_PATTERN, value):
        raise _problem("date_format", PATTERN_MESSAGES[DATE_PATTERN])
    _real_date(value)
    if low is not None and value < low:
        raise _problem("too_early", f"Date should be on or after {low}")
    if high is not None and value > high:
        raise _problem("too_late", f"Date should be on or before {high}")
    return value


_ANSWER_CHECKS: dict[str, Callable[[dict[str, Any], Any, bool], Any]] = {
    "text": _text_answer,
    "textarea": _text_answer,
    "number": _number_answer,
    "select": _one_of,
    "checkbox": _checkbox_answer,
    "date": _date_answer,
}


@lru_cache(maxsize=256)
def _form_model(fields_json: str) -> type[BaseModel]:
    """A pydantic model for one form's answers, built once per form (`create_model`). Fields are
    `f0`, `f1`, ... aliased to the form's names, so a name such as `copy` or `_x` cannot clash
    with pydantic's own attributes."""
    fields = orjson.loads(fields_json)
    definitions: dict[str, Any] = {
        f"f{i}": (_answer_type(field), Field(None, alias=field["name"], validate_default=True))
        for i, field in enumerate(fields)
    }
    return create_model("FormAnswers", __config__=ConfigDict(extra="forbid"), **definitions)


def check_answers(
    fields: list[dict[str, Any]], values: dict[str, Any], *, defaults: bool = False, at: str = "values"
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """A form's answers, normalized by name, and what is wrong with them (paths under `at`). With
    `defaults`, `values` are the form's own defaults: a required field may be left empty."""
    model = _form_model(orjson.dumps(fields).decode())
    try:
        answers = model.model_validate(values, context={"defaults": defaults})
    except ValidationError as exc:
        # A missing field's error names the field (`f3`), a sent one its alias (the form's name).
        names = {f"f{i}": field["name"] for i, field in enumerate(fields)}
        errors = [
            {
                "path": f"{at}.{names.get(str(error['loc'][0]), error['loc'][0])}"
                + "".join(f"[{i}]" for i in error["loc"][1:]),
                "message": "unknown field" if error["type"] == "extra_forbidden" else error["msg"],
            }
            for error in exc.errors(include_url=False)
        ]
        extra = [error for error in errors if error["message"] == "unknown field"]
        return {}, extra + [error for error in errors if error["message"] != "unknown field"]
    dumped = answers.model_dump(by_alias=True)
    return {field["name"]: dumped[field["name"]] for field in fields}, []
