"""People's live activity for the fan-out benchmark (issue 13): typing and presence.

`Activity` sets up, over the API with the admin token, `typists` bot identities that type in a
handful of threads (a report that they type, then that they stopped, every few seconds each,
as the web UI does) and `present` people (invited, each with a session and an open SSE stream,
so the server tracks their presence) who switch between active and away every few seconds. It
runs only while `on` is set, so one server can be measured quiet and busy in the same sitting.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets

from harness import HTTPConnection, SSEStream, open_many

PASSWORD = "a long enough benchmark passphrase"


class Activity:
    def __init__(self, host: str, port: int, token: str, *, typists: int, present: int, threads: int = 10) -> None:
        self.host, self.port, self.token = host, port, token
        self.typists, self.present, self.thread_count = typists, present, threads
        self.on = asyncio.Event()
        self.reports = 0  # typing and presence reports sent
        self._tasks: list[asyncio.Task[None]] = []
        self._streams: list[SSEStream] = []

    async def start(self, channel_id: str) -> None:
        admin = await HTTPConnection.open(self.host, self.port, self.token)
        try:
            threads = []
            for i in range(self.thread_count):
                made = await admin.json("POST", f"/v1/channels/{channel_id}/messages", {"text": f"typing {i}"}, 201)
                threads.append(made["thread"]["id"])
            typists = [
                (await admin.json("POST", "/v1/bots", {"name": f"typist-{i}-{secrets.token_hex(2)}"}, 201))["secret"]
                for i in range(self.typists)
            ]
            people = [await self._person(admin, i) for i in range(self.present)]
        finally:
            admin.close()
        waiting = list(people)
        self._streams = await open_many(lambda: SSEStream.open(self.host, self.port, waiting.pop()), len(people))
        self._tasks = [asyncio.create_task(self._type(token, channel_id, threads)) for token in typists]
        self._tasks += [asyncio.create_task(self._flip(token)) for token in people]

    async def _person(self, admin: HTTPConnection, i: int) -> str:
        invitation = await admin.json("POST", "/v1/invitations", {"role": "member"}, 201)
        body = {
            "token": invitation["token"],
            "email": f"present-{i}-{secrets.token_hex(3)}@bench.example",
            "name": f"Present {i}",
            "password": PASSWORD,
            "return_token": True,
        }
        accepted = await admin.json("POST", "/v1/auth/invitations/accept", body, 201)
        return str(accepted["session_token"])

    async def _type(self, token: str, channel_id: str, threads: list[str]) -> None:
        conn = await HTTPConnection.open(self.host, self.port, token)
        path = f"/v1/channels/{channel_id}/typing"
        try:
            while True:
                await self.on.wait()
                await asyncio.sleep(random.uniform(0.5, 3.0))
                thread = random.choice(threads)
                for typing in (True, False):
                    await conn.request("POST", path, {"thread_id": thread, "typing": typing})
                    self.reports += 1
                    await asyncio.sleep(1.5)
        finally:
            conn.close()

    async def _flip(self, token: str) -> None:
        conn = await HTTPConnection.open(self.host, self.port, token)
        try:
            status = "away"
            while True:
                await self.on.wait()
                await asyncio.sleep(random.uniform(3.0, 7.0))
                await conn.request("POST", "/v1/me/presence", {"status": status})
                self.reports += 1
                status = "active" if status == "away" else "away"
        finally:
            conn.close()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for stream in self._streams:
            stream.close()
