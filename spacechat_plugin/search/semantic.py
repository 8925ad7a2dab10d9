"""Semantic and hybrid search over messages and memories (issue 12, point 5).

Tenancy is applied before ranking, in every mode: the principal's organisation and the channels
it may read go into the queries themselves (sqlite-vec's partition and metadata filters, the
FTS5 query's WHERE), so a hit from another organisation or an unreadable private channel is
never ranked, let alone returned. Memories appear to those who review memory, and to the person
a memory is about or came from.

`mode=semantic` ranks by cosine distance of all-MiniLM-L6-v2 vectors; `mode=hybrid` fuses the
vector ranking with FTS5's bm25 ranking by reciprocal rank fusion (RRF, k = 60, as Cormack et al.
and most hybrid engines use), so an exact keyword and a paraphrase both surface.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..identity.permissions import Access, Principal, can_read_channel
from ..memory.embeddings import Embedder
from ..store import fulltext, vectors
from ..store import memories as memory_store

RRF_K = 60
MODES = ("semantic", "hybrid")
KINDS = ("messages", "memories")
KIND_OF = {"messages": "message", "memories": "memory"}


def readable_channels(access: Access, who: Principal) -> list[str]:
    """The ids of the channels `who` may read: the one tenancy filter of every mode."""
    return sorted(cid for cid, channel in access.channels.items() if can_read_channel(who, channel))


@dataclass
class Hit:
    kind: str  # message | memory
    id: str
    vector_rank: int | None = None
    distance: float | None = None
    text_rank: int | None = None

    @property
    def score(self) -> float:
        return sum(1.0 / (RRF_K + rank) for rank in (self.vector_rank, self.text_rank) if rank is not None)


def fuse(vector_hits: Sequence[tuple[str, str, float]], text_hits: Sequence[tuple[str, str]]) -> list[Hit]:
    """Reciprocal rank fusion of a vector ranking ((kind, id, distance), nearest first) and a
    keyword ranking ((kind, id), best first)."""
    hits: dict[str, Hit] = {}
    for rank, (kind, ref, distance) in enumerate(vector_hits, start=1):
        hits[ref] = Hit(kind, ref, vector_rank=rank, distance=distance)
    for rank, (kind, ref) in enumerate(text_hits, start=1):
        hits.setdefault(ref, Hit(kind, ref)).text_rank = rank
    return sorted(hits.values(), key=lambda hit: hit.score, reverse=True)


class Search:
    def __init__(self, db: Any, access: Access, embedder: Embedder | None) -> None:
        self.db, self.access, self.embedder = db, access, embedder
        self.vectors_ready = False

    async def run(
        self, who: Principal, query: str, *, mode: str, kinds: Sequence[str], limit: int
    ) -> list[dict[str, Any]]:
        channels = readable_channels(self.access, who)
        fetch = limit * 3
        memory_channels = ["", *channels]
        wanted = [KIND_OF[k] for k in kinds]
        vector_hits: list[tuple[str, str, float]] = []
        if self.embedder is not None and self.vectors_ready:
            embedder = self.embedder
            vector = await asyncio.to_thread(embedder.embed, query)
            vector_hits = await vectors.nearest(
                self.db,
                vector,
                org_id=who.org_id,
                kinds=wanted,
                channel_ids=memory_channels if "memory" in wanted else channels,
                k=fetch,
            )
            # '' is "no channel": only memories may have none (messages always live in one).
            vector_hits = [hit for hit in vector_hits if hit[0] in wanted]
        text_hits: list[tuple[str, str]] = []
        if mode == "hybrid":
            if "message" in wanted:
                found = await fulltext.messages(self.db, query, org_id=who.org_id, channel_ids=channels, limit=fetch)
                text_hits.extend(("message", ref) for ref, _ in found)
            if "memory" in wanted:
                found = await fulltext.memories(self.db, query, org_id=who.org_id, channel_ids=channels, limit=fetch)
                text_hits.extend(("memory", ref) for ref, _ in found)
        return await self._materialize(who, fuse(vector_hits, text_hits), limit)

    async def _materialize(self, who: Principal, hits: list[Hit], limit: int) -> list[dict[str, Any]]:
        memories = await memory_store.by_ids(self.db, [h.id for h in hits if h.kind == "memory"])
        messages = await vectors.messages_json(self.db, [h.id for h in hits if h.kind == "message"])
        reviewer = "memory:review" in who.scopes
        results = []
        for hit in hits:
            item = self._item(hit, memories, messages, who, reviewer)
            if item is None:
                continue
            results.append(item)
            if len(results) >= limit:
                break
        return results

    def _item(
        self,
        hit: Hit,
        memories: dict[str, dict[str, Any]],
        messages: dict[str, dict[str, Any]],
        who: Principal,
        reviewer: bool,
    ) -> dict[str, Any] | None:
        base = {
            "kind": hit.kind,
            "id": hit.id,
            "score": round(hit.score, 6),
            "distance": None if hit.distance is None else round(hit.distance, 6),
            "ranks": {"vector": hit.vector_rank, "fulltext": hit.text_rank},
        }
        if hit.kind == "memory":
            memory = memories.get(hit.id)
            if memory is None or memory["status"] != "valid":
                return None
            if not reviewer and who.user_id not in (memory["subject_id"], memory["source_user_id"]):
                return None
            return {**base, "channel_id": memory["channel_id"], "text": memory["content"], "memory": memory}
        message = messages.get(hit.id)
        if message is None or message["org_id"] != who.org_id:
            return None
        channel = self.access.channels.get(message["channel_id"])
        if channel is None or not can_read_channel(who, channel):  # belt and braces: filtered before ranking
            return None
        return {
            **base,
            "channel_id": message["channel_id"],
            "thread_id": message["thread_id"],
            "text": message["text"],
            "message": message,
        }
