"""The OpenAPI document is valid and covers every route."""

from __future__ import annotations

import httpx
from openapi_spec_validator import validate
from starlette.routing import Route, WebSocketRoute

from spacechat_plugin.api import V1_ROUTES

from .support import Server


def test_openapi_document_is_valid_and_complete(shared_server: Server) -> None:
    response = httpx.get(f"{shared_server.url}/v1/openapi.json")  # public: no token needed
    assert response.status_code == 200
    document = response.json()
    validate(document)
    for route in V1_ROUTES:
        assert isinstance(route, Route | WebSocketRoute)
        path = "/v1" + route.path
        assert path in document["paths"], f"{path} is missing from the OpenAPI document"
        if isinstance(route, Route):
            for method in (route.methods or set()) - {"HEAD"}:
                operation = document["paths"][path][method.lower()]
                assert operation["summary"] and operation["responses"]
        else:
            assert isinstance(route, WebSocketRoute)
    post = document["paths"]["/v1/channels/{channel_id}/messages"]["post"]
    schema = document["components"]["schemas"][
        post["requestBody"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
    ]
    assert set(schema["properties"]) == {"text", "format", "attachments", "blocks", "client_msg_id"}
    assert post["x-required-scope"] == "messages:write"
