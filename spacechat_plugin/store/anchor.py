"""The audit chain's anchor outside the database (issue 10).

The hash chain (audit.py) shows a row was altered; it cannot show that the newest rows were
removed, or that someone holding the file rewrote a row and recomputed every hash after it. So
each commit that appends audit rows records the new head, `(row id, hash)`:

- in `audit.checkpoints` beside the database: one JSON line per head, appended and fsynced
  (mode 0600), never rewritten;
- in the structured log, as an `audit head` line with `audit_row` and `audit_hash`: ship the log
  off the machine and a copy of every head lives where the database's owner cannot reach it.

`check` compares a chain with checkpoints (the file's, or one an external witness kept from
`spacechat audit head`): a checkpoint past the chain's end means rows were cut off; one whose row
now has another hash means the chain was rewritten and re-hashed from there on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ..events import now_rfc3339

log = logging.getLogger("spacechat.audit")

CHECKPOINTS = "audit.checkpoints"


@dataclass(frozen=True)
class Checkpoint:
    row_id: int
    hash: str


class AuditAnchor:
    """Records audit heads in the checkpoint file and the log (called on the writer's thread,
    after the commit, so a checkpoint never names a row that did not commit)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / CHECKPOINTS

    def record(self, row_id: int, row_hash: str) -> None:
        line = orjson.dumps({"id": row_id, "hash": row_hash, "ts": now_rfc3339()}) + b"\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        log.info("audit head %d:%s", row_id, row_hash, extra={"audit_row": row_id, "audit_hash": row_hash})

    def catch_up(self, head: Checkpoint | None) -> None:
        """At start: record the chain's head when the newest checkpoint is behind it (a crash
        between a commit and its checkpoint, or a data directory from before checkpoints). A
        checkpoint *ahead* of the chain, or disagreeing with it, is left for `verify` to name."""
        if head is None:
            return
        latest = max(read_checkpoints(self.path), key=lambda c: c.row_id, default=None)
        if latest is None:
            log.warning("the audit log has no checkpoint file: anchoring it now at row %d", head.row_id)
        if latest is None or latest.row_id < head.row_id:
            self.record(head.row_id, head.hash)
        elif latest.row_id > head.row_id or (latest.row_id == head.row_id and latest.hash != head.hash):
            log.error("the audit log disagrees with its checkpoints: run `spacechat audit verify`")


def read_checkpoints(path: Path) -> list[Checkpoint]:
    """Every well-formed checkpoint line of a file (none when it is missing)."""
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return []
    found = []
    for line in lines:
        try:
            item = orjson.loads(line)
            found.append(Checkpoint(int(item["id"]), str(item["hash"])))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
    return found


def parse_witness(text: str) -> Checkpoint:
    """`ROW:HASH`, as `spacechat audit head` prints it."""
    row, _, digest = text.partition(":")
    if not row.isdigit() or len(digest) != 64:
        raise ValueError("a head is ROW:HASH, as `spacechat audit head` prints it")
    return Checkpoint(int(row), digest.lower())


def check(rows: Iterable[Mapping[str, Any]], checkpoints: Iterable[Checkpoint]) -> str | None:
    """What the checkpoints say about a chain (already checked link by link): None when each
    names a row that still has that hash, else what was done to the log."""
    hashes = {int(row["id"]): str(row["hash"]) for row in rows}
    last = max(hashes, default=0)
    truncated = re_chained = None
    for checkpoint in sorted(checkpoints, key=lambda c: c.row_id):
        if checkpoint.row_id > last:
            truncated = truncated or checkpoint
        elif hashes.get(checkpoint.row_id) != checkpoint.hash:
            re_chained = re_chained or checkpoint
    if re_chained is not None:
        return (
            f"RE-CHAINED at or before row {re_chained.row_id}: its hash is not the one checkpointed "
            "(rows were rewritten and every hash after them recomputed)"
        )
    if truncated is not None:
        newest = max(c.row_id for c in checkpoints)
        return f"TRUNCATED: the log ends at row {last} but a checkpoint records row {newest} (rows were removed)"
    return None
