"""django-oidc-provider, served over HTTP on loopback for the single sign-on tests.

Django is configured in this process, once (its settings are global): one provider per test
session. Its SQLite database lives in the directory it is given and is migrated at start; then
the provider gets a signing key (its own `creatersakey` command), and Spacechat is registered as
a confidential client (code flow, RS256 ID tokens, consent not asked). People are Django users
with a password (`directory`); the tests' browser types it into Django's sign-in page when the
authorization endpoint sends it there.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import django  # type: ignore[import-untyped]
import httpx
from django.conf import settings  # type: ignore[import-untyped]
from django.core.asgi import get_asgi_application  # type: ignore[import-untyped]
from django.core.management import call_command  # type: ignore[import-untyped]

from ..loopback import ThreadedServer
from . import wire
from .settings import LOGIN_PATH, django_settings

if TYPE_CHECKING:
    from .directory import Directory

CLIENT_ID = "spacechat"


@dataclass(frozen=True)
class Account:
    """A person in the provider's directory, and the password they sign in with there."""

    username: str
    password: str
    email: str
    name: str
    id: int  # the Django user's key, which is also the `sub` of its ID tokens


class Provider:
    login_path = LOGIN_PATH

    def __init__(self, data_dir: Path, redirect_uri: str) -> None:
        self.data_dir = data_dir
        self.redirect_uri = redirect_uri
        self.client_id = CLIENT_ID
        self.client_secret = secrets.token_urlsafe(24)
        self.url = ""
        self._directory: Directory | None = None
        self._server: ThreadedServer | None = None

    @property
    def issuer(self) -> str:
        return f"{self.url}/openid"

    @property
    def directory(self) -> Directory:
        assert self._directory is not None, "start the provider first"
        return self._directory

    def start(self) -> Provider:
        if settings.configured:
            raise RuntimeError("Django is configured once per process: start one provider per test session")
        settings.configure(**django_settings(self.data_dir / "provider.sqlite3"))
        django.setup()
        call_command("migrate", interactive=False, verbosity=0)
        from .directory import Directory  # its models need the app registry django.setup() filled

        self._directory = Directory(self.client_id)
        self._directory.create_key()
        self._directory.register_client(self.client_secret, self.redirect_uri)
        self._server = ThreadedServer(get_asgi_application(), "django-oidc-provider")
        self.url = self._server.start()
        settings.SITE_URL = self.url
        # Ready once its discovery document names it: a first request through the whole stack.
        document = httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=10)
        assert document.status_code == 200 and document.json()["issuer"] == self.issuer, document.text
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    # -- the provider's configuration, changed for a while as its administrators could ----------

    @contextmanager
    def site_url(self, url: str) -> Iterator[None]:
        """The provider known by another address: its issuer is `<url>/openid` meanwhile."""
        settings.SITE_URL = url
        try:
            yield
        finally:
            settings.SITE_URL = self.url

    @contextmanager
    def id_token_algorithm(self, alg: str) -> Iterator[None]:
        """Spacechat's client at the provider set to have its ID tokens signed with `alg`."""
        self.directory.set_algorithm(alg)
        try:
            yield
        finally:
            self.directory.set_algorithm("RS256")

    @contextmanager
    def altered_in_transit(self, change: wire.Alter) -> Iterator[None]:
        """The token endpoint's ID token rewritten by `change` on its way to Spacechat."""
        wire.alter = change
        try:
            yield
        finally:
            wire.alter = None
