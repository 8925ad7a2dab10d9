"""Postgres text search in place of FTS5 (issue 17).

The search service builds FTS5 expressions (search/query.py, store/fulltext.py): quoted terms or
phrases, a `*` after a prefix term, AND, OR, NOT and parentheses. `tsquery` turns one into
Postgres's tsquery syntax with the same meaning, so the search API's operators work the same on
both stores. Words go through the `spacechat` text search configuration
(migrations/postgres/0008_chat.sql): English stemming like FTS5's porter tokenizer, and no stop
words, since FTS5 drops none either.
"""

from __future__ import annotations

import re

CONFIG = "spacechat"
_TOKEN = re.compile(r'"((?:[^"]|"")*)"(\*)?|(\()|(\))|\b(AND|OR|NOT)\b')
_WORD = re.compile(r"\w+", re.UNICODE)
_OPERATORS = {"AND": "&", "OR": "|", "NOT": "& !"}


def document(column: str) -> str:
    """The indexed expression over a text column: a query repeats it to use the GIN index."""
    return f"to_tsvector('{CONFIG}', {column})"


def _lexemes(text: str, prefix: bool) -> str | None:
    words = _WORD.findall(text)
    if not words:
        return None
    # Each word quoted for tsquery: no character of the user's text is tsquery syntax.
    quoted = ["'" + word.replace("'", "''") + "'" for word in words]
    if prefix:
        quoted[-1] += ":*"
    return quoted[0] if len(quoted) == 1 else "(" + " <-> ".join(quoted) + ")"


def tsquery(expression: str | None) -> str | None:
    """The tsquery text (for `to_tsquery('spacechat', ...)`) of an FTS5 expression; None for none."""
    if expression is None:
        return None
    out: list[str] = []
    for match in _TOKEN.finditer(expression):
        term, star, opening, closing, operator = match.groups()
        if term is not None:
            lexemes = _lexemes(term.replace('""', '"'), prefix=star is not None)
            # A term with no word in it (only punctuation) matches nothing, as in FTS5.
            out.append(lexemes if lexemes is not None else "'\ue000'")
        elif opening:
            out.append("(")
        elif closing:
            out.append(")")
        else:
            out.append(_OPERATORS[operator])
    return " ".join(out) or None
