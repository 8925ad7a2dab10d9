"""Voice memos over HTTP (docs/voice.md).

`POST /v1/voice/memos` takes a recording as multipart `file` with `channel_id` or `thread_id`;
it is checked on its decoded audio (not on its header) and posted as a message, then transcribed
in the background (`voice.memo.transcribed`). Audio is served with HTTP Range; the transcript has
segments and words with times. `WS /v1/voice/live` transcribes while the person records.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from starlette.datastructures import UploadFile
from starlette.requests import HTTPConnection, Request
from starlette.responses import FileResponse, Response
from starlette.types import Message, Receive
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from ..errors import BadRequest, Conflict, NotFound, PayloadTooLarge, SpacechatError, UpgradeRequired
from ..identity.permissions import Principal, check
from ..store import messages as message_store
from ..store import voice as voice_store
from ..voice.live import LiveRecording
from ..voice.service import Upload
from .common import (
    JSONResponse,
    Operation,
    authorize,
    channel_of,
    error_response,
    operation,
    principal,
    read_json,
    spacechat,
    without_nul,
)
from .context import Context
from .models import KEY_PATTERN, SpeakMessage

_KEY = re.compile(KEY_PATTERN)
# Room for the multipart framing and the form's small fields around the file.
FORM_OVERHEAD = 64 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@operation("What voice can do here: engines, model, limits", tags=["voice"], scope="any")
async def status(request: Request) -> Response:
    return JSONResponse({"voice": spacechat(request).voice.status()})


# --- posting a memo ------------------------------------------------------------------------


def _limited(receive: Receive, max_bytes: int) -> Receive:
    """The request's body stream, cut with 413 past `max_bytes` (before it is all read)."""
    seen = 0

    async def limited() -> Message:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > max_bytes:
            raise PayloadTooLarge(f"voice memos are limited to {max_bytes - FORM_OVERHEAD} bytes")
        return message

    return limited


async def _read_form(request: Request, app: Context) -> tuple[dict[str, str], UploadFile]:
    limit = app.settings.voice.max_bytes
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise BadRequest("send the recording as multipart/form-data with a `file` field", code="invalid_request")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + FORM_OVERHEAD:
        raise PayloadTooLarge(f"voice memos are limited to {limit} bytes", details={"max_bytes": limit})
    limited = Request(request.scope, _limited(request.receive, limit + FORM_OVERHEAD))
    form = await limited.form(max_files=1, max_fields=8)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise BadRequest("the form has no `file` field with the recording", code="invalid_request")
    if upload.size is not None and upload.size > limit:
        raise PayloadTooLarge(f"voice memos are limited to {limit} bytes", details={"max_bytes": limit})
    fields: dict[str, str] = without_nul({key: value for key, value in form.items() if isinstance(value, str)})
    return fields, upload


async def _target(app: Context, channel_id: str, thread_id: str) -> tuple[dict[str, Any], str | None]:
    """The channel (and thread) a memo goes to: exactly one of the two ids."""
    if bool(channel_id) == bool(thread_id):
        raise BadRequest("give one of channel_id and thread_id", code="invalid_request")
    if thread_id:
        thread = await message_store.get_thread(app.db, thread_id)
        if thread is None:
            raise NotFound("no such thread")
        channel_id = thread["channel_id"]
    channel = await channel_of(app, channel_id)
    if channel is None:
        raise NotFound("no such thread" if thread_id else "no such channel")
    return channel, thread_id or None


async def _place(request: Request, app: Context, fields: dict[str, str]) -> tuple[dict[str, Any], str | None]:
    """The channel (and thread) a memo goes to, checked like any send."""
    channel, thread_id = await _target(app, fields.get("channel_id", ""), fields.get("thread_id", ""))
    await authorize(request, channel, channel=channel)
    return channel, thread_id


def _claim(
    headers: Mapping[str, str], who: Principal, target: str, sha256: str, key: str | None
) -> message_store.IdempotencyClaim | None:
    key = headers.get("idempotency-key") or key
    if key is None:
        return None
    if not _KEY.match(key):
        raise BadRequest(
            "Idempotency-Key must be 1-128 characters of letters, digits and . _ : ~ -", code="invalid_idempotency_key"
        )
    fingerprint = message_store.fingerprint(target, {"voice_memo": sha256})
    return message_store.IdempotencyClaim(who.actor.id or "", key, fingerprint)


async def _spool(app: Context, upload: UploadFile) -> Upload:
    """The upload copied where the checks read it, and its digest: in a thread, because hashing
    and writing 10 MB would hold the event loop for tens of milliseconds."""
    path = app.voice.spool_path()
    digest = await asyncio.to_thread(_copy, upload.file, path)
    return Upload(path, upload.content_type or "", digest)


def _copy(source: BinaryIO, path: Path) -> str:
    digest = hashlib.sha256()
    source.seek(0)
    with path.open("wb") as handle:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
            handle.write(chunk)
    return digest.hexdigest()


@operation(
    "Post a voice memo (multipart: file, and channel_id or thread_id); transcribed in the background",
    tags=["voice"],
    status=201,
    scope="messages:write",
    resource=True,
    raw_body="multipart/form-data: `file` (webm/opus, ogg/opus, wav, mp3, m4a), `channel_id` or `thread_id`,"
    " optional `client_msg_id`; or the Idempotency-Key header",
)
async def post_memo(request: Request) -> Response:
    app = spacechat(request)
    app.voice.check_available()
    fields, upload = await _read_form(request, app)
    channel, thread_id = await _place(request, app, fields)
    who = await principal(request)
    spooled = await _spool(app, upload)
    try:
        claim = _claim(request.headers, who, thread_id or channel["id"], spooled.sha256, fields.get("client_msg_id"))
        posted = await _post_once(app, who, channel, thread_id, spooled, claim)
    finally:
        spooled.path.unlink(missing_ok=True)
    result = posted.result
    memo = posted.memo or await voice_store.memo_of_message(app.db, result.message["id"])
    headers = {"Idempotent-Replayed": "true"} if result.replayed else None
    return JSONResponse(
        {"message": result.message, "thread": result.thread, "memo": memo}, status_code=result.status, headers=headers
    )


async def _post_once(
    app: Context,
    who: Principal,
    channel: dict[str, Any],
    thread_id: str | None,
    upload: Upload,
    claim: message_store.IdempotencyClaim | None,
) -> voice_store.PostedMemo:
    inflight = None if claim is None else (claim.actor_id, claim.key)
    if inflight is not None:
        if inflight in app.inflight_keys:
            raise Conflict(
                "a request with this Idempotency-Key is still in progress; retry it later",
                code="idempotency_key_in_use",
            )
        app.inflight_keys.add(inflight)
    try:
        return await app.voice.post(
            actor=who.actor, name=who.name, channel=channel, thread_id=thread_id, upload=upload, claim=claim
        )
    finally:
        if inflight is not None:
            app.inflight_keys.discard(inflight)


# --- reading a memo ------------------------------------------------------------------------


async def memo_or_404(request: Request) -> voice_store.StoredMemo:
    app = spacechat(request)
    stored = await voice_store.get_memo(app.db, request.path_params["memo_id"])
    if stored is None:
        raise NotFound("no such voice memo")
    await authorize(request, stored.memo, channel=await channel_of(app, stored.memo["channel_id"]))
    return stored


def _check_range(header: str | None, size: int) -> None:
    """A Range the file cannot satisfy answers 416 in the one error shape (RFC 9110 14.1.2)."""
    if not header:
        return
    satisfiable = False
    for part in header.replace(" ", "").split(","):
        match = _RANGE.match(part if part.startswith("bytes=") else "bytes=" + part.removeprefix("bytes="))
        if match is None or match.group(1) == match.group(2) == "":
            raise BadRequest("the Range header is not a byte range", code="invalid_range")
        first, last = match.group(1), match.group(2)
        if first and last and int(last) < int(first):
            raise BadRequest("the Range header is not a byte range", code="invalid_range")
        satisfiable |= int(last) > 0 if not first else int(first) < size
    if not satisfiable:
        raise SpacechatError(
            f"the range is outside the recording ({size} bytes)",
            code="range_not_satisfiable",
            details={"size": size},
            headers={"Content-Range": f"bytes */{size}"},
        ).with_status(416)


def _audio(request: Request, path: Any, content_type: str, filename: str) -> Response:
    if not path.exists():
        raise NotFound("the recording's file is missing")
    _check_range(request.headers.get("range"), path.stat().st_size)
    return FileResponse(
        path,
        media_type=content_type,
        filename=filename,
        content_disposition_type="inline",
        headers={
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, max-age=31536000, immutable",
        },
    )


@operation(
    "A voice memo's audio (supports Range)",
    tags=["voice"],
    scope="messages:read",
    resource=True,
    produces="audio/*",
)
async def memo_audio(request: Request) -> Response:
    stored = await memo_or_404(request)
    memo = stored.memo
    if memo["kind"] == "speech" and memo["status"] != "transcribed":
        raise NotFound("the spoken reply is not joined yet; play its sentences", code="not_ready")
    path = spacechat(request).voice.audio_path(memo)
    ext = path.suffix
    return _audio(request, path, memo["content_type"], f"voice-memo-{memo['id'][-8:]}{ext}")


@operation(
    "A voice memo's transcript: text, segments and words with times, language, model",
    tags=["voice"],
    scope="messages:read",
    resource=True,
)
async def transcript(request: Request) -> Response:
    stored = await memo_or_404(request)
    memo = stored.memo
    body: dict[str, Any] = {"memo_id": memo["id"], "status": memo["status"], "error": memo["error"]}
    body.update(stored.transcript or {"text": None, "segments": [], "language": None, "model": None})
    if memo["kind"] == "speech":
        body["clips"] = await voice_store.clips(spacechat(request).db, memo["id"])
    return JSONResponse({"transcript": body})


@operation(
    "One sentence of a spoken reply (Ogg/Opus), playable while the reply still streams",
    tags=["voice"],
    scope="messages:read",
    resource=True,
    produces="audio/ogg",
)
async def clip(request: Request) -> Response:
    stored = await memo_or_404(request)
    raw = request.path_params["index"]
    if not raw.isdigit() or stored.memo["kind"] != "speech":
        raise NotFound("no such sentence")
    index = int(raw)
    known = await voice_store.clips(spacechat(request).db, stored.memo["id"])
    if index >= len(known):
        raise NotFound("no such sentence")
    path = spacechat(request).voice.clip_path(stored.memo["id"], index)
    return _audio(request, path, "audio/ogg", f"reply-{stored.memo['id'][-8:]}-{index}.ogg")


@operation(
    "Read an agent's finished reply aloud (the Listen button): 202 with its speech memo, spoken"
    " sentence by sentence (voice.memo.speech); 200 with the one it already has",
    tags=["voice"],
    status=202,
    scope="messages:write",
    resource=True,
    body=SpeakMessage,
)
async def speak(request: Request) -> Response:
    app = spacechat(request)
    app.voice.check_available()
    body = await read_json(request, SpeakMessage, max_bytes=4 * 1024)
    message = await message_store.get_message(app.db, body.message_id)
    if message is None:
        raise NotFound("no such message")
    await authorize(request, message, channel=await channel_of(app, message["channel_id"]))
    memo, created = await app.voice.speak(message)
    return JSONResponse({"memo": memo}, status_code=202 if created else 200)


# --- live ----------------------------------------------------------------------------------


async def _live_place(websocket: HTTPConnection) -> tuple[Principal, dict[str, Any], str | None]:
    app = spacechat(websocket)
    who = await principal(websocket)
    check(who, "messages:write")
    app.voice.check_available()
    params = websocket.query_params
    channel, thread_id = await _target(app, params.get("channel_id", ""), params.get("thread_id", ""))
    check(who, "messages:write", channel, channel=channel)
    return who, channel, thread_id


async def live_over_http(request: Request) -> Response:
    """`GET /v1/voice/live` without the WebSocket upgrade: the handshake's own refusals (401, 403,
    404, 503), else 426."""
    await _live_place(request)
    raise UpgradeRequired(
        "this is a WebSocket endpoint: connect with a WebSocket",
        headers={"Upgrade": "websocket", "Connection": "Upgrade"},
    )


async def _send(websocket: WebSocket, body: dict[str, Any]) -> None:
    if websocket.client_state == WebSocketState.CONNECTED:
        await websocket.send_text(orjson.dumps(body).decode())


async def live(websocket: WebSocket) -> None:
    """`WS /v1/voice/live?channel_id=` (or `thread_id=`): binary frames are the recording's chunks;
    `{"type": "stop"}` posts it as a memo, `{"type": "cancel"}` drops it (docs/voice.md)."""
    app = spacechat(websocket)
    try:
        who, channel, thread_id = await _live_place(websocket)
    except SpacechatError as exc:
        await websocket.send_denial_response(error_response(exc))
        return
    await websocket.accept()
    recording = LiveRecording(app.voice, websocket.query_params.get("content_type") or "audio/webm")
    limits = app.voice.status()["limits"]
    await _send(websocket, {"type": "ready", "interval_ms": app.settings.voice.live_interval_ms, **limits})
    ticker = asyncio.ensure_future(recording.run(lambda partial: _send(websocket, partial)))
    try:
        stop = await _receive(websocket, recording)
    except SpacechatError as exc:
        stop = None
        await _send(websocket, {"type": "error", **exc.body()})
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await ticker
    if stop is not None:
        await _finish(websocket, app, who, channel, thread_id, recording, stop)
    if websocket.client_state == WebSocketState.CONNECTED:
        with contextlib.suppress(Exception):
            await websocket.close(code=1000)


async def _receive(websocket: WebSocket, recording: LiveRecording) -> dict[str, Any] | None:
    """Chunks until stop (its message) or cancel / a closed socket (None)."""
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return None
            if message.get("bytes"):
                recording.feed(message["bytes"])
                continue
            try:
                command = orjson.loads(message.get("text") or "{}")
            except orjson.JSONDecodeError:
                raise BadRequest('commands are JSON: {"type": "stop"} or {"type": "cancel"}') from None
            if command.get("type") == "stop":
                return dict(command)
            if command.get("type") == "cancel":
                return None
    except WebSocketDisconnect:
        return None


async def _finish(
    websocket: WebSocket,
    app: Context,
    who: Principal,
    channel: dict[str, Any],
    thread_id: str | None,
    recording: LiveRecording,
    stop: dict[str, Any],
) -> None:
    """Post the recording as a memo; send it, then its final transcript."""
    upload = await recording.spool()
    try:
        key = stop.get("idempotency_key")
        claim = _claim(
            websocket.headers, who, thread_id or channel["id"], upload.sha256, key if isinstance(key, str) else None
        )
        posted = await _post_once(app, who, channel, thread_id, upload, claim)
    except SpacechatError as exc:
        await _send(websocket, {"type": "error", **exc.body()})
        return
    finally:
        upload.path.unlink(missing_ok=True)
    memo = posted.memo or await voice_store.memo_of_message(app.db, posted.result.message["id"])
    await _send(
        websocket, {"type": "memo", "message": posted.result.message, "thread": posted.result.thread, "memo": memo}
    )
    if memo is None:
        return
    await app.voice.wait(memo["id"])
    stored = await voice_store.get_memo(app.db, memo["id"])
    if stored is not None:
        await _send(websocket, {"type": "final", "memo": stored.memo, "transcript": stored.transcript})


live.__spacechat_operation__ = Operation(  # type: ignore[attr-defined]
    "Transcribe while recording: binary chunks in, partial transcripts out; stop posts the memo",
    ["voice"],
    query={
        "channel_id": "the channel to post the memo in (or thread_id)",
        "thread_id": "the thread to reply in",
        "content_type": "the recording's type (default audio/webm)",
    },
    scope="messages:write",
)
