"""A form's answers for the person who posted it (issue 13): `GET /v1/messages/{id}/responses`,
as JSON or as a CSV file to open in a spreadsheet.

Who may see them: the message's author (the form's poster), and those who manage channels; the
others who read the channel see the card and its count, not what each person answered.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..errors import BadRequest, Forbidden
from ..identity.permissions import may
from ..store import cards as card_store
from .common import JSONResponse, operation, principal, spacechat
from .interactions import message_or_404

# A cell a spreadsheet would take for a formula is written as text (OWASP "CSV injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _forms(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [block for block in message.get("blocks") or [] if block.get("type") == "form"]


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, list):
        text = "; ".join(str(item) for item in value)
    else:
        text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def _named(field: Mapping[str, Any], value: Any) -> Any:
    """A choice's label in place of its value (what the person saw and picked)."""
    labels = {option["value"]: option["label"] for option in field.get("options") or []}
    if not labels:
        return value
    if isinstance(value, list):
        return [labels.get(item, item) for item in value]
    return labels.get(value, value)


def as_csv(form: Mapping[str, Any], responses: list[dict[str, Any]]) -> str:
    fields = form["fields"]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["Submitted at", "Name", *[_cell(field["label"]) for field in fields]])
    for response in responses:
        values = response["values"]
        name = response["user"]["name"] or response["user"]["id"] or ""
        answers = [_cell(_named(field, values.get(field["name"]))) for field in fields]
        writer.writerow([response["created_at"], _cell(name), *answers])
    return out.getvalue()


@operation(
    "A form's answers, for its poster (JSON, or ?format=csv)",
    tags=["interactions"],
    scope="messages:read",
    resource=True,
    query={"format": "json (default) or csv", "block_id": "which form, when the card has several"},
)
async def responses(request: Request) -> Response:
    app = spacechat(request)
    message = await message_or_404(request, request.path_params["message_id"])
    who = await principal(request)
    if (message.get("author") or {}).get("id") != who.user_id and not may(who, "channels:manage"):
        raise Forbidden("only the form's poster sees its answers", details={"scope": "channels:manage"})
    forms = _forms(message)
    wanted = request.query_params.get("block_id")
    if wanted is not None:
        forms = [form for form in forms if form.get("block_id") == wanted]
    if not forms:
        raise BadRequest("this message has no such form", code="no_form")
    answers = await card_store.form_responses(app.db, message["id"])
    if request.query_params.get("format", "json") == "csv":
        form = forms[0]
        body = as_csv(form, [a for a in answers if a["block_id"] == form.get("block_id")])
        return Response(
            body.encode("utf-8-sig"),  # a BOM, so spreadsheets read UTF-8
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="responses-{message["id"]}.csv"'},
        )
    return JSONResponse(
        {
            "message_id": message["id"],
            "forms": [
                {
                    "block_id": form.get("block_id"),
                    "fields": [
                        {"name": f["name"], "label": f["label"], "type": f["type"], "options": f.get("options")}
                        for f in form["fields"]
                    ],
                    "responses": [a for a in answers if a["block_id"] == form.get("block_id")],
                }
                for form in forms
            ],
        }
    )
