"""The SQL dialect seam: the store's modules write SQLite's SQL once, and this module rewrites a
statement for Postgres (issue 17) where the two differ only in spelling:

- placeholders: `?` becomes `%s`, `:name` becomes `%(name)s`, and a literal `%` is doubled;
- `INSERT OR IGNORE` becomes `INSERT ... ON CONFLICT DO NOTHING`, and `INSERT OR REPLACE`
  an upsert on the table's key (`REPLACE_KEYS`);
- `json_each(?)` as a list of values becomes `jsonb_array_elements_text(...)`, compared as text;
- scalar `MAX(a, b)` / `MIN(a, b)` become `GREATEST` / `LEAST`; `SUM(a = b)` counts as 1/0;
- `LIKE` becomes `ILIKE`: SQLite's LIKE ignores ASCII case and the callers rely on it;
- `a IS ?` / `a IS NOT ?` (SQLite's NULL-safe comparison) become `IS [NOT] DISTINCT FROM`, and
  `? IS NULL` casts the parameter so Postgres can type it.

`json_extract(text, '$.path')` and `strftime(...)` exist in the Postgres schema as functions with
SQLite's meaning (migrations/postgres/0001_initial.sql). Where SQL truly differs (full-text search,
vectors, the log's counters), the owning store module keeps both versions next to each other and
asks `WriteTx.dialect` / `Database.dialect` which to run.
"""

from __future__ import annotations

import re
from functools import lru_cache

SQLITE = "sqlite"
POSTGRES = "postgres"

# `INSERT OR REPLACE INTO table` needs the conflict target in Postgres: the table's primary key.
REPLACE_KEYS: dict[str, tuple[str, ...]] = {
    "turns": ("turn_id",),
    "health": ("component",),
}

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INSERT_OR = re.compile(r"^\s*INSERT\s+OR\s+(IGNORE|REPLACE)\s+INTO\s+(\w+)\s*(?:\(([^)]*)\))?", re.IGNORECASE)
_JSON_IN = re.compile(
    r"([\w.+]+)\s+(NOT\s+)?IN\s*\(\s*SELECT\s+value\s+FROM\s+json_each\(\s*(%s|%\(\w+\)s)\s*\)\s*\)", re.IGNORECASE
)
_JSON_EACH = re.compile(r"json_each\(\s*(%s|%\(\w+\)s)\s*\)", re.IGNORECASE)
# SUM over a comparison counts the rows where it holds: SQLite's true is 1, Postgres's is boolean.
_SUM_OF_TEST = re.compile(r"SUM\(([^()]*?(?:=|<>|<|>|\bIS\b)[^()]*)\)", re.IGNORECASE)
_LIKE = re.compile(r"\bLIKE\b")
# `? IS NULL` tests a parameter Postgres cannot type from that alone (psycopg gives each
# occurrence of a named parameter its own number): as text, any value is NULL or not alike.
_PARAM_IS_NULL = re.compile(r"(%s|%\(\w+\)s)\s+IS\s+(NOT\s+)?NULL\b", re.IGNORECASE)
# SQLite's `a IS b` / `a IS NOT b` compare values, NULL included: Postgres's IS [NOT] DISTINCT FROM.
_IS_VALUE = re.compile(r"\bIS\s+(NOT\s+)?(?=%s|%\(|'|\w+\.\w+)(?!NULL\b|TRUE\b|FALSE\b|DISTINCT\b)", re.IGNORECASE)


def _placeholders(sql: str) -> str:
    """Rewrite `?` and `:name` outside string literals and quoted names; double every `%`."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in ("'", '"'):
            end = i + 1
            while end < n:
                if sql[end] == ch:
                    if end + 1 < n and sql[end + 1] == ch:
                        end += 2
                        continue
                    break
                end += 1
            out.append(sql[i : end + 1].replace("%", "%%"))
            i = end + 1
        elif ch == "?":
            out.append("%s")
            i += 1
        elif ch == ":" and i + 1 < n and sql[i + 1] == ":":
            out.append("::")  # a Postgres cast, written for Postgres only
            i += 2
        elif ch == ":" and (match := _WORD.match(sql, i + 1)):
            out.append(f"%({match.group(0)})s")
            i = match.end()
        elif ch == "%":
            out.append("%%")
            i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _scalar_extremes(sql: str) -> str:
    """`MAX(a, b)` with two arguments is SQLite's scalar max: Postgres spells it GREATEST."""
    for name, replacement in (("MAX(", "GREATEST("), ("MIN(", "LEAST(")):
        start = 0
        while (at := sql.upper().find(name, start)) != -1:
            start = at + len(name)
            if at and (sql[at - 1].isalnum() or sql[at - 1] == "_"):
                continue
            depth, j, comma = 1, start, False
            while j < len(sql) and depth:
                if sql[j] == "(":
                    depth += 1
                elif sql[j] == ")":
                    depth -= 1
                elif sql[j] == "," and depth == 1:
                    comma = True
                j += 1
            if comma:
                sql = sql[:at] + replacement + sql[start:]
    return sql


def _insert_or(sql: str) -> str:
    match = _INSERT_OR.match(sql)
    if match is None:
        return sql
    verb, table, columns = match.group(1).upper(), match.group(2), match.group(3)
    body = "INSERT INTO" + sql[match.start(2) - 1 :]
    if verb == "IGNORE":
        return body.rstrip().rstrip(";") + " ON CONFLICT DO NOTHING"
    keys = REPLACE_KEYS.get(table)
    if keys is None or columns is None:
        raise ValueError(f"INSERT OR REPLACE INTO {table}: name the columns and add its key to dialect.REPLACE_KEYS")
    names = [c.strip() for c in columns.split(",") if c.strip()]
    updates = ", ".join(f"{c} = excluded.{c}" for c in names if c not in keys)
    return body.rstrip().rstrip(";") + f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"


@lru_cache(maxsize=4096)
def to_postgres(sql: str) -> str:
    """The Postgres spelling of one of the store's SQLite statements (cached: statements repeat)."""
    sql = _insert_or(sql)
    sql = _placeholders(sql)
    sql = _JSON_IN.sub(
        lambda m: (
            f"CAST({m.group(1).lstrip('+')} AS TEXT) {m.group(2) or ''}IN"
            f" (SELECT jsonb_array_elements_text(CAST({m.group(3)} AS jsonb)))"
        ),
        sql,
    )
    sql = _JSON_EACH.sub(lambda m: f"jsonb_array_elements_text(CAST({m.group(1)} AS jsonb))", sql)
    sql = _SUM_OF_TEST.sub(lambda m: f"SUM(CASE WHEN {m.group(1).strip()} THEN 1 ELSE 0 END)", sql)
    sql = _LIKE.sub("ILIKE", sql)
    sql = _PARAM_IS_NULL.sub(lambda m: f"CAST({m.group(1)} AS TEXT) IS {m.group(2) or ''}NULL", sql)
    sql = _IS_VALUE.sub(lambda m: "IS DISTINCT FROM " if m.group(1) else "IS NOT DISTINCT FROM ", sql)
    return _scalar_extremes(sql)
