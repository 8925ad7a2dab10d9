"""Tasks on Spacebot's model: create, edit, transition, act (approve, reject, assign, complete),
comment, and read their history. Illegal transitions answer 409 naming the allowed ones.

A task with a home channel has a card there that shows it live; it is visible to whoever can
read that channel. Approving and rejecting need `tasks:approve` and are audited.

A task another system owns (`source`: a running Spacebot's task) is changed there: the edit,
action or comment goes to Spacebot through the host, and its answer changes the task here; a
refusal answers 502 naming Spacebot's answer, and nothing here changes.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..errors import BadRequest, NotFound
from ..identity.auth import client_address
from ..identity.permissions import Principal, can_read_channel, check
from ..store import identity, tenancy
from ..store import tasks as task_store
from ..store.db import WriteTx
from .common import JSONResponse, authorize, channel_of, operation, principal, query_int, read_json, spacechat
from .models import CreateTask, TaskAction, TaskComment, UpdateTask

ACTIONS = task_store.ACTIONS
ACTION_SCOPE = {"approve": "tasks:approve", "reject": "tasks:approve"}


async def task_or_404(request: Request) -> tuple[Principal, dict[str, Any]]:
    app = spacechat(request)
    who = await principal(request)
    task = await task_store.get(app.db, request.path_params["task_id"])
    if task is None:
        raise NotFound("no such task")
    channel = await channel_of(app, task["channel_id"]) if task["channel_id"] else None
    await authorize(request, task, channel=channel)
    return who, task


async def _assignee(request: Request, who: Principal, assignee_id: str | None) -> None:
    if assignee_id is None:
        return
    user = await identity.get_user(spacechat(request).db, assignee_id)
    if user is None or user["org_id"] != who.org_id or user["deactivated"]:
        raise BadRequest(
            "no such member or agent to assign",
            code="unknown_user",
            details=[{"path": "assignee_id", "message": "unknown"}],
        )


@operation(
    "Tasks, newest first",
    tags=["tasks"],
    scope="tasks:read",
    query={"team_id": "", "status": "", "assignee_id": "", "limit": "1-500, default 200"},
)
async def list_tasks(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    limit = query_int(request, "limit", 200, low=1, high=500)
    assert limit is not None
    params = request.query_params
    rows = await task_store.listing(
        app.db,
        who.org_id,
        team_id=params.get("team_id"),
        status=params.get("status"),
        assignee_id=params.get("assignee_id"),
        limit=limit,
    )
    visible = []
    for task in rows:
        channel = await channel_of(app, task["channel_id"]) if task["channel_id"] else None
        if channel is None or can_read_channel(who, channel):
            visible.append(task)
    return JSONResponse({"tasks": visible})


@operation(
    "Create a task (with a card in its home channel)", tags=["tasks"], body=CreateTask, status=201, scope="tasks:write"
)
async def create_task(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    body = await read_json(request, CreateTask, max_bytes=64 * 1024)
    channel = None
    if body.channel_id:
        channel = await channel_of(app, body.channel_id)
        if channel is None:
            raise BadRequest("no such channel", details=[{"path": "channel_id", "message": "unknown"}])
        check(who, "messages:write", channel, channel=channel)
    teams = await tenancy.list_teams(app.db, who.org_id)
    team_id = body.team_id or (channel["team_id"] if channel else teams[0]["id"])
    if team_id not in {team["id"] for team in teams}:
        raise BadRequest("no such team", details=[{"path": "team_id", "message": "unknown"}])
    await _assignee(request, who, body.assignee_id)
    owner_agent = who.user_id if who.actor.kind == "agent" else None

    def create(tx: WriteTx) -> dict[str, Any]:
        task = task_store.create(
            tx,
            org_id=who.org_id,
            team_id=team_id,
            channel_id=body.channel_id,
            title=body.title,
            description=body.description,
            status=body.status,
            priority=body.priority,
            assignee_id=body.assignee_id,
            owner_agent_id=owner_agent,
            actor=who.actor,
        )
        if channel is not None and body.post_card:
            app.cards.post_task_card(tx, task, channel, who.actor)
        return task

    task = await app.db.write(create)
    await app.cards.task_changed(task, None, "created")
    return JSONResponse({"task": task}, status_code=201)


@operation("A task", tags=["tasks"], scope="tasks:read", resource=True)
async def get_task(request: Request) -> Response:
    _, task = await task_or_404(request)
    return JSONResponse({"task": task})


@operation(
    "Edit a task's title, description, priority, or move its status",
    tags=["tasks"],
    body=UpdateTask,
    scope="tasks:write",
    resource=True,
)
async def update_task(request: Request) -> Response:
    app = spacechat(request)
    who, task = await task_or_404(request)
    body = await read_json(request, UpdateTask, max_bytes=64 * 1024)
    if body.status == "ready" and task["status"] == "pending_approval":
        check(who, "tasks:approve")  # approving by PATCH needs the same permission as the action
    changes = body.model_dump(exclude_none=True, exclude={"status", "reason"})
    if task["source"]:
        mirrored, before = await app.task_mirror.edit(task, changes, body.status, body.reason, who.actor)
        return JSONResponse({"task": mirrored, "previous_status": before})

    def update(tx: WriteTx) -> tuple[dict[str, Any], str | None]:
        updated, previous = task, None
        if changes:
            updated = task_store.edit(tx, task["id"], changes, who.actor)
        if body.status is not None and body.status != task["status"]:
            updated, previous = task_store.transition(tx, task["id"], body.status, who.actor, reason=body.reason)
        return updated, previous

    updated, previous = await app.db.write(update)
    await app.cards.task_changed(updated, previous, "status" if previous else "edited")
    return JSONResponse({"task": updated})


@operation(
    "Act on a task: approve, reject, assign, complete, start, fail, reopen",
    tags=["tasks"],
    body=TaskAction,
    scope="tasks:write",
    resource=True,
)
async def task_action(request: Request) -> Response:
    app = spacechat(request)
    action = request.path_params["action"]
    if action not in ACTIONS:
        raise NotFound(f"no task action {action}; the actions are {', '.join(ACTIONS)}")
    who, task = await task_or_404(request)
    check(who, ACTION_SCOPE.get(action, "tasks:write"))
    body = await read_json(request, TaskAction, max_bytes=16 * 1024) if await request.body() else TaskAction()
    if action == "assign":
        await _assignee(request, who, body.assignee_id)
    updated, previous = await app.cards.act_on_task(
        task, action, who.actor, assignee_id=body.assignee_id, reason=body.reason, ip=client_address(request)
    )
    return JSONResponse({"task": updated, "previous_status": previous})


@operation("A task's comments", tags=["tasks"], scope="tasks:read", resource=True)
async def list_comments(request: Request) -> Response:
    _, task = await task_or_404(request)
    return JSONResponse({"comments": await task_store.history(spacechat(request).db, task["id"], comments_only=True)})


@operation("Comment on a task", tags=["tasks"], body=TaskComment, status=201, scope="tasks:write", resource=True)
async def add_comment(request: Request) -> Response:
    app = spacechat(request)
    who, task = await task_or_404(request)
    body = await read_json(request, TaskComment, max_bytes=64 * 1024)
    if task["source"]:
        commented, _ = await app.task_mirror.act(task, "comment", who.actor, {"text": body.text})
        return JSONResponse({"task": commented}, status_code=201)
    updated = await app.db.write(lambda tx: task_store.comment(tx, task["id"], body.text, who.actor))
    return JSONResponse({"task": updated}, status_code=201)


@operation(
    "A task's history: creation, transitions, assignments, edits and comments",
    tags=["tasks"],
    scope="tasks:read",
    resource=True,
)
async def task_history(request: Request) -> Response:
    _, task = await task_or_404(request)
    return JSONResponse({"history": await task_store.history(spacechat(request).db, task["id"])})
