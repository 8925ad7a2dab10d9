"""The inbox and per-thread read markers (issue 13).

A person's inbox is the threads they follow (started, replied in, were mentioned in, or belong to
as a member of a direct conversation), in the channels they may read now, most recently active
first, each with their unread count. Read markers are per thread and move forward only; a move is
told to the person's other sessions (`thread.read`), so reading on one device clears the others.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..identity.permissions import Principal
from ..store import chat as chat_store
from ..store.db import WriteTx
from ..store.shapes import thread_json
from .common import JSONResponse, operation, principal, query_int, read_json, spacechat
from .messages import thread_or_404
from .models import MarkRead


def _readable(request: Request, who: Principal) -> frozenset[str]:
    return spacechat(request).access.readable_channels(who)


def inbox_item(row: Any, channel: dict[str, Any] | None) -> dict[str, Any]:
    return {
        **thread_json(row),
        "channel": None
        if channel is None
        else {"id": channel["id"], "name": channel["name"], "kind": channel.get("kind", "channel")},
        "unread_count": row["unread_count"],
        "last_read_seq": row["last_read_seq"],
        "reasons": chat_store.follow_reasons(row),
    }


@operation(
    "Your inbox: the threads you started, replied to, were mentioned in or are in, newest activity first",
    tags=["inbox"],
    scope="messages:read",
    query={
        "before": "cursor from `next_before`",
        "limit": "1-200, default 50",
        "unread": "`true`: only threads with something unread",
    },
)
async def get_inbox(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    limit = query_int(request, "limit", 50, low=1, high=200)
    assert limit is not None
    readable = _readable(request, who)
    rows, next_before = await chat_store.inbox(
        app.db,
        who.user_id,
        readable,
        before=query_int(request, "before", None),
        limit=limit,
        unread_only=request.query_params.get("unread") in ("1", "true"),
    )
    threads = [inbox_item(row, app.access.channels.get(row["channel_id"])) for row in rows]
    return JSONResponse(
        {
            "threads": threads,
            "next_before": None if next_before is None else str(next_before),
            "unread_threads": await chat_store.unread_threads(app.db, who.user_id, readable),
            "unread_cap": chat_store.UNREAD_CAP,
        }
    )


@operation("Mark every thread of your inbox read", tags=["inbox"], scope="messages:read")
async def mark_inbox_read(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    readable = _readable(request, who)
    marked = await app.db.write(lambda tx: chat_store.mark_all_read(tx, who.user_id, readable))
    return JSONResponse({"marked": marked})


@operation(
    "Mark a thread read up to a message's seq (markers only move forward)",
    tags=["inbox"],
    body=MarkRead,
    scope="messages:read",
    resource=True,
)
async def mark_thread_read(request: Request) -> Response:
    app = spacechat(request)
    thread, _ = await thread_or_404(request)
    who = await principal(request)
    body = await read_json(request, MarkRead, max_bytes=1024)
    seq = min(body.seq, await app.newest_seq(body.seq))

    def mark(tx: WriteTx) -> int:
        return chat_store.mark_thread_read(tx, who.user_id, thread, seq)

    marker = await app.db.write(mark, light=True)  # one row: a light write (store/db.py)
    return JSONResponse({"thread_id": thread["id"], "last_read_seq": marker})
