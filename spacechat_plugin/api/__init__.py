"""The HTTP API: `/v1` as its own Starlette app, mounted on the host's server.

Routes are lists (STYLE.md 5); every endpoint asks permissions.check before acting.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from starlette.datastructures import State
from starlette.exceptions import HTTPException
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.routing import BaseRoute, Match, Mount, Route, Router
from starlette.types import Receive, Scope, Send

from . import (
    admin,
    agents,
    approvals,
    attachments,
    auth,
    channels,
    dms,
    editing,
    forms,
    inbox,
    incidents,
    interactions,
    memory,
    messages,
    metrics,
    notifications,
    observability,
    openapi,
    ops,
    people,
    privacy,
    realtime,
    search,
    sso,
    stop,
    tasks,
    timeline,
    voice,
)
from .common import EXCEPTION_HANDLERS, ApiRoute, RequestIdMiddleware

if TYPE_CHECKING:
    from .context import Context

V1_ROUTES: list[BaseRoute] = [
    ApiRoute("/auth/setup", auth.setup, methods=["POST"]),
    ApiRoute("/auth/login", auth.login, methods=["POST"]),
    ApiRoute("/auth/logout", auth.logout, methods=["POST"]),
    ApiRoute("/auth/invitations/lookup", auth.lookup_invitation, methods=["POST"]),
    ApiRoute("/auth/invitations/accept", auth.accept_invitation, methods=["POST"]),
    ApiRoute("/auth/sso", sso.sso_providers, methods=["GET"]),
    ApiRoute("/auth/sso/callback", sso.sso_callback, methods=["GET"]),
    ApiRoute("/auth/sso/{org_id}/login", sso.sso_login, methods=["GET"]),
    ApiRoute("/me", people.me, methods=["GET"]),
    ApiRoute("/me", people.update_me, methods=["PATCH"]),
    ApiRoute("/me/sessions", people.my_sessions, methods=["GET"]),
    ApiRoute("/me/sessions/{session_id}", people.revoke_my_session, methods=["DELETE"]),
    ApiRoute("/me/notifications", notifications.my_levels, methods=["GET"]),
    ApiRoute("/me/presence", notifications.report_presence, methods=["POST"]),
    ApiRoute("/presence", notifications.presence, methods=["GET"]),
    ApiRoute("/me/memory", privacy.my_memory, methods=["GET"]),
    ApiRoute("/me/memory/consent", privacy.set_my_consent, methods=["PUT"]),
    ApiRoute("/me/memories/{memory_id}", privacy.delete_my_memory, methods=["DELETE"]),
    ApiRoute("/me/export", privacy.my_export, methods=["GET"]),
    ApiRoute("/users", people.list_users, methods=["GET"]),
    ApiRoute("/users/{user_id}", people.get_user, methods=["GET"]),
    ApiRoute("/users/{user_id}/avatar", people.avatar, methods=["GET"]),
    ApiRoute("/users/{user_id}", people.change_role, methods=["PATCH"]),
    ApiRoute("/users/{user_id}/deactivate", people.deactivate_user, methods=["POST"]),
    ApiRoute("/users/{user_id}/sessions", people.user_sessions, methods=["GET"]),
    ApiRoute("/users/{user_id}/export", privacy.user_export, methods=["GET"]),
    ApiRoute("/sessions/{session_id}", people.revoke_session, methods=["DELETE"]),
    ApiRoute("/tokens", people.list_tokens, methods=["GET"]),
    ApiRoute("/tokens", people.create_token, methods=["POST"]),
    ApiRoute("/tokens/{token_id}", people.revoke_token, methods=["DELETE"]),
    ApiRoute("/bots", people.create_bot, methods=["POST"]),
    ApiRoute("/invitations", people.list_invitations, methods=["GET"]),
    ApiRoute("/invitations", people.create_invitation, methods=["POST"]),
    ApiRoute("/invitations/{invitation_id}", people.revoke_invitation, methods=["DELETE"]),
    ApiRoute("/orgs", admin.create_org, methods=["POST"]),
    ApiRoute("/org", channels.get_org, methods=["GET"]),
    ApiRoute("/org/sso", sso.get_sso, methods=["GET"]),
    ApiRoute("/org/sso", sso.put_sso, methods=["PUT"]),
    ApiRoute("/org/sso", sso.delete_sso, methods=["DELETE"]),
    ApiRoute("/teams", admin.list_teams, methods=["GET"]),
    ApiRoute("/teams", admin.create_team, methods=["POST"]),
    ApiRoute("/audit", admin.audit_log, methods=["GET"]),
    ApiRoute("/agents", agents.list_agents, methods=["GET"]),
    ApiRoute("/agents/{agent_id}/status", observability.agent_status, methods=["GET"]),
    ApiRoute("/system/health", observability.system_health, methods=["GET"]),
    ApiRoute("/usage", observability.usage_report, methods=["GET"]),
    ApiRoute("/ops/channels/{channel_id}/retry", ops.retry, methods=["POST"]),
    ApiRoute("/ops/agents/{agent_id}/restart", ops.restart, methods=["POST"]),
    ApiRoute("/ops/providers/{name}/reconnect", ops.reconnect, methods=["POST"]),
    ApiRoute("/ops/instance/recover", ops.recover, methods=["POST"]),
    ApiRoute("/ops/pending", ops.pending, methods=["GET"]),
    ApiRoute("/ops/pending/{operation_id}/{decision}", ops.decide, methods=["POST"]),
    ApiRoute("/approvals", approvals.approvals_inbox, methods=["GET"]),
    ApiRoute("/approvals/policies", approvals.list_approval_policies, methods=["GET"]),
    ApiRoute("/approvals/policies", approvals.set_approval_policy, methods=["POST"]),
    ApiRoute("/approvals/policies/{agent_id}/{tool}", approvals.delete_approval_policy, methods=["DELETE"]),
    ApiRoute("/approvals/rules", approvals.list_approval_rules, methods=["GET"]),
    ApiRoute("/approvals/rules/{rule_id}", approvals.forget_approval_rule, methods=["DELETE"]),
    ApiRoute("/approvals/{approval_id}/decide", approvals.decide_approval, methods=["POST"]),
    ApiRoute("/incidents", ops.list_incidents, methods=["GET"]),
    ApiRoute("/incidents", ops.open_incident, methods=["POST"]),
    ApiRoute("/incidents/{incident_id}", ops.get_incident, methods=["GET"]),
    ApiRoute("/incidents/{incident_id}/actions/{action}", ops.incident_action, methods=["POST"]),
    ApiRoute("/incidents/{incident_id}/timeline", incidents.incident_timeline, methods=["GET"]),
    ApiRoute("/incidents/{incident_id}/severity", incidents.set_incident_severity, methods=["POST"]),
    ApiRoute("/incidents/{incident_id}/roles", incidents.assign_incident_role, methods=["POST"]),
    ApiRoute("/incidents/{incident_id}/updates", incidents.post_incident_update, methods=["POST"]),
    ApiRoute("/incidents/{incident_id}/pins", incidents.pin_to_incident, methods=["POST"]),
    ApiRoute("/channels", channels.list_channels, methods=["GET"]),
    ApiRoute("/channels", channels.create_channel, methods=["POST"]),
    ApiRoute("/channels/{channel_id}", channels.get_channel, methods=["GET"]),
    ApiRoute("/channels/{channel_id}", admin.update_channel, methods=["PATCH"]),
    ApiRoute("/channels/{channel_id}/members", admin.list_members, methods=["GET"]),
    ApiRoute("/channels/{channel_id}/members", admin.add_member, methods=["POST"]),
    ApiRoute("/channels/{channel_id}/members/{user_id}", admin.remove_member, methods=["DELETE"]),
    ApiRoute("/channels/{channel_id}/join", admin.join_channel, methods=["POST"]),
    ApiRoute("/channels/{channel_id}/read", channels.mark_read, methods=["POST"]),
    ApiRoute("/channels/{channel_id}/notifications", notifications.set_level, methods=["PUT"]),
    ApiRoute("/channels/{channel_id}/typing", notifications.typing, methods=["POST"]),
    ApiRoute("/channels/{channel_id}/threads", channels.list_threads, methods=["GET"]),
    ApiRoute("/channels/{channel_id}/metrics", observability.channel_metrics, methods=["GET"]),
    ApiRoute("/channels/{channel_id}/messages", messages.post_to_channel, methods=["POST"]),
    ApiRoute("/threads/{thread_id}", messages.get_thread, methods=["GET"]),
    ApiRoute("/threads/{thread_id}/messages", messages.post_to_thread, methods=["POST"]),
    ApiRoute("/threads/{thread_id}/history", messages.history, methods=["GET"]),
    ApiRoute("/threads/{thread_id}/metrics", observability.thread_metrics, methods=["GET"]),
    ApiRoute("/threads/{thread_id}/read", inbox.mark_thread_read, methods=["POST"]),
    ApiRoute("/threads/{thread_id}/timeline", timeline.thread_timeline, methods=["GET"]),
    ApiRoute("/messages/{message_id}", messages.get_message, methods=["GET"]),
    ApiRoute("/messages/{message_id}", editing.edit_message, methods=["PATCH"]),
    ApiRoute("/messages/{message_id}", editing.delete_message, methods=["DELETE"]),
    ApiRoute("/messages/{message_id}/edits", editing.message_edits, methods=["GET"]),
    ApiRoute("/messages/{message_id}/reactions", editing.add_reaction, methods=["POST"]),
    ApiRoute("/messages/{message_id}/reactions", editing.remove_reaction, methods=["DELETE"]),
    ApiRoute("/messages/{message_id}/retry", messages.retry_reply, methods=["POST"]),
    ApiRoute("/messages/{message_id}/stop", stop.stop_reply, methods=["POST"]),
    ApiRoute("/messages/{message_id}/render/{connector}", interactions.render, methods=["GET"]),
    ApiRoute("/messages/{message_id}/responses", forms.responses, methods=["GET"]),
    ApiRoute("/interactions", interactions.submit, methods=["POST"]),
    ApiRoute("/interactions/slack", interactions.from_slack, methods=["POST"]),
    ApiRoute("/interactions/discord", interactions.from_discord, methods=["POST"]),
    ApiRoute("/tasks", tasks.list_tasks, methods=["GET"]),
    ApiRoute("/tasks", tasks.create_task, methods=["POST"]),
    ApiRoute("/tasks/{task_id}", tasks.get_task, methods=["GET"]),
    ApiRoute("/tasks/{task_id}", tasks.update_task, methods=["PATCH"]),
    ApiRoute("/tasks/{task_id}/actions/{action}", tasks.task_action, methods=["POST"]),
    ApiRoute("/tasks/{task_id}/comments", tasks.list_comments, methods=["GET"]),
    ApiRoute("/tasks/{task_id}/comments", tasks.add_comment, methods=["POST"]),
    ApiRoute("/tasks/{task_id}/history", tasks.task_history, methods=["GET"]),
    ApiRoute("/search", search.search, methods=["GET"]),
    ApiRoute("/inbox", inbox.get_inbox, methods=["GET"]),
    ApiRoute("/inbox/read", inbox.mark_inbox_read, methods=["POST"]),
    ApiRoute("/dms", dms.list_dms, methods=["GET"]),
    ApiRoute("/dms", dms.open_dm, methods=["POST"]),
    ApiRoute("/uploads", attachments.upload, methods=["POST"]),
    ApiRoute("/attachments/{attachment_id}", attachments.download, methods=["GET"]),
    ApiRoute("/memory/policies", memory.list_policies, methods=["GET"]),
    ApiRoute("/memory/policies/{scope_type}/{scope_id}", memory.put_policy, methods=["PUT"]),
    ApiRoute("/memory/candidates", memory.list_candidates, methods=["GET"]),
    ApiRoute("/memory/candidates/{candidate_id}", memory.get_candidate, methods=["GET"]),
    ApiRoute("/memory/candidates/{candidate_id}/{action}", memory.decide_candidate, methods=["POST"]),
    ApiRoute("/memories", memory.list_memories, methods=["GET"]),
    ApiRoute("/memories/{memory_id}", memory.get_memory, methods=["GET"]),
    ApiRoute("/memories/{memory_id}", memory.edit_memory, methods=["PATCH"]),
    ApiRoute("/memories/{memory_id}", memory.delete_memory, methods=["DELETE"]),
    ApiRoute("/memories/{memory_id}/rollback", memory.rollback_memory, methods=["POST"]),
    ApiRoute("/memories/{memory_id}/deliver", memory.deliver_memory, methods=["POST"]),
    ApiRoute("/realtime/sse", realtime.sse, methods=["GET"]),
    realtime.WebSocketEndpoint("/realtime/ws", realtime.ws),
    ApiRoute("/voice", voice.status, methods=["GET"]),
    ApiRoute("/voice/memos", voice.post_memo, methods=["POST"]),
    ApiRoute("/voice/memos/{memo_id}", voice.memo_audio, methods=["GET"]),
    ApiRoute("/voice/memos/{memo_id}/transcript", voice.transcript, methods=["GET"]),
    ApiRoute("/voice/memos/{memo_id}/clips/{index}", voice.clip, methods=["GET"]),
    ApiRoute("/voice/speech", voice.speak, methods=["POST"]),
    realtime.WebSocketEndpoint("/voice/live", voice.live, over_http=voice.live_over_http),
    ApiRoute("/openapi.json", openapi.document, methods=["GET"]),
]


class IndexedRouter(Router):
    """A Router that matches a request only against the routes of its first path segment
    (`/channels/...` against the `channels` routes), not against all of them in turn: the
    linear scan was a tenth of the event loop's time under a send load. Matching within a group
    is Starlette's own, so 404, 405 and the route order inside a group behave as before."""

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        super().__init__(routes=list(routes))
        grouped: dict[str, list[BaseRoute]] = {}
        for route in routes:
            path = getattr(route, "path", "")
            first = path.split("/", 2)[1] if path.startswith("/") else ""
            assert first and "{" not in first, f"{path}: a route's first segment must be literal"
            grouped.setdefault(first, []).append(route)
        self._groups = {first: Router(routes=group) for first, group in grouped.items()}

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            path = _route_path(scope)
            group = self._groups.get(path.split("/", 2)[1] if path.startswith("/") else "")
            if group is not None:
                if "router" not in scope:
                    scope["router"] = self
                # The usual case, a full match, is served here: what Router.app does first, one
                # call frame fewer on every resume of the request's coroutine chain.
                for route in group.routes:
                    match, child_scope = route.matches(scope)
                    if match is Match.FULL:
                        scope.update(child_scope)
                        await route.handle(scope, receive, send)
                        return
                try:  # a partial match (405), a slash to redirect, or nothing: Starlette's way
                    await group.app(scope, receive, send)
                except HTTPException as refused:
                    raise _with_full_allow(refused, group, scope) from None
                return
        await super().app(scope, receive, send)


def _with_full_allow(refused: HTTPException, group: Router, scope: Scope) -> HTTPException:
    """A 405 names every method the path answers to in `Allow`: Starlette names only the first
    route's whose path matched (`PUT /v1/channels` said `Allow: GET, HEAD`, issue 10). Worked
    out only on the way out of a 405, so matching a request costs what it did."""
    if refused.status_code != 405:
        return refused
    allowed: set[str] = set()
    for route in group.routes:
        match, _ = route.matches(scope)
        if match is Match.PARTIAL and isinstance(route, Route):
            allowed |= route.methods or set()
    if not allowed:
        return refused
    return HTTPException(status_code=405, headers={"Allow": ", ".join(sorted(allowed))})


def _route_path(scope: Scope) -> str:
    """The path below the mount point (what Starlette's routes match against)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class Api:
    """The `/v1` app: request ids and the JSON error shape (RequestIdMiddleware), the error
    handlers (Starlette's ExceptionMiddleware), then the routes (IndexedRouter).

    It is a Starlette app taken apart (#16): Starlette puts ServerErrorMiddleware outside every
    app, whose work RequestIdMiddleware already does (any error answers the JSON 500), and each
    layer is a frame that every resume of a request's coroutine passes through, and a wrapper
    around every `send`. `request.app.state.spacechat` and `request.app.routes` read as on a
    Starlette app."""

    def __init__(self, context: Context, routes: list[BaseRoute]) -> None:
        self.state = State()
        self.state.spacechat = context
        self.router = IndexedRouter(routes)
        self._stack = RequestIdMiddleware(ExceptionMiddleware(self.router, handlers=EXCEPTION_HANDLERS))

    @property
    def routes(self) -> list[BaseRoute]:
        return self.router.routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self
        context = self.state.spacechat
        if context.relay is not None:  # several gateways or workers: see every acknowledged write
            await context.caught_up()
        await self._stack(scope, receive, send)


def build_api(app: Context, routes: list[BaseRoute] = V1_ROUTES) -> Api:
    return Api(app, routes)


def routes(app: Context) -> list[BaseRoute]:
    """What the plugin mounts on the host's server: the API, then the web UI at the root."""
    from .webui import WebUI

    return [
        _any_path(Mount("/v1", app=build_api(app))),
        # An ASGI app as a Route's endpoint sees the whole path, so /metrics matches exactly.
        Route("/metrics", build_api(app, [Route("/metrics", metrics.metrics, methods=["GET"])])),
        _any_path(Mount("/", app=WebUI())),
    ]


def _any_path(mount: Mount) -> Mount:
    """A mount that takes every path under it: Starlette's pattern stops at a newline, so
    `/v1/channels/a%0Ab` matched nothing and the host answered a text 404 (issue 10)."""
    mount.path_regex = re.compile(mount.path_regex.pattern, re.DOTALL)
    return mount


def route_scopes(routes: Sequence[BaseRoute] = V1_ROUTES) -> dict[str, str]:
    """Each route's scope as its `@operation` states it, by `"METHOD /v1/path"`: the table the
    permission matrix is generated from, and the realtime event rules too (identity/permissions.py
    EVENT_READS), so the two cannot drift apart."""
    scopes: dict[str, str] = {}
    for route in routes:
        if isinstance(route, Route):
            operation = getattr(route.endpoint, "__spacechat_operation__", None)
            for method in (route.methods or set()) - {"HEAD"}:
                if operation is not None and operation.scope:
                    scopes[f"{method} /v1{route.path}"] = operation.scope
    return scopes
