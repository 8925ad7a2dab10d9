"""The `spacechat` command: serve, migrate, and operator tools."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import __version__
from .store import lock as data_dir_lock
from .store.lock import DataDirBusy

if TYPE_CHECKING:
    from .config import Settings

# The configuration and asyncio are imported where used: under load, building the settings'
# models alone took over a second (launch.py checks the data directory before any of it).


class StartupError(Exception):
    """Start-up failed for a reason other than a configuration mistake; already logged."""


def _settings(config: str | None, overrides: dict[str, Any]) -> tuple[Settings, dict[str, Any]]:
    from .config import ConfigError, load_raw, validate

    try:
        raw = load_raw(config, overrides={k: v for k, v in overrides.items() if v is not None})
        return validate(raw), raw
    except ConfigError as exc:
        raise click.ClickException(f"configuration error: {exc}") from None


def _logging(settings: Settings) -> None:
    from .logs import configure

    configure(settings.log_level, settings.log_format)


@click.group()
@click.version_option(__version__, prog_name="spacechat")
def main() -> None:
    """Spacechat: chat and control for Spacebot agents."""


@main.command()
@click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False),
    envvar="SPACECHAT_CONFIG",
    help="A TOML file overriding the defaults (see docs/configuration.md).",
)
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (default 8787; 0 picks a free one).")
@click.option("--data-dir", default=None, help="Where the database and files live (default ./spacechat-data).")
@click.option(
    "--workers",
    type=int,
    default=None,
    help="Processes serving on this machine's cores, on one SQLite file (default 1; docs/deployment.md).",
)
@click.option("--worker", default=None, hidden=True)  # set by the supervisor of --workers (workers.py)
def serve(
    config: str | None,
    host: str | None,
    port: int | None,
    data_dir: str | None,
    workers: int | None,
    worker: str | None,
) -> None:
    """Run Spacechat with its embedded Spacebot host and print the URL to open."""
    # (launch.py has already refused a data dir another server holds, before the slow imports.)
    from .config import ConfigError

    overrides = {"enabled": True, "host": host, "port": port, "data_dir": data_dir, "workers": workers}
    settings, raw = _settings(config, overrides)
    _logging(settings)
    # The event loop shares the GIL with the store's writer and reader threads: a shorter switch
    # interval stops it waiting up to 5 ms for a thread that is only finishing a SQLite call.
    sys.setswitchinterval(0.0005)
    try:
        if worker is not None:
            # One of the supervisor's workers: it holds the data directory for all of them.
            from . import workers as worker_processes

            worker_processes.die_with_parent()
            worker_processes.current = worker_processes.WorkerContext.parse(worker)
            with contextlib.suppress(KeyboardInterrupt):
                run(_serve(settings, raw))
            _exit_now()
        # First of all, before the host reads its files or the plugin opens the database (and
        # before the slow imports, so a second server refuses at once): one server per data dir.
        held = data_dir_lock.acquire(settings.data_path)
        try:
            with contextlib.suppress(KeyboardInterrupt):
                if settings.workers > 1:
                    run(_supervise(settings))
                else:
                    run(_serve(settings, raw))
        finally:
            data_dir_lock.release(held)
    except (ConfigError, DataDirBusy, StartupError) as exc:
        # A plain mistake (a setting, a second server on the data dir): one clear line, no
        # traceback, a non-zero exit; whatever start-up opened is closed by now (issue 10).
        raise click.ClickException(str(exc)) from None
    _exit_now()


def _settle_the_heap() -> None:
    """Once the server has started: move everything start-up made (modules, settings, caches,
    models) out of the cyclic garbage collector's sight, and let it run less often (#16).

    Under a send load the collector took a tenth of the server's CPU (perf: `gc_collect_main`,
    `visit_decref`, `visit_reachable`): each request makes and drops thousands of container
    objects, so generation 0 filled every ~700 and every hundredth collection walked the whole
    heap. `gc.freeze()` leaves the start-up objects out of every walk (they live as long as the
    process); the larger first threshold makes young collections rarer (what a request makes is
    mostly freed by reference counting before it gets there). Only `spacechat serve` does this:
    a host running the plugin in its own process keeps its own settings."""
    import gc

    gc.collect()
    gc.freeze()
    # Python's default is (700, 10, 10). Measured with bench/send.py (2026-12-06): freezing alone
    # took the closed loop's p99 from ~130 to ~76 ms and its rate up ~6 %; the thresholds add a
    # few per cent, inside run-to-run noise. A full collection still comes every ten of the
    # second generation's, so cyclic garbage of long-lived objects is found within minutes.
    gc.set_threshold(50_000, 20, 10)


def _exit_now() -> None:
    """Stopped cleanly: every stream ended, the host and the plugin stopped, the database closed,
    the data directory unlocked. The interpreter's own teardown of a server that held a thousand
    connections then took seconds more (freeing their objects one by one), while a supervisor
    waited for the process: end it now that nothing of ours is left open."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


async def _supervise(settings: Settings) -> None:
    """`--workers N`: apply the migrations once, then start and watch the workers (workers.py)."""
    from .store.messages import forget_claims_in_progress
    from .workers import Supervisor, WorkerFailed

    db = _store(settings)
    await db.open()
    try:
        # No worker runs yet: a send's key left in progress by a killed one is free again, as
        # after a restart of one process (where that mark lives in its memory).
        await db.write(forget_claims_in_progress)
    finally:
        await db.close()
    # The workers get this command line's own arguments (they read the same configuration).
    argv = sys.argv[1:]
    serve_args = argv[argv.index("serve") + 1 :] if "serve" in argv else []
    try:
        await Supervisor(settings, serve_args).run()
    except WorkerFailed as exc:
        raise StartupError(str(exc)) from None


def run(main: Any) -> None:
    """Run on uvloop where it is installed (uvicorn[standard] brings it), else on asyncio's loop."""
    import asyncio

    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        asyncio.run(main)
    else:
        uvloop.run(main)


async def _serve(settings: Settings, raw: dict[str, Any]) -> None:
    from .host.server import plugin_manager
    from .plugin import plugin

    pm = plugin_manager([plugin])
    host: Any
    if settings.runtime.mode == "bridge":
        from .host.bridge.host import BridgeHost

        host = BridgeHost(settings, pm, raw)
    else:
        from .host.embedded.host import EmbeddedHost

        host = EmbeddedHost(settings, pm, raw)
    await _start_host(host)
    try:
        await _run_server(settings, pm, host)
    finally:
        await host.stop()


async def _start_host(host: Any) -> None:
    """Start the host (which starts the plugin), or close whatever it opened and say why."""
    from .config import ConfigError

    try:
        await host.start()
    except BaseException as exc:
        with contextlib.suppress(Exception):
            await host.stop()
        if isinstance(exc, ConfigError | DataDirBusy) or not isinstance(exc, Exception):
            raise
        logging.getLogger("spacechat").exception("start-up failed")
        raise StartupError(f"start-up failed: {exc}") from None


async def _run_server(settings: Settings, pm: Any, host: Any) -> None:
    from .host.server import HostServer, build_app, uvicorn_config

    app = build_app(host.routes())

    from . import workers

    def started(url: str) -> None:
        _settle_the_heap()
        pm.hook.spacebot_server_started(url=url)
        if workers.current is not None:
            return  # the supervisor says where once every worker serves
        shown = settings.public_url or url
        click.echo(f"Spacechat is running at {shown}/", err=False)
        sys.stdout.flush()

    server = HostServer(
        uvicorn_config(
            app,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            ws_per_message_deflate=settings.realtime.ws_per_message_deflate,
            trusted_proxies=settings.trusted_proxies,
            keep_alive_seconds=settings.keep_alive_seconds,
        ),
        on_started=started,
        on_stopping=lambda: pm.hook.spacebot_server_stopping(),
    )
    await server.serve(sockets=workers.current.sockets() if workers.current is not None else None)


@main.command()
@click.option("--config", "config", type=click.Path(dir_okay=False), envvar="SPACECHAT_CONFIG")
@click.option("--data-dir", default=None)
@click.option(
    "--storage-url",
    default=None,
    help="A postgresql:// URL: migrate that Postgres database instead of the data directory's SQLite file.",
)
def migrate(config: str | None, data_dir: str | None, storage_url: str | None) -> None:
    """Apply pending database migrations and list what is applied."""
    overrides: dict[str, Any] = {"data_dir": data_dir}
    if storage_url is not None:
        overrides["storage"] = {"url": storage_url}
    settings, _ = _settings(config, overrides)

    async def run() -> list[dict[str, Any]]:
        from .store.migrate import applied_list

        db = _store(settings)
        await db.open()
        try:
            rows = await applied_list(db)
            for name in db.applied_now:
                click.echo(f"applied {name}")
            return rows
        finally:
            await db.close()

    try:
        # Not under a running server: the data directory's lock guards the SQLite file. Postgres
        # applies each migration in a transaction of its own, beside running gateways.
        held = None if settings.storage.url else data_dir_lock.acquire(settings.data_path)
        try:
            rows = _asyncio_run(run())
        finally:
            if held is not None:
                data_dir_lock.release(held)
    except Exception as exc:
        raise click.ClickException(str(exc)) from None
    for row in rows:
        click.echo(f"{row['name']}  {row['checksum'][:12]}  {row['applied_at']}")


def _store(settings: Settings, read_connections: int = 1) -> Any:
    """The configured store's database (SQLite file or Postgres), not yet opened."""
    from .resources import resource
    from .store.backend import database

    return database(
        settings.storage.url,
        settings.data_path,
        migrations=resource("migrations"),
        synchronous=settings.storage.synchronous,
        read_connections=read_connections,
    )


@main.group()
def audit() -> None:
    """The audit log."""


@audit.command("verify")
@click.option("--config", "config", type=click.Path(dir_okay=False), envvar="SPACECHAT_CONFIG")
@click.option("--data-dir", default=None)
@click.option(
    "--expect",
    "witnessed",
    multiple=True,
    help="A head an external witness kept (ROW:HASH, from `spacechat audit head`); may repeat.",
)
def audit_verify(config: str | None, data_dir: str | None, witnessed: tuple[str, ...]) -> None:
    """Check the audit log's hash chain, then the chain against its checkpoints (and any heads
    given with --expect); name what was done to it (exit status 1)."""
    from .store import anchor
    from .store import audit as audit_log

    settings, _ = _settings(config, {"data_dir": data_dir})
    rows = _audit_rows(settings)
    checked, broken = audit_log.verify_rows(rows)
    if broken is not None:
        click.echo(f"audit log: BROKEN at row {broken.row_id}: {broken.reason} ({checked} rows before it check out)")
        sys.exit(1)
    try:
        witnesses = [anchor.parse_witness(text) for text in witnessed]
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    checkpoints = anchor.read_checkpoints(settings.data_path / anchor.CHECKPOINTS) + witnesses
    if rows and not checkpoints:
        click.echo(
            f"audit log: UNANCHORED: {len(rows)} rows and no checkpoint ({anchor.CHECKPOINTS} is missing): "
            "truncation and re-chaining cannot be checked"
        )
        sys.exit(1)
    problem = anchor.check(rows, checkpoints)
    if problem is not None:
        click.echo(f"audit log: {problem}")
        sys.exit(1)
    newest = max((c.row_id for c in checkpoints), default=0)
    click.echo(f"audit log: {checked} rows, chain intact, anchored at row {newest} ({len(checkpoints)} checkpoints)")


@audit.command("head")
@click.option("--config", "config", type=click.Path(dir_okay=False), envvar="SPACECHAT_CONFIG")
@click.option("--data-dir", default=None)
def audit_head(config: str | None, data_dir: str | None) -> None:
    """Print the audit log's head as ROW:HASH, for an external witness to keep (and to give back
    to `audit verify --expect`)."""

    settings, _ = _settings(config, {"data_dir": data_dir})
    rows = _audit_rows(settings)
    if not rows:
        raise click.ClickException("the audit log is empty")
    click.echo(f"{rows[-1]['id']}:{rows[-1]['hash']}")


def _audit_rows(settings: Settings) -> list[dict[str, Any]]:
    """Every audit row, oldest first: read-only from the SQLite file, or from `storage.url`."""
    from .store import audit as audit_log

    if not settings.storage.url:
        return [dict(row) for row in audit_log.read_rows(_database(settings))]
    rows: list[dict[str, Any]] = _asyncio_run(_with_database(settings, audit_log.all_rows))
    return rows


def _database(settings: Settings) -> Path:
    path = settings.data_path / "spacechat.db"
    if not path.exists():
        raise click.ClickException(f"no database at {path}")
    return path


@main.group()
def instance() -> None:
    """The instance role: who may act on the whole instance (every organisation's agents, recover,
    shared providers, instance-wide metrics). Safe beside a running server."""


@instance.command("grant")
@click.argument("email")
@click.option("--org", default=None, help="The person's organisation (name or id), when the email is in several.")
@click.option("--config", "config", type=click.Path(dir_okay=False), envvar="SPACECHAT_CONFIG")
@click.option("--data-dir", default=None)
def instance_grant(email: str, org: str | None, config: str | None, data_dir: str | None) -> None:
    """Give a person the instance role (audited)."""
    _set_instance_role(email, org, config, data_dir, granted=True)


@instance.command("revoke")
@click.argument("email")
@click.option("--org", default=None, help="The person's organisation (name or id), when the email is in several.")
@click.option("--config", "config", type=click.Path(dir_okay=False), envvar="SPACECHAT_CONFIG")
@click.option("--data-dir", default=None)
def instance_revoke(email: str, org: str | None, config: str | None, data_dir: str | None) -> None:
    """Take the instance role from a person (audited)."""
    _set_instance_role(email, org, config, data_dir, granted=False)


@instance.command("list")
@click.option("--config", "config", type=click.Path(dir_okay=False), envvar="SPACECHAT_CONFIG")
@click.option("--data-dir", default=None)
def instance_list(config: str | None, data_dir: str | None) -> None:
    """Who holds the instance role."""
    from .store import operators

    settings, _ = _settings(config, {"data_dir": data_dir})
    for person in _asyncio_run(_with_database(settings, operators.holders)):
        click.echo(f"{person['email']}  {person['name']}  ({person['org_name']}, {person['org_id']})")


def _set_instance_role(email: str, org: str | None, config: str | None, data_dir: str | None, *, granted: bool) -> None:
    import getpass

    from .store import operators

    settings, _ = _settings(config, {"data_dir": data_dir})

    def change(tx: Any) -> str:
        people = operators.people_with_email(tx, email, org)
        if not people:
            raise click.ClickException(f"nobody active has the email {email}" + (f" in {org}" if org else ""))
        if len(people) > 1:
            raise click.ClickException(f"{email} is in several organisations; name one with --org")
        changed = operators.set_role(tx, people[0], granted=granted, by=getpass.getuser())
        state = "now holds" if granted else "no longer holds"
        return f"{email} ({people[0]['org_name']}) {state} the instance role" + ("" if changed else " (unchanged)")

    click.echo(_asyncio_run(_with_database(settings, lambda db: db.write(change))))


def _asyncio_run(work: Any) -> Any:
    import asyncio

    return asyncio.run(work)


async def _with_database(settings: Settings, work: Any) -> Any:
    """Open the database beside a running server or without one (no event is written), anchor
    any audit row the work appends, close."""
    from .store.anchor import AuditAnchor

    if not settings.storage.url:
        _database(settings)  # says so when there is no database yet
    db = _store(settings)
    db.on_audit = AuditAnchor(settings.data_path).record
    await db.open()
    try:
        return await work(db)
    finally:
        await db.close()


@main.command()
@click.option("--config", "config", type=click.Path(dir_okay=False), envvar="SPACECHAT_CONFIG")
@click.option("--data-dir", default=None)
@click.option("--dry-run", is_flag=True, help="Count what is due without deleting anything.")
def purge(config: str | None, data_dir: str | None, dry_run: bool) -> None:
    """Delete messages, attachments, candidates and memories past their retention (docs/memory.md)."""
    settings, _ = _settings(config, {"data_dir": data_dir})
    if not settings.storage.url:
        _database(settings)  # says so when there is no database yet

    async def run() -> dict[str, Any]:
        from .memory import retention

        db = _store(settings)
        await db.open()
        try:
            return await retention.purge(db, settings.files_path, dry_run=dry_run)
        finally:
            await db.close()

    try:
        counts = _asyncio_run(run())
    except Exception as exc:
        raise click.ClickException(str(exc)) from None
    verb = "would delete" if dry_run else "deleted"
    shown = ", ".join(f"{value} {key}" for key, value in counts.items() if key != "dry_run")
    click.echo(f"purge: {verb} {shown}")
    if not dry_run and counts.get("memories"):
        click.echo("agents forget the purged memories when the server next delivers (at start-up or its daily run)")


@main.group()
def voice() -> None:
    """Voice memos and spoken replies."""


@voice.command("prepare")
@click.option("--config", "config", type=click.Path(dir_okay=False), envvar="SPACECHAT_CONFIG")
@click.option("--data-dir", default=None)
def voice_prepare(config: str | None, data_dir: str | None) -> None:
    """Build the speech model now (once; the server would on first use), showing progress."""
    from pathlib import Path

    from .voice import models

    settings, _ = _settings(config, {"data_dir": data_dir})
    voice_settings = settings.voice
    models_dir = (
        Path(voice_settings.models_dir).expanduser()
        if voice_settings.models_dir
        else settings.data_path / "voice-models"
    )
    target = models.model_path(models_dir, voice_settings.stt_model)
    if target.is_file():
        click.echo(f"speech model ready: {target}")
        return
    if voice_settings.stt_model:
        raise click.ClickException(f"voice.stt_model {target} does not exist")
    with click.progressbar(length=100, label="building the speech model") as bar:
        done = [0]

        def progress(fraction: float, step: str) -> None:
            step_to = round(fraction * 100)
            bar.update(step_to - done[0])
            done[0] = step_to

        try:
            path = models.prepare(models_dir, voice_settings.stt_model, progress)
        except models.ModelMissing as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"speech model ready: {path}")
