"""The OpenAPI 3.1 document, built from the route table and each endpoint's `@operation`.

A route without an `@operation` is a defect; tests/test_openapi.py checks every route is here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
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


# The errors an operation may answer, by what it is (issue 10: the document now says what the
# server does; tests/test_schemathesis.py holds every operation to it).
ERRORS = {
    "400": "The request is not valid; details name the bad fields",
    "401": "Not signed in",
    "403": "Signed in without the needed permission",
    "404": "No such resource (or not yours to see)",
}
BODY_ERRORS = {
    "413": "The body is larger than allowed",
    "415": "The body is not of a type this operation takes",
    "422": "Well-formed, but not acceptable (e.g. a name with control or bidi characters)",
}
WRITE_ERRORS = {"409": "Conflicts with the resource's state, or a duplicate in progress"}
PUBLIC_ERRORS = {"410": "The link was used, withdrawn or has expired", "429": "Too many attempts; see Retry-After"}


def _query(name: str, spec: str | dict[str, Any]) -> dict[str, Any]:
    """A query parameter: a plain description (a string, or a whole number when it starts with
    its bounds, `1-500, default 100`), or a JSON schema with its `description`."""
    if isinstance(spec, dict):
        schema = {key: value for key, value in spec.items() if key not in ("description", "style", "explode")}
        text = str(spec.get("description", ""))
        # How a list is written in the query (`group_by=agent,model`: form, not exploded).
        styled: dict[str, Any] = {key: spec[key] for key in ("style", "explode") if key in spec}
        return {"name": name, "in": "query", "required": False, "description": text, "schema": schema, **styled}
    else:
        text, bounds = spec, re.match(r"^(\d+)-(\d+)\b", spec)
        if bounds:
            schema = {"type": "integer", "minimum": int(bounds[1]), "maximum": int(bounds[2])}
        else:
            schema = dict(QUERY_SCHEMAS.get(name, {"type": "string"}))
    return {"name": name, "in": "query", "required": False, "description": text, "schema": schema}


# Query parameters that mean the same everywhere: cursors are seqs or row ids, times RFC 3339.
QUERY_SCHEMAS: dict[str, dict[str, Any]] = {
    "before": {"type": "integer", "minimum": 0, "maximum": 10**18 - 1},
    "after": {"type": "integer", "minimum": 0, "maximum": 10**18 - 1},
    "since": {"type": "string", "format": "date-time"},
    "until": {"type": "string", "format": "date-time"},
}


def _responses(op: Operation, method: str) -> dict[str, Any]:
    success: dict[str, Any] = {"description": "Success"}
    if op.status != 204 and not 300 <= op.status < 400:  # a redirect's answer is its Location
        success["content"] = {op.produces: {"schema": {}}}
    responses: dict[str, Any] = {str(op.status): success}
    for status in op.also:
        responses[str(status)] = {"description": "Also a success", "content": {op.produces: {"schema": {}}}}
    errors = dict(ERRORS)
    if op.body is not None or op.raw_body:
        errors |= BODY_ERRORS
    if method in ("POST", "PATCH", "DELETE"):
        errors |= WRITE_ERRORS
    if op.scope == "public":
        errors |= PUBLIC_ERRORS
    errors |= op.errors
    responses |= {status: _error(text) for status, text in errors.items()}
    return responses


def _websocket(route: WebSocketRoute) -> dict[str, Any]:
    described: Operation | None = getattr(route.endpoint, "__spacechat_operation__", None)
    if described is None:  # the realtime stream
        return {
            "summary": "Subscribe to events over a WebSocket (resume with ?after=)",
            "tags": ["realtime"],
            "operationId": "realtime_ws",
            "x-required-scope": "realtime:subscribe",
            "parameters": [_query("after", {"type": "integer", "minimum": 0, "description": "resume after this seq"})],
            "responses": {
                "101": {"description": "Switching to the WebSocket protocol"},
                "400": _error("The cursor is not valid"),
                "401": _error("Not signed in"),
                "403": _error("Signed in without realtime:subscribe"),
                "426": _error("A plain HTTP request: upgrade to a WebSocket"),
            },
        }
    return {
        "summary": described.summary,
        "tags": described.tags,
        "operationId": f"{route.endpoint.__name__}_ws",
        "x-required-scope": described.scope,
        "parameters": [_query(name, text) for name, text in described.query.items()],
        "responses": {
            "101": {"description": "Switching to the WebSocket protocol"},
            "400": _error("The request is not valid; details name the bad fields"),
            "401": _error("Not signed in"),
            "403": _error(f"Signed in without {described.scope}"),
            "404": _error("No such resource (or not yours to see)"),
            "426": _error("A plain HTTP request: upgrade to a WebSocket"),
            "503": _error("Not available on this server (the extra is not installed)"),
        },
    }


def build(
    routes: list[BaseRoute],
    prefix: str = "/v1",
    *,
    password_min_length: int = 10,
    upload_types: Sequence[str] = (),
) -> dict[str, Any]:
    """The document for these routes, with this server's settings where they shape requests (the
    shortest new password, the file types uploads take)."""
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
                    {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
                    for name in _PARAM.findall(route.path)
                ]
                + [{**_query(name, spec), "required": name in op.required_query} for name, spec in op.query.items()],
                "responses": _responses(op, method),
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
                    "content": {media: {"schema": _file_schema(media)} for media in upload_types or ["*/*"]},
                }
            paths.setdefault(prefix + route.path, {})[method.lower()] = entry
    _password_rule(schemas, password_min_length)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Spacechat API", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


def _file_schema(media: str) -> dict[str, Any]:
    """A file's bytes, any (a JSON file is any JSON; an empty text file is a file too)."""
    return {} if media == "application/json" else {"type": "string", "format": "binary"}


def _password_rule(schemas: dict[str, Any], min_length: int) -> None:
    """A new password's shortest length is a setting (auth.password_min_length): the document
    says the one this server enforces."""
    for name, schema in schemas.items():
        password = schema.get("properties", {}).get("password")
        if name == "Login" or password is None:  # signing in takes an existing password, whatever it is
            continue
        for option in password.get("anyOf", [password]):
            if option.get("type") == "string":
                option["minLength"] = max(option.get("minLength", 0), min_length)


@operation("This OpenAPI document", tags=["meta"], scope="public")
async def document(request: Request) -> Response:
    public("meta:read")
    cached = getattr(request.app.state, "openapi", None)
    if cached is None:
        settings = request.app.state.spacechat.settings
        cached = build(
            request.app.routes,
            password_min_length=settings.auth.password_min_length,
            upload_types=settings.uploads.allowed_types,
        )
        request.app.state.openapi = cached
    return JSONResponse(cached)
