"""Where the files shipped beside the code live.

In a wheel, `migrations/`, `web_ui/`, `hooks/` and the manifest are copied into
`spacechat_plugin/_data/`; in a source checkout (editable install, tests) they sit at the
project root. Every lookup goes through here so neither case is special anywhere else.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource(name: str) -> Path:
    """Path of a shipped top-level file or folder (`migrations`, `web_ui`, `hooks`, the manifest)."""
    installed = _PACKAGE / "_data" / name
    if installed.exists():
        return installed
    source = _PACKAGE.parent / name
    if source.exists():
        return source
    raise FileNotFoundError(f"shipped resource {name!r} is missing from the installation")


def manifest_path() -> Path:
    return resource("spacebot.plugin.toml")
