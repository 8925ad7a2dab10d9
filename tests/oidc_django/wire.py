"""What leaves the provider, as a man in the middle could change it: a test sets `alter` to
rewrite the ID token in the token endpoint's answer (its header and signature kept), and the
provider itself stays as packaged."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

Claims = dict[str, Any]
Alter = Callable[[Claims], Claims]

alter: Alter | None = None


class Wire:
    """A Django middleware, outermost, so it sees each answer as sent."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        response = self.get_response(request)
        change = alter
        if change is not None and request.path.rstrip("/").endswith("/token") and response.status_code == 200:
            answer = json.loads(response.content)
            header, payload, signature = answer["id_token"].split(".")
            claims = change(json.loads(_unb64(payload)))
            answer["id_token"] = ".".join([header, _b64(json.dumps(claims).encode()), signature])
            response.content = json.dumps(answer).encode()
            response["Content-Length"] = str(len(response.content))
        return response


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
