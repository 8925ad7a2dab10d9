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


def test_an_attachment_is_served_with_a_type_the_document_declares(shared_server: Server) -> None:
    """A generated client trusts the declared response type: a PNG comes back as image/png, a
    text file as text/plain, and the document says the download may be of any type."""
    declared = httpx.get(f"{shared_server.url}/v1/openapi.json").json()["paths"]["/v1/attachments/{attachment_id}"]
    media = set(declared["get"]["responses"]["200"]["content"])

    def covered(served: str) -> bool:
        return any(d in ("*/*", served) or (d.endswith("/*") and served.startswith(d[:-1])) for d in media)

    png = b"\x89PNG\r\n\x1a\n" + bytes(64)
    with shared_server.sync_client() as client:
        for name, body, kind in (("dot.png", png, "image/png"), ("notes.txt", b"minutes", "text/plain")):
            uploaded = client.post(
                "/v1/uploads", params={"filename": name}, content=body, headers={"Content-Type": kind}
            )
            assert uploaded.status_code == 201, uploaded.text
            served = client.get(f"/v1/attachments/{uploaded.json()['attachment']['id']}")
            assert served.status_code == 200 and served.content == body
            served_type = served.headers["content-type"].split(";")[0]
            assert served_type == kind and covered(served_type), (served_type, media)
