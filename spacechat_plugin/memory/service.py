"""Memory as one service for the composition root: ingestion (a hook plugin), review, semantic
search's vectors, and the background work (following the log, delivering to agents, the daily
purge). Built with its few collaborators; routes use its parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from ..config import MemoryConfig
from ..hookspecs import HostAPI
from ..identity.permissions import Access
from ..instance import Instance
from ..search.semantic import Search
from ..store import memories as memory_store
from ..store import vectors
from ..store.db import Database
from . import retention
from .embeddings import DIMENSIONS, Embedder
from .ingest import Ingest
from .review import Review

log = logging.getLogger("spacechat.memory")

FIRST_PURGE_SECONDS = 60


class Memory:
    def __init__(
        self,
        db: Database,
        access: Access,
        instance: Instance,
        host: HostAPI | None,
        settings: MemoryConfig,
        files_dir: Any,
    ) -> None:
        self.db, self.settings, self.files_dir = db, settings, files_dir
        self.embedder = Embedder() if settings.embeddings else None
        self.ingest = Ingest(db, access, instance, host, self.embedder)
        self.review = Review(db, host, self.ingest)
        self.search = Search(db, access, self.embedder)
        self._tasks: list[asyncio.Task[Any]] = []

    @property
    def embeddings_error(self) -> str | None:
        """Why semantic features are off, when they are (shown by the search route)."""
        if self.embedder is None:
            return "embeddings are turned off (memory.embeddings = false)"
        return None if self.search.vectors_ready else (self.embedder.error or "sqlite-vec could not be loaded")

    async def start(self) -> None:
        ready = False
        if self.embedder is not None and await asyncio.to_thread(self.embedder.available):
            ready = await self.db.write(lambda tx: vectors.ensure(tx, DIMENSIONS))
        elif self.embedder is not None:
            log.warning("semantic search is off: %s", self.embedder.error)
        self.ingest.vectors_ready = self.search.vectors_ready = ready
        await self.ingest.start()
        self._tasks = [
            asyncio.create_task(self.ingest.run(), name="spacechat-memory-ingest"),
            asyncio.create_task(self._purge_loop(), name="spacechat-memory-purge"),
            asyncio.create_task(self.review.deliver_pending(), name="spacechat-memory-deliver"),
        ]
        self.ingest.notify()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self.embedder is not None:
            self.embedder.close()

    def committed(self, events: list[Any]) -> None:
        """After each commit: wake the log follower when something it turns into memory happened."""
        if any(event.event_type.startswith(("message.", "interaction.", "task.updated")) for event in events):
            self.ingest.notify()

    async def purge(self, *, dry_run: bool) -> dict[str, Any]:
        return await retention.purge(self.db, self.files_dir, dry_run=dry_run, forget=self._forget)

    async def _forget(self, memory_ids: list[str]) -> None:
        for memory in (await memory_store.by_ids(self.db, memory_ids)).values():
            await self.review.deliver(memory)

    async def _purge_loop(self) -> None:
        await asyncio.sleep(FIRST_PURGE_SECONDS)
        while True:
            try:
                counts = await self.purge(dry_run=False)
                log.info("memory purge: %s", counts)
                await self.review.deliver_pending()
            except Exception:
                log.exception("the memory purge failed; it runs again at the next interval")
            await asyncio.sleep(self.settings.purge_interval_hours * 3600)
