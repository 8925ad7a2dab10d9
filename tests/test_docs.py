"""The configuration reference names every setting."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from spacechat_plugin.config import AgentConfig, PriceConfig, ProviderConfig, Settings

DOCS = (Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text()


def keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    found = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found.extend(keys(annotation, f"{prefix}{name}."))
        elif name not in ("providers", "agents", "pricing", "hooks") and prefix != "budgets.":
            found.append(prefix + name)
    return found


def test_every_setting_is_documented() -> None:
    documented = keys(Settings)
    documented += [f"providers.<name>.{k}" for k in ProviderConfig.model_fields]
    documented += [f"agents[].{k}" for k in AgentConfig.model_fields]
    documented += [f"pricing.<model>.{k}" for k in PriceConfig.model_fields]
    documented += ["hooks.<name>"]
    missing = [key for key in documented if f"| `{key}` |" not in DOCS]
    assert "| `budgets.org` / `budgets.agents.<id>` |" in DOCS
    assert not missing, f"docs/configuration.md lacks {missing}"
