"""The search language: words, "quoted phrases", `word*` prefixes, `-negation`, and Zulip-style
operators (docs/search.md):

    in:#channel  from:@person  has:attachment|card|image|link|reaction  is:unread|mentioned
    before:2026-11-30  after:2026-11-01 (dates, UTC, or RFC 3339 times)

Any of them may be negated with a leading `-`. A `key:value` whose key is not an operator is
searched as text (`10:30`, `https://…`), as Zulip does. Parsing needs no data; resolving names
(`#channel`, `@person`) to ids is the service's job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from ..errors import BadRequest
from ..store.search import HAS

MAX_QUERY_CHARS = 500
MAX_TERMS = 32
OPERATORS = {"in": "in", "channel": "in", "stream": "in", "from": "from", "sender": "from"} | {
    key: key for key in ("has", "is", "before", "after")
}
IS = ("unread", "mentioned")
_TOKEN = re.compile(r'(-?)(?:([a-z]+):("[^"]*"?|\S+)|("[^"]*"?)|(\S+))', re.I)


@dataclass(frozen=True)
class Term:
    """A word or a phrase the text must (or, negated, must not) contain."""

    text: str
    negated: bool = False
    phrase: bool = False
    prefix: bool = False

    def fts(self) -> str:
        """As an FTS5 string (quoted, so no character of it is FTS5 syntax)."""
        quoted = '"' + self.text.replace('"', '""') + '"'
        return quoted + ("*" if self.prefix else "")


@dataclass(frozen=True)
class Operator:
    name: str  # in | from | has | is | before | after
    value: str
    negated: bool = False


@dataclass(frozen=True)
class Query:
    raw: str
    terms: tuple[Term, ...]
    operators: tuple[Operator, ...]

    @property
    def words(self) -> tuple[Term, ...]:
        return tuple(term for term in self.terms if not term.negated)

    def match(self) -> str | None:
        """The FTS5 expression: every positive term, then each negative one NOT-ed out; None
        when there is no positive term."""
        positive = [term.fts() for term in self.terms if not term.negated]
        if not positive:
            return None
        expression = " AND ".join(positive)
        for term in self.terms:
            if term.negated:
                expression = f"({expression}) NOT {term.fts()}"
        return expression

    def exclude(self) -> str | None:
        """With only negative terms: what the text must not match (an FTS5 OR of them)."""
        if any(not term.negated for term in self.terms):
            return None
        negative = [term.fts() for term in self.terms if term.negated]
        return " OR ".join(negative) if negative else None

    def describe(self) -> dict[str, object]:
        return {
            "text": self.raw,
            "terms": [
                {"text": t.text, "negated": t.negated, "phrase": t.phrase, "prefix": t.prefix} for t in self.terms
            ],
            "operators": [{"name": o.name, "value": o.value, "negated": o.negated} for o in self.operators],
        }


def invalid(message: str) -> BadRequest:
    return BadRequest(message, code="invalid_query", details=[{"path": "q", "message": message}])


def parse(raw: str) -> Query:
    if len(raw) > MAX_QUERY_CHARS:
        raise invalid(f"a search is at most {MAX_QUERY_CHARS} characters")
    terms: list[Term] = []
    operators: list[Operator] = []
    for match in _TOKEN.finditer(raw):
        negated = bool(match.group(1))
        key, value, phrase, word = match.group(2), match.group(3), match.group(4), match.group(5)
        if key is not None and key.lower() in OPERATORS:
            operators.append(_operator(OPERATORS[key.lower()], _unquote(value), negated))
        elif key is not None:
            terms.append(Term(f"{key}:{_unquote(value)}", negated, phrase=True))
        elif phrase is not None:
            terms.append(Term(_unquote(phrase), negated, phrase=True))
        elif word is not None:
            prefix = word.endswith("*") and len(word) > 1
            terms.append(Term(word.rstrip("*") if prefix else word, negated, prefix=prefix))
    terms = [term for term in terms if re.search(r"\w", term.text)]
    if len(terms) > MAX_TERMS:
        raise invalid(f"a search has at most {MAX_TERMS} words and phrases")
    return Query(raw, tuple(terms), tuple(operators))


def _unquote(value: str) -> str:
    if value.startswith('"'):
        value = value[1:]
        if value.endswith('"'):
            value = value[:-1]
    return value.strip()


def _operator(name: str, value: str, negated: bool) -> Operator:
    if not value:
        raise invalid(f"{name}: needs a value")
    if name == "has" and value.lower() not in HAS:
        raise invalid(f"has:{value} is not known; use has:{', has:'.join(HAS)}")
    if name == "is" and value.lower() not in IS:
        raise invalid(f"is:{value} is not known; use is:{', is:'.join(IS)}")
    if name in ("before", "after"):
        moment(value, name)  # checked here, so a bad date fails before any lookup
    if name in ("has", "is"):
        value = value.lower()
    return Operator(name, value, negated)


def moment(value: str, name: str) -> str:
    """A `before:`/`after:` value as the store's timestamp text: a date means its first moment
    (UTC), a time is taken as given (UTC when it has no offset)."""
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            when = datetime.fromisoformat(value).replace(tzinfo=UTC)
        else:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
    except ValueError:
        raise invalid(f"{name}:{value} is not a date (YYYY-MM-DD) or an RFC 3339 time") from None
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
