"""The provider under `/openid/` (its issuer is `<site>/openid`) and Django's own sign-in page."""

from __future__ import annotations

from django.contrib.auth import views as auth  # type: ignore[import-untyped]
from django.urls import include, path  # type: ignore[import-untyped]

from .settings import LOGIN_PATH

urlpatterns = [
    path("openid/", include("oidc_provider.urls", namespace="oidc_provider")),
    path(LOGIN_PATH.strip("/") + "/", auth.LoginView.as_view(), name="login"),
]
