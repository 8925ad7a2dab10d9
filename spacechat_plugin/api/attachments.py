"""Uploads and downloads.

`POST /v1/uploads?filename=NAME` takes the file as the raw body with its Content-Type. The type
must be on the allowed list and the bytes must look like it (a PNG that is really HTML is
refused), the size must be under the limit (413 before reading when Content-Length says so).
The upload is then attached by id to a message. Downloads carry `nosniff`, a sandboxing CSP and
`Content-Disposition` (inline only for images, audio, PDF and plain text), and honour Range.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import unicodedata
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from ..errors import BadRequest, NotFound, PayloadTooLarge, UnsupportedMediaType
from ..events import new_id
from ..store import messages as message_store
from .common import JSONResponse, authorize, channel_of, operation, principal, spacechat

INLINE_TYPES = ("image/", "audio/", "application/pdf", "text/plain")
_TEXT_TYPES = ("text/plain", "text/markdown", "text/csv", "application/json")


def _looks_like(content_type: str, head: bytes) -> bool:
    """Whether the first bytes of a file match its declared type."""
    checks: dict[str, Any] = {
        "image/png": lambda h: h.startswith(b"\x89PNG\r\n\x1a\n"),
        "image/jpeg": lambda h: h.startswith(b"\xff\xd8\xff"),
        "image/gif": lambda h: h[:6] in (b"GIF87a", b"GIF89a"),
        "image/webp": lambda h: h[:4] == b"RIFF" and h[8:12] == b"WEBP",
        "application/pdf": lambda h: h.startswith(b"%PDF-"),
        "application/zip": lambda h: h[:4] in (b"PK\x03\x04", b"PK\x05\x06"),
        "audio/webm": lambda h: h.startswith(b"\x1a\x45\xdf\xa3"),
        "audio/ogg": lambda h: h.startswith(b"OggS"),
        "audio/wav": lambda h: h[:4] == b"RIFF" and h[8:12] == b"WAVE",
        "audio/mpeg": lambda h: h.startswith(b"ID3") or (len(h) > 1 and h[0] == 0xFF and h[1] & 0xE0 == 0xE0),
    }
    if content_type in checks:
        return bool(checks[content_type](head))
    if content_type in _TEXT_TYPES:
        if b"\x00" in head:
            return False
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            # a multi-byte character cut at the end of the sample is fine
            return exc.start >= len(head) - 3
        return True
    return True


def clean_filename(raw: str | None) -> str:
    if not raw:
        raise BadRequest("give the file's name as ?filename=", details=[{"path": "filename", "message": "required"}])
    name = unicodedata.normalize("NFC", raw).replace("\\", "/").split("/")[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip().strip(".")
    # Nothing left of it (only dots, spaces or invisible characters): a name all the same.
    return name[:255] or "untitled"


def attachment_path(root: Path, attachment_id: str) -> Path:
    return root / attachment_id[-2:] / attachment_id


class _Spool:
    """An upload on its way to disk; every method does file I/O and runs on a worker thread."""

    def __init__(self, partial: Path) -> None:
        partial.parent.mkdir(parents=True, exist_ok=True)
        self.partial = partial
        self.fd: int | None = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)

    def write(self, chunk: bytes) -> None:
        assert self.fd is not None
        view = memoryview(chunk)
        while view:
            view = view[os.write(self.fd, view) :]

    def finish(self, final: Path) -> None:
        """Make it durable, then give it its final name."""
        assert self.fd is not None
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = None
        os.replace(self.partial, final)

    def discard(self, final: Path) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        for path in (self.partial, final):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


@operation(
    "Upload a file (raw body) to attach to a message",
    tags=["attachments"],
    status=201,
    scope="files:write",
    raw_body="the file's bytes, with its Content-Type",
    query={"filename": {"description": "the file's name (required)", "type": "string", "minLength": 1}},
    required_query=("filename",),
)
async def upload(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    limits = app.settings.uploads
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in limits.allowed_types:
        raise UnsupportedMediaType(
            f"files of type {content_type or '(none)'} are not accepted",
            details={"allowed_types": list(limits.allowed_types)},
        )
    filename = clean_filename(request.query_params.get("filename"))
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_bytes:
        raise PayloadTooLarge(f"files are limited to {limits.max_bytes} bytes", details={"max_bytes": limits.max_bytes})
    root = app.files_dir / "attachments"
    attachment_id = new_id("att")
    final = attachment_path(root, attachment_id)
    partial = final.with_suffix(".part")
    spool = await asyncio.to_thread(_Spool, partial)
    digest, size, head = hashlib.sha256(), 0, b""
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limits.max_bytes:
                raise PayloadTooLarge(
                    f"files are limited to {limits.max_bytes} bytes",
                    details={"max_bytes": limits.max_bytes},
                )
            if len(head) < 4096:
                head += chunk[: 4096 - len(head)]
            digest.update(chunk)
            # Disk writes and the fsync go to a thread: on the event loop they stalled every
            # stream and request while the disk worked (issue 10).
            await asyncio.to_thread(spool.write, chunk)
        await asyncio.to_thread(spool.finish, final)
        if not _looks_like(content_type, head):
            raise UnsupportedMediaType(f"the file's contents do not look like {content_type}", code="content_mismatch")
        attachment = await app.db.write(
            lambda tx: message_store.record_attachment(
                tx,
                attachment_id=attachment_id,
                org_id=who.org_id,
                actor=who.actor,
                filename=filename,
                content_type=content_type,
                size=size,
                sha256=digest.hexdigest(),
            )
        )
    except BaseException:
        await asyncio.to_thread(spool.discard, final)
        raise
    return JSONResponse({"attachment": attachment}, status_code=201)


@operation(
    "Download an attachment (supports Range)",
    tags=["attachments"],
    scope="messages:read",
    produces="*/*",  # the type it was uploaded with (`attachment.content_type`)
    query={"download": "1 to force a download instead of inline display"},
    resource=True,
)
async def download(request: Request) -> Response:
    app = spacechat(request)
    row = await message_store.get_attachment(app.db, request.path_params["attachment_id"])
    if row is None:
        raise NotFound("no such attachment")
    who = await principal(request)
    if row["message_id"] is None:
        # Not yet attached: only its uploader may see it.
        if row["uploader_id"] != who.user_id:
            raise NotFound("no such attachment")
        await authorize(request, dict(row))
    else:
        message = await message_store.get_message(app.db, row["message_id"])
        assert message is not None
        await authorize(request, dict(row), channel=await channel_of(app, message["channel_id"]))
        if message["deleted_at"] is not None:
            # Deleting a message takes its files with it (docs/chat.md): they are no longer served.
            raise NotFound("no such attachment (its message was deleted)")
    content_type = row["content_type"]
    inline = content_type.startswith(INLINE_TYPES) and request.query_params.get("download") != "1"
    media_type = f"{content_type}; charset=utf-8" if content_type.startswith("text/") else content_type
    path = attachment_path(app.files_dir / "attachments", row["id"])
    if not path.exists():
        raise NotFound("the attachment's file is missing")
    response = FileResponse(
        path,
        media_type=media_type,
        filename=row["filename"],
        content_disposition_type="inline" if inline else "attachment",
        headers={
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, max-age=31536000, immutable",
        },
    )
    return response
