"""The Django settings of the test provider: the fewest apps django-oidc-provider needs (auth,
sessions, its own), Django's own sign-in page, and the provider's documented settings that put
the person's claims in the ID token (Spacechat reads them there, not at the userinfo endpoint)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

PACKAGE = __name__.rpartition(".")[0]
LOGIN_PATH = "/accounts/login/"


def django_settings(database: Path) -> dict[str, Any]:
    return {
        "DEBUG": False,
        "SECRET_KEY": secrets.token_urlsafe(40),
        "ALLOWED_HOSTS": ["127.0.0.1", "localhost"],
        "INSTALLED_APPS": [
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "oidc_provider",
        ],
        "MIDDLEWARE": [
            f"{PACKAGE}.wire.Wire",  # outermost: it sees each answer as it leaves
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
        "ROOT_URLCONF": f"{PACKAGE}.urls",
        "TEMPLATES": [
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "DIRS": [str(Path(__file__).parent / "templates")],
                "APP_DIRS": True,  # the provider's own consent and error pages
            }
        ],
        "DATABASES": {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(database)}},
        "DEFAULT_AUTO_FIELD": "django.db.models.AutoField",
        "USE_TZ": True,
        # The tests' process keeps its own logging: Django would otherwise re-configure it.
        "LOGGING_CONFIG": None,
        "LOGIN_URL": LOGIN_PATH,
        # Its own cookie name: the browser sends cookies by host, not port, to Spacechat as well.
        "SESSION_COOKIE_NAME": "idp_session",
        # Django's advice for tests: a fast hasher (the default takes a third of a second a login).
        "PASSWORD_HASHERS": ["django.contrib.auth.hashers.MD5PasswordHasher"],
        # django-oidc-provider's documented hooks: standard claims in the ID token, filled from
        # the Django user, and the user's groups added for Spacechat's role mapping.
        "OIDC_IDTOKEN_INCLUDE_CLAIMS": True,
        "OIDC_USERINFO": f"{PACKAGE}.claims.userinfo",
        "OIDC_IDTOKEN_PROCESSING_HOOK": f"{PACKAGE}.claims.add_groups",
        "SITE_URL": None,  # set once the port is known (the issuer is built from it)
    }
