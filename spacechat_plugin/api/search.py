"""`GET /v1/search`: messages the caller may read, by words and operators (`mode=fulltext`, the
default; docs/chat.md), and messages and memories by meaning (`mode=semantic`) or by meaning and
keywords fused (`mode=hybrid`; docs/memory.md). Every mode filters by the caller's organisation
and readable channels before ranking."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..errors import BadRequest, ServiceUnavailable
from ..search.semantic import KINDS, MODES
from .common import JSONResponse, operation, principal, query_int, spacechat

MAX_QUERY = 500


@operation(
    "Search the messages (and memories) you may read",
    tags=["search"],
    scope="messages:read",
    query={
        # Required, and not blank: something other than the whitespace that is stripped from it.
        "q": {
            "description": 'the query (1-500 characters): words, "phrases", prefix*, -negation and operators:'
            " in:#channel from:@person has:attachment has:card has:image has:link has:reaction is:unread"
            " is:mentioned before:YYYY-MM-DD after:YYYY-MM-DD",
            "type": "string",
            "minLength": 1,
            "maxLength": 500,
            "pattern": "[^\\t-\\r \\x1c-\\x1f\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]",
        },
        "mode": {
            "description": "`fulltext` (the default), `semantic` or `hybrid`",
            "enum": ["fulltext", "semantic", "hybrid"],
        },
        "kinds": {
            "description": "semantic and hybrid: messages, memories or both, comma-separated (default both)",
            "type": "array",
            "items": {"type": "string", "enum": ["messages", "memories"]},
            "minItems": 1,
            "style": "form",
            "explode": False,
        },
        "sort": {"description": "`relevance` (the default) or `newest`", "enum": ["relevance", "newest"]},
        "limit": "1-100, default 20",
        "cursor": {"description": "from `next`, for the next page", "type": "integer", "minimum": 0, "maximum": 1000},
    },
    required_query=("q",),
)
async def search(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    params = request.query_params
    mode = params.get("mode") or "fulltext"
    kinds = [k.strip() for k in (params.get("kinds") or "messages").split(",") if k.strip()]
    if not kinds or any(k not in KINDS for k in kinds):
        raise BadRequest(f"kinds must be among {', '.join(KINDS)}", details=[{"path": "kinds", "message": "unknown"}])
    # Checked whatever the mode, so a bad parameter is refused the same way everywhere.
    if (params.get("sort") or "relevance") not in ("relevance", "newest"):
        raise BadRequest("sort is relevance or newest", details=[{"path": "sort", "message": "unknown"}])
    limit = query_int(request, "limit", 20, low=1, high=100)
    offset = query_int(request, "cursor", 0, low=0, high=1000)
    if mode in MODES:
        return await _semantic(request, mode)
    assert limit is not None and offset is not None
    answer = await app.search.search(
        who,
        params.get("q", ""),
        mode=mode,
        sort=params.get("sort") or "relevance",
        limit=limit,
        offset=offset,
    )
    return JSONResponse(answer)


async def _semantic(request: Request, mode: str) -> Response:
    app = spacechat(request)
    who = await principal(request)
    params = request.query_params
    query = (params.get("q") or "").strip()
    if not query or len(query) > MAX_QUERY:
        raise BadRequest(f"q must be 1 to {MAX_QUERY} characters", details=[{"path": "q", "message": "length"}])
    kinds = [k.strip() for k in (params.get("kinds") or ",".join(KINDS)).split(",") if k.strip()]
    if not kinds or any(k not in KINDS for k in kinds):
        raise BadRequest(f"kinds must be among {', '.join(KINDS)}", details=[{"path": "kinds", "message": "unknown"}])
    limit = query_int(request, "limit", 20, low=1, high=100)
    assert limit is not None
    degraded = app.memory.embeddings_error
    if degraded is not None and mode == "semantic":
        raise ServiceUnavailable(f"semantic search is not available: {degraded}", code="embeddings_unavailable")
    results = await app.memory.search.run(who, query, mode=mode, kinds=kinds, limit=limit)
    return JSONResponse({"mode": mode, "query": query, "results": results, "degraded": degraded})
