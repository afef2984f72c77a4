"""What a file is, judged from its first bytes, never from the client's name or
Content-Type header; and which types each kind of upload accepts.

HTML is never accepted, under any kind: a stored page opened in a browser could run
script with the service's origin. It is recognised as browsers recognise it (the
WHATWG MIME sniffing tags at the start) and by the tags and namespace that make a
document active anywhere in the sniffed bytes, so it cannot pass as XML or CSV."""

from __future__ import annotations

import re

from services.errors import UnsupportedType

# Enough for DICOM's marker at byte 128 and for a look at a text file's first line.
SNIFF_BYTES = 4096

PDF = "application/pdf"
PNG = "image/png"
JPEG = "image/jpeg"
DICOM = "application/dicom"
ZIP = "application/zip"
EDF = "application/edf"
JSON = "application/json"
XML = "application/xml"
CSV = "text/csv"
HTML = "text/html"  # recognised only to be refused: in no kind's list

NAMES = {PDF: "PDF", PNG: "PNG", JPEG: "JPEG", DICOM: "DICOM", ZIP: "ZIP", EDF: "EDF",
         JSON: "JSON", XML: "XML", CSV: "CSV"}  # fmt: skip

ALLOWED: dict[str, frozenset[str]] = {
    "ecg": frozenset({PDF, XML, CSV, EDF, DICOM, JSON}),
    "spirometry": frozenset({PDF, XML, CSV, JSON}),
    "blood_pressure": frozenset({PDF, XML, CSV, JSON}),
    "glucose": frozenset({PDF, XML, CSV, JSON}),
    "image": frozenset({PNG, JPEG, DICOM}),
    "wearable_export": frozenset({CSV, JSON, XML, ZIP}),
    "other": frozenset(NAMES),
}

_BINARY = (
    (b"%PDF-", PDF),
    (b"\x89PNG\r\n\x1a\n", PNG),
    (b"\xff\xd8\xff", JPEG),
    (b"PK\x03\x04", ZIP),
    (b"PK\x05\x06", ZIP),  # an empty archive
)


def _text(head: bytes) -> str | None:
    """The head as UTF-8 text, allowing a character cut at the end of the sniffed bytes."""
    head = head.removeprefix(b"\xef\xbb\xbf")
    if b"\x00" in head:
        return None
    for cut in range(4):
        try:
            return head[: len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return None


_HTML_START = re.compile(
    r"\s*<(!doctype\s+html|html|head|script|iframe|h1|div|font|table|a|style|title|b|body|br|p)"
    r"[\s>]",
    re.IGNORECASE,
)
_HTML_ANYWHERE = re.compile(
    r"<(!doctype\s+html|html|script|iframe|body|object|embed|svg)[\s>/]"
    r"|http://www\.w3\.org/1999/xhtml",
    re.IGNORECASE,
)


def _is_html(text: str) -> bool:
    return bool(_HTML_START.match(text) or _HTML_ANYWHERE.search(text))


def _edf(head: bytes) -> bool:
    """EDF/EDF+ headers start with the version "0" padded to 8 ASCII spaces."""
    return head[:8] == b"0       " and all(32 <= byte < 127 for byte in head[:256])


def detect(head: bytes) -> str | None:
    """The media type of a file from its first bytes, or None when unrecognised."""
    for magic, media_type in _BINARY:
        if head.startswith(magic):
            return media_type
    if head[128:132] == b"DICM":
        return DICOM
    if _edf(head):
        return EDF
    text = _text(head)
    if text is None:
        return None
    if _is_html(text):
        return HTML
    stripped = text.lstrip()
    if stripped.startswith("<"):
        return XML
    if stripped.startswith(("{", "[")):
        return JSON
    header = stripped.split("\n", 1)[0].rstrip("\r")
    if any(sep in header for sep in (",", ";", "\t")) and header.replace("\t", " ").isprintable():
        return CSV
    return None


def judge(head: bytes, kind: str) -> str:
    """The media type to store for this kind of upload, or 415 saying why not."""
    media_type = detect(head)
    if media_type == HTML:
        raise UnsupportedType(
            "the content is HTML (judged from its first bytes): HTML is never accepted, "
            "under any kind"
        )
    accepted = ", ".join(sorted(NAMES[t] for t in ALLOWED[kind]))
    if media_type is None:
        raise UnsupportedType(
            f"the content is not a recognised file type (judged from its first bytes); "
            f"{kind} uploads accept {accepted}"
        )
    if media_type not in ALLOWED[kind]:
        raise UnsupportedType(
            f"the content is {NAMES[media_type]} (judged from its first bytes); "
            f"{kind} uploads accept {accepted}"
        )
    return media_type
