"""Memory for reviewers (issue 12): policies per organisation, team and channel; the candidate
queue and its decisions; memories with revisions, rollback and delete. Everything here needs
`memory:review`; a candidate or memory of a channel the reviewer cannot read answers 404, like
anything of another organisation. Every change is audited in the transaction that makes it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response

from ..errors import BadRequest, NotFound
from ..identity.auth import client_address
from ..identity.permissions import Principal
from ..memory.policy import LEVELS, MEMORY_TYPES, PolicySettings, effective
from ..search.semantic import readable_channels
from ..store import audit, tenancy, vectors
from ..store import memories as memory_store
from ..store import memory as store
from ..store.db import WriteTx
from .common import JSONResponse, authorize, channel_of, operation, principal, query_int, read_json, spacechat
from .models import Body

MAX_BODY = 64 * 1024
ACTIONS = ("approve", "reject", "merge")


class CandidateDecision(Body):
    content: str | None = Field(None, max_length=10_000, description="approve/merge: the edited text (kept as a diff)")
    reason: str | None = Field(None, max_length=500, description="reject: why (required)")
    memory_id: str | None = Field(None, description="merge: the memory it joins (required)")
    supersedes: list[str] = Field(
        default_factory=list, max_length=20, description="approve: memories this one replaces; they become invalid"
    )


class MemoryEdit(Body):
    content: str | None = Field(None, max_length=10_000)
    memory_type: (
        Literal["fact", "preference", "decision", "identity", "event", "observation", "goal", "todo"] | None
    ) = None
    importance: float | None = Field(None, ge=0, le=1)


class Rollback(Body):
    revision: int = Field(ge=1, description="the earlier revision whose content comes back (as a new revision)")


# --- policies ------------------------------------------------------------------------------


async def _scope_target(request: Request, who: Principal, scope_type: str, scope_id: str) -> dict[str, Any]:
    """The organisation, team or channel a policy level belongs to (404 when not the caller's)."""
    app = spacechat(request)
    if scope_type == "org":
        if scope_id != who.org_id:
            raise NotFound("no such organisation")
        await authorize(request, {"org_id": scope_id})
        return {"org_id": scope_id, "team_id": None, "channel_id": None}
    if scope_type == "team":
        team = await tenancy.get_team(app.db, scope_id)
        if team is None:
            raise NotFound("no such team")
        await authorize(request, team)
        return {"org_id": team["org_id"], "team_id": scope_id, "channel_id": None}
    if scope_type == "channel":
        channel = await channel_of(app, scope_id)
        if channel is None:
            raise NotFound("no such channel")
        await authorize(request, channel, channel=channel)
        return {"org_id": channel["org_id"], "team_id": channel["team_id"], "channel_id": scope_id}
    raise NotFound("policies are set per org, team or channel", details={"scope_types": list(LEVELS)})


@operation("Memory policies: every level that sets something, and what holds", tags=["memory"], scope="memory:review")
async def list_policies(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    levels = await store.policies(app.db, who.org_id)
    org_level = next((level["settings"] for level in levels if level["scope_type"] == "org"), None)
    policy, origin = effective([org_level, None, None])
    channel_id = request.query_params.get("channel_id")
    if channel_id:
        channel = await channel_of(app, channel_id)
        if channel is None or channel["org_id"] != who.org_id:
            raise NotFound("no such channel")
        policy, origin = effective(await store.policy_levels(app.db, who.org_id, channel["team_id"], channel_id))
    return JSONResponse({"levels": levels, "effective": policy, "origin": origin})


@operation(
    "Set what one level (org, team or channel) of the memory policy says",
    tags=["memory"],
    body=PolicySettings,
    scope="memory:review",
    resource=True,
)
async def put_policy(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    scope_type, scope_id = request.path_params["scope_type"], request.path_params["scope_id"]
    target = await _scope_target(request, who, scope_type, scope_id)
    body = await read_json(request, PolicySettings, max_bytes=MAX_BODY)
    settings = body.as_stored()

    def write(tx: WriteTx) -> dict[str, Any]:
        row, old = store.put_policy(
            tx, org_id=target["org_id"], scope_type=scope_type, scope_id=scope_id, settings=settings, actor=who.actor
        )
        audit.append(
            tx,
            org_id=who.org_id,
            actor=who.actor,
            action="memory.policy",
            target_type=scope_type,
            target_id=scope_id,
            ip=client_address(request),
            details={"settings": settings, "previous": None if old is None else old["settings"]},
        )
        return row

    row = await app.db.write(write)
    policy, origin = effective(
        await store.policy_levels(app.db, target["org_id"], target["team_id"], target["channel_id"])
    )
    return JSONResponse({"level": row, "effective": policy, "origin": origin})


# --- the queue -----------------------------------------------------------------------------


@operation(
    "The review queue: candidates by status (pending: oldest first), with near-duplicate groups",
    tags=["memory"],
    scope="memory:review",
    query={
        "status": "pending (default), approved, rejected, merged, withdrawn",
        "after": "created_at cursor",
        "limit": "1-200, default 50",
    },
)
async def list_candidates(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    status = request.query_params.get("status", "pending")
    if status not in ("pending", "approved", "rejected", "merged", "withdrawn"):
        raise BadRequest("unknown status", details=[{"path": "status", "message": status}])
    limit = query_int(request, "limit", 50, low=1, high=200)
    assert limit is not None
    page, total = await store.queue(
        app.db,
        org_id=who.org_id,
        status=status,
        channel_ids=readable_channels(app.access, who),
        before=request.query_params.get("after"),
        limit=limit,
    )
    groups: dict[str, int] = {}
    for candidate in page:
        if candidate["group_id"]:
            groups.setdefault(candidate["group_id"], 0)
            groups[candidate["group_id"]] += 1
    return JSONResponse(
        {
            "candidates": page,
            "total": total,
            "groups": groups,
            "next": page[-1]["created_at"] if len(page) == limit else None,
        }
    )


async def _candidate(request: Request) -> tuple[Principal, dict[str, Any]]:
    app = spacechat(request)
    who = await principal(request)
    candidate = await store.get_candidate(app.db, request.path_params["candidate_id"])
    if candidate is None:
        raise NotFound("no such candidate")
    channel = await channel_of(app, candidate["channel_id"]) if candidate["channel_id"] else None
    await authorize(request, candidate, channel=channel)
    return who, candidate


@operation(
    "A candidate with its source in context and the memories it may duplicate",
    tags=["memory"],
    scope="memory:review",
    resource=True,
)
async def get_candidate(request: Request) -> Response:
    app = spacechat(request)
    who, candidate = await _candidate(request)
    context: list[dict[str, Any]] = []
    if candidate["source_message_id"]:
        from ..store import messages as message_store

        source = await message_store.get_message(app.db, candidate["source_message_id"])
        if source is not None:
            page = await message_store.history(
                app.db, source["thread_id"], before=None, after=None, limit=5, around=source["seq"]
            )
            context = page.messages
    similar = await _similar(request, who, candidate)
    group = await store.group_members(app.db, candidate["group_id"]) if candidate["group_id"] else []
    return JSONResponse({"candidate": candidate, "context": context, "similar": similar, "group": group})


async def _similar(request: Request, who: Principal, candidate: dict[str, Any]) -> list[dict[str, Any]]:
    """Valid memories nearest to the candidate (where it may merge), when vectors are on."""
    app = spacechat(request)
    vector = await app.memory.ingest.embed(candidate["content"])
    if vector is None:
        return []
    near = await vectors.nearest(
        app.db,
        vector,
        org_id=who.org_id,
        kinds=["memory"],
        channel_ids=["", *readable_channels(app.access, who)],
        k=5,
    )
    found = await memory_store.by_ids(app.db, [ref for _, ref, _ in near])
    return [
        {"memory": found[ref], "distance": round(distance, 4)}
        for _, ref, distance in near
        if ref in found and found[ref]["status"] == "valid"
    ]


@operation(
    "Decide a candidate: approve (optionally edited), reject with a reason, or merge into a memory",
    tags=["memory"],
    body=CandidateDecision,
    scope="memory:review",
    resource=True,
)
async def decide_candidate(request: Request) -> Response:
    app = spacechat(request)
    action = request.path_params["action"]
    if action not in ACTIONS:
        raise NotFound("no such action", details={"actions": list(ACTIONS)})
    who, candidate = await _candidate(request)
    body = await read_json(request, CandidateDecision, max_bytes=MAX_BODY)
    ip, review = client_address(request), app.memory.review
    if action == "approve":
        memory = await review.approve(
            candidate["id"], who.actor, who.org_id, ip=ip, content=body.content, supersedes=body.supersedes
        )
        return JSONResponse({"memory": memory, "candidate": await store.get_candidate(app.db, candidate["id"])})
    if action == "reject":
        rejected = await review.reject(candidate["id"], who.actor, who.org_id, ip=ip, reason=body.reason or "")
        return JSONResponse({"candidate": rejected})
    if not body.memory_id:
        raise BadRequest("name the memory to merge into", details=[{"path": "memory_id", "message": "required"}])
    memory = await review.merge(
        candidate["id"], who.actor, who.org_id, ip=ip, memory_id=body.memory_id, content=body.content
    )
    return JSONResponse({"memory": memory, "candidate": await store.get_candidate(app.db, candidate["id"])})


# --- memories ------------------------------------------------------------------------------


@operation(
    "Memories, most recently changed first",
    tags=["memory"],
    scope="memory:review",
    query={
        "status": "valid, invalid or deleted",
        "subject_id": "",
        "before": "updated_at cursor",
        "limit": "1-200, default 50",
    },
)
async def list_memories(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    limit = query_int(request, "limit", 50, low=1, high=200)
    assert limit is not None
    params = request.query_params
    if params.get("status") not in (None, "", "valid", "invalid", "deleted"):
        raise BadRequest("unknown status", details=[{"path": "status", "message": params.get("status", "")}])
    found = await memory_store.listing(
        app.db,
        org_id=who.org_id,
        channel_ids=readable_channels(app.access, who),
        status=params.get("status"),
        subject_id=params.get("subject_id"),
        before=params.get("before"),
        limit=limit,
    )
    return JSONResponse({"memories": found})


async def _memory(request: Request) -> tuple[Principal, dict[str, Any]]:
    app = spacechat(request)
    who = await principal(request)
    memory = await memory_store.get(app.db, request.path_params["memory_id"])
    if memory is None:
        raise NotFound("no such memory")
    channel = await channel_of(app, memory["channel_id"]) if memory["channel_id"] else None
    await authorize(request, memory, channel=channel)
    return who, memory


@operation("A memory with its revisions", tags=["memory"], scope="memory:review", resource=True)
async def get_memory(request: Request) -> Response:
    app = spacechat(request)
    _, memory = await _memory(request)
    return JSONResponse({"memory": memory, "revisions": await memory_store.revisions(app.db, memory["id"])})


@operation("Edit a memory (a new revision)", tags=["memory"], body=MemoryEdit, scope="memory:review", resource=True)
async def edit_memory(request: Request) -> Response:
    app = spacechat(request)
    who, memory = await _memory(request)
    body = await read_json(request, MemoryEdit, max_bytes=MAX_BODY)
    changes = {key: getattr(body, key) for key in body.model_fields_set if getattr(body, key) is not None}
    if not changes:
        raise BadRequest("nothing to change", details=[{"path": "(body)", "message": "empty"}])
    if changes.get("memory_type") not in (None, *MEMORY_TYPES):
        raise BadRequest("unknown memory type")
    updated = await app.memory.review.edit(
        memory["id"], who.actor, who.org_id, ip=client_address(request), changes=changes
    )
    return JSONResponse({"memory": updated})


@operation(
    "Roll a memory back to an earlier revision (as a new revision)",
    tags=["memory"],
    body=Rollback,
    scope="memory:review",
    resource=True,
)
async def rollback_memory(request: Request) -> Response:
    app = spacechat(request)
    who, memory = await _memory(request)
    body = await read_json(request, Rollback, max_bytes=MAX_BODY)
    updated = await app.memory.review.rollback(
        memory["id"], who.actor, who.org_id, ip=client_address(request), revision=body.revision
    )
    return JSONResponse({"memory": updated})


@operation(
    "Deliver a memory to its agent again (idempotent: the agent holds it once)",
    tags=["memory"],
    scope="memory:review",
    resource=True,
)
async def deliver_memory(request: Request) -> Response:
    app = spacechat(request)
    _, memory = await _memory(request)
    await app.memory.review.deliver(memory)
    return JSONResponse({"memory": await memory_store.get(app.db, memory["id"])})


@operation(
    "Delete a memory (a tombstone stays: who, when)", tags=["memory"], scope="memory:review", resource=True, status=204
)
async def delete_memory(request: Request) -> Response:
    app = spacechat(request)
    who, memory = await _memory(request)
    await app.memory.review.delete(memory["id"], who.actor, who.org_id, ip=client_address(request), by_person=False)
    return Response(status_code=204)
