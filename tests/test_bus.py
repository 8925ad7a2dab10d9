"""The bus: encode once, fan out by cursor in shared runs, cut the laggard."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
from typing import Any

import pytest

from spacechat_plugin.events import Event, MessageStreamDelta, NotificationCreated, SystemHealthChanged, TaskCreated
from spacechat_plugin.realtime.bus import Bus, Lagged, Subscription, trim, ws_frame

pytestmark = pytest.mark.asyncio


def event(seq: int, channel: str | None = None) -> Event:
    return Event(SystemHealthChanged(component=f"c{seq}", status="ok"), org_id="org_a", channel_id=channel, seq=seq)


def seqs(runs: list) -> list[int | None]:  # type: ignore[type-arg]
    return [entry.seq for run in runs for entry in run.entries]


async def test_every_subscriber_gets_every_visible_event_in_order() -> None:
    bus = Bus(ring_size=64, max_lag=32)
    everyone = bus.subscribe(lambda item: True)
    nobody = bus.subscribe(lambda item: False)
    bus.publish([event(1), event(2)])
    bus.publish([event(3)])
    got = await everyone.next()
    assert seqs(got) == [1, 2, 3]
    assert got[0].sse.startswith(b"id: 1\ndata: {") and got[0].sse.count(b"\n\n") == 3
    assert got[0].entries[0].json is bus.entries_after(0)[0].json  # type: ignore[index]
    waiting = asyncio.create_task(nobody.next())
    await asyncio.sleep(0.01)
    assert not waiting.done(), "invisible events do not wake a subscriber with nothing to send"
    bus.tick()
    assert await waiting == []


async def test_runs_split_by_channel_and_class_and_are_shared() -> None:
    bus = Bus(ring_size=64, max_lag=32, classify=lambda kind: "task." if kind.startswith("task.") else "")
    first = bus.subscribe(lambda item: True)
    second = bus.subscribe(lambda item: True)
    delta = Event(MessageStreamDelta(message_id="m", offset=0, text="hi"), org_id="org_a", channel_id="a")
    task = Event(TaskCreated(task={}), org_id="org_a", channel_id="a", seq=4)
    bus.publish([event(1, "a"), event(2, "a"), delta, event(3, "b"), task])
    runs = await first.next()
    assert [(run.channel_id, run.event_type, len(run.entries)) for run in runs] == [
        ("a", "", 3),
        ("b", "", 1),
        ("a", "task.", 1),
    ]
    assert runs[0].first_seq == 1 and runs[0].last_seq == 2, "live-only deltas have no seq"
    shared = await second.next()
    assert all(mine is theirs for mine, theirs in zip(shared, runs, strict=True)), (
        "subscribers woken by the same publish share one view"
    )
    assert seqs([trim(runs[0], 1)]) == [2, None]
    assert trim(runs[1], 3) is None


async def test_a_stream_written_by_publish_skips_what_its_replay_sent() -> None:
    """The seam after a replay: events the replay already sent are not written again, whether
    a publish carries one run or several (publish's single-run shortcut included)."""
    bus = Bus(ring_size=64, max_lag=32)
    written: list[bytes] = []
    subscription = bus.subscribe(lambda item: item.channel_id != "secret")
    subscription.on_wake = lambda reason: None  # parked: publish writes to it

    def write(body: bytes) -> bool:
        written.append(body)
        return True

    subscription.direct = write
    subscription.sent = 2  # its replay read the log up to seq 2, which is also on the ring
    bus.publish([event(1), event(2), event(3)])  # one run: 1 and 2 cut, 3 written
    bus.publish([event(4)])
    bus.publish([event(5, "secret")])  # nothing it may see: its cursor moves on, nothing written
    bus.publish([event(6, "a"), event(7, "b")])  # two runs
    assert [frame.split(b"\n", 1)[0] for frame in written] == [b"id: 3", b"id: 4", b"id: 6"]
    assert written[-1].count(b"id: ") == 2 and b"id: 7\n" in written[-1]
    assert subscription.sent == 7 and subscription.pos == bus.head
    subscription.sent = 8  # a replay that got ahead of the ring: a whole run already sent
    bus.publish([event(8)])
    assert len(written) == 3 and subscription.pos == bus.head


async def test_runs_that_share_a_visibility_key_are_asked_about_once_and_kept_in_order() -> None:
    """A group commit alternates keys (a reply's message.created, a new thread's thread.created):
    publish asks each subscriber once per key, and writes what it may see in the log's order."""
    bus = Bus(ring_size=64, max_lag=32)
    asked: list[str] = []
    written: list[bytes] = []

    def visible(item: Any) -> bool:
        asked.append(str(item.channel_id))
        return not str(item.channel_id).startswith("secret")

    def write(body: bytes) -> bool:
        written.append(body)
        return True

    subscription = bus.subscribe(visible)
    subscription.on_wake, subscription.direct = (lambda reason: None), write
    channels = ["a", "secret", "a", "secret-2", "a", "secret"]
    bus.publish([event(seq, channel) for seq, channel in enumerate(channels, start=1)])
    assert sorted(asked) == ["a", "secret", "secret-2"], "once per key, not once per run"
    assert len(written) == 1 and [line for line in written[0].split(b"\n") if line.startswith(b"id:")] == [
        b"id: 1",
        b"id: 3",
        b"id: 5",
    ]
    bus.publish([event(seq, channel) for seq, channel in enumerate(["a", "b", "a", "b"], start=7)])
    assert written[-1].count(b"id: ") == 4 and written[-1].index(b"id: 7") < written[-1].index(b"id: 10")
    bus.publish([event(seq, channel) for seq, channel in enumerate(["secret", "secret-2", "secret"], start=11)])
    assert len(written) == 2 and subscription.pos == bus.head and subscription.sent == 10


async def test_a_subscriber_too_far_behind_is_cut() -> None:
    bus = Bus(ring_size=16, max_lag=5)
    slow = bus.subscribe(lambda item: True)
    fast = bus.subscribe(lambda item: True)
    for seq in range(1, 4):
        bus.publish([event(seq)])
        assert seqs(await fast.next()) == [seq]
    bus.publish([event(4), event(5)])
    assert not slow.lagged
    assert len(seqs(await fast.next())) == 2
    bus.publish([event(6)])
    assert slow.lagged and bus.lagged_total == 1
    with pytest.raises(Lagged):
        await slow.next()
    assert seqs(await fast.next()) == [6]


async def test_events_must_arrive_in_seq_order() -> None:
    bus = Bus(ring_size=16, max_lag=4)
    bus.publish([event(2)])
    with pytest.raises(AssertionError):
        bus.publish([event(1)])
    with pytest.raises(AssertionError):
        bus.publish(["not an event"])  # type: ignore[list-item]


async def test_an_idle_subscriber_with_a_direct_writer_is_written_to_without_waking() -> None:
    bus = Bus(ring_size=64, max_lag=32)
    written: list[bytes] = []
    open_now = [True]

    def write(body: bytes) -> bool:
        if open_now[0]:
            written.append(body)
        return open_now[0]

    sub = bus.subscribe(lambda item: item.channel_id != "secret")
    sub.sent = 2  # a replay already sent seqs 1 and 2
    sub.direct = write
    waiting = asyncio.create_task(sub.next())
    await asyncio.sleep(0)  # idle in next(): now publish may write directly
    bus.publish([event(1), event(2), event(3), event(4, "secret")])
    assert b"".join(written).count(b"\n\n") == 1 and written[0].startswith(b"id: 3\n"), (
        "only what is visible and not already replayed is written"
    )
    assert sub.sent == 3 and sub.pos == bus.head
    assert not waiting.done(), "a direct write does not wake the subscriber's task"

    open_now[0] = False  # back-pressure: the stream cannot take bytes now
    bus.publish([event(5)])
    assert len(written) == 1
    assert seqs(await waiting) == [5], "then the task is woken and sends them the usual way"


async def test_a_private_event_reaches_only_the_subscribers_named_after_what_the_ring_holds() -> None:
    bus = Bus(ring_size=64, max_lag=32)
    mine = bus.subscribe(lambda item: item.channel_id != "secret")
    theirs = bus.subscribe(lambda item: True)
    note = Event(NotificationCreated(reason="reply", message={}, channel_name="g", thread_title="t"), org_id="org_a")
    bus.publish([event(1)])
    assert bus.deliver_to([mine], note) == 1
    got = await mine.next()
    assert seqs(got) == [1, None] and got[1].entries[0].event_type == "notification.created", (
        "the ring's events first, then the private one"
    )
    assert seqs(await theirs.next()) == [1], "nobody else gets it"
    hidden = Event(note.payload, org_id="org_a", channel_id="secret")
    assert bus.deliver_to([mine], hidden) == 0, "the subscriber's own check still applies"
    assert mine.private == []


async def test_a_private_event_is_written_directly_to_an_idle_stream() -> None:
    bus = Bus(ring_size=64, max_lag=32)
    written: list[bytes] = []
    sub = bus.subscribe(lambda item: True)

    def write(body: bytes) -> bool:
        written.append(body)
        return True

    sub.direct = write
    waiting = asyncio.create_task(sub.next())
    await asyncio.sleep(0)
    assert not sub.beat_due(), "a heartbeat tick finds it idle: one is due at the next tick"
    note = Event(NotificationCreated(reason="dm", message={}, channel_name="g", thread_title="t"), org_id="org_a")
    bus.deliver_to([sub], note)
    assert len(written) == 1 and written[0].startswith(b"data: {") and b'"notification.created"' in written[0]
    assert not waiting.done()
    assert not sub.beat_due(), "written to since that tick: no heartbeat due"
    waiting.cancel()


async def test_a_spread_publish_reaches_everyone_once_and_before_what_follows_it() -> None:
    """Presence and typing are served a slice of subscribers per loop turn; a message published
    in between goes to everyone at once, each stream getting the ambient event first."""
    from spacechat_plugin.realtime.bus import SPREAD_SLICE

    bus = Bus(ring_size=64, max_lag=32)
    count = SPREAD_SLICE * 2 + 7
    written: list[list[bytes]] = [[] for _ in range(count)]
    waiting = []
    for i in range(count):
        sub = bus.subscribe(lambda item: True)
        sub.direct = lambda body, into=written[i]: into.append(body) is None  # taken: True
        waiting.append(asyncio.create_task(sub.next()))
    await asyncio.sleep(0)  # every subscriber idle in next()
    typing = Event(SystemHealthChanged(component="ambient-marker", status="ok"), org_id="org_a", channel_id="ch_1")
    bus.publish([typing], spread=True)
    served_at_once = sum(1 for w in written if w)
    assert served_at_once == SPREAD_SLICE, "one slice now, the rest on later loop turns"
    bus.publish([event(1, "ch_1")])  # a message arrives before the slices are done
    for w in written:
        frames = b"".join(w)
        assert frames.count(b"ambient-marker") == 1 and frames.count(b"id: 1\n") == 1
        assert frames.index(b"ambient-marker") < frames.index(b"id: 1\n"), "in publish order"
    for _ in range(5):
        await asyncio.sleep(0)  # the remaining slices run, and find everyone served
    assert all(b"".join(w).count(b"ambient-marker") == 1 for w in written), "nobody gets it twice"
    assert not any(task.done() for task in waiting), "all written directly, no task woken"
    for task in waiting:
        task.cancel()


async def test_heartbeats_go_to_idle_streams_only_and_never_hold_a_message_behind_them() -> None:
    """Ticks come twice per heartbeat interval. A stream written to since the tick before is sent
    no heartbeat; an idle one is sent one every other tick; so no stream is silent for longer
    than the interval. The host's keepalive (a WebSocket's ping) runs every other tick, busy or
    idle. A tick wakes a slice of streams per loop turn, and a message published meanwhile
    reaches every stream at once (5,000 heartbeats in one turn held it for ~100 ms)."""
    from spacechat_plugin.realtime.bus import SPREAD_SLICE
    from spacechat_plugin.realtime.parked import ParkedStream

    bus = Bus(ring_size=64, max_lag=32)
    count = SPREAD_SLICE * 2 + 7
    sockets = [FakeSocket() for _ in range(count)]
    pings: list[list[bool]] = [[] for _ in range(count)]
    for sock, pinged in zip(sockets, pings, strict=True):
        stream = ParkedStream(bus.subscribe(lambda item: True), lambda: None)
        stream.start(sock.write, sock.end, functools.partial(pinged.append, True))

    def beats(sock: FakeSocket) -> int:
        return sum(chunk.startswith(b"event: heartbeat\n") for chunk in sock.chunks)

    async def tick() -> None:
        bus.tick()
        for _ in range(count // SPREAD_SLICE + 2):
            await asyncio.sleep(0)  # the tick's remaining slices

    await tick()
    assert all(beats(sock) == 0 for sock in sockets), "just started (ready was written): not yet idle"
    bus.tick()
    first = [sock for sock in sockets if beats(sock)]
    assert len(first) == SPREAD_SLICE, "one slice now, the rest on later turns"
    rest = [sock for sock in sockets if not beats(sock)]
    bus.publish([event(1, "ch_1")])  # a message arrives before the slices are done
    assert all(b"id: 1\n" in sock.chunks[-1] for sock in sockets), "the message is not held behind the tick"
    for _ in range(count // SPREAD_SLICE + 2):
        await asyncio.sleep(0)
    assert all(beats(sock) == 1 for sock in first)
    assert all(beats(sock) == 0 for sock in rest), "written to since the tick before: no heartbeat due"
    await tick()  # `first` were written to since (the message); `rest` were idle since the tick before
    assert all(beats(sock) == 1 for sock in sockets)
    assert all(b"id: 1\n" in sock.chunks[-1] for sock in first)
    assert all(sock.chunks[-1].startswith(b"event: heartbeat\n") for sock in rest)
    assert all(sock.chunks[-1] is rest[0].chunks[-1] for sock in rest), "one heartbeat frame per tick"
    assert [len(p) for p in pings] == [1] * count, "three ticks: one keepalive"
    for _ in range(4):  # busy: a message between every two ticks
        bus.publish([event(bus.last_seq + 1, "ch_1")])
        await tick()
    assert all(beats(sock) == 1 for sock in sockets), "a busy stream is sent no heartbeat"
    assert [len(p) for p in pings] == [3] * count, "but its keepalive, every other tick"
    for expected in (2, 2, 3, 3):  # idle: every other tick, from the first tick that finds it idle
        await tick()
        assert all(beats(sock) == expected for sock in sockets)


class FakeSocket:
    """What a parked stream writes to: chunks while it takes bytes, False while full."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.full = False
        self.ended = False
        self.refused = 0  # writes tried while full

    def write(self, body: bytes) -> bool:
        if self.full:
            self.refused += 1
        if self.full or self.ended:
            return False
        self.chunks.append(body)
        return True

    def end(self) -> None:
        self.ended = True


async def test_a_parked_stream_is_served_by_the_bus_and_waits_out_back_pressure() -> None:
    """#16: a parked stream has no task; the bus's wakes and the socket's drain drive it."""
    from spacechat_plugin.realtime.parked import ParkedStream

    bus = Bus(ring_size=64, max_lag=4)
    subscription = bus.subscribe(lambda item: item.channel_id != "hidden")
    ended: list[bool] = []
    stream = ParkedStream(subscription, lambda: ended.append(True))
    socket = FakeSocket()
    bus.publish([event(1)])  # between `ready` and parking: sent when it parks
    stream.start(socket.write, socket.end)
    assert bus.parked == {"sse": 1, "ws": 0} and len(socket.chunks) == 1 and b"id: 1\n" in socket.chunks[0]
    bus.publish([event(2), event(3, "hidden")])
    assert b"id: 2\n" in socket.chunks[-1] and b"id: 3\n" not in b"".join(socket.chunks)
    bus.tick()
    assert b"id: 2\n" in socket.chunks[-1], "written to since the tick before: no heartbeat"
    bus.tick()
    assert socket.chunks[-1].startswith(b"event: heartbeat\n")
    socket.full = True
    bus.publish([event(4)])
    refused = socket.refused
    bus.publish([event(5)])
    assert len(socket.chunks) == 3, "nothing is written while the socket is full"
    assert refused > 0 and socket.refused == refused, "once found full, it is left alone until it drains"
    socket.full = False
    stream.drained()  # the host: the socket drained
    assert b"id: 4\n" in socket.chunks[-1] and b"id: 5\n" in socket.chunks[-1], "what waited, in one write"
    socket.full = True
    bus.publish([event(seq) for seq in range(6, 12)])  # more than max_lag behind: cut
    assert subscription.lagged and not socket.ended
    socket.full = False
    stream.drained()
    assert socket.chunks[-1] == b'event: lagged\ndata: {"resume_after":5}\n\n' and socket.ended
    await asyncio.sleep(0)  # unregistered on the loop's next turn, not while the bus walks its set
    assert ended == [True] and bus.parked == {"sse": 0, "ws": 0}


async def test_a_closed_parked_stream_ends_its_connection_and_a_lost_one_writes_nothing() -> None:
    from spacechat_plugin.realtime.parked import ParkedStream

    bus = Bus(ring_size=64, max_lag=32)
    first, second = bus.subscribe(lambda item: True), bus.subscribe(lambda item: True)
    ended: list[str] = []

    def on_end(name: str, subscription: Subscription) -> Callable[[], None]:
        def end() -> None:
            ended.append(name)
            bus.unsubscribe(subscription)

        return end

    closing = ParkedStream(first, on_end("closed", first))
    leaving = ParkedStream(second, on_end("lost", second))
    closing_socket, leaving_socket = FakeSocket(), FakeSocket()
    closing.start(closing_socket.write, closing_socket.end)
    leaving.start(leaving_socket.write, leaving_socket.end)
    first.close()  # access ended, or the server stops
    assert closing_socket.ended
    leaving.connection_lost()  # the client went away
    bus.publish([event(1)])
    assert leaving_socket.chunks == [] and not leaving_socket.ended
    await asyncio.sleep(0)
    assert sorted(ended) == ["closed", "lost"] and bus.subscriber_count == 0 and bus.parked == {"sse": 0, "ws": 0}


async def test_a_websocket_frame_is_the_websockets_librarys_own_serialisation() -> None:
    """The bus frames WebSocket messages itself (once per batch, for every parked WebSocket):
    byte for byte what the library sends for a text message with no extension."""
    from websockets.frames import Frame, Opcode

    for size in (0, 1, 125, 126, 127, 65535, 65536, 70_000):
        payload = b"x" * size
        assert ws_frame(payload) == Frame(Opcode.TEXT, payload).serialize(mask=False), size


def ws_messages(data: bytes) -> list[dict[str, Any]]:
    """What a WebSocket client reads from `data`: each text frame's JSON, by the library's parser
    (a client of an already open connection, which expects a server's unmasked frames)."""
    from websockets.client import ClientProtocol
    from websockets.frames import Frame, Opcode
    from websockets.protocol import OPEN
    from websockets.uri import parse_uri

    client = ClientProtocol(parse_uri("ws://localhost/"), state=OPEN)
    client.receive_data(data)
    frames = [frame for frame in client.events_received() if isinstance(frame, Frame)]
    assert all(frame.opcode is Opcode.TEXT and frame.fin for frame in frames)
    return [json.loads(bytes(frame.data)) for frame in frames]


async def test_parked_websockets_share_each_batchs_frames_and_keep_the_websocket_contract() -> None:
    """#16: a parked WebSocket is written text frames, one per envelope, and control messages
    `{"type": ...}`; the frames of a batch are made once and the same bytes object goes to every
    WebSocket that sees all of it (as SSE's join is shared among SSE streams); each
    heartbeat runs the host's keepalive (`beat`)."""
    from spacechat_plugin.realtime.bus import SSE, WS
    from spacechat_plugin.realtime.parked import ParkedStream

    bus = Bus(ring_size=64, max_lag=4)
    sockets = {name: FakeSocket() for name in ("ws_a", "ws_b", "sse")}
    streams: dict[str, ParkedStream] = {}
    beats: list[str] = []
    ended: list[str] = []
    for name, framing in (("ws_a", WS), ("ws_b", WS), ("sse", SSE)):
        streams[name] = ParkedStream(bus.subscribe(lambda item: True), functools.partial(ended.append, name), framing)
        streams[name].start(sockets[name].write, sockets[name].end, functools.partial(beats.append, name))
    assert bus.parked == {"sse": 1, "ws": 2}
    bus.publish([event(1, "ch_1"), event(2, "ch_2")])  # two runs: joined once per transport
    ws_a, ws_b, sse = sockets["ws_a"], sockets["ws_b"], sockets["sse"]
    assert ws_a.chunks[-1] is ws_b.chunks[-1], "one frames object for every WebSocket"
    assert [m["seq"] for m in ws_messages(ws_a.chunks[-1])] == [1, 2]
    assert sse.chunks[-1].startswith(b"id: 1\ndata: {") and b"id: 2\n" in sse.chunks[-1]
    bus.publish([event(3, "ch_1")])  # one run: its frames are kept on it and shared
    assert ws_a.chunks[-1] is ws_b.chunks[-1] and [m["seq"] for m in ws_messages(ws_a.chunks[-1])] == [3]
    bus.tick()
    assert [m["seq"] for m in ws_messages(ws_a.chunks[-1])] == [3], "written to since the tick before: no heartbeat"
    assert beats == [], "the keepalive runs every other tick (once per heartbeat interval)"
    bus.tick()
    assert [m["type"] for m in ws_messages(ws_a.chunks[-1])] == ["heartbeat"]
    assert sse.chunks[-1].startswith(b"event: heartbeat\n")
    assert sorted(beats) == ["sse", "ws_a", "ws_b"], "one keepalive beat per stream per heartbeat"
    ws_a.full = True
    bus.publish([event(4), event(5), event(6)])  # ws_a cannot take them; the others can
    bus.publish([event(7), event(8)])  # ws_a is now more than max_lag behind: cut
    assert [m["seq"] for m in ws_messages(ws_b.chunks[-1])] == [7, 8] and not ws_a.ended
    ws_a.full = False
    streams["ws_a"].serve()  # the host: the socket drained
    assert ws_messages(ws_a.chunks[-1]) == [{"type": "lagged", "resume_after": 3}] and ws_a.ended
    await asyncio.sleep(0)
    assert ended == ["ws_a"] and bus.parked == {"sse": 1, "ws": 1}


async def test_a_stream_whose_client_leaves_before_ready_gives_up_its_place() -> None:
    """Subscribed, then waiting to write `ready` to a client that takes nothing (or has left):
    ending the stream there unregisters it (it stayed on the bus, lag-checked by every publish,
    for the server's life)."""
    from spacechat_plugin.realtime.bus import SSE
    from spacechat_plugin.realtime.stream import run_stream
    from spacechat_plugin.realtime.streams import Streams

    class Stuck:
        framing = SSE
        stalled = False
        reached = asyncio.Event()

        async def events(self, items: Any) -> None:
            raise AssertionError("nothing to replay: the stream starts live")

        async def runs(self, runs: Any) -> None:
            raise AssertionError("never live")

        async def control(self, name: str, data: dict[str, Any], seq: int | None = None) -> None:
            self.reached.set()
            await asyncio.Event().wait()  # a socket that never drains

        def direct(self) -> None:
            return None

        def park(self) -> None:
            return None

    streams = Streams(Bus(ring_size=64, max_lag=32))
    sink = Stuck()
    ended: list[bool] = []
    no_store: Any = None  # no cursor: nothing is read from the store before subscribing
    task = asyncio.ensure_future(
        run_stream(no_store, streams, ["cred"], lambda item: True, None, sink, lambda: ended.append(True))
    )
    await sink.reached.wait()
    assert streams.bus.subscriber_count == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert streams.bus.subscriber_count == 0 and ended == [True]
