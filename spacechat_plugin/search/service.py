"""Search by mode: parse the query, resolve its names, apply the tenancy scope, rank, and shape
the hits (the message, its thread and channel, a highlighted snippet).

Modes are rankers (`Ranker`): `fulltext` (SQLite FTS5, BM25) is built in; another one (semantic
search over embeddings, a fusion of both) registers with `SearchService.register` and is then
served by the same route (`GET /v1/search?mode=...`). Every ranker gets the same `Filters`, whose
channel set is the caller's `SearchScope` (scope.py), and every hit is checked against that scope
again before it is answered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from ..errors import BadRequest
from ..identity.permissions import Access, Principal
from ..store import search as search_store
from ..store.db import Database
from ..store.shapes import message_json, plain_preview, thread_json
from .query import Operator, Query, invalid, moment, parse
from .scope import SearchScope, scope_of

SORTS = ("relevance", "newest")
MAX_OFFSET = 1000


@dataclass(frozen=True)
class SearchRequest:
    query: Query
    scope: SearchScope
    filters: search_store.Filters  # the scope's channels, narrowed by the query's operators
    sort: str
    limit: int
    offset: int


@dataclass(frozen=True)
class Hit:
    """One ranked message: its id, the ranker's score (for fusion; higher is better) and, when
    the ranker has them, the message row and a snippet with highlighted parts."""

    message_id: str
    score: float
    message: dict[str, Any] | None = None
    snippet: list[dict[str, Any]] | None = None


class Ranker(Protocol):
    async def rank(self, request: SearchRequest) -> list[Hit]:
        """At most `request.limit` hits after `request.offset`, best first, all within
        `request.filters` (the tenancy scope included)."""
        ...


def snippet_parts(text: str | None) -> list[dict[str, Any]] | None:
    """FTS5's snippet (hits between private-use marks) as parts: `[{text, highlight}]`."""
    if text is None:
        return None
    parts: list[dict[str, Any]] = []
    for i, chunk in enumerate(text.split(search_store.HIT_START)):
        inside, _, outside = chunk.partition(search_store.HIT_END) if i else ("", "", chunk)
        if inside:
            parts.append({"text": inside, "highlight": True})
        if outside:
            parts.append({"text": outside, "highlight": False})
    return parts


class FulltextRanker:
    """BM25 over the FTS5 index (or newest first); operators only: newest first."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def rank(self, request: SearchRequest) -> list[Hit]:
        rows = await search_store.fulltext(
            self.db, request.filters, sort=request.sort, limit=request.limit, offset=request.offset
        )
        return [Hit(row["id"], -float(row["score"]), message_json(row), snippet_parts(row["snippet"])) for row in rows]


class SearchService:
    def __init__(self, db: Database, access: Access) -> None:
        self.db = db
        self.access = access
        self.rankers: dict[str, Ranker] = {"fulltext": FulltextRanker(db)}

    def register(self, mode: str, ranker: Ranker) -> None:
        """Serve `mode` with `ranker` (e.g. `semantic`, `hybrid`)."""
        self.rankers[mode] = ranker

    async def search(
        self,
        principal: Principal,
        text: str,
        *,
        mode: str = "fulltext",
        sort: str = "relevance",
        limit: int,
        offset: int,
    ) -> dict[str, Any]:
        ranker = self.rankers.get(mode)
        if ranker is None:
            raise BadRequest(
                f"search mode {mode} is not available here; available: {', '.join(sorted(self.rankers))}",
                code="unsupported_mode",
                details=[{"path": "mode", "message": "not available"}],
            )
        if sort not in SORTS:
            raise BadRequest(
                f"sort must be one of {', '.join(SORTS)}", details=[{"path": "sort", "message": "unknown"}]
            )
        if offset > MAX_OFFSET:
            raise BadRequest(f"a search pages through at most {MAX_OFFSET} results", details=[{"path": "cursor"}])
        query = parse(text)
        if not query.terms and not query.operators:
            raise invalid("search for a word, a phrase or an operator (in:, from:, has:, is:, before:, after:)")
        scope = scope_of(principal, self.access)
        filters = await self.filters(query, scope)
        request = SearchRequest(query, scope, filters, sort, limit + 1, offset)
        hits = [hit for hit in await ranker.rank(request) if hit.message is None or scope.allows(hit.message)]
        more = len(hits) > limit
        results = await self._shape(hits[:limit], scope)
        return {
            "mode": mode,
            "sort": sort,
            "query": query.describe(),
            "results": results,
            "next": str(offset + limit) if more and offset + limit <= MAX_OFFSET else None,
        }

    async def filters(self, query: Query, scope: SearchScope) -> search_store.Filters:
        """The scope narrowed by the query's operators; names resolve within the scope only, so an
        unreadable channel answers like one that does not exist."""
        filters = search_store.Filters(
            org_id=scope.org_id,
            user_id=scope.user_id,
            channel_ids=scope.channel_ids,
            match=query.match(),
            exclude_match=query.exclude(),
        )
        for op in query.operators:
            filters = await self._apply(filters, op, scope)
        return filters

    async def _apply(self, filters: search_store.Filters, op: Operator, scope: SearchScope) -> search_store.Filters:
        if op.name == "in":
            channel = self._channel(op.value, scope)
            if op.negated:
                return replace(filters, exclude_channels=filters.exclude_channels | {channel})
            return replace(filters, channel_ids=filters.channel_ids & {channel})
        if op.name == "from":
            authors = await self._people(op.value, scope)
            if op.negated:
                return replace(filters, exclude_authors=filters.exclude_authors | authors)
            narrowed = filters.authors & authors if filters.authors else authors
            return replace(filters, authors=narrowed or frozenset({""}))
        if op.name == "has":
            if op.negated:
                return replace(filters, has_not=(*filters.has_not, op.value))
            return replace(filters, has=(*filters.has, op.value))
        if op.name == "is":
            if op.value == "unread":
                return replace(filters, unread=not op.negated)
            return replace(filters, mentioned=not op.negated)
        bound = moment(op.value, op.name)
        # -before:X is after:X and the other way round.
        if (op.name == "before") != op.negated:
            return replace(filters, before=bound)
        return replace(filters, after=bound)

    def _channel(self, value: str, scope: SearchScope) -> str:
        name = value.lstrip("#").lower()
        for channel_id in scope.channel_ids:
            channel = self.access.channels.get(channel_id)
            if channel is not None and (channel["name"] == name or channel_id == value):
                return channel_id
        raise invalid(f"in:{value}: there is no channel named {name} that you can read")

    async def _people(self, value: str, scope: SearchScope) -> frozenset[str]:
        name = value.lstrip("@")
        if name.lower() == "me":
            return frozenset({scope.user_id})
        found = await search_store.users_matching(self.db, scope.org_id, name)
        if not found:
            raise invalid(f"from:{value}: nobody in this organisation is called {name}")
        return frozenset(found)

    async def _shape(self, hits: list[Hit], scope: SearchScope) -> list[dict[str, Any]]:
        """The answer's results: each hit with its message, thread and channel."""
        messages = {hit.message_id: hit.message for hit in hits if hit.message is not None}
        missing = [hit.message_id for hit in hits if hit.message is None]
        if missing:
            allowed = await search_store.filter_candidates(
                self.db, search_store.Filters(scope.org_id, scope.user_id, scope.channel_ids), missing
            )
            messages.update({row["id"]: message_json(row) for row in allowed})
        threads = await search_store.threads_and_channels(self.db, [m["thread_id"] for m in messages.values()])
        results = []
        for hit in hits:
            message = messages.get(hit.message_id)
            if message is None or not scope.allows(message) or message["thread_id"] not in threads:
                continue
            results.append(_result(hit, message, threads[message["thread_id"]]))
        return results


def _result(hit: Hit, message: Mapping[str, Any], row: Any) -> dict[str, Any]:
    thread = thread_json(row)
    snippet = hit.snippet or [{"text": plain_preview(message["text"]), "highlight": False}]
    return {
        "message": message,
        "thread": {"id": thread["id"], "title": thread["title"], "root_message_id": thread["root_message_id"]},
        "channel": {
            "id": row["channel_id"],
            "name": row["channel_name"],
            "kind": row["channel_kind"],
            "private": bool(row["channel_private"]),
        },
        "snippet": snippet,
        "score": hit.score,
    }
