"""The ready-made hook plugins in hooks/, end to end with the embedded host over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .support import Server, invite, toml_config, wait_for_message

CONFIG = toml_config(
    top='hook_plugins = ["task_approval", "tool_approval", "worker_failure"]',
    hooks__tool_approval={"tools": ["restart_service"]},
)


@pytest.fixture
def hooked(tmp_path: Path) -> Iterator[Server]:
    server = Server(tmp_path / "data", CONFIG).start()
    yield server
    server.stop()


def approval_card(server: Server, thread_id: str) -> dict[str, object]:
    return wait_for_message(server, thread_id, lambda m: bool(m["blocks"]) and m["blocks"][0]["type"] == "tool_run")


def said(message: dict[str, Any]) -> bool:
    """An agent's finished reply with something to say (not a card; not a first message whose
    reply went on below a card, issue 13)."""
    return (
        message["author"]["kind"] == "agent"
        and not message["blocks"]
        and message["state"] == "completed"
        and not message["metadata"].get("continued_in")
    )


def click(server: Server, headers: dict[str, str], message_id: str, action_id: str) -> httpx.Response:
    with httpx.Client(base_url=server.url, headers=headers) as client:
        return client.post("/v1/interactions", json={"message_id": message_id, "action_id": action_id})


def test_tool_approval_holds_the_call_until_approved(hooked: Server) -> None:
    spacebot = hooked.channel_id("spacebot")
    member = invite(hooked, hooked.token, "member")
    with httpx.Client(base_url=hooked.url, headers=hooked.auth) as client:
        thread_id = client.post(f"/v1/channels/{spacebot}/messages", json={"text": "please restart billing"}).json()[
            "thread"
        ]["id"]
    card = approval_card(hooked, thread_id)
    reply = wait_for_message(hooked, thread_id, lambda m: m["author"]["kind"] == "agent" and not m["blocks"])
    assert reply["state"] in ("created", "streaming"), "the turn stays alive while it waits"
    refused = click(hooked, member.auth, str(card["id"]), "tool.approve")
    assert refused.status_code == 403, "approving needs tasks:approve"
    assert click(hooked, hooked.auth, str(card["id"]), "tool.approve").status_code == 201
    # The reply goes on below the card (issue 13): its first message hands over to a newer one.
    done = wait_for_message(
        hooked, thread_id, lambda m: m.get("metadata", {}).get("continues") == reply["id"] and m["state"] == "completed"
    )
    assert "restart of billing requested" in done["text"] and done["seq"] > int(str(card["seq"]))
    # The card settled at once ("Approved"), then the plugin said who decided.
    decided = wait_for_message(
        hooked, thread_id, lambda m: m["id"] == card["id"] and " by " in str(m["card_state"]["decided"]["decision"])
    )
    assert decided["card_state"]["decided"]["decision"]["label"].startswith("Approved by")
    again = click(hooked, hooked.auth, str(card["id"]), "tool.deny")
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_decided"


def test_a_waiting_approval_does_not_hold_up_the_channels_other_threads(hooked: Server) -> None:
    spacebot = hooked.channel_id("spacebot")
    with httpx.Client(base_url=hooked.url, headers=hooked.auth) as client:
        waiting = client.post(f"/v1/channels/{spacebot}/messages", json={"text": "restart billing"}).json()["thread"][
            "id"
        ]
        card = approval_card(hooked, waiting)
        # Another thread of the same channel is answered while the approval waits.
        other = client.post(f"/v1/channels/{spacebot}/messages", json={"text": "hello there"}).json()["thread"]["id"]
        answered = wait_for_message(
            hooked, other, lambda m: m["author"]["kind"] == "agent" and m["state"] == "completed"
        )
        assert answered["text"]
        # A follow-up in the waiting thread waits for that thread's turn to end: turns of one
        # thread never overlap.
        client.post(f"/v1/threads/{waiting}/messages", json={"text": "and then say hi"})
        reply = wait_for_message(hooked, waiting, lambda m: m["author"]["kind"] == "agent" and not m["blocks"])
        history = client.get(f"/v1/threads/{waiting}/history", params={"limit": 50}).json()["messages"]
        agent_replies = [m for m in history if m["author"]["kind"] == "agent" and not m["blocks"]]
        assert [m["id"] for m in agent_replies] == [reply["id"]], "no second turn while the first waits"
        assert reply["state"] in ("created", "streaming")
    assert click(hooked, hooked.auth, str(card["id"]), "tool.approve").status_code == 201
    # The approved turn goes on below its card (issue 13), in the message its first one hands over to.
    first = wait_for_message(
        hooked, waiting, lambda m: m["metadata"].get("continues") == reply["id"] and m["state"] == "completed"
    )
    assert "restart of billing requested" in first["text"] and first["seq"] > int(str(card["seq"]))
    second = wait_for_message(
        hooked,
        waiting,
        lambda m: (
            m["author"]["kind"] == "agent"
            and not m["blocks"]
            and m["id"] not in (reply["id"], first["id"])
            and m["state"] == "completed"
        ),
    )
    assert second["seq"] > first["seq"], "the held follow-up ran after the approved turn"


def test_an_approved_card_is_not_followed_by_the_agents_own_permission_prompt(tmp_path: Path) -> None:
    # The same tool is sensitive for the tool-approval hook and in the agent's permission_tools:
    # people approve it once.
    config = toml_config(
        """
[[agents]]
id = "spacebot"
name = "Spacebot"
provider = "scripted"
channels = ["spacebot"]
permission_tools = ["restart_service"]
""",
        top='hook_plugins = ["tool_approval"]',
        hooks__tool_approval={"tools": ["restart_service"]},
    )
    server = Server(tmp_path / "data", config).start()
    try:
        spacebot = server.channel_id("spacebot")
        with httpx.Client(base_url=server.url, headers=server.auth) as client:
            thread_id = client.post(f"/v1/channels/{spacebot}/messages", json={"text": "restart billing"}).json()[
                "thread"
            ]["id"]
            card = approval_card(server, thread_id)
            assert click(server, server.auth, str(card["id"]), "tool.approve").status_code == 201
            done = wait_for_message(server, thread_id, said)
            assert "restart of billing requested" in done["text"]
            history = client.get(f"/v1/threads/{thread_id}/history", params={"limit": 50}).json()["messages"]
            cards = [m for m in history if m["blocks"]]
            assert [m["id"] for m in cards] == [card["id"]], "one approval, no second prompt"
    finally:
        server.stop()


def test_tool_approval_deny_skips_the_call(hooked: Server) -> None:
    spacebot = hooked.channel_id("spacebot")
    with httpx.Client(base_url=hooked.url, headers=hooked.auth) as client:
        thread_id = client.post(f"/v1/channels/{spacebot}/messages", json={"text": "restart payments"}).json()[
            "thread"
        ]["id"]
    card = approval_card(hooked, thread_id)
    assert click(hooked, hooked.auth, str(card["id"]), "tool.deny").status_code == 201
    done = wait_for_message(hooked, thread_id, said)
    assert "I could not use restart_service: Tool denied" in done["text"]
    assert "restart of payments requested" not in done["text"]


def test_a_pending_approval_survives_a_restart(hooked: Server) -> None:
    spacebot = hooked.channel_id("spacebot")
    with httpx.Client(base_url=hooked.url, headers=hooked.auth) as client:
        thread_id = client.post(f"/v1/channels/{spacebot}/messages", json={"text": "restart search"}).json()["thread"][
            "id"
        ]
    card = approval_card(hooked, thread_id)
    hooked.restart()
    interrupted = wait_for_message(hooked, thread_id, lambda m: m["author"]["kind"] == "agent" and not m["blocks"])
    assert interrupted["failure_reason"] == "interrupted"
    assert click(hooked, hooked.auth, str(card["id"]), "tool.approve").status_code == 201
    resumed = wait_for_message(hooked, thread_id, said)
    assert "restart of search requested" in resumed["text"]


def test_task_approval_card_in_ops(hooked: Server) -> None:
    ops = hooked.channel_id("ops")
    operator = invite(hooked, hooked.token, "operator")
    with httpx.Client(base_url=hooked.url, headers=hooked.auth) as client:
        task = client.post("/v1/tasks", json={"title": "Buy GPUs", "status": "pending_approval"}).json()["task"]
        threads = client.get(f"/v1/channels/{ops}/threads").json()["threads"]
        card = client.get(f"/v1/threads/{threads[0]['id']}").json()["root"]
    assert card["blocks"][0]["task_id"] == task["id"]
    assert [e["action_id"] for e in card["blocks"][1]["elements"]] == ["task.approve", "task.reject"]
    assert click(hooked, operator.auth, card["id"], "task.approve").status_code == 201
    with httpx.Client(base_url=hooked.url, headers=hooked.auth) as client:
        assert client.get(f"/v1/tasks/{task['id']}").json()["task"]["status"] == "ready"
        card = client.get(f"/v1/messages/{card['id']}").json()["message"]
    assert card["card_state"]["tasks"][task["id"]]["status"] == "ready"
    assert card["card_state"]["decided"]["approval"]["label"] == "Approved"


def test_worker_failure_posts_an_incident_with_retry(hooked: Server) -> None:
    spacebot = hooked.channel_id("spacebot")
    incidents = hooked.channel_id("incidents")
    member = invite(hooked, hooked.token, "member")
    with httpx.Client(base_url=hooked.url, headers=hooked.auth) as client:
        thread_id = client.post(f"/v1/channels/{spacebot}/messages", json={"text": "calculate 1 / 0"}).json()["thread"][
            "id"
        ]
        wait_for_message(hooked, thread_id, lambda m: m["author"]["kind"] == "agent" and m["state"] == "completed")
        threads = client.get(f"/v1/channels/{incidents}/threads").json()["threads"]
        card = client.get(f"/v1/threads/{threads[0]['id']}").json()["root"]
    assert card["blocks"][0]["type"] == "status" and card["blocks"][0]["state"] == "error"
    assert "division by zero" in card["blocks"][1]["text"]
    assert card["card_state"]["incident"]["kind"] == "worker_failure"
    first_reply = history_first(hooked, thread_id)
    assert click(hooked, member.auth, card["id"], "ops.retry").status_code == 403
    assert click(hooked, hooked.auth, card["id"], "ops.retry").status_code == 201
    wait_for_message(
        hooked,
        thread_id,
        lambda m: m["author"]["kind"] == "agent" and m["state"] == "completed" and m["id"] != first_reply,
    )
    with httpx.Client(base_url=hooked.url, headers=hooked.auth) as client:
        history = client.get(f"/v1/threads/{thread_id}/history").json()["messages"]
        audit = client.get("/v1/audit", params={"action": "ops.retry"}).json()["entries"]
    assert len([m for m in history if m["author"]["kind"] == "agent"]) == 2, "the retry ran the turn again"
    assert audit and audit[0]["outcome"] == "ok" and audit[0]["details"]["reason"].startswith("retry from incident")


def test_each_plugin_implements_what_it_says() -> None:
    import importlib.util

    from spacechat_plugin.resources import resource

    expected = {
        "task_approval": {"spacechat_task_changed"},
        "tool_approval": {"spacechat_ready", "spacebot_before_tool_call"},
        "worker_failure": {"spacechat_ready", "spacebot_worker_completed"},
    }
    for name, hooks in expected.items():
        spec = importlib.util.spec_from_file_location(f"check_{name}", resource("hooks") / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert {n for n in dir(module) if n.startswith(("spacebot_", "spacechat_"))} == hooks, name


def history_first(server: Server, thread_id: str) -> str:
    """The first agent reply of a thread."""
    with httpx.Client(base_url=server.url, headers=server.auth) as client:
        history = client.get(f"/v1/threads/{thread_id}/history").json()["messages"]
    return str(next(m["id"] for m in history if m["author"]["kind"] == "agent"))
