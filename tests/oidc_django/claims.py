"""The person's claims, through django-oidc-provider's two documented hooks.

`OIDC_USERINFO` fills the standard claims from the Django user; with `OIDC_IDTOKEN_INCLUDE_CLAIMS`
the ones the requested scopes cover (`email`, `profile`) go into the ID token. `groups` belongs to
no standard scope and Spacechat asks for none of its own, so `OIDC_IDTOKEN_PROCESSING_HOOK` adds
it to every ID token, as Keycloak's or Authentik's group mappers do.
"""

from __future__ import annotations

from typing import Any


def userinfo(claims: dict[str, Any], user: Any) -> dict[str, Any]:
    claims["name"] = user.get_full_name()
    claims["preferred_username"] = user.get_username()
    claims["email"] = user.email
    # This directory's accounts are made by its administrators, addresses checked: it vouches.
    claims["email_verified"] = True
    return claims


def add_groups(id_token: dict[str, Any], user: Any, **_: Any) -> dict[str, Any]:
    id_token["groups"] = sorted(group.name for group in user.groups.all())
    return id_token
