from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser

from .browser import chromium
from .support import Server, toml_config


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A fresh `spacechat serve` on a free loopback port with its own data directory."""
    running = Server(tmp_path / "data", toml_config()).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for a module's tests that do not disturb each other."""
    running = Server(tmp_path_factory.mktemp("shared") / "data", toml_config()).start()
    yield running
    running.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, for the web UI tests (one per test; tests/browser.py)."""
    async with chromium() as running:
        yield running
