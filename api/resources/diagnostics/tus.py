"""Resumable uploads for phones on bad networks: tus 1.0 (https://tus.io/protocols/
resumable-upload) with the creation, termination and checksum (sha256) extensions.

A phone creates a transfer (POST, the file's metadata in `Upload-Metadata`), PATCHes
the bytes in as many requests as its network allows, asks for the offset (HEAD) to
resume after a drop, and gets its upload record's URL in `Upload-Record` with the last
PATCH. Errors are problem+json as everywhere else; every answer says `Tus-Resumable`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
import uuid
from collections.abc import Iterator
from typing import Any

import marshmallow as ma
from flask import Response, current_app, jsonify, request, url_for
from flask.views import MethodView
from werkzeug.exceptions import ClientDisconnected
from werkzeug.http import http_date

from api.auth import current_actor
from api.db import db_session
from api.errors import PROBLEM_JSON, ProblemSchema, problem, status_of
from api.fields import UtcDateTime
from api.openapi import API_PREFIX, Blueprint, protected
from api.resources.diagnostics.uploads import UploadFieldsSchema
from services.db import utcnow
from services.diagnostics import tus
from services.diagnostics.storage import CHUNK, Storage
from services.diagnostics.uploads import Limits, UploadMeta
from services.errors import DomainError, Invalid, UnsupportedType
from services.models import TusTransfer, Upload

blp = Blueprint("tus", __name__, url_prefix="/api/v1", description="Resumable uploads (tus 1.0)")

TUS_VERSION = "1.0.0"
OFFSET_STREAM = "application/offset+octet-stream"
_SIZE = re.compile(r"[0-9]{1,19}")
_SHA256_BYTES = hashlib.sha256().digest_size
_HEADERS = {
    "Tus-Resumable": "1.0.0 (412 otherwise)",
    "Upload-Length": "the file's size in bytes",
    "Upload-Metadata": "comma-separated `key base64(value)` pairs: kind, sha256 (hex), "
    "captured_at (RFC 3339 with offset), filename, device (a JSON object), participant_id "
    "(nurses), visit_id, client_id, supersedes_id, supersede_reason; other keys are ignored",
    "Upload-Offset": "where this body starts: the transfer's current offset (409 otherwise)",
    "Upload-Checksum": "`sha256 <base64 digest>` of this request's body (460 on a mismatch)",
}
_ANSWERS = {
    "Location": "the transfer's URL",
    "Upload-Offset": "the bytes received so far",
    "Upload-Length": "the file's size",
    "Upload-Expires": "when an unfinished transfer is dropped (RFC 7231 date)",
    "Upload-Record": "once complete: the upload record's URL",
}


def _documented(*names: str) -> dict[str, Any]:
    return {name: {"schema": {"type": "string"}, "description": _ANSWERS[name]} for name in names}


def _asks_for(*names: str) -> Any:
    """Document the request headers a view reads."""
    required = {"Tus-Resumable", "Upload-Length", "Upload-Metadata", "Upload-Offset"}
    return blp.doc(
        parameters=[
            {
                "in": "header",
                "name": name,
                "required": name in required,
                "schema": {"type": "string"},
                "description": _HEADERS[name],
            }
            for name in names
        ]
    )


@blp.before_request
def _speaks_tus() -> Response | None:
    if request.method == "OPTIONS" or request.headers.get("Tus-Resumable") == TUS_VERSION:
        return None
    return problem(
        412,
        "Precondition Failed",
        f"this server speaks tus {TUS_VERSION}: send 'Tus-Resumable: {TUS_VERSION}'",
        headers={"Tus-Version": TUS_VERSION},
    )


@blp.after_request
def _says_tus(response: Response) -> Response:
    response.headers["Tus-Resumable"] = TUS_VERSION
    status, title = status_of(tus.ChecksumMismatch)
    if response.status_code == status:  # not a registered status: werkzeug has no phrase
        response.status = f"{status} {title}"
    return response


class TusMetadataSchema(UploadFieldsSchema):
    """Upload-Metadata once decoded: the simple upload's fields and the file's name."""

    class Meta:
        unknown = ma.EXCLUDE  # tus clients add keys of their own (filetype, name...)

    filename = ma.fields.String(metadata={"description": "the phone's name for the file"})

    @ma.post_load
    def _meta(self, data: dict[str, Any], **_kwargs: Any) -> UploadMeta:
        return UploadMeta(**data)


class TusCreatedSchema(ma.Schema):
    """The transfer, also in the body for clients that read JSON rather than headers."""

    id = ma.fields.UUID()
    url = ma.fields.String(metadata={"description": "as in Location: PATCH the bytes there"})
    length_bytes = ma.fields.Integer()
    expires_at = UtcDateTime()


class TusReplaySchema(ma.Schema):
    upload_id = ma.fields.UUID()
    record = ma.fields.String(metadata={"description": "the upload record's URL"})


def _decoded(header: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in header.split(","))):
        key, _, value = item.partition(" ")
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise ma.ValidationError(
                {"Upload-Metadata": [f"{key}: not the base64 of UTF-8 text"]}
            ) from None
        if key in pairs:
            raise ma.ValidationError({"Upload-Metadata": [f"{key}: given twice"]})
        pairs[key] = decoded
    return pairs


def _size(name: str, errors: dict[str, Any], minimum: int = 0) -> int:
    raw = request.headers.get(name, "")
    if not _SIZE.fullmatch(raw) or int(raw) < minimum:
        errors[name] = [f"a whole number of bytes, at least {minimum}"]
        return minimum
    return int(raw)


def _creation() -> tuple[int, UploadMeta]:
    """Every problem of the creation headers at once (422)."""
    errors: dict[str, Any] = {}
    length = _size("Upload-Length", errors, minimum=1)
    meta = None
    try:
        meta = TusMetadataSchema().load(_decoded(request.headers.get("Upload-Metadata", "")))
    except ma.ValidationError as error:
        errors.update(error.normalized_messages())
    if errors or meta is None:
        raise Invalid("the upload's headers did not validate; see errors", errors=errors)
    return length, meta


def _checksum() -> bytes | None:
    """The body's SHA-256 from `Upload-Checksum`; another algorithm is a 400, as tus says."""
    raw = request.headers.get("Upload-Checksum")
    if raw is None:
        return None
    algorithm, _, value = raw.strip().partition(" ")
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except binascii.Error:
        digest = b""
    if algorithm != "sha256" or len(digest) != _SHA256_BYTES:
        raise DomainError(
            "Upload-Checksum: this server checks sha256 only",
            errors={"Upload-Checksum": ["sha256 and the base64 of the body's 32-byte digest"]},
        )
    return digest


def _body(room: int) -> Iterator[bytes]:
    """The PATCH body, streamed. The app's request limit is for JSON; a body larger
    than the room left is a 413 (at once when its Content-Length says so). One byte
    more than the room, because behind gunicorn (`wsgi.input_terminated`) werkzeug
    refuses the read that reaches the limit itself; `tus` counts the room exactly."""
    request.max_content_length = room + 1
    try:
        while chunk := request.stream.read(CHUNK):
            yield chunk
    except ClientDisconnected as error:
        raise tus.Interrupted("the body stopped before its end") from error


def _storage() -> Storage:
    return current_app.extensions["storage"]


def _limits() -> Limits:
    return Limits.from_settings(current_app.config)


def _record_url(upload_id: uuid.UUID) -> str:
    return f"{API_PREFIX}/uploads/{upload_id}"


def _progress(transfer: TusTransfer, status: int) -> Response:
    response = Response(status=status)
    response.headers["Upload-Offset"] = str(transfer.offset_bytes)
    if transfer.upload_id is not None:
        response.headers["Upload-Record"] = _record_url(transfer.upload_id)
    else:
        response.headers["Upload-Expires"] = http_date(transfer.expires_at)
    return response


@blp.route("/uploads/tus/")
class TusUploads(MethodView):
    accepted_media_types = frozenset({OFFSET_STREAM})

    @blp.response(
        204,
        headers={
            name: {"schema": {"type": "string"}}
            for name in (
                "Tus-Version",
                "Tus-Extension",
                "Tus-Checksum-Algorithm",
                "Tus-Max-Size",
            )
        },
    )
    def options(self) -> Response:
        """What this tus server offers; no token needed, clients ask before anything."""
        response = Response(status=204)
        response.headers["Tus-Version"] = TUS_VERSION
        response.headers["Tus-Extension"] = "creation,termination,checksum"
        response.headers["Tus-Checksum-Algorithm"] = "sha256"
        response.headers["Tus-Max-Size"] = str(_limits().of(None))
        return response

    @protected(blp, 400, 403, 404, 409, 412, 413, 422)
    @_asks_for("Tus-Resumable", "Upload-Length", "Upload-Metadata")
    @blp.response(201, TusCreatedSchema, headers=_documented("Location", "Upload-Expires"))
    @blp.alt_response(
        200,
        schema=TusReplaySchema,
        description="a replayed client_id: the upload it made",
        headers=_documented("Upload-Record", "Upload-Offset", "Upload-Length"),
    )
    def post(self) -> Response | tuple[dict[str, Any], int, dict[str, str]]:
        """Create a transfer (patient, nurse for a participant of their visits).

        Every check of a simple upload runs now, before any byte: role, participant,
        consent (409), visit, metadata (422), the kind's size limit (413). The body must
        be empty (no creation-with-upload). A `client_id` that already made an upload
        answers 200 with that upload's URL in `Upload-Record` and no new transfer, so a
        phone retrying after a lost answer learns its file is in. A transfer not finished
        within DCT_TUS_EXPIRY_HOURS is dropped.
        """
        if request.content_length or "chunked" in request.headers.get("Transfer-Encoding", ""):
            raise DomainError("create with an empty body, then PATCH the bytes to the Location")
        length, meta = _creation()
        created = tus.create(
            db_session(),
            current_actor(),
            meta,
            length,
            limits=_limits(),
            lifetime=dt.timedelta(hours=current_app.config["DCT_TUS_EXPIRY_HOURS"]),
            now=utcnow(),
        )
        if isinstance(created, Upload):
            record = _record_url(created.id)
            response = jsonify(TusReplaySchema().dump({"upload_id": created.id, "record": record}))
            response.headers["Upload-Record"] = record
            response.headers["Upload-Offset"] = response.headers["Upload-Length"] = str(
                created.size_bytes
            )
            return response
        location = url_for("tus.TusTransferView", transfer_id=created.id)
        return (
            {
                "id": created.id,
                "url": location,
                "length_bytes": created.length_bytes,
                "expires_at": created.expires_at,
            },
            201,
            {"Location": location, "Upload-Expires": http_date(created.expires_at)},
        )


@blp.route("/uploads/tus/<uuid:transfer_id>")
class TusTransferView(MethodView):
    accepted_media_types = frozenset({OFFSET_STREAM})

    @protected(blp, 403, 404, 412)
    @_asks_for("Tus-Resumable")
    @blp.response(
        200,
        headers=_documented("Upload-Offset", "Upload-Length", "Upload-Expires", "Upload-Record"),
    )
    def head(self, transfer_id: uuid.UUID) -> Response:
        """Where to resume: the offset (the creator only; others, and expired transfers,
        404). A finished transfer answers its full length and its `Upload-Record`."""
        transfer = tus.find(db_session(), current_actor(), transfer_id, now=utcnow())
        response = _progress(transfer, 200)
        response.headers["Upload-Length"] = str(transfer.length_bytes)
        response.headers["Cache-Control"] = "no-store"
        return response

    @protected(blp, 400, 403, 404, 409, 412, 413, 415, 422)
    @_asks_for("Tus-Resumable", "Upload-Offset", "Upload-Checksum")
    @blp.alt_response(
        460,
        description="Checksum Mismatch: nothing of this body was kept",
        schema=ProblemSchema,
        content_type=PROBLEM_JSON,
    )
    @blp.response(204, headers=_documented("Upload-Offset", "Upload-Expires", "Upload-Record"))
    def patch(self, transfer_id: uuid.UUID) -> Response:
        """Add bytes at the transfer's offset, as application/offset+octet-stream.

        The body streams to the storage. When it stops early (a dropped connection)
        what arrived is kept and HEAD tells where to resume, unless Upload-Checksum was
        given: a part cannot match it, so nothing is kept. With the last byte the whole
        file is verified like a simple upload: a SHA-256 other than the metadata's (422)
        or a type the kind does not accept (415) ends the transfer and keeps nothing.
        Success answers 204 with `Upload-Record`, the upload's URL.
        """
        if request.mimetype != OFFSET_STREAM:
            raise UnsupportedType(f"send the bytes as {OFFSET_STREAM}")
        errors: dict[str, Any] = {}
        offset = _size("Upload-Offset", errors)
        if errors:
            raise Invalid("Upload-Offset did not validate; see errors", errors=errors)
        transfer = tus.append(
            db_session(),
            current_actor(),
            _storage(),
            transfer_id,
            offset,
            _body,
            checksum=_checksum(),
            zip_limits=_limits().zip,
            now=utcnow(),
        )
        return _progress(transfer, 204)

    @protected(blp, 403, 404, 412)
    @_asks_for("Tus-Resumable")
    @blp.response(204)
    def delete(self, transfer_id: uuid.UUID) -> None:
        """Give up a transfer in progress (tus termination): its bytes are dropped."""
        tus.terminate(db_session(), current_actor(), _storage(), transfer_id, now=utcnow())
