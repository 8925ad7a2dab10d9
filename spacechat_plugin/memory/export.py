"""A person's data as a zip (issue 12, point 6): `GET /v1/me/export`, and the admin variant for
one person. Exactly one person's data: their own messages, memories about them or from them,
their candidates, and the audit rows they caused or that act on them.
"""

from __future__ import annotations

import io
import zipfile
from typing import Any

import orjson

from ..events import now_rfc3339
from ..store import export as export_store
from ..store import memories as memory_store
from ..store import memory as store
from ..store.db import Database

README = """This archive holds what Spacechat keeps about {name} ({user_id}), made {made}.

messages.json    the messages they wrote
memories.json    memories about them or from them (deleted ones are gone and not listed)
candidates.json  what was proposed as memory about them or from them, and how it was decided
audit.json       the audit rows they caused or that act on them
profile.json     their account and their memory consent
"""


async def build(db: Database, user: dict[str, Any]) -> bytes:
    user_id, org_id = user["id"], user["org_id"]
    memories = [m for m in await memory_store.of_person(db, user_id) if m["org_id"] == org_id]
    candidates = [c for c in await store.candidates_of_person(db, user_id) if c["org_id"] == org_id]
    files = {
        "profile.json": {"user": user, "memory_consent": await store.consent_of(db, user_id)},
        "messages.json": await export_store.messages_by(db, user_id, org_id),
        "memories.json": memories,
        "candidates.json": candidates,
        "audit.json": await export_store.audit_trail(db, user_id, org_id),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.txt", README.format(name=user.get("name"), user_id=user_id, made=now_rfc3339()))
        for name, content in files.items():
            archive.writestr(name, orjson.dumps(content, option=orjson.OPT_INDENT_2))
    return buffer.getvalue()
