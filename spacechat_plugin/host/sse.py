"""Server-Sent Events, read by the hosts that follow an agent's event stream (the bridge's
`/api/events`, an AG-UI run)."""

from __future__ import annotations


class SSEParser:
    """Server-Sent Events by the spec's field rules: `event:` names the message (default
    `message`), `data:` lines join with newlines, comments (Spacebot's `: ping`) are skipped.
    Bytes are split here rather than by aiohttp's readline, whose line limit a long tool result
    could exceed."""

    def __init__(self) -> None:
        self._buffer = b""
        self._name = "message"
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[tuple[str, str]]:
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        messages: list[tuple[str, str]] = []
        for raw in lines:
            line = raw.rstrip(b"\r").decode("utf-8", errors="replace")
            if not line:
                if self._data:
                    messages.append((self._name, "\n".join(self._data)))
                self._name, self._data = "message", []
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                self._name = value
            elif name == "data":
                self._data.append(value)
        return messages
