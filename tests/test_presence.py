"""Presence and typing (issue 13): live-only, coalesced, scoped like every event."""

from __future__ import annotations

import httpx

from spacechat_plugin.events import Event
from spacechat_plugin.presence.service import Presence

from .listen import Listener, Predicate
from .support import Server, invite, other_org_owner, several_workers

# --- the service on its own ---------------------------------------------------------------------

CHANNEL = {"id": "ch_1", "org_id": "org_1", "team_id": "team_1"}


def test_typing_is_sent_once_per_change_however_often_it_is_reported() -> None:
    sent: list[Event] = []
    presence = Presence(sent.extend, typing_ttl=5)
    for _ in range(20):  # a client reporting every keystroke would still cost one event
        presence.typing("usr_a", CHANNEL, "th_1", True)
    presence.flush(now=0)
    presence.typing("usr_b", CHANNEL, "th_1", True)
    presence.typing("usr_a", CHANNEL, "th_1", True)
    presence.flush(now=1)
    presence.flush(now=2)  # nothing changed: nothing sent
    presence.typing("usr_a", CHANNEL, "th_1", False)
    presence.flush(now=3)
    presence.flush(now=10**9)  # usr_b's report lapsed
    assert [e.payload.users for e in sent] == [["usr_a"], ["usr_a", "usr_b"], ["usr_b"], []]  # type: ignore[attr-defined]
    assert all(e.live_only and e.thread_id == "th_1" and e.channel_id == "ch_1" for e in sent)


def test_presence_follows_streams_and_what_pages_report() -> None:
    sent: list[Event] = []
    presence = Presence(sent.extend)
    presence.connected("usr_a", "org_1", "ses_1")
    presence.connected("usr_a", "org_1", "ses_2")
    presence.flush()
    presence.report("usr_a", "org_1", "ses_1", "away")
    presence.flush()  # still active on the other device: nothing to say
    presence.report("usr_a", "org_1", "ses_2", "away")
    presence.flush()
    presence.report("usr_a", "org_1", "ses_2", "active")
    presence.disconnected("usr_a", "ses_2")
    presence.disconnected("usr_a", "ses_1")
    presence.flush()  # back and gone within one tick: they were away, and are
    assert [e.payload.users for e in sent] == [{"usr_a": "active"}, {"usr_a": "away"}]  # type: ignore[attr-defined]
    assert presence.snapshot("org_1") == {} and presence.people == {}


def test_gateways_share_who_is_active_and_typing_and_forget_a_silent_one() -> None:
    """Issue 17: each gateway sends its streams the whole picture, its part and the others'."""
    from spacechat_plugin.presence.service import SYNC_TICKS

    sent: dict[str, list[Event]] = {"a": [], "b": []}
    gateways = {name: Presence(sent[name].extend, typing_ttl=60) for name in ("a", "b")}
    alive = {"a", "b"}
    dropped: list[str] = []  # the bus loses what a gateway says while its name is in here
    for name, presence in gateways.items():
        other = gateways["b" if name == "a" else "a"]
        presence.gateway_id = name
        presence.alive = lambda: set(alive)
        presence.share = lambda kind, data, other=other, name=name: None if name in dropped else other.heard(data)

    def tick(now: float) -> None:
        for presence in gateways.values():
            presence.flush(now=now)

    def last_presence(name: str) -> dict[str, str]:
        return next(e.payload.users for e in reversed(sent[name]) if e.event_type == "presence.changed")  # type: ignore[attr-defined]

    def last_typing(name: str) -> list[str]:
        return next(e.payload.users for e in reversed(sent[name]) if e.event_type == "typing.changed")  # type: ignore[attr-defined]

    a, b = gateways["a"], gateways["b"]
    a.connected("usr_u", "org_1", "ses_1")  # u's stream is on A, v's on B
    b.connected("usr_v", "org_1", "ses_2")
    a.typing("usr_u", CHANNEL, "th_1", True)
    b.typing("usr_v", CHANNEL, "th_1", True)
    tick(1)
    tick(2)  # what each said at the first tick is in the other's second
    assert a.snapshot("org_1") == b.snapshot("org_1") == {"usr_u": "active", "usr_v": "active"}
    assert last_typing("a") == last_typing("b") == ["usr_u", "usr_v"], "one set, not one per gateway"

    # A message A's bus lost is made good by the next full sync.
    dropped.append("a")
    a.report("usr_u", "org_1", "ses_1", "away")
    tick(3)
    dropped.clear()
    assert b.snapshot("org_1") == {"usr_u": "active", "usr_v": "active"}
    for now in range(4, 4 + SYNC_TICKS):
        tick(now)
    assert b.snapshot("org_1") == {"usr_v": "active"} and last_presence("b") == {"usr_u": "away"}

    # A goes silent (killed, or cut off from the bus): what it carried is forgotten on B.
    a.report("usr_u", "org_1", "ses_1", "active")
    tick(20)
    tick(21)
    assert b.snapshot("org_1") == {"usr_u": "active", "usr_v": "active"}
    alive.discard("a")
    tick(22)
    assert b.snapshot("org_1") == {"usr_v": "active"}
    assert last_typing("b") == ["usr_v"]


# --- over HTTP and the realtime stream -------------------------------------------------------------


async def test_presence_reaches_the_organisation_only(server: Server) -> None:
    watcher = invite(server, server.token, "member", name="Wanda Watcher")
    mover = invite(server, server.token, "member", name="Max Mover")
    outsider = other_org_owner(server)

    def changed(user_id: str, status: str) -> Predicate:
        return lambda e: e["event_type"] == "presence.changed" and e["payload"]["users"].get(user_id) == status

    async with Listener(server, watcher.auth) as watching, Listener(server, outsider.auth) as outside:
        async with Listener(server, mover.auth):
            await watching.wait_for(changed(mover.id, "active"))
            async with httpx.AsyncClient(base_url=server.url, headers=watcher.auth, timeout=30) as client:
                assert mover.id in (await client.get("/v1/presence")).json()["users"]
            at = watching.mark()
            async with httpx.AsyncClient(base_url=server.url, headers=mover.auth, timeout=30) as client:
                answer = await client.post("/v1/me/presence", json={"status": "away"})
                # The answer is the status as the process that took it knows it: with several
                # workers the stream may be on another, which hears of the report over the bus.
                assert answer.json() == {"status": "away"} or several_workers()
                assert (await client.post("/v1/me/presence", json={"status": "gone"})).status_code == 400
            await watching.wait_for(changed(mover.id, "away"), after=at)
            at = watching.mark()
            async with httpx.AsyncClient(base_url=server.url, headers=mover.auth, timeout=30) as client:
                await client.post("/v1/me/presence", json={"status": "active"})
            await watching.wait_for(changed(mover.id, "active"), after=at)
            at = watching.mark()
        # Gone (the stream closed): away again.
        await watching.wait_for(changed(mover.id, "away"), after=at)
        assert all(mover.id not in e["payload"]["users"] for e in outside.of_type("presence.changed"))
        assert all(e["seq"] is None for e in watching.of_type("presence.changed"))


async def test_typing_reaches_channel_readers_and_stops_when_the_message_is_sent(server: Server) -> None:
    typist = invite(server, server.token, "member", name="Tina Typist")
    reader = invite(server, server.token, "member", name="Rita Reader")
    guest = invite(server, server.token, "guest", name="Gus Guest")  # in no channel: sees none of it
    general = server.channel_id("general")
    async with httpx.AsyncClient(base_url=server.url, headers=typist.auth, timeout=30) as client:
        root = (await client.post(f"/v1/channels/{general}/messages", json={"text": "Standup notes"})).json()
        thread_id = root["thread"]["id"]
        async with Listener(server, reader.auth) as reading, Listener(server, guest.auth) as guesting:
            for _ in range(3):
                answer = await client.post(f"/v1/channels/{general}/typing", json={"thread_id": thread_id})
                assert answer.status_code == 204
            started = await reading.wait_for(lambda e: e["event_type"] == "typing.changed")
            assert started["payload"]["users"] == [typist.id] and started["thread_id"] == thread_id
            await client.post(f"/v1/threads/{thread_id}/messages", json={"text": "Shipped the fix"})
            await reading.wait_for(lambda e: e["event_type"] == "typing.changed" and e["payload"]["users"] == [])
            assert len(reading.of_type("typing.changed")) == 2, "three reports, one start, one stop"
            assert guesting.of_type("typing.changed") == []
        # A thread of another channel is not this channel's.
        ops = server.channel_id("ops")
        wrong = await client.post(f"/v1/channels/{ops}/typing", json={"thread_id": thread_id})
        assert wrong.status_code == 404
