"""The hook contract is complete: every hookspec is documented, tested and declared."""

from __future__ import annotations

import inspect
import re
import tomllib
from pathlib import Path

import pytest

from spacechat_plugin import hookspecs
from spacechat_plugin.app import HOOK_SERVICES
from spacechat_plugin.plugin import plugin
from spacechat_plugin.resources import manifest_path

from .hookrecorder import hook_names

ROOT = Path(__file__).resolve().parent.parent
DOCS = (ROOT / "docs" / "hooks.md").read_text()
TEST_SOURCES = {
    path.name: path.read_text() for path in (ROOT / "tests").glob("test_*.py") if path.name != "test_hookspecs.py"
}


@pytest.mark.parametrize("name", hook_names())
def test_hookspec_is_documented(name: str) -> None:
    spec = getattr(hookspecs, name)
    assert inspect.getdoc(spec), f"{name} has no docstring"
    assert f"### {name}\n" in DOCS, f"docs/hooks.md has no section for {name}"
    assert f"| `{name}` |" in DOCS, f"docs/hooks.md's summary table lacks {name}"


@pytest.mark.parametrize("name", hook_names())
def test_hookspec_has_a_test(name: str) -> None:
    users = [file for file, source in TEST_SOURCES.items() if f'"{name}"' in source]
    assert users, f"no test exercises {name} (name it as a string in a test)"


def test_manifest_lists_exactly_the_implemented_hooks() -> None:
    declared = tomllib.loads(manifest_path().read_text())["plugin"]["hooks"]
    # The plugin object implements the host's life cycle; the services registered by the
    # composition root implement the rest.
    implementers = [plugin, *HOOK_SERVICES]
    implemented = sorted({name for part in implementers for name in dir(part) if name.startswith("spacebot_")})
    assert sorted(declared) == implemented
    assert set(implemented) <= set(hook_names())


def test_hostapi_is_documented() -> None:
    methods = [name for name in dir(hookspecs.HostAPI) if not name.startswith("_") and name != "name"]
    for method in methods:
        assert re.search(rf"\| `{method}\(", DOCS), f"HostAPI.{method} is missing from docs/hooks.md"
        assert inspect.getdoc(getattr(hookspecs.HostAPI, method)), f"HostAPI.{method} has no docstring"


def test_firstresult_hooks_are_marked() -> None:
    first = {name for name in hook_names() if getattr(getattr(hookspecs, name), "spacebot_spec", {}).get("firstresult")}
    assert first == {
        "spacebot_before_tool_call",
        "spacebot_before_memory_save",
        "spacebot_transcribe_audio",
        "spacechat_interaction_submitted",
    }
