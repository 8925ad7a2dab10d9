"""The purge job (issue 12, point 6): daily in the server, and on demand (`spacechat purge
[--dry-run]`). Each channel's retention is the nearest policy level that sets one (channel, team,
organisation); with none, nothing there is purged. One audit row per run records the counts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..events import SYSTEM
from ..store import audit
from ..store import memory as store
from ..store import retention as retention_store
from ..store.db import Database, WriteTx
from .policy import effective


def _cutoff(days: int, now: datetime) -> str:
    moment = now - timedelta(days=days)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


async def cutoffs(db: Database, now: datetime) -> tuple[dict[str, str], dict[str, str]]:
    """Per channel and per organisation: the time before which things are due."""
    levels = {(row["scope_type"], row["scope_id"]): row for row in await store.retention_levels(db)}
    by_channel: dict[str, str] = {}
    by_org: dict[str, str] = {}
    for org_id in await retention_store.org_ids(db):
        days = effective([levels.get(("org", org_id)), None, None])[0]["retention_days"]
        if days:
            by_org[org_id] = _cutoff(days, now)
    for channel in await retention_store.channels_with_orgs(db):
        policy, _ = effective(
            [
                levels.get(("org", channel["org_id"])),
                levels.get(("team", channel["team_id"])),
                levels.get(("channel", channel["id"])),
            ]
        )
        if policy["retention_days"]:
            by_channel[channel["id"]] = _cutoff(policy["retention_days"], now)
    return by_channel, by_org


def attachment_path(files_dir: Path, attachment_id: str) -> Path:
    """Where an attachment's bytes live (api/attachments.py stores them so)."""
    return files_dir / "attachments" / attachment_id[-2:] / attachment_id


def remove_voice_files(files_dir: Path, memo_id: str) -> int:
    """A voice memo's audio and the sentences of a spoken reply (voice/service.py stores them as
    `voice/<last 2>/<id>.<ext>` and `<id>.clip<n>.ogg`): how many files were deleted."""
    removed = 0
    for path in (files_dir / "voice" / memo_id[-2:]).glob(f"{memo_id}.*"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    return removed


async def purge(
    db: Database,
    files_dir: Path,
    *,
    dry_run: bool,
    forget: Callable[[list[str]], Awaitable[Any]] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Run once; return what was (or, dry, would be) deleted."""
    by_channel, by_org = await cutoffs(db, now or datetime.now(UTC))

    def write(tx: WriteTx) -> retention_store.PurgeResult:
        result = retention_store.purge(tx, by_channel, by_org, dry_run=dry_run)
        audit.append(
            tx,
            org_id=None,
            actor=SYSTEM,
            action="memory.purge",
            target_type="instance",
            details={"dry_run": dry_run, **result.counts},
        )
        return result

    result = await db.write(write)
    files = 0
    for attachment_id in result.attachments:
        path = attachment_path(files_dir, attachment_id)
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(path.unlink)
            files += 1
    for memo_id in result.voice_memos:
        files += await asyncio.to_thread(remove_voice_files, files_dir, memo_id)
    if forget is not None and result.memories:
        await forget(result.memories)
    return {"dry_run": dry_run, **result.counts, "files": files}
