"""The documented event contract matches the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from spacechat_plugin.events import Event, MessageStreamDelta, payload_types

DOCS = (Path(__file__).resolve().parent.parent / "docs" / "events.md").read_text()


@pytest.mark.parametrize("event_type", sorted(payload_types()))
def test_every_event_type_is_documented(event_type: str) -> None:
    assert f"### {event_type}\n" in DOCS
    cls = payload_types()[event_type]
    assert cls.__doc__ and cls.__doc__.startswith(f"{event_type}:")


def test_envelope_fields_are_documented() -> None:
    envelope = Event(MessageStreamDelta(message_id="m", offset=0, text="x")).envelope()
    for field in envelope:
        assert f"`{field}`" in DOCS


# Never in the log: stream deltas, and people's live state (issue 13). Each says so in its docs.
LIVE_ONLY = {"message.stream.delta", "notification.created", "presence.changed", "typing.changed"}


def test_only_the_documented_events_are_live_only() -> None:
    assert {name for name, cls in payload_types().items() if cls.live_only} == LIVE_ONLY
    for name in LIVE_ONLY:
        section = DOCS.split(f"### {name}\n", 1)[1].split("### ", 1)[0]
        assert "Live only" in section, name
