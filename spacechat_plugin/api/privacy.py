"""A person's own memory controls (issue 12, point 2 and 6): their consent, what Spacechat
remembers about them or from them (and deleting it), and their data as a zip; plus the admin
variant of the export for one person (audited).
"""

from __future__ import annotations

from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import Response

from ..errors import NotFound
from ..identity.auth import client_address
from ..memory import export
from ..memory.policy import effective
from ..store import audit, identity
from ..store import memories as memory_store
from ..store import memory as store
from ..store.db import WriteTx
from .common import JSONResponse, authorize, operation, principal, read_json, spacechat
from .models import Body


class Consent(Body):
    consent: Literal["in", "out"]


async def _consent(request: Request, user_id: str, org_id: str) -> dict[str, Any]:
    app = spacechat(request)
    policy, _ = effective(await store.policy_levels(app.db, org_id, None, None))
    chosen = await store.consent_of(app.db, user_id)
    return {"consent": chosen, "default": policy["consent_default"], "effective": chosen or policy["consent_default"]}


@operation("What Spacechat remembers about you or from you, and your memory consent", tags=["memory"], scope="any")
async def my_memory(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    memories = [m for m in await memory_store.of_person(app.db, who.user_id) if m["org_id"] == who.org_id]
    pending = [
        c
        for c in await store.candidates_of_person(app.db, who.user_id)
        if c["status"] == "pending" and c["org_id"] == who.org_id
    ]
    return JSONResponse(
        {"consent": await _consent(request, who.user_id, who.org_id), "memories": memories, "pending": pending}
    )


@operation(
    "Choose whether what you say may become memory; opting out withdraws your pending candidates",
    tags=["memory"],
    body=Consent,
    scope="any",
)
async def set_my_consent(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    body = await read_json(request, Consent, max_bytes=4096)
    withdrawn = await app.memory.review.set_consent(who.user_id, who.org_id, body.consent, ip=client_address(request))
    return JSONResponse({"consent": await _consent(request, who.user_id, who.org_id), "withdrawn": withdrawn})


@operation("Delete a memory about you or from you", tags=["memory"], scope="any", status=204)
async def delete_my_memory(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    memory = await memory_store.get(app.db, request.path_params["memory_id"])
    if (
        memory is None
        or memory["org_id"] != who.org_id
        or memory["status"] == "deleted"
        or who.user_id not in (memory["subject_id"], memory["source_user_id"])
    ):
        raise NotFound("no such memory about you")
    await app.memory.review.delete(memory["id"], who.actor, who.org_id, ip=client_address(request), by_person=True)
    return Response(status_code=204)


def _zip(data: bytes, user_id: str) -> Response:
    return Response(
        data,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="spacechat-export-{user_id}.zip"'},
    )


async def _export(request: Request, user: dict[str, Any], action: str) -> Response:
    app = spacechat(request)
    who = await principal(request)
    data = await export.build(app.db, user)

    def record(tx: WriteTx) -> None:
        audit.append(
            tx,
            org_id=who.org_id,
            actor=who.actor,
            action=action,
            target_type="user",
            target_id=user["id"],
            ip=client_address(request),
            details={"bytes": len(data)},
        )

    await app.db.write(record)
    return _zip(data, user["id"])


@operation(
    "Your data as a zip: your messages, memories about you, your audit trail",
    tags=["memory"],
    scope="any",
    produces="application/zip",
)
async def my_export(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    user = await identity.get_user(app.db, who.user_id)
    if user is None:
        raise NotFound("no such user")
    return await _export(request, user, "memory.export")


@operation(
    "One person's data as a zip (admins; audited)",
    tags=["memory"],
    scope="members:manage",
    resource=True,
    produces="application/zip",
)
async def user_export(request: Request) -> Response:
    app = spacechat(request)
    user = await identity.get_user(app.db, request.path_params["user_id"])
    if user is None:
        raise NotFound("no such user")
    await authorize(request, user)
    return await _export(request, user, "memory.export.admin")
