"""`GET /v1/search`: semantic and hybrid search over messages and memories (issue 12, point 5).

Every mode applies the one tenancy filter (search/semantic.py `readable_channels`: the caller's
organisation and the channels it may read) inside its queries, before ranking.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..errors import BadRequest, ServiceUnavailable
from ..search.semantic import KINDS, MODES
from .common import JSONResponse, operation, principal, query_int, spacechat

MAX_QUERY = 500


@operation(
    "Search messages and memories by meaning (semantic) or by meaning and keywords fused (hybrid)",
    tags=["search"],
    scope="messages:read",
    query={
        "q": "the query (1-500 characters)",
        "mode": "semantic or hybrid (default hybrid)",
        "kinds": "messages, memories or both, comma-separated (default both)",
        "limit": "1-50, default 20",
    },
)
async def search(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    params = request.query_params
    query = (params.get("q") or "").strip()
    if not query or len(query) > MAX_QUERY:
        raise BadRequest(f"q must be 1 to {MAX_QUERY} characters", details=[{"path": "q", "message": "length"}])
    mode = params.get("mode") or "hybrid"
    if mode not in MODES:
        raise BadRequest(f"mode must be one of {', '.join(MODES)}", details=[{"path": "mode", "message": mode}])
    kinds = [k.strip() for k in (params.get("kinds") or ",".join(KINDS)).split(",") if k.strip()]
    if not kinds or any(k not in KINDS for k in kinds):
        raise BadRequest(f"kinds must be among {', '.join(KINDS)}", details=[{"path": "kinds", "message": "unknown"}])
    limit = query_int(request, "limit", 20, low=1, high=50)
    assert limit is not None
    degraded = app.memory.embeddings_error
    if degraded is not None and mode == "semantic":
        raise ServiceUnavailable(f"semantic search is not available: {degraded}", code="embeddings_unavailable")
    results = await app.memory.search.run(who, query, mode=mode, kinds=kinds, limit=limit)
    return JSONResponse({"mode": mode, "query": query, "results": results, "degraded": degraded})
