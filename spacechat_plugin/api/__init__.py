"""The HTTP API: `/v1` as its own Starlette app, mounted on the host's server.

Routes are lists (STYLE.md 5); every endpoint asks permissions.check before acting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from . import agents, attachments, channels, messages, openapi, realtime
from .common import EXCEPTION_HANDLERS, RequestIdMiddleware

if TYPE_CHECKING:
    from ..app import Spacechat

V1_ROUTES: list[BaseRoute] = [
    Route("/me", agents.me, methods=["GET"]),
    Route("/org", channels.get_org, methods=["GET"]),
    Route("/agents", agents.list_agents, methods=["GET"]),
    Route("/channels", channels.list_channels, methods=["GET"]),
    Route("/channels", channels.create_channel, methods=["POST"]),
    Route("/channels/{channel_id}", channels.get_channel, methods=["GET"]),
    Route("/channels/{channel_id}/threads", channels.list_threads, methods=["GET"]),
    Route("/channels/{channel_id}/messages", messages.post_to_channel, methods=["POST"]),
    Route("/threads/{thread_id}", messages.get_thread, methods=["GET"]),
    Route("/threads/{thread_id}/messages", messages.post_to_thread, methods=["POST"]),
    Route("/threads/{thread_id}/history", messages.history, methods=["GET"]),
    Route("/messages/{message_id}", messages.get_message, methods=["GET"]),
    Route("/uploads", attachments.upload, methods=["POST"]),
    Route("/attachments/{attachment_id}", attachments.download, methods=["GET"]),
    Route("/realtime/sse", realtime.sse, methods=["GET"]),
    WebSocketRoute("/realtime/ws", realtime.ws),
    Route("/openapi.json", openapi.document, methods=["GET"]),
]


def build_api(app: Spacechat) -> Starlette:
    api = Starlette(
        routes=V1_ROUTES,
        middleware=[Middleware(RequestIdMiddleware)],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    api.state.spacechat = app
    return api


def routes(app: Spacechat) -> list[BaseRoute]:
    """What the plugin mounts on the host's server."""
    return [Mount("/v1", app=build_api(app))]
