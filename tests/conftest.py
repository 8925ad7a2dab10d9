from __future__ import annotations

from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser

from .browser import audit_remaining, chromium
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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, object, object]:
    """Keep each phase's report on the test, so a fixture can tell whether the test failed."""
    report = yield
    setattr(item, f"report_{call.when}", report)
    return report


@pytest.fixture
async def browser(request: pytest.FixtureRequest) -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, for the web UI tests (one per test; tests/browser.py). The
    pages the test left open get their end-of-test accessibility check here (tests/a11y.py)."""
    async with chromium() as running:
        yield running
        outcome = getattr(request.node, "report_call", None)
        problems = await audit_remaining(running, check=outcome is not None and outcome.passed)
        assert not problems, problems
