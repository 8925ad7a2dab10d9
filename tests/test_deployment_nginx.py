"""The nginx configuration of docs/deployment.md, run as written (issue 17): the recipe's file (an
upstream of three gateways, TLS, and the headers and buffering of "Behind a reverse proxy") is
taken from the docs with only its ports, listen address and certificate changed, and served by
a real nginx (Debian's package) in front of three `spacechat serve` gateways on one Postgres and
one nats-server. Clients talk to nginx only: signing in, the API, an upload of the largest size,
an SSE stream that gets each post before the next is made (nothing buffered), a WebSocket, and
a stream that resumes through nginx on a live gateway after its own was SIGKILLed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import re
import shutil
import ssl
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse
from websockets.asyncio.client import connect
from websockets.typing import Origin

from spacechat_plugin.config import Settings

from . import postgres
from .buses import NatsServer, _wait_listening, free_port
from .buses import available as nats_available
from .support import OWNER, PNG_BYTES, Server, realtime_gauges, toml_config
from .test_gateways import Deployment, assert_in_seq_order_once, control_messages

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "deployment.md"
PROXY_SECTION = "Behind a reverse proxy (TLS)"
RECIPE_SECTION = "A working recipe: Postgres, NATS, three gateways behind nginx"

needs_nginx = pytest.mark.skipif(not os.access(NGINX, os.X_OK), reason=f"no nginx at {NGINX} (apt-get install nginx)")
needs_servers = pytest.mark.skipif(
    not (nats_available() and postgres.available()), reason="needs nats-server and Postgres"
)


# -- the docs' configuration ----------------------------------------------------------------------


def nginx_blocks() -> dict[str, str]:
    """Each ```nginx block of docs/deployment.md under the heading it follows (one per section)."""
    found: dict[str, str] = {}
    heading = ""
    lines = iter(DOCS.read_text().splitlines())
    for line in lines:
        if line.startswith("```"):
            block = "\n".join(iter(lambda: next(lines), "```")) + "\n"  # up to the closing fence
            if line == "```nginx":
                assert heading not in found, f"two nginx blocks under {heading!r}"
                found[heading] = block
        elif line.startswith("#"):
            heading = line.lstrip("#").strip()
    return found


def substitute(block: str, changes: list[tuple[str, str | Callable[[re.Match[str]], str], int]]) -> str:
    """`block` with each (pattern, replacement, count) applied, where the pattern must match exactly
    `count` times: the docs changing shape fails here, instead of running something else."""
    for pattern, replacement, count in changes:
        block, made = re.subn(pattern, replacement, block, flags=re.MULTILINE)
        assert made == count, f"{pattern!r} matched {made} times in the docs' nginx block, expected {count}"
    return block


def directives(block: str, leave_out: tuple[str, ...] = ()) -> list[str]:
    """The block's lines, stripped, without blank lines and the ones starting with `leave_out`."""
    kept = [line.strip() for line in block.splitlines() if line.strip()]
    return [line for line in kept if not line.startswith(leave_out)]


def test_the_recipe_uses_the_reverse_proxy_sections_headers_and_buffering() -> None:
    """The recipe is "Behind a reverse proxy" with an upstream: the same lines (headers,
    buffering, body size, TLS, the map), in the same order, so proving one proves the other."""
    blocks = nginx_blocks()
    assert set(blocks) >= {PROXY_SECTION, RECIPE_SECTION}, sorted(blocks)
    recipe = re.sub(r"^upstream spacechat \{\n(?:.*\n)*?\}\n", "", blocks[RECIPE_SECTION], count=1, flags=re.M)
    assert recipe != blocks[RECIPE_SECTION], "the recipe has no `upstream spacechat` block"
    own = ("proxy_pass ", "proxy_next_upstream ")
    assert directives(recipe, own) == directives(blocks[PROXY_SECTION], own)


def test_the_uploads_limit_fits_in_the_documented_body_size() -> None:
    size = re.search(r"client_max_body_size (\d+)m;", nginx_blocks()[PROXY_SECTION])
    assert size is not None
    assert int(size.group(1)) * 1024 * 1024 >= Settings().uploads.max_bytes


# -- nginx, run as the current user -----------------------------------------------------------------


def self_signed(root: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, the certificate its own issuer."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert, private = root / "cert.pem", root / "key.pem"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert, private


# What a packaged nginx.conf has around conf.d/: the temp paths are inside the test's prefix (the
# package's are root's), and the access log names the gateway that answered each request.
MAIN_CONFIG = """\
{user}worker_processes 1;
events {{
    worker_connections 1024;
}}
http {{
    log_format upstreams '$remote_addr $request_method $uri $status $upstream_addr';
    access_log {prefix}/access.log upstreams;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;

{site}
}}
"""


class Nginx:
    """nginx in the foreground with its own prefix; `site` is what the docs put in conf.d/."""

    def __init__(self, prefix: Path, site: str, port: int) -> None:
        self.prefix, self.port = prefix, port
        self.config = prefix / "nginx.conf"
        # As root (CI) the workers would otherwise run as nobody, who cannot enter the prefix.
        user = "user root;\n" if os.geteuid() == 0 else ""
        self.config.write_text(MAIN_CONFIG.format(user=user, prefix=prefix, site=site))
        self.process: subprocess.Popen[bytes] | None = None

    def command(self, *extra: str) -> list[str]:
        settings = f"daemon off; pid {self.prefix}/nginx.pid; error_log {self.prefix}/error.log info;"
        where = ["-p", str(self.prefix), "-e", str(self.prefix / "error.log"), "-c", str(self.config)]
        return [NGINX, *where, "-g", settings, *extra]

    def start(self) -> Nginx:
        checked = subprocess.run(self.command("-t"), capture_output=True, text=True, stdin=subprocess.DEVNULL)
        assert checked.returncode == 0, f"nginx refuses the docs' configuration:\n{checked.stderr}"
        self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL)
        _wait_listening(self.port, self.process)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # a fast shutdown
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def answered(self, method: str, path: str) -> list[str]:
        """The gateways (upstream addresses) that answered these requests, one per request."""
        lines = (self.prefix / "access.log").read_text().splitlines()
        return [line.split()[-1] for line in lines if line.split()[1:3] == [method, path]]


@dataclass
class Proxied:
    """Three gateways behind nginx; clients are given nginx's address only."""

    deployment: Deployment
    nginx: Nginx
    ca: ssl.SSLContext

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.nginx.port}"

    @property
    def auth(self) -> dict[str, str]:
        return next(iter(self.deployment.gateways.values())).auth

    def client(self, headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.AsyncClient:
        """A client of nginx; the owner's API token unless `headers` says otherwise."""
        given = self.auth if headers is None else headers
        kwargs.setdefault("timeout", 30)
        return httpx.AsyncClient(base_url=self.url, headers=given, verify=self.ca, **kwargs)


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[Proxied]:
    port = free_port()
    nats = NatsServer()
    nats.start()
    deployment = Deployment(tmp_path, nats, postgres.cluster().new_database())
    nginx: Nginx | None = None
    try:
        gateways = [deployment.start(gateway_id) for gateway_id in ("a", "b", "c")]
        cert, key = self_signed(tmp_path)
        ports = iter(server.url.rsplit(":", 1)[1] for server in gateways)
        site = substitute(
            nginx_blocks()[RECIPE_SECTION],
            [
                (r"127\.0\.0\.1:880\d\b", lambda _: f"127.0.0.1:{next(ports)}", 3),
                (r"^(\s*)listen 443 ssl;", rf"\g<1>listen 127.0.0.1:{port} ssl;", 1),
                (r"^(\s*ssl_certificate)\s+\S+;", rf"\g<1> {cert};", 1),
                (r"^(\s*ssl_certificate_key)\s+\S+;", rf"\g<1> {key};", 1),
            ],
        )
        (tmp_path / "nginx").mkdir()
        nginx = Nginx(tmp_path / "nginx", site, port).start()
        yield Proxied(deployment, nginx, ssl.create_default_context(cafile=str(cert)))
    finally:
        if nginx is not None:
            nginx.stop()
        deployment.stop()
        nats.stop()


# -- a stream through nginx -------------------------------------------------------------------------


class Subscriber:
    """An SSE stream through nginx that, like a browser's EventSource, reconnects when it ends,
    sending `Last-Event-ID`; every logged event it receives is kept."""

    def __init__(self, proxied: Proxied) -> None:
        self.proxied = proxied
        self.events: list[dict[str, Any]] = []
        self.readies = 0  # streams opened (each ends its replay with `ready`)
        self.last_id: str | None = None
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Subscriber:
        self._task = asyncio.create_task(self._run())
        await self.until(lambda: self.readies == 1)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        try:
            async with self.proxied.client(timeout=httpx.Timeout(30, read=None)) as client:
                while True:
                    headers = {} if self.last_id is None else {"Last-Event-ID": self.last_id}
                    with contextlib.suppress(httpx.HTTPError):  # the gateway went away mid-stream
                        async with aconnect_sse(client, "GET", "/v1/realtime/sse", headers=headers) as source:
                            assert source.response.status_code == 200, await source.response.aread()
                            async for event in source.aiter_sse():
                                self._take(event.event, event.id, event.data)
        finally:
            self._changed.set()  # wake `until`, which reports why it stopped

    def _take(self, kind: str, event_id: str | None, data: str) -> None:
        if kind == "ready":
            self.readies += 1
            if self.last_id is None:
                self.last_id = str(json.loads(data)["resume_after"])
        elif kind == "message" and event_id:
            self.events.append(json.loads(data))
            self.last_id = event_id
        self._changed.set()

    async def until(self, condition: Callable[[], bool], timeout: float = 20) -> None:
        """Until `condition` holds, waking at each event received."""
        try:
            async with asyncio.timeout(timeout):
                while not condition():
                    assert self._task is not None
                    if self._task.done():
                        self._task.result()  # raises what ended it
                        raise AssertionError("the subscriber stopped")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"not in {timeout} s; {self.readies} streams, {len(self.events)} events") from None

    def created(self, prefix: str) -> list[dict[str, Any]]:
        return [
            e["payload"]["message"]
            for e in self.events
            if e["event_type"] == "message.created" and str(e["payload"]["message"]["text"]).startswith(prefix)
        ]


async def new_thread(client: httpx.AsyncClient) -> str:
    channels = (await client.get("/v1/channels")).json()["channels"]
    general = next(c["id"] for c in channels if c["name"] == "general")
    posted = await client.post(f"/v1/channels/{general}/messages", json={"text": "root"})
    assert posted.status_code == 201, posted.text
    return str(posted.json()["thread"]["id"])


# -- through nginx ----------------------------------------------------------------------------------


@needs_nginx
def test_the_reverse_proxy_sections_file_is_accepted_by_nginx(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    site = substitute(
        nginx_blocks()[PROXY_SECTION],
        [
            (r"proxy_pass http://127\.0\.0\.1:8787;", f"proxy_pass http://127.0.0.1:{free_port()};", 1),
            (r"^(\s*)listen 443 ssl;", rf"\g<1>listen 127.0.0.1:{free_port()} ssl;", 1),
            (r"^(\s*ssl_certificate)\s+\S+;", rf"\g<1> {cert};", 1),
            (r"^(\s*ssl_certificate_key)\s+\S+;", rf"\g<1> {key};", 1),
        ],
    )
    nginx = Nginx(tmp_path, site, 0)
    checked = subprocess.run(nginx.command("-t"), capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert checked.returncode == 0, checked.stderr


@needs_nginx
@needs_servers
@pytest.mark.asyncio
async def test_through_nginx_sign_in_the_api_uploads_sse_unbuffered_and_a_websocket(proxied: Proxied) -> None:
    async with proxied.client() as client, proxied.client(headers={}) as browser:
        thread_id = await new_thread(client)
        # Signing in as the web UI does: the cookie, then a write with the CSRF token.
        signed_in = await browser.post("/v1/auth/login", json={"email": OWNER["email"], "password": OWNER["password"]})
        assert signed_in.status_code == 200, signed_in.text
        csrf = {"X-CSRF-Token": signed_in.json()["csrf_token"]}
        assert (await browser.get("/v1/me")).json()["user"]["email"] == OWNER["email"]
        written = await browser.post(f"/v1/threads/{thread_id}/messages", json={"text": "by cookie"}, headers=csrf)
        assert written.status_code == 201, written.text
        cookie = browser.cookies["spacechat_session"]

        # The largest upload (uploads.max_bytes) passes nginx's client_max_body_size, and back.
        largest = PNG_BYTES + bytes(Settings().uploads.max_bytes - len(PNG_BYTES))
        uploaded = await client.post(
            "/v1/uploads", params={"filename": "big.png"}, content=largest, headers={"Content-Type": "image/png"}
        )
        assert uploaded.status_code == 201, uploaded.text
        fetched = await client.get(uploaded.json()["attachment"]["url"])
        assert fetched.status_code == 200 and len(fetched.content) == len(largest)

        # Each post reaches the stream before the next is made: one small event is not held back
        # by a buffer waiting to fill. The posts go to every gateway by turns.
        async with Subscriber(proxied) as stream:
            seqs: list[int] = []
            for i in range(12):
                posted = await client.post(f"/v1/threads/{thread_id}/messages", json={"text": f"live-{i}"})
                assert posted.status_code == 201, posted.text
                seqs.append(posted.json()["message"]["seq"])
                await stream.until(lambda: len(stream.created("live-")) == len(seqs), timeout=5)
        assert [m["seq"] for m in stream.created("live-")] == seqs == sorted(seqs)
        assert_in_seq_order_once(stream.events)

        # A WebSocket as the web UI opens one: the session cookie, and its page's Origin, which
        # must match the Host the gateway is given.
        async with connect(
            proxied.url.replace("https://", "wss://") + "/v1/realtime/ws",
            ssl=proxied.ca,
            origin=Origin(proxied.url),
            additional_headers={"Cookie": f"spacechat_session={cookie}"},
        ) as ws:
            ready = json.loads(await ws.recv())
            assert ready["type"] == "ready", ready
            posted = await client.post(f"/v1/threads/{thread_id}/messages", json={"text": "over websocket"})
            async with asyncio.timeout(5):
                while (got := json.loads(await ws.recv())).get("event_type") != "message.created":
                    pass
            assert got["payload"]["message"]["text"] == "over websocket"
            assert got["seq"] == posted.json()["message"]["seq"] == ready["resume_after"] + 1

    answered = set(proxied.nginx.answered("POST", f"/v1/threads/{thread_id}/messages"))
    assert answered == {server.url.removeprefix("http://") for server in proxied.deployment.gateways.values()}


async def stream_gateway(proxied: Proxied) -> Server:
    """The gateway that carries the one open stream, once it is parked there as any caught-up
    stream is (issue 16; each gateway's own /metrics, read directly)."""

    def gauges() -> dict[str, dict[str, float]]:
        return {
            name: realtime_gauges(httpx.get(f"{server.url}/metrics", headers=server.auth).text)
            for name, server in proxied.deployment.gateways.items()
        }

    seen: dict[str, dict[str, float]] = {}
    try:
        async with asyncio.timeout(10):
            while True:
                seen = await asyncio.to_thread(gauges)
                carrying = [name for name, found in seen.items() if found.get("subscribers")]
                if len(carrying) == 1 and seen[carrying[0]].get("parked_sse") == 1:
                    return proxied.deployment.gateways[carrying[0]]
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"no gateway carries the one stream, parked: {seen}") from None


async def post_paced(proxied: Proxied, thread_id: str, texts: list[str], every: float = 0.05) -> None:
    """Post each text through nginx, one every `every` s. A post its gateway was answering when it
    died gets 502 from nginx (it passes no POST on once sent) and is sent again with the same
    Idempotency-Key, as docs/deployment.md tells clients to; 409 `idempotency_key_in_use` means
    the dead gateway's transaction still held the key."""
    async with proxied.client() as client:
        for text in texts:
            while (
                answer := await client.post(
                    f"/v1/threads/{thread_id}/messages", json={"text": text}, headers={"Idempotency-Key": text}
                )
            ).status_code != 201:
                assert answer.status_code in (409, 502), answer.text
                await asyncio.sleep(every)
            await asyncio.sleep(every)


@needs_nginx
@needs_servers
@pytest.mark.asyncio
@pytest.mark.slow
async def test_a_gateway_killed_under_paced_posts_the_stream_resumes_through_nginx_with_every_event_once(
    proxied: Proxied,
) -> None:
    async with proxied.client() as client:
        thread_id = await new_thread(client)
    texts = [f"paced-{i}" for i in range(100)]
    async with Subscriber(proxied) as stream:
        carrier = await stream_gateway(proxied)
        posting = asyncio.create_task(post_paced(proxied, thread_id, texts))
        await stream.until(lambda: len(stream.created("paced-")) >= 20)
        await asyncio.to_thread(carrier.kill)  # SIGKILL, with the stream open on it
        # The stream ended; the subscriber reconnected through nginx with Last-Event-ID, and
        # nginx sent it to a live gateway (the dead one refuses connections: proxy_next_upstream).
        await stream.until(lambda: stream.readies == 2)
        await posting
        await stream.until(lambda: len(stream.created("paced-")) == len(texts), timeout=30)
    assert sorted(m["text"] for m in stream.created("paced-")) == sorted(texts), "a gap or a duplicate at the seam"
    assert_in_seq_order_once(stream.events)
    assert stream.readies == 2
    # nginx logs a request when it ends: the first stream, on the gateway that was killed.
    assert proxied.nginx.answered("GET", "/v1/realtime/sse")[0] == carrier.url.removeprefix("http://")


# Failed sign-ins allowed per address in 15 minutes (identity/auth.py, `login_by_address`).
LOGIN_LIMIT_PER_ADDRESS = 20


def from_address(proxied: Proxied, address: str) -> httpx.AsyncClient:
    """A client of nginx connecting from another loopback address, signed in as nobody."""
    transport = httpx.AsyncHTTPTransport(local_address=address, verify=proxied.ca)
    return proxied.client(headers={}, transport=transport)


@needs_nginx
@needs_servers
@pytest.mark.asyncio
async def test_each_clients_own_address_reaches_the_gateways_through_nginx(proxied: Proxied) -> None:
    """nginx sends X-Forwarded-For (its own $remote_addr: what a client puts in that header is
    replaced): failed sign-ins from one address block that address on every gateway and no
    other, and the audit names the client, not nginx."""
    gateways = list(proxied.deployment.gateways.values())
    before = sum(await asyncio.gather(*[asyncio.to_thread(control_messages, g) for g in gateways]))
    owner = {"email": OWNER["email"], "password": OWNER["password"]}
    async with from_address(proxied, "127.0.0.2") as guesser, from_address(proxied, "127.0.0.3") as person:
        for i in range(LOGIN_LIMIT_PER_ADDRESS):
            wrong = await guesser.post(
                "/v1/auth/login",
                json={"email": f"guess-{i}@example.com", "password": "not the password at all"},
                headers={"X-Forwarded-For": f"203.0.113.{i}"},  # forged: nginx replaces it
            )
            assert wrong.status_code == 401, wrong.text

        async def heard() -> float:
            return sum(await asyncio.gather(*[asyncio.to_thread(control_messages, g) for g in gateways]))

        # Every gateway has counted all of them: its own, and the others' told over the bus.
        async with asyncio.timeout(10):
            while await heard() < before + (len(gateways) - 1) * LOGIN_LIMIT_PER_ADDRESS:
                await asyncio.sleep(0.05)
        blocked = await guesser.post("/v1/auth/login", json=owner)
        assert blocked.status_code == 429, blocked.text
        signed_in = await person.post("/v1/auth/login", json=owner, headers={"X-Forwarded-For": "203.0.113.99"})
        assert signed_in.status_code == 200, signed_in.text
    async with proxied.client() as client:
        failed = (await client.get("/v1/audit", params={"action": "auth.login_failed"})).json()["entries"]
        logins = (await client.get("/v1/audit", params={"action": "auth.login"})).json()["entries"]
    assert [e["ip"] for e in failed] == ["127.0.0.2"] * LOGIN_LIMIT_PER_ADDRESS
    assert [e["ip"] for e in logins if e["target"]["id"] == signed_in.json()["session"]["id"]] == ["127.0.0.3"]


def test_x_forwarded_for_is_believed_only_from_this_machine(server: Server) -> None:
    """The proxy runs beside the gateway (docs/deployment.md): a client connecting from anywhere
    else cannot choose the address its sign-ins are limited and audited under."""
    from_proxy, from_elsewhere = sign_in(server, "127.0.0.1"), sign_in(server, "127.0.0.2")
    audited = audited_addresses(server, [from_proxy, from_elsewhere])
    assert audited == {from_proxy: "203.0.113.5", from_elsewhere: "127.0.0.2"}


def test_the_trusted_proxies_are_configurable(tmp_path: Path) -> None:
    """A proxy on another machine (a load balancer, a container network) is named in
    `trusted_proxies`, as an address or a network; this machine is then not believed unless
    listed too."""
    server = Server(tmp_path / "data", toml_config(top='trusted_proxies = ["127.0.0.2/31"]\n')).start()
    try:
        believed = [sign_in(server, "127.0.0.2"), sign_in(server, "127.0.0.3")]
        local = sign_in(server, "127.0.0.1")
        expected = {believed[0]: "203.0.113.5", believed[1]: "203.0.113.5", local: "127.0.0.1"}
        assert audited_addresses(server, [*believed, local]) == expected
    finally:
        server.stop()


def sign_in(server: Server, local_address: str) -> str:
    """Sign in from `local_address`, the request naming 203.0.113.5 in X-Forwarded-For; the
    session's id."""
    transport = httpx.HTTPTransport(local_address=local_address)
    with httpx.Client(base_url=server.url, transport=transport, timeout=30) as client:
        credentials = {"email": OWNER["email"], "password": OWNER["password"]}
        answer = client.post("/v1/auth/login", json=credentials, headers={"X-Forwarded-For": "203.0.113.5"})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["session"]["id"])


def audited_addresses(server: Server, sessions: list[str]) -> dict[str, str]:
    """The address each of these sign-ins was audited under, by session id."""
    with server.sync_client() as client:
        logins = client.get("/v1/audit", params={"action": "auth.login"}).json()["entries"]
    return {e["target"]["id"]: e["ip"] for e in logins if e["target"]["id"] in sessions}
