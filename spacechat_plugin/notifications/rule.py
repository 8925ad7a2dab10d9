"""The notification rule: whether a person should hear about a message, and why.

Keyed on what a message says about itself (its `mentions`, the kind of its channel) and on the
person's relation to its thread, as Slack, Zulip and Mattermost do:

- `mention`: the message mentions the person (its `mentions` list);
- `dm`: it was posted in a direct conversation the person is in (a channel of kind `dm`);
- `reply`: it is a reply in a thread the person started or replied to;
- `message`: anything else in a channel whose level the person set to `all`.

Levels, per person and channel: `all`, `mentions` (the default: the first three reasons) and
`muted` (nothing at all: a muted channel notifies about nothing, mentions included; unread
counts and the inbox still show what came). Nobody hears about their own messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LEVELS: tuple[str, ...] = ("all", "mentions", "muted")
DEFAULT_LEVEL = "mentions"
EXCERPT_CHARS = 200


def mentioned(message: Mapping[str, Any]) -> set[str]:
    """The ids a message mentions: its `mentions` list, of ids or of `{id}` / `{user_id}` objects."""
    found: set[str] = set()
    for item in message.get("mentions") or ():
        if isinstance(item, str):
            found.add(item)
        elif isinstance(item, Mapping):
            value = item.get("id") or item.get("user_id")
            if isinstance(value, str):
                found.add(value)
    return found


def is_direct(channel: Mapping[str, Any]) -> bool:
    return channel.get("kind") in ("dm", "direct")


def reason(
    message: Mapping[str, Any],
    channel: Mapping[str, Any],
    user_id: str,
    *,
    level: str = DEFAULT_LEVEL,
    follows_thread: bool = False,
) -> str | None:
    """Why `user_id` should be told about `message`, or None."""
    author = message.get("author") or {}
    if author.get("id") == user_id or level == "muted":
        return None
    if user_id in mentioned(message):
        return "mention"
    if is_direct(channel):
        return "dm"
    if follows_thread:
        return "reply"
    if level == "all":
        return "message"
    return None


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """A message's text on one line, cut to `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
