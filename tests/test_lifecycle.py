"""Start-up and shutdown as an operator meets them (issue 10): one server per data directory, a
start that fails does so at once and cleanly, and SIGTERM ends a busy server promptly without
losing an acknowledged write."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from .support import Server, serve_command, store_env, terminate_timed, toml_config


def serve(
    data_dir: Path, config: Path, port: int = 0, timeout: float = 30, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run `spacechat serve` to its end (on the store `env` names: a server's `env`, or
    `store_env()`); return it and how long it took."""
    started = time.monotonic()
    result = subprocess.run(
        serve_command(config, data_dir, port),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    return result, time.monotonic() - started


def wait_for_reply(client: httpx.Client, thread_id: str, predicate: Any, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        history = client.get(f"/v1/threads/{thread_id}/history").json()["messages"]
        agent = [m for m in history if m["author"]["kind"] == "agent"]
        if agent and predicate(agent[0]):
            return dict(agent[0])
        time.sleep(0.05)
    raise AssertionError("the agent's reply did not get there in time")


def test_a_second_server_on_the_data_dir_refuses_at_once(tmp_path: Path) -> None:
    slow = toml_config(providers__scripted={"chars_per_second": 80})
    first = Server(tmp_path / "data", slow).start()
    try:
        port = int(first.url.rsplit(":", 1)[1])
        spacebot = first.channel_id("spacebot")
        with first.sync_client() as client:
            posted = client.post(f"/v1/channels/{spacebot}/messages", json={"text": "tell me about yourself"})
            thread_id = posted.json()["thread"]["id"]
            streaming = wait_for_reply(client, thread_id, lambda m: m["state"] == "streaming" and len(m["text"]) > 5)

            # Same data dir, same port (the probe's case), and once more on another port.
            for second_port in (port, 0):
                second, took = serve(tmp_path / "data", tmp_path / "data.toml", second_port, env=first.env)
                assert second.returncode != 0
                assert took < 2, f"the second server took {took:.1f} s to give up"
                assert f"process {first.process.pid}" in second.stderr  # type: ignore[union-attr]
                assert "Traceback" not in second.stderr + second.stdout

            # The first server is untouched: its reply streams on to the end, its writes work.
            done = wait_for_reply(client, thread_id, lambda m: m["state"] != "streaming")
            assert done["id"] == streaming["id"]
            assert done["state"] == "completed", done
            general = first.channel_id("general")
            assert client.post(f"/v1/channels/{general}/messages", json={"text": "still here"}).status_code == 201
    finally:
        first.stop()


def test_an_unknown_hook_plugin_stops_start_up_at_once(tmp_path: Path) -> None:
    config = tmp_path / "nope.toml"
    config.write_text(toml_config(top='hook_plugins = ["nope"]'))
    result, took = serve(tmp_path / "data", config, timeout=10, env=store_env())
    assert result.returncode != 0
    assert took < 5, f"start-up took {took:.1f} s to fail"
    output = result.stdout + result.stderr
    assert "hook_plugins: no hook plugin named 'nope'" in output
    assert "task_approval" in output  # it says which there are
    assert "Traceback" not in output
    assert not (tmp_path / "data" / "spacechat.db").exists(), "a configuration mistake changed the data dir"


def test_a_later_start_up_error_closes_what_it_opened(tmp_path: Path) -> None:
    """An agent of an organisation that does not exist is found once the database is open: the
    start still fails at once, cleanly, and leaves the data dir free for the next start."""
    config = tmp_path / "org.toml"
    config.write_text(
        toml_config(
            '[[agents]]\nid = "globex-bot"\nname = "Globex Bot"\nprovider = "scripted"\norg = "Globex"\n'
            'channels = ["general"]\n'
        )
    )
    env = store_env()
    result, took = serve(tmp_path / "data", config, timeout=60, env=env)
    assert result.returncode != 0
    # It used to hang for good (the database's threads kept the process alive); opening and
    # migrating a new database is most of this time, so the bound is loose.
    assert took < 20, f"start-up took {took:.1f} s to fail"
    assert "no organisation named 'Globex'" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    # Nothing holds the data dir (or the database) now: a good configuration starts on it.
    Server(tmp_path / "data", toml_config(), env=env).start().stop()


@dataclass
class Load:
    """1,000 open SSE streams and senders in flight, as the SIGTERM test holds them."""

    server: Server
    general: str
    acked: dict[str, str] = field(default_factory=dict)
    open_streams: int = 0
    all_open: asyncio.Event = field(default_factory=asyncio.Event)
    ended: int = 0
    stop_sending: asyncio.Event = field(default_factory=asyncio.Event)

    async def listen(self, client: httpx.AsyncClient, wanted: int) -> None:
        try:
            async with client.stream("GET", "/v1/realtime/sse") as response:
                assert response.status_code == 200
                self.open_streams += 1
                if self.open_streams == wanted:
                    self.all_open.set()
                async for _ in response.aiter_bytes():
                    pass
        except httpx.HTTPError:
            pass
        self.ended += 1

    async def send(self, client: httpx.AsyncClient, worker: int) -> None:
        i = 0
        while not self.stop_sending.is_set():
            text = f"s{worker}-{i}"
            try:
                response = await client.post(f"/v1/channels/{self.general}/messages", json={"text": text})
            except httpx.HTTPError:
                return
            if response.status_code == 201:
                self.acked[text] = response.json()["message"]["id"]
            i += 1


@pytest.mark.slow
async def test_sigterm_with_a_thousand_streams_exits_promptly_losing_nothing(tmp_path: Path) -> None:
    server = Server(tmp_path / "data", toml_config(runtime={"mode": "none"})).start()
    load = Load(server, server.channel_id("general"))
    limits = httpx.Limits(max_connections=1100, max_keepalive_connections=0)
    async with (
        httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=60, limits=limits) as streams,
        httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=60) as senders,
    ):
        listeners = [asyncio.create_task(load.listen(streams, 1000)) for _ in range(1000)]
        async with asyncio.timeout(120):
            await load.all_open.wait()
        sending = [asyncio.create_task(load.send(senders, w)) for w in range(8)]
        async with asyncio.timeout(30):
            while len(load.acked) < 40:
                await asyncio.sleep(0.02)
        assert server.process is not None
        process = server.process

        # Timed on a thread: the test's own loop is busy with a thousand streams ending.
        code, took = await asyncio.to_thread(terminate_timed, process)
        load.stop_sending.set()
        await asyncio.gather(*sending)
        async with asyncio.timeout(30):
            await asyncio.gather(*listeners)
    server.stop()
    assert code == 0
    assert took < 5, f"the server took {took:.1f} s to stop with 1,000 open streams"
    assert load.ended == 1000, "every stream ended"
    server.start()
    try:
        with server.sync_client() as client:
            for text, message_id in load.acked.items():
                got = client.get(f"/v1/messages/{message_id}")
                assert got.status_code == 200 and got.json()["message"]["text"] == text, text
    finally:
        server.stop()


@pytest.mark.slow
async def test_sigterm_mid_reply_with_a_browser_like_client_stops_promptly(tmp_path: Path) -> None:
    """The probe's case: a browser holds an SSE stream and a WebSocket while an agent reply
    streams. SIGTERM ends both streams, stops within 5 s, and the cut reply is `interrupted` with
    the text so far (a clean stop, not the agent's error)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    server = Server(tmp_path / "data", toml_config(providers__scripted={"chars_per_second": 60})).start()
    spacebot = server.channel_id("spacebot")
    async with server.client() as client:
        asked = await client.post(f"/v1/channels/{spacebot}/messages", json={"text": "tell me about yourself"})
        thread_id = asked.json()["thread"]["id"]
        url = server.url.replace("http://", "ws://") + "/v1/realtime/ws"
        async with (
            client.stream("GET", "/v1/realtime/sse") as sse,
            connect(url, additional_headers=server.auth) as ws,
        ):
            with server.sync_client() as sync:
                streaming = await asyncio.to_thread(
                    wait_for_reply, sync, thread_id, lambda m: m["state"] == "streaming" and m["text"]
                )
            process = server.process
            assert process is not None

            code, took = await asyncio.to_thread(terminate_timed, process)
            async with asyncio.timeout(5):
                async for _ in sse.aiter_bytes():
                    pass
                with pytest.raises(ConnectionClosed) as closed:
                    async for _ in ws:
                        pass
            # 1012: the service restarts, come back (the UI reconnects and resumes).
            assert closed.value.rcvd is not None and closed.value.rcvd.code in (1000, 1001, 1012)
    server.stop()
    assert code == 0 and took < 5, f"exit {code} after {took:.1f} s"
    server.start()
    try:
        with server.sync_client() as again:
            after = again.get(f"/v1/messages/{streaming['id']}").json()["message"]
        assert after["state"] == "failed" and after["failure_reason"] == "interrupted", after
        assert after["text"].startswith(streaming["text"])
    finally:
        server.stop()


def test_the_launcher_finds_the_data_dir_of_a_serve_command_line() -> None:
    from spacechat_plugin.launch import data_dir_argument

    assert data_dir_argument(["serve", "--port", "0", "--data-dir", "/srv/a"]) == "/srv/a"
    assert data_dir_argument(["serve", "--data-dir=/srv/b"]) == "/srv/b"
    assert data_dir_argument(["serve", "--data-dir"]) is None
    assert data_dir_argument(["migrate", "--data-dir", "/srv/a"]) is None
    assert data_dir_argument([]) is None
