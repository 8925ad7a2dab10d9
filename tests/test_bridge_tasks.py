"""Spacebot's tasks through the bridge: its task events as hooks (with the task, the revision and
the comment read back from its routes), HostAPI.task_action on its routes, and end to end: the
tasks mirrored on Spacechat's board, approved in Spacechat through to Spacebot, a refusal as a
502 naming Spacebot's answer, comments and revisions on the task, a deletion."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from spacechat_plugin.hookspecs import HostRefused

from .fake_spacebot import FakeSpacebot
from .support import Server, toml_config
from .test_bridge import TOKEN, Bridged, make_host, until


@pytest.fixture
async def fake() -> AsyncIterator[FakeSpacebot]:
    server = await FakeSpacebot(TOKEN, ping_seconds=0.1).start()
    yield server
    await server.stop()


@pytest.fixture
async def bridged(tmp_path: Path, fake: FakeSpacebot) -> AsyncIterator[Bridged]:
    host, recorder, _ = make_host(tmp_path, fake.url)
    await host.start()
    await recorder.wait_for("spacebot_connector_status")
    yield host, recorder, fake
    await host.stop()


# -- the host -------------------------------------------------------------------------------


async def test_hook_task_updated_revised_and_commented(bridged: Bridged) -> None:
    host, recorder, fake = bridged
    task = fake.tasks.create("Ship it")
    first = (await recorder.wait_for("spacebot_task_updated"))[0]
    assert first == {
        "agent_id": "spacebot",
        "task_number": 1,
        "status": "pending_approval",
        "action": "created",
        "task": task,
    }
    fake.tasks.set_status(1, "backlog")
    revised = (await recorder.wait_for("spacebot_task_revised"))[0]
    assert (revised["task_number"], revised["revision"], revised["restored_from"]) == (1, 2, None)
    assert revised["summary"]["author_type"] == "agent" and revised["summary"]["edit_summary"] == "Status changed"
    assert "snapshot" not in revised["summary"]
    comment = fake.tasks.add_comment(1, "Blocked on the release notes.")
    commented = (await recorder.wait_for("spacebot_task_commented"))[0]
    assert commented == {"agent_id": "spacebot", "task_number": 1, "comment": comment}
    fake.tasks.tasks[1]["status"] = "done"  # seen by the next fetch
    fake.emit("task_updated", agent_id="spacebot", task_number=1, status="done", action="updated")
    await recorder.wait_for("spacebot_task_updated", count=3)
    deleted = await host.task_action(source="spacebot", number=1, action="approve", actor={"name": "Ada"}, changes={})
    assert deleted["task"]["status"] == "ready"  # done -> ready: Spacebot allows it
    routes = [(method, path) for method, path, _ in fake.tasks.requests if method != "GET"]
    assert routes == [("POST", "/api/tasks/1/approve")]


async def test_a_deleted_task_carries_its_last_copy(bridged: Bridged) -> None:
    _, recorder, fake = bridged
    fake.tasks.create("Ship it")
    await recorder.wait_for("spacebot_task_updated")
    fake.emit("task_updated", agent_id="spacebot", task_number=1, status="deleted", action="deleted")
    deleted = (await recorder.wait_for("spacebot_task_updated", count=2))[1]
    assert (deleted["action"], deleted["status"], deleted["task"]["title"]) == ("deleted", "deleted", "Ship it")
    gets = [path for method, path, _ in fake.tasks.requests if method == "GET"]
    assert gets == ["/api/tasks/1"], "a deleted task is not fetched"


async def test_task_action_uses_spacebots_routes_and_its_refusals(bridged: Bridged) -> None:
    host, _, fake = bridged
    fake.tasks.create("Ship it")
    ada = {"kind": "user", "id": "usr_1", "name": "Ada"}
    with pytest.raises(HostRefused) as refused:
        await host.task_action(source="spacebot", number=1, action="reopen", actor=ada, changes={})
    assert (refused.value.status, refused.value.answer) == (409, "task #1 is pending approval")
    approved = await host.task_action(source="spacebot", number=1, action="approve", actor=ada, changes={})
    assert approved["task"]["status"] == "ready" and approved["task"]["approved_by"] == "Ada"
    with pytest.raises(
        HostRefused, match=r"Spacebot refused \(HTTP 400\): invalid task status transition: ready -> done"
    ):
        await host.task_action(source="spacebot", number=1, action="complete", actor=ada, changes={})
    await host.task_action(source="spacebot", number=1, action="assign", actor=ada, changes={"assignee_id": "helper"})
    await host.task_action(source="spacebot", number=1, action="edit", actor=ada, changes={"title": "Ship it now"})
    said = await host.task_action(source="spacebot", number=1, action="comment", actor=ada, changes={"text": "On it."})
    assert said["comment"]["body"] == "On it." and said["comment"]["author_type"] == "user"
    with pytest.raises(HostRefused, match="must be at least 4 characters"):
        await host.task_action(source="spacebot", number=1, action="comment", actor=ada, changes={"text": "ok"})
    with pytest.raises(LookupError):
        await host.task_action(source="jira", number=1, action="approve", actor=ada, changes={})
    writes = [(m, p, b) for m, p, b in fake.tasks.requests if m != "GET"]
    assert [(m, p) for m, p, _ in writes] == [
        ("POST", "/api/tasks/1/execute"),
        ("POST", "/api/tasks/1/approve"),
        ("PUT", "/api/tasks/1"),
        ("POST", "/api/tasks/1/assign"),
        ("PUT", "/api/tasks/1"),
        ("POST", "/api/tasks/1/comments"),
        ("POST", "/api/tasks/1/comments"),
    ]
    assert writes[1][2] == {"author_type": "user", "author_id": "Ada", "source": "api", "approved_by": "Ada"}
    assert (writes[2][2] or {})["status"] == "done" and (writes[3][2] or {})["assigned_agent_id"] == "helper"
    assert fake.tasks.tasks[1]["title"] == "Ship it now" and fake.tasks.tasks[1]["assigned_agent_id"] == "helper"
    await fake.stop()
    with pytest.raises(HostRefused, match="unreachable"):
        await host.task_action(source="spacebot", number=1, action="approve", actor=ada, changes={})


async def test_the_embedded_host_has_no_foreign_tasks(tmp_path: Path) -> None:
    from spacechat_plugin.config import load_settings
    from spacechat_plugin.host.embedded.host import EmbeddedHost
    from spacechat_plugin.host.server import plugin_manager

    raw = {"enabled": True, "data_dir": str(tmp_path), "providers": {"s": {"kind": "scripted"}}}
    host = EmbeddedHost(load_settings(environ={}, overrides=raw), plugin_manager(), raw)
    with pytest.raises(LookupError, match="embedded host has no 'spacebot' tasks"):
        await host.task_action(source="spacebot", number=1, action="approve", actor={}, changes={})


# -- end to end -----------------------------------------------------------------------------


async def board(client: httpx.AsyncClient, number: int) -> dict[str, Any] | None:
    tasks = (await client.get("/v1/tasks")).json()["tasks"]
    return next((t for t in tasks if (t["source"] or {}).get("number") == number), None)


async def eventually(client: httpx.AsyncClient, number: int, predicate: Any, timeout: float = 10) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            task = await board(client, number)
            if task is not None and predicate(task):
                return task
            await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_spacebot_tasks_on_the_board_approved_through_to_spacebot(tmp_path: Path, fake: FakeSpacebot) -> None:
    config = toml_config(runtime={"mode": "bridge"}, bridge={"url": fake.url, "token": TOKEN, "poll_seconds": 0.3})
    server = Server(tmp_path / "data", config)
    await asyncio.to_thread(server.start)
    try:
        async with server.client() as client:
            await until(lambda: fake.listeners > 0, timeout=15)
            fake.tasks.create("Ship the release", description="Tag and publish")
            task = await eventually(client, 1, lambda t: True)
            assert task["status"] == "pending_approval" and task["title"] == "Ship the release"
            assert task["source"] == {"kind": "spacebot", "number": 1, "revision": 1}
            assert task["assignee_id"] == "spacebot" and task["description"] == "Tag and publish"
            # a card in the agent's home channel, with Spacechat's approval buttons
            spacebot = next(
                c["id"] for c in (await client.get("/v1/channels")).json()["channels"] if c["name"] == "spacebot"
            )
            assert task["channel_id"] == spacebot

            # approved in Spacechat: Spacebot's approve route, and Spacebot's answer on the board
            approved = await client.post(f"/v1/tasks/{task['id']}/actions/approve")
            assert approved.status_code == 200, approved.text
            assert approved.json()["task"]["status"] == "ready"
            assert ("POST", "/api/tasks/1/approve") in [(m, p) for m, p, _ in fake.tasks.requests]
            assert fake.tasks.tasks[1]["status"] == "ready"
            assert fake.tasks.tasks[1]["approved_by"] == server.owner["name"]

            # Spacebot stays the source of truth: its own move shows, without Spacechat's rules
            fake.tasks.set_status(1, "in_progress")
            await eventually(client, 1, lambda t: t["status"] == "in_progress")
            fake.tasks.set_status(1, "failed")
            await eventually(client, 1, lambda t: t["status"] == "failed")

            # a refusal is a 502 naming Spacebot's answer, and nothing changes here
            refused = await client.post(f"/v1/tasks/{task['id']}/actions/start")
            assert refused.status_code == 502
            error = refused.json()["error"]
            assert error["code"] == "host_refused"
            assert (
                error["message"] == "Spacebot refused (HTTP 400): invalid task status transition: failed -> in_progress"
            )
            assert (await board(client, 1) or {})["status"] == "failed"

            # comments both ways, each shown once; revisions in the history
            said = await client.post(f"/v1/tasks/{task['id']}/comments", json={"text": "Retrying after lunch."})
            assert said.status_code == 201, said.text
            fake.tasks.add_comment(1, "The build server is back.")
            # Spacebot's events come in order: once a later comment shows, an echo of the earlier
            # ones (or a second copy) would have shown too.
            fake.tasks.add_comment(1, "Marker comment.")
            async with asyncio.timeout(10):
                while True:
                    comments = (await client.get(f"/v1/tasks/{task['id']}/comments")).json()["comments"]
                    if comments and comments[-1]["text"] == "Marker comment.":
                        break
                    await asyncio.sleep(0.05)
            assert [c["text"] for c in comments] == [
                "Retrying after lunch.",
                "The build server is back.",
                "Marker comment.",
            ]
            assert fake.tasks.comments[1][0]["author_id"] == server.owner["name"]
            short = await client.post(f"/v1/tasks/{task['id']}/comments", json={"text": "ok"})
            assert short.status_code == 502 and "at least 4 characters" in short.json()["error"]["message"]
            history = (await client.get(f"/v1/tasks/{task['id']}/history")).json()["history"]
            revisions = [h for h in history if h["kind"] == "revision"]
            assert [h["details"]["revision"] for h in revisions] == [2, 3, 4]
            assert "Approved" in revisions[0]["text"] or "approve" in revisions[0]["text"].lower()

            # deleted in Spacebot: off the board
            deleted = await client.delete(f"{fake.url}/api/tasks/1", headers={"Authorization": f"Bearer {TOKEN}"})
            assert deleted.status_code == 200
            async with asyncio.timeout(10):
                while await board(client, 1) is not None:
                    await asyncio.sleep(0.05)
            kept = (await client.get(f"/v1/tasks/{task['id']}")).json()["task"]
            assert kept["deleted_at"] is not None and kept["status"] == "failed"
    finally:
        await asyncio.to_thread(server.stop)
