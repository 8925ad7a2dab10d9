"""The provider's database through Django's ORM: its signing keys, its one client and its
people. Imported only once Django is set up (models need the app registry)."""

from __future__ import annotations

import io
import secrets
from dataclasses import replace

from django.contrib.auth.models import Group, User  # type: ignore[import-untyped]
from django.core.management import call_command  # type: ignore[import-untyped]
from oidc_provider.models import Client, ResponseType, RSAKey  # type: ignore[import-untyped]

from .provider import Account


class Directory:
    def __init__(self, client_id: str) -> None:
        self.client_id = client_id

    def register_client(self, client_secret: str, redirect_uri: str) -> None:
        """A confidential client for the code flow, RS256 ID tokens, never asking for consent."""
        client = Client.objects.create(
            name="Spacechat",
            client_type="confidential",
            client_id=self.client_id,
            client_secret=client_secret,
            jwt_alg="RS256",
            require_consent=False,
            _redirect_uris=redirect_uri,
        )
        client.response_types.add(ResponseType.objects.get(value="code"))

    def set_algorithm(self, alg: str) -> None:
        Client.objects.filter(client_id=self.client_id).update(jwt_alg=alg)

    def create_key(self) -> None:
        said = io.StringIO()
        call_command("creatersakey", stdout=said)
        # The command reports a failure on its output rather than raising.
        assert said.getvalue().startswith("RSA key successfully created"), said.getvalue()

    def rotate_key(self) -> None:
        """A new signing key in place of the old ones: the key set lists only the new one."""
        old = list(RSAKey.objects.values_list("pk", flat=True))
        self.create_key()
        RSAKey.objects.filter(pk__in=old).delete()

    def add_person(self, email: str, name: str, groups: tuple[str, ...] = ()) -> Account:
        password = secrets.token_urlsafe(12)
        username = email.split("@")[0]
        first, _, last = name.partition(" ")
        user = User.objects.create_user(username, email, password, first_name=first, last_name=last)
        account = Account(username=username, password=password, email=email, name=name, id=user.pk)
        self.set_groups(account, groups)
        return account

    def set_email(self, account: Account, email: str) -> Account:
        User.objects.filter(pk=account.id).update(email=email)
        return replace(account, email=email)

    def set_groups(self, account: Account, groups: tuple[str, ...]) -> None:
        User.objects.get(pk=account.id).groups.set([Group.objects.get_or_create(name=name)[0] for name in groups])
