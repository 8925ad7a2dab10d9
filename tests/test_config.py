"""Configuration layering and validation."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from spacechat_plugin.config import ConfigError, load_settings, manifest_defaults
from spacechat_plugin.resources import manifest_path


def test_manifest_defaults_are_the_settings_defaults() -> None:
    settings = load_settings(environ={})
    assert settings.enabled is False, "the plugin must do nothing unless enabled"
    assert (settings.host, settings.port, settings.data_dir) == ("127.0.0.1", 8787, "./spacechat-data")
    assert settings.storage.retention_days == 7
    assert settings.realtime.heartbeat_seconds == 15
    assert settings.realtime.checkpoint_ms == 250
    assert settings.agents[0].provider == "scripted"
    assert manifest_defaults()["enabled"] is False


def test_file_then_environment_then_overrides(tmp_path: Path) -> None:
    config = tmp_path / "spacechat.toml"
    config.write_text('port = 9000\nhost = "0.0.0.0"\n[storage]\nretention_days = 3\n')
    settings = load_settings(config, environ={"SPACECHAT_PORT": "9100", "SPACECHAT_REALTIME__MAX_LAG": "500"})
    assert settings.port == 9100
    assert settings.host == "0.0.0.0"
    assert settings.storage.retention_days == 3
    assert settings.storage.synchronous == "full"  # untouched defaults stay
    assert settings.realtime.max_lag == 500
    assert settings.url == "http://127.0.0.1:9100"
    assert load_settings(config, environ={}, overrides={"port": 1}).port == 1


@pytest.mark.parametrize(
    ("toml", "environ", "named"),
    [
        ("prot = 1\n", {}, "prot: unknown setting"),
        ('port = "8787"\n', {}, "port:"),
        ("[storage]\nretention_days = -1\n", {}, "storage.retention_days:"),
        ("[realtime]\nmax_lag = 100\nring_size = 50\n", {}, "realtime.ring_size"),
        ("[storage]\nsynchronous = 'sometimes'\n", {}, "storage.synchronous:"),
        ("[[agents]]\nid = 'x'\nname = 'X'\nprovider = 'nope'\n", {}, "agents.0.provider"),
        ("[providers.remote]\nkind = 'openai'\n", {}, "providers.remote"),
        ('trusted_proxies = ["10.0.0.1/8"]\n', {}, "trusted_proxies: '10.0.0.1/8' is not"),
        ('trusted_proxies = ["proxy.internal"]\n', {}, "trusted_proxies: 'proxy.internal' is not"),
        ('trusted_proxies = ["*", "10.0.0.0/8"]\n', {}, 'trusted_proxies: "*" believes'),
        ("", {"SPACECHAT_PORT": "eighty"}, "port:"),
        ("", {"SPACECHAT_NOPE": "1"}, "nope: unknown setting"),
        ("", {"SPACECHAT_STORAGE__SPEED": "1"}, "storage.speed: unknown setting"),
    ],
)
def test_bad_settings_name_the_key(tmp_path: Path, toml: str, environ: dict[str, str], named: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError) as error:
        load_settings(config, environ=environ)
    assert named in str(error.value)


def test_unreadable_files_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml", environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("port = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(broken, environ={})


def test_serve_refuses_a_bad_config_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[realtime]\nheartbeat_seconds = 'often'\n")
    result = subprocess.run(
        [sys.executable, "-m", "spacechat_plugin", "serve", "--config", str(config), "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "realtime.heartbeat_seconds" in result.stderr
    assert not (tmp_path / "spacechat.db").exists()


def test_manifest_declares_the_plugin() -> None:
    manifest = tomllib.loads(manifest_path().read_text())
    plugin = manifest["plugin"]
    assert plugin["name"] == "spacechat"
    assert plugin["entry_point"] == "spacechat_plugin.plugin:plugin"
    assert plugin["hook_marker"] == "spacebot"
