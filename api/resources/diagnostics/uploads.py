"""Remote diagnostics: files from home devices, sent as a streamed multipart form, and
read back (metadata; the file itself re-hashed as it streams)."""

from __future__ import annotations

import json
import re
import unicodedata
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

import marshmallow as ma
from flask import Response, current_app, request, url_for
from flask.views import MethodView
from flask_smorest import Page

from api import multipart
from api.auth import current_actor
from api.db import database, db_session
from api.fields import UtcDateTime
from api.openapi import Blueprint, QueryResults, protected
from api.resources.schemas import DisclosedSchema, FreeText
from services.actor import Actor, Role
from services.diagnostics import filetypes, streamed, uploads
from services.diagnostics import reads as upload_reads
from services.errors import Invalid, TooLarge
from services.models import UPLOAD_KINDS, Upload

blp = Blueprint(
    "uploads", __name__, url_prefix="/api/v1", description="Remote diagnostics: uploads"
)

# Room beside the file for the text fields, the parts' headers and the boundaries.
FORM_MARGIN = 256 * 1024
FIELD_BYTES = 8 * 1024
MAX_PARTS = 16
REQUIRED = ("kind", "sha256", "captured_at")
EXTENSIONS = {
    filetypes.PDF: "pdf",
    filetypes.PNG: "png",
    filetypes.JPEG: "jpg",
    filetypes.DICOM: "dcm",
    filetypes.ZIP: "zip",
    filetypes.EDF: "edf",
    filetypes.JSON: "json",
    filetypes.XML: "xml",
    filetypes.CSV: "csv",
}


class DeviceText(ma.fields.String):
    """The device as a JSON object sent as the text of a form field."""

    default_error_messages = {  # noqa: RUF012 - marshmallow merges this class attribute
        "not_object": 'a JSON object as text, for example {{"manufacturer": "Acme"}}'
    }

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> dict[str, Any]:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            device = json.loads(text)
        except (ValueError, RecursionError):  # a deep nest is no more an object than junk
            device = None
        if not isinstance(device, dict):
            raise self.make_error("not_object")
        return device


class UploadFieldsSchema(ma.Schema):
    """The text fields of the upload form."""

    kind = ma.fields.String(required=True, metadata={"description": ", ".join(UPLOAD_KINDS)})
    sha256 = ma.fields.String(
        required=True,
        metadata={"description": "the file's SHA-256, 64 lower-case hexadecimal characters"},
    )
    captured_at = UtcDateTime(
        required=True, metadata={"description": "when the device recorded it, with its offset"}
    )
    device = DeviceText(
        metadata={"description": "a JSON object as text: manufacturer, model, serial, firmware"},
    )
    participant_id = ma.fields.UUID(
        metadata={"description": "whose file (a nurse; a patient's own)"}
    )
    visit_id = ma.fields.UUID(metadata={"description": "a nurse's visit, checked in"})
    client_id = ma.fields.UUID(
        metadata={"description": "made up by the phone; a retry answers 200"}
    )
    supersedes_id = ma.fields.UUID(metadata={"description": "the upload this one replaces"})
    supersede_reason = ma.fields.String(
        validate=ma.validate.Length(max=1000),
        metadata={"description": "why it is replaced (with supersedes_id)"},
    )


class UploadFormSchema(UploadFieldsSchema):
    """The form as documented: the text fields and the file."""

    file = ma.fields.Raw(
        required=True,
        metadata={
            "type": "string",
            "format": "binary",
            "description": "the file; its name is kept only for downloads",
        },
    )


class UploadSchema(DisclosedSchema):
    """A file's name and a replacement's reason are people's words: withheld from
    monitors and admins (services.people.disclosure)."""

    RESOURCE = "upload"

    id = ma.fields.UUID()
    client_id = ma.fields.UUID(allow_none=True)
    participant_id = ma.fields.UUID()
    study_id = ma.fields.UUID()
    site_id = ma.fields.UUID()
    visit_id = ma.fields.UUID(allow_none=True)
    kind = ma.fields.String()
    content_type = ma.fields.String(metadata={"description": "judged from the file's content"})
    filename = FreeText("the phone's name for it")
    size_bytes = ma.fields.Integer()
    sha256 = ma.fields.String()
    captured_at = UtcDateTime()
    device = ma.fields.Dict()
    transfer = ma.fields.String(metadata={"description": "multipart or tus"})
    originator = ma.fields.String(metadata={"description": "patient or nurse"})
    uploaded_by = ma.fields.UUID()
    supersedes_id = ma.fields.UUID(allow_none=True)
    supersede_reason = FreeText("why it replaces the earlier upload")
    received_at = UtcDateTime()


class UploadQuerySchema(ma.Schema):
    kind = ma.fields.String(validate=ma.validate.OneOf(UPLOAD_KINDS))


MULTIPART_BODY = {
    "required": True,
    "description": "Send the text fields before the file: the upload is then checked "
    "(access, consent, visit, replay) before a byte of the file is read. Fields after "
    "the file are accepted, but are checked only once the whole file has arrived.",
    "content": {"multipart/form-data": {"schema": UploadFormSchema}},
}


def _load(fields: dict[str, str], *, partial: bool = False) -> dict[str, Any]:
    """The fields, typed (422 with every field's problem)."""
    try:
        return UploadFieldsSchema().load(fields, partial=partial)
    except ma.ValidationError as error:
        raise Invalid(
            "the upload's fields did not validate; see errors", errors=error.messages
        ) from None


def _meta(fields: dict[str, str], filename: str | None) -> uploads.UploadMeta:
    return uploads.UploadMeta(**_load(fields), filename=filename)


class _Form:
    """One upload form being read: its fields, and its file handed to the service's
    streamed upload as soon as the fields before it have been checked."""

    def __init__(self, upload: streamed.StreamedUpload, actor: Actor) -> None:
        self.upload, self.actor = upload, actor
        self.fields: dict[str, str] = {}
        self.file_seen = False
        self.filename: str | None = None

    def read(self, parts: Iterable[multipart.Part]) -> None:
        for part in parts:
            if part.name != "file":
                self._field(part)
            elif self.file_seen:
                raise Invalid("one file per upload", errors={"file": ["sent more than once"]})
            else:
                self._file(part)

    def _field(self, part: multipart.Part) -> None:
        if part.name in self.fields:
            raise Invalid("a field was repeated", errors={part.name: ["sent more than once"]})
        self.fields[part.name] = part.text(FIELD_BYTES)

    def _file(self, part: multipart.Part) -> None:
        self.file_seen, self.filename = True, part.filename or None
        client_id = _load(self.fields, partial=True).get("client_id")
        meta = _meta(self.fields, self.filename) if self._complete() else None
        self.upload.check_early(meta, client_id)
        if not self.upload.is_replay:
            self.upload.receive(self.fields.get("kind"), part.chunks)

    def _complete(self) -> bool:
        needed = (*REQUIRED, "participant_id") if self.actor.role == Role.NURSE else REQUIRED
        return all(name in self.fields for name in needed)

    def finish(self) -> tuple[Upload, bool]:
        """Check what came after the file, then let the service verify and record it."""
        meta = _meta(self.fields, self.filename)
        if not self.file_seen:
            raise Invalid("no file", errors={"file": ["send the file as a part named file"]})
        return self.upload.finish(meta)


def _receive(actor: Actor) -> tuple[Upload, bool]:
    limits = uploads.Limits.from_settings(current_app.config)
    # The app's small JSON limit does not apply here; the kind is not known yet.
    request.max_content_length = limits.of(None) + FORM_MARGIN
    if (request.content_length or 0) > request.max_content_length:
        raise TooLarge(f"the upload is larger than the limit of {limits.of(None)} bytes")
    boundary = multipart.boundary_of(request.mimetype_params)
    upload = streamed.StreamedUpload(db_session(), actor, limits, current_app.extensions["storage"])
    try:
        form = _Form(upload, actor)
        form.read(multipart.read_form(request.stream, boundary, max_parts=MAX_PARTS))
        return form.finish()
    finally:
        upload.discard()


def _clean(filename: str) -> str:
    """The name's last path segment, without quotes nor control or format characters
    (which could forge the header or disguise the extension)."""
    name = re.split(r"[/\\]", filename)[-1]
    name = "".join(c for c in name if c != '"' and unicodedata.category(c)[0] != "C")
    return name.strip(" .")


def _ascii(name: str) -> str:
    """An ASCII stand-in for clients that ignore `filename*`: accents dropped, any
    other character outside letters, digits and `._- ` replaced."""
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(
        c if c.isascii() and (c.isalnum() or c in "._- ") else "_"
        for c in decomposed
        if not unicodedata.combining(c)
    )


def attachment(upload: Upload) -> str:
    """A Content-Disposition that saves the file under a harmless version of its name,
    with the extension of the type its content was judged to be (never the client's:
    an HTML file judged XML must not be saved as .html)."""
    extension = EXTENSIONS.get(upload.content_type, "bin")
    stem = _clean(upload.filename or "").rsplit(".", 1)[0]
    name = f"{stem or f'{upload.kind}-{upload.id}'}.{extension}"
    return f"attachment; filename=\"{_ascii(name)}\"; filename*=UTF-8''{quote(name, safe='')}"


def _alert_apart(actor: Actor) -> Callable[[upload_reads.Finding], None]:
    """Records an integrity alert in a session of its own: the body streams after the
    request's session has been committed and closed."""
    sessions = database().sessions

    def alert(finding: upload_reads.Finding) -> None:
        with sessions() as session:
            upload_reads.record_alert(session, actor, finding, "download")
            session.commit()

    return alert


@blp.route("/uploads")
class Uploads(MethodView):
    accepted_media_types = ("multipart/form-data",)

    @protected(blp, 403, 404, 409, 413, 415, 422)
    @blp.doc(requestBody=MULTIPART_BODY)
    @blp.response(201, UploadSchema, headers={"Location": {"schema": {"type": "string"}}})
    @blp.alt_response(200, schema=UploadSchema, description="a retry: the original upload")
    def post(self) -> tuple[Upload, int, dict[str, str]]:
        """Upload a file from a home device (the patient; a nurse for a participant of
        their visits), streamed: never held whole in memory.

        The SHA-256 received must be the client's (422 otherwise), the size within
        the kind's limit (413, stopped as soon as it is crossed) and the type, judged
        from the content, one the kind accepts (415). On any refusal nothing is kept.
        The same `client_id` again answers 200 with the original. Refused with 409
        for a withdrawn participant or one without a current consent. Uploads are
        never changed: a replacement names the one it supersedes, with a reason.
        """
        upload, created = _receive(current_actor())
        location = url_for(".UploadItem", upload_id=upload.id)
        return upload, 201 if created else 200, {"Location": location}


@blp.route("/uploads/<uuid:upload_id>")
class UploadItem(MethodView):
    @protected(blp, 403, 404)
    @blp.response(200, UploadSchema)
    def get(self, upload_id: uuid.UUID) -> Upload:
        """An upload's metadata (coordinator of the site, the patient, a nurse of their
        visits, monitors without the file name). Uploads are never changed nor deleted."""
        return upload_reads.get_upload(db_session(), current_actor(), upload_id)


@blp.route("/uploads/<uuid:upload_id>/content")
class UploadContent(MethodView):
    @protected(blp, 403, 404)
    @blp.response(
        200,
        {"type": "string", "format": "binary"},
        content_type="application/octet-stream",
        headers={
            "Content-Disposition": {"schema": {"type": "string"}},
            "X-Content-SHA256": {"schema": {"type": "string"}, "description": "as uploaded"},
        },
    )
    def get(self, upload_id: uuid.UUID) -> Response:
        """The file, in its stored type (coordinator of the site, the patient, a nurse
        of their visits; never monitors). Every download is audited.

        It is re-hashed as it streams: if it no longer matches its SHA-256 the
        transfer is aborted before its end, so a complete body is never received,
        and an integrity alert is written to the audit trail.
        """
        actor = current_actor()
        storage = current_app.extensions["storage"]
        upload, chunks = upload_reads.download(
            db_session(), actor, storage, upload_id, _alert_apart(actor)
        )
        response = Response(chunks, content_type=upload.content_type, direct_passthrough=True)
        response.content_length = upload.size_bytes
        response.headers["Content-Disposition"] = attachment(upload)
        response.headers["X-Content-SHA256"] = upload.sha256
        return response


@blp.route("/participants/<uuid:participant_id>/uploads")
class ParticipantUploads(MethodView):
    @protected(blp, 403, 404)
    @blp.arguments(UploadQuerySchema, location="query")
    @blp.response(200, UploadSchema(many=True))
    @blp.paginate(Page)
    def get(self, filters: dict[str, Any], participant_id: uuid.UUID) -> QueryResults:
        """A participant's uploads, newest first (coordinator of the site, the patient,
        a nurse of their visits, monitors with file names and reasons withheld); `kind`
        filters."""
        session = db_session()
        query = upload_reads.participant_uploads(
            session, current_actor(), participant_id, filters.get("kind")
        )
        return QueryResults(session, query)
