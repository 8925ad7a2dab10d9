"""The `spacechat` command: serve, migrate, and operator tools."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import Any

import click

from . import __version__
from .config import ConfigError, Settings, load_raw, validate


def _settings(config: str | None, overrides: dict[str, Any]) -> tuple[Settings, dict[str, Any]]:
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
def serve(config: str | None, host: str | None, port: int | None, data_dir: str | None) -> None:
    """Run Spacechat with its embedded Spacebot host and print the URL to open."""
    settings, raw = _settings(config, {"enabled": True, "host": host, "port": port, "data_dir": data_dir})
    _logging(settings)
    # The event loop shares the GIL with the store's writer and reader threads: a shorter switch
    # interval stops it waiting up to 5 ms for a thread that is only finishing a SQLite call.
    sys.setswitchinterval(0.0005)
    with contextlib.suppress(KeyboardInterrupt):
        run(_serve(settings, raw))


def run(main: Any) -> None:
    """Run on uvloop where it is installed (uvicorn[standard] brings it), else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        asyncio.run(main)
    else:
        uvloop.run(main)


async def _serve(settings: Settings, raw: dict[str, Any]) -> None:
    from .host.server import HostServer, build_app, plugin_manager, uvicorn_config
    from .plugin import plugin

    pm = plugin_manager([plugin])
    host: Any
    if settings.runtime.mode == "bridge":
        from .host.bridge.host import BridgeHost

        host = BridgeHost(settings, pm, raw)
    else:
        from .host.embedded.host import EmbeddedHost

        host = EmbeddedHost(settings, pm, raw)
    await host.start()
    try:
        app = build_app(host.routes())

        def started(url: str) -> None:
            pm.hook.spacebot_server_started(url=url)
            shown = settings.public_url or url
            click.echo(f"Spacechat is running at {shown}/", err=False)
            sys.stdout.flush()

        server = HostServer(
            uvicorn_config(app, host=settings.host, port=settings.port, log_level=settings.log_level),
            on_started=started,
            on_stopping=lambda: pm.hook.spacebot_server_stopping(),
        )
        await server.serve()
    finally:
        await host.stop()


@main.command()
@click.option("--config", "config", type=click.Path(dir_okay=False), envvar="SPACECHAT_CONFIG")
@click.option("--data-dir", default=None)
def migrate(config: str | None, data_dir: str | None) -> None:
    """Apply pending database migrations and list what is applied."""
    settings, _ = _settings(config, {"data_dir": data_dir})

    async def run() -> list[dict[str, Any]]:
        from .resources import resource
        from .store.db import Database
        from .store.migrate import applied_list

        db = Database(
            settings.data_path / "spacechat.db",
            migrations=resource("migrations"),
            synchronous=settings.storage.synchronous,
            read_connections=1,
        )
        await db.open()
        try:
            rows = await applied_list(db)
            for name in db.applied_now:
                click.echo(f"applied {name}")
            return rows
        finally:
            await db.close()

    try:
        rows = asyncio.run(run())
    except Exception as exc:
        raise click.ClickException(str(exc)) from None
    for row in rows:
        click.echo(f"{row['name']}  {row['checksum'][:12]}  {row['applied_at']}")


@main.group()
def audit() -> None:
    """The audit log."""


@audit.command("verify")
@click.option("--config", "config", type=click.Path(dir_okay=False), envvar="SPACECHAT_CONFIG")
@click.option("--data-dir", default=None)
def audit_verify(config: str | None, data_dir: str | None) -> None:
    """Check the audit log's hash chain; name the first broken link (exit status 1)."""
    from .store import audit as audit_log

    settings, _ = _settings(config, {"data_dir": data_dir})
    path = settings.data_path / "spacechat.db"
    if not path.exists():
        raise click.ClickException(f"no database at {path}")
    checked, broken = audit_log.verify_file(path)
    if broken is None:
        click.echo(f"audit log: {checked} rows, chain intact")
        return
    click.echo(f"audit log: BROKEN at row {broken.row_id}: {broken.reason} ({checked} rows before it check out)")
    sys.exit(1)


@main.command()
@click.option("--config", "config", type=click.Path(dir_okay=False), envvar="SPACECHAT_CONFIG")
@click.option("--data-dir", default=None)
@click.option("--dry-run", is_flag=True, help="Count what is due without deleting anything.")
def purge(config: str | None, data_dir: str | None, dry_run: bool) -> None:
    """Delete messages, attachments, candidates and memories past their retention (docs/memory.md)."""
    settings, _ = _settings(config, {"data_dir": data_dir})
    path = settings.data_path / "spacechat.db"
    if not path.exists():
        raise click.ClickException(f"no database at {path}")

    async def run() -> dict[str, Any]:
        from .memory import retention
        from .resources import resource
        from .store.db import Database

        db = Database(
            path, migrations=resource("migrations"), synchronous=settings.storage.synchronous, read_connections=1
        )
        await db.open()
        try:
            return await retention.purge(db, settings.data_path, dry_run=dry_run)
        finally:
            await db.close()

    try:
        counts = asyncio.run(run())
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
