"""The plugin object the host registers (entry point `spacechat_plugin.plugin:plugin`): the host
life-cycle hooks, thin, handing the work to the composition root.

Nothing happens unless the plugin's config has `enabled = true`: until then every hook returns
at once. Once started, the services that implement the agent-loop, worker and usage hooks are
registered with the host as plugins of their own (app.py), so no hook here only forwards.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from .app import Spacechat
from .config import ConfigError, settings_from_mapping
from .hookspecs import HostAPI, hookimpl

log = logging.getLogger("spacechat.plugin")


class SpacechatPlugin:
    def __init__(self) -> None:
        self.app: Spacechat | None = None  # None while disabled or stopped

    @hookimpl
    async def spacebot_startup(self, host: HostAPI, config: Mapping[str, Any]) -> None:
        try:
            settings = settings_from_mapping(config)
        except ConfigError as exc:
            raise ConfigError(f"spacechat: {exc}") from None
        if not settings.enabled:
            log.info("spacechat is installed but not enabled (set enabled = true)")
            return
        app = Spacechat(settings, host)
        await app.start()
        self.app = app

    @hookimpl
    def spacebot_server_started(self, url: str) -> None:
        if self.app is not None:
            self.app.server_started(url)

    @hookimpl
    def spacebot_server_stopping(self) -> None:
        if self.app is not None:
            self.app.begin_shutdown()

    @hookimpl
    async def spacebot_shutdown(self) -> None:
        app, self.app = self.app, None
        if app is not None:
            await app.stop()

    @hookimpl
    def spacebot_register_routes(self) -> list[Any] | None:
        if self.app is None:
            return None
        from .api import routes

        return routes(self.app)


plugin = SpacechatPlugin()
