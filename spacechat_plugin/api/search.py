"""`GET /v1/search`: messages the caller may read, by words and operators (docs/search.md)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from .common import JSONResponse, operation, principal, query_int, spacechat


@operation(
    "Search the messages you may read",
    tags=["search"],
    scope="messages:read",
    query={
        "q": 'words, "phrases", prefix*, -negation and operators: in:#channel from:@person has:attachment'
        " has:card has:image has:link has:reaction is:unread is:mentioned before:YYYY-MM-DD after:YYYY-MM-DD",
        "mode": "`fulltext` (the default); other modes when the server offers them (`semantic`, `hybrid`)",
        "sort": "`relevance` (the default) or `newest`",
        "limit": "1-100, default 20",
        "cursor": "from `next`, for the next page",
    },
)
async def search(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    limit = query_int(request, "limit", 20, low=1, high=100)
    offset = query_int(request, "cursor", 0)
    assert limit is not None and offset is not None
    params = request.query_params
    answer = await app.search.search(
        who,
        params.get("q", ""),
        mode=params.get("mode") or "fulltext",
        sort=params.get("sort") or "relevance",
        limit=limit,
        offset=offset,
    )
    return JSONResponse(answer)
