"""The OpenAPI 3.1 document, built from the route table and each endpoint's `@operation`.

A route without an `@operation` is a defect; tests/test_openapi.py checks every route is here.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

from .. import __version__
from ..identity.permissions import public
from .common import JSONResponse, Operation, operation

_PARAM = re.compile(r"{([a-z_]+)}")

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {},
            },
        }
    },
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _websocket(route: WebSocketRoute) -> dict[str, Any]:
    described: Operation | None = getattr(route.endpoint, "__spacechat_operation__", None)
    if described is None:
        described = Operation("Subscribe to events over a WebSocket (resume with ?after=)", ["realtime"])
        described.query = {"after": "resume after this seq"}
    return {
        "summary": described.summary,
        "tags": described.tags,
        "operationId": f"{route.endpoint.__name__}_ws",
        "parameters": [
            {"name": name, "in": "query", "required": False, "description": text, "schema": {"type": "string"}}
            for name, text in described.query.items()
        ],
        "responses": {
            "101": {"description": "Switching to the WebSocket protocol"},
            "401": _error("Not signed in"),
        },
    }


def build(routes: list[BaseRoute], prefix: str = "/v1") -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    for route in routes:
        if isinstance(route, WebSocketRoute):
            paths.setdefault(prefix + route.path, {})["get"] = _websocket(route)
            continue
        if not isinstance(route, Route):
            continue
        op: Operation | None = getattr(route.endpoint, "__spacechat_operation__", None)
        if op is None:
            raise AssertionError(f"route {route.path} has no @operation")
        for method in sorted((route.methods or set()) - {"HEAD"}):
            entry: dict[str, Any] = {
                "summary": op.summary,
                "tags": op.tags,
                "operationId": route.endpoint.__name__,
                "parameters": [
                    {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                    for name in _PARAM.findall(route.path)
                ]
                + [
                    {
                        "name": name,
                        "in": "query",
                        "required": False,
                        "description": text,
                        "schema": {"type": "string"},
                    }
                    for name, text in op.query.items()
                ],
                "responses": {
                    str(op.status): {"description": "Success", "content": {op.produces: {"schema": {}}}},
                    "400": _error("The request is not valid; details name the bad fields"),
                    "401": _error("Not signed in"),
                    "403": _error("Signed in without the needed permission"),
                    "404": _error("No such resource (or not yours to see)"),
                },
            }
            if op.scope == "public":
                entry["security"] = []
            elif op.scope:
                entry["x-required-scope"] = op.scope
            if op.body is not None:
                schema = op.body.model_json_schema(ref_template="#/components/schemas/{model}")
                schemas.update(schema.pop("$defs", {}))
                schemas[op.body.__name__] = schema
                entry["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{op.body.__name__}"}}},
                }
            elif op.raw_body:
                entry["requestBody"] = {
                    "required": True,
                    "description": op.raw_body,
                    "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
                }
            paths.setdefault(prefix + route.path, {})[method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "Context API", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


@operation("This OpenAPI document", tags=["meta"], scope="public")
async def document(request: Request) -> Response:
    public("meta:read")
    cached = getattr(request.app.state, "openapi", None)
    if cached is None:
        cached = build(request.app.routes)
        request.app.state.openapi = cached
    return JSONResponse(cached)
