"""A streaming reader for `multipart/form-data` bodies.

Flask's own form parsing spools a whole file to a temporary file before the view
runs: a large upload is then written twice and its size limit is only checked once
it has all arrived. This reader parses the body as it is read, chunk by chunk, with
werkzeug's sans-IO decoder, and hands the file's bytes on as they come.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from werkzeug.exceptions import BadRequest, RequestEntityTooLarge
from werkzeug.sansio.multipart import (
    Data,
    Epilogue,
    Event,
    Field,
    File,
    MultipartDecoder,
    NeedData,
    Preamble,
)

CHUNK = 256 * 1024
# Part headers beyond this are not a real client's: refused rather than buffered.
HEADER_ROOM = 64 * 1024


@dataclass
class Part:
    """One part of the form. Its bytes arrive through `chunks`, which must be read
    before the next part; whatever is left unread is skipped."""

    name: str
    filename: str | None
    chunks: Iterator[bytes]

    def text(self, max_bytes: int) -> str:
        """The part as UTF-8 text (a form field), refusing more than `max_bytes` (413)."""
        value = bytearray()
        for chunk in self.chunks:
            value += chunk
            if len(value) > max_bytes:
                raise RequestEntityTooLarge(
                    f"the form field {self.name!r} is larger than {max_bytes} bytes"
                )
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise BadRequest(f"the form field {self.name!r} is not UTF-8 text") from None


class _Events:
    """The decoder's events, reading the stream only when the decoder needs more."""

    def __init__(self, stream: IO[bytes], boundary: bytes, max_parts: int) -> None:
        self._stream = stream
        self._decoder = MultipartDecoder(
            boundary, max_form_memory_size=CHUNK + HEADER_ROOM, max_parts=max_parts
        )

    def next(self) -> Event:
        while True:
            try:
                event = self._decoder.next_event()
            except ValueError:  # a truncated body or a part without its headers
                raise BadRequest("the multipart/form-data body is malformed") from None
            if not isinstance(event, NeedData):
                return event
            self._decoder.receive_data(self._stream.read(CHUNK) or None)

    def data(self) -> Iterator[bytes]:
        """The current part's bytes, up to its end."""
        while True:
            event = self.next()
            if not isinstance(event, Data):
                raise BadRequest("the multipart/form-data body is malformed")
            if event.data:
                yield event.data
            if not event.more_data:
                return


# RFC 2046 allows 70 characters; some encoders (werkzeug's among them, now and then)
# make longer ones, which parse just as well. Past this, it is no boundary.
MAX_BOUNDARY = 200


def boundary_of(mimetype_params: dict[str, str]) -> bytes:
    """The boundary from the Content-Type's parameters (400 without a usable one)."""
    boundary = mimetype_params.get("boundary", "")
    if not 1 <= len(boundary) <= MAX_BOUNDARY or not boundary.isascii():
        raise BadRequest("the Content-Type multipart/form-data needs its boundary parameter")
    return boundary.encode()


def read_form(stream: IO[bytes], boundary: bytes, *, max_parts: int) -> Iterator[Part]:
    """The form's parts in the order they were sent, each streamed. More than
    `max_parts` parts is refused (413)."""
    events = _Events(stream, boundary, max_parts)
    while True:
        event = events.next()
        if isinstance(event, Epilogue):
            return
        if isinstance(event, Preamble):
            continue
        if not isinstance(event, Field | File):
            raise BadRequest("the multipart/form-data body is malformed")
        part = Part(event.name, event.filename if isinstance(event, File) else None, events.data())
        yield part
        for _skipped in part.chunks:
            pass
