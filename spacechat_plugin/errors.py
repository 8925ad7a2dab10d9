"""The one error family. Each carries its HTTP status; every error body has one shape:

    {"error": {"code": "not_found", "message": "...", "details": {...}}}

No stack trace ever reaches a client: anything else raised in a route becomes a 500 with a
request id that the log line also carries.
"""

from __future__ import annotations

from typing import Any


class SpacechatError(Exception):
    status = 500
    code = "internal_error"

    def __init__(
        self, message: str, *, code: str | None = None, details: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details
        self.headers = headers or {}

    def with_status(self, status: int) -> SpacechatError:
        """The same error with another HTTP status (one without a class of its own, e.g. 416)."""
        self.status = status
        return self

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return {"error": error}


class BadRequest(SpacechatError):
    status = 400
    code = "bad_request"


class Unauthorized(SpacechatError):
    status = 401
    code = "unauthorized"


class Forbidden(SpacechatError):
    status = 403
    code = "forbidden"


class NotFound(SpacechatError):
    status = 404
    code = "not_found"


class MethodNotAllowed(SpacechatError):
    status = 405
    code = "method_not_allowed"


class Conflict(SpacechatError):
    status = 409
    code = "conflict"


class PayloadTooLarge(SpacechatError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(SpacechatError):
    status = 415
    code = "unsupported_media_type"


class Unprocessable(SpacechatError):
    status = 422
    code = "unprocessable"


class UpgradeRequired(SpacechatError):
    status = 426
    code = "upgrade_required"


class TooManyRequests(SpacechatError):
    status = 429
    code = "rate_limited"


class Gone(SpacechatError):
    status = 410
    code = "gone"


class ServiceUnavailable(SpacechatError):
    status = 503
    code = "unavailable"


class BadGateway(SpacechatError):
    """The system behind the host (a running Spacebot) refused or could not be reached; the
    message names its answer."""

    status = 502
    code = "bad_gateway"
