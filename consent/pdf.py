"""The signed copy of a consent (ICH E6 4.8.11: the participant receives a copy of
the signed and dated form).

Produced once, when first asked for after completion: the bytes and their SHA-256
are stored on the consent, and every later download answers those same bytes. The
rendering is deterministic (reportlab's `invariant` mode: no creation time, no
random document id), so the stored hash can be re-derived from the record with the
same reportlab version.

Set in DejaVu Sans (shipped in `consent/fonts`, free licence beside it): Latin with
its extensions, Greek and Cyrillic, so the names of European participants print as
typed. A character the font lacks (CJK, for instance) is printed without its accent
or as "?", and the page says so; the electronic record keeps the exact text.

Longer than most modules on purpose: it is one page layout, whose determinism (and so
the stored hash) is easiest to keep when all of its drawing sits in one place.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import unicodedata
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    Flowable,
    KeepTogether,
    ListFlowable,
    ListItem,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)
from sqlalchemy.orm import Session

from consent.models import Consent, ConsentSignature, SignerRole
from consent.records import get_consent
from consent.signing import signature_is_intact
from services.access import require_role
from services.actor import Actor, Role
from services.audit import chain as audit
from services.errors import Conflict
from services.models import Participant
from services.people.participants import participant_subject

FONT = "DejaVuSans"
FONT_FOLDER = Path(__file__).parent / "fonts"
_FONT_FILES = {
    FONT: "DejaVuSans.ttf",
    f"{FONT}-Bold": "DejaVuSans-Bold.ttf",
    f"{FONT}-Italic": "DejaVuSans-Oblique.ttf",
    f"{FONT}-BoldItalic": "DejaVuSans-BoldOblique.ttf",
}
MARGIN = 20 * mm
ROLE_LABELS = {
    SignerRole.PARTICIPANT: "Participant",
    SignerRole.LAR: "Legally authorised representative",
    SignerRole.WITNESS: "Impartial witness",
    SignerRole.INVESTIGATOR: "Investigator",
}


@dataclass(frozen=True)
class SignedCopy:
    consent: Consent
    pdf: bytes
    sha256: str
    filename: str


def signed_copy(session: Session, actor: Actor, consent_id: uuid.UUID) -> SignedCopy:
    """The stored signed copy, produced on first request; every download is audited."""
    require_role(actor, Role.COORDINATOR, Role.PATIENT)
    consent = get_consent(session, actor, consent_id)
    if consent.completed_at is None:
        raise Conflict(
            "the signed copy exists once the consent is complete: it still awaits signatures"
        )
    participant = session.get_one(Participant, consent.participant_id)
    subject = participant_subject(participant)
    if consent.pdf is None:
        if not all(signature_is_intact(s, consent) for s in consent.signatures):
            raise Conflict(
                "a signature of this consent fails verification: no signed copy is produced"
            )
        consent.pdf = render(consent, participant)
        consent.pdf_sha256 = hashlib.sha256(consent.pdf).hexdigest()
        session.flush()
        audit.record_change(
            session,
            actor,
            "consent.pdf_store",
            consent,
            subject=subject,
            after={"pdf_sha256": consent.pdf_sha256, "bytes": len(consent.pdf)},
        )
    audit.record_change(
        session,
        actor,
        "consent.pdf_download",
        consent,
        subject=subject,
        after={"pdf_sha256": consent.pdf_sha256},
    )
    return SignedCopy(
        consent=consent,
        pdf=consent.pdf,
        sha256=consent.pdf_sha256 or "",
        filename=f"consent-{participant.subject_code}-v{consent.document.version}.pdf",
    )


# --- rendering ----------------------------------------------------------------------


@cache
def _register_fonts() -> None:
    for name, file in _FONT_FILES.items():
        pdfmetrics.registerFont(TTFont(name, str(FONT_FOLDER / file)))
    pdfmetrics.registerFontFamily(
        FONT,
        normal=FONT,
        bold=f"{FONT}-Bold",
        italic=f"{FONT}-Italic",
        boldItalic=f"{FONT}-BoldItalic",
    )


@cache
def _covered() -> frozenset[int]:
    _register_fonts()
    font = pdfmetrics.getFont(FONT)
    return frozenset(font.face.charToGlyph)


def in_font(text: str) -> tuple[str, bool]:
    """The text as the font can print it, and whether a character had to lose its
    accent (or became "?") to get there."""
    covered = _covered()
    out: list[str] = []
    changed = False
    for char in text:
        if ord(char) in covered or char in "\n\t":
            out.append(char)
            continue
        changed = True
        base = unicodedata.normalize("NFKD", char)[:1]
        out.append(base if base and ord(base) in covered else "?")
    return "".join(out), changed


def _styles() -> dict[str, ParagraphStyle]:
    body = ParagraphStyle("body", fontName=FONT, fontSize=10, leading=14, spaceAfter=6)
    return {
        "title": ParagraphStyle(
            "title", parent=body, fontName=f"{FONT}-Bold", fontSize=17, leading=22, spaceAfter=10
        ),
        "h1": ParagraphStyle(
            "h1",
            parent=body,
            fontName=f"{FONT}-Bold",
            fontSize=14,
            leading=18,
            spaceBefore=10,
            spaceAfter=6,
        ),
        "h2": ParagraphStyle(
            "h2",
            parent=body,
            fontName=f"{FONT}-Bold",
            fontSize=12,
            leading=16,
            spaceBefore=8,
            spaceAfter=4,
        ),
        "h3": ParagraphStyle(
            "h3", parent=body, fontName=f"{FONT}-Bold", fontSize=10.5, leading=14, spaceBefore=6
        ),
        "body": body,
        "bullet": ParagraphStyle("bullet", parent=body, spaceAfter=2),
        "label": ParagraphStyle("label", parent=body, fontName=f"{FONT}-Bold", fontSize=8.5),
        "value": ParagraphStyle("value", parent=body, fontSize=8.5, leading=11, spaceAfter=0),
        "note": ParagraphStyle(
            "note", parent=body, fontName=f"{FONT}-Italic", fontSize=8.5, leading=11
        ),
    }


class _Text:
    """Escapes text for Paragraph markup and remembers whether anything lost an accent."""

    def __init__(self) -> None:
        self.changed = False

    def __call__(self, text: str) -> str:
        printable, changed = in_font(text)
        self.changed = self.changed or changed
        return escape(printable)


_BOLD = re.compile(r"\*\*(.+?)\*\*")
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_BULLET = re.compile(r"^\s*[-*+]\s+(.*)$")
_NUMBERED = re.compile(r"^\s*\d+[.)]\s+(.*)$")


def markdown_flowables(
    markdown: str, styles: dict[str, ParagraphStyle], text: _Text
) -> list[Flowable]:
    """Headings, paragraphs, bullet and numbered lists, **bold**: what consent texts use."""
    flowables: list[Flowable] = []
    paragraph: list[str] = []
    items: list[str] = []
    ordered = False

    def inline(raw: str) -> str:
        return _BOLD.sub(r"<b>\1</b>", text(raw))

    def flush_paragraph() -> None:
        if paragraph:
            flowables.append(Paragraph(inline(" ".join(paragraph)), styles["body"]))
            paragraph.clear()

    def flush_list() -> None:
        if items:
            flowables.append(
                ListFlowable(
                    [ListItem(Paragraph(inline(i), styles["bullet"])) for i in items],
                    bulletType="1" if ordered else "bullet",
                    start=None if ordered else "•",
                    bulletFontName=FONT,
                    bulletFontSize=9,
                    leftIndent=14,
                )
            )
            items.clear()

    for line in markdown.splitlines():
        heading = _HEADING.match(line)
        bullet = _BULLET.match(line)
        numbered = _NUMBERED.match(line)
        if not line.strip():
            flush_paragraph()
            flush_list()
        elif heading:
            flush_paragraph()
            flush_list()
            level = min(len(heading.group(1)), 3)
            flowables.append(Paragraph(inline(heading.group(2)), styles[f"h{level}"]))
        elif bullet or numbered:
            flush_paragraph()
            if items and ordered != bool(numbered):
                flush_list()
            ordered = bool(numbered)
            items.append((bullet or numbered).group(1))  # type: ignore[union-attr]
        elif items and line.startswith((" ", "\t")):
            items[-1] += " " + line.strip()
        else:
            flush_list()
            paragraph.append(line.strip())
    flush_paragraph()
    flush_list()
    return flowables


def _utc(moment: dt.datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _fields(rows: list[tuple[str, str]], styles: dict[str, ParagraphStyle], text: _Text) -> Table:
    """A label/value table; values are already plain text and get escaped here."""
    data = [
        [Paragraph(escape(label), styles["label"]), Paragraph(text(value), styles["value"])]
        for label, value in rows
    ]
    table = Table(data, colWidths=[42 * mm, None], hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LEFTPADDING", (0, 0), (-1, -1), 0),
                ("TOPPADDING", (0, 0), (-1, -1), 1),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
            ]
        )
    )
    return table


def _signature_block(
    signature: ConsentSignature, styles: dict[str, ParagraphStyle], text: _Text
) -> Flowable:
    role = SignerRole(signature.signer_role)
    rows = [
        ("Role", ROLE_LABELS[role]),
        ("Printed name", signature.printed_name),
        ("Meaning", signature.meaning),
        ("Signed (UTC)", _utc(signature.signed_at)),
        ("Document version", str(signature.document_version)),
        ("Document SHA-256", signature.document_sha256),
        ("Signature id", str(signature.id)),
    ]
    if signature.credential_note:
        rows.append(("Credential", signature.credential_note))
    table = _fields(
        rows,
        styles,
        text,
    )
    table.setStyle(
        TableStyle(
            [
                ("LINEABOVE", (0, 0), (-1, 0), 0.5, colors.grey),
                ("TOPPADDING", (0, 0), (-1, 0), 5),
            ]
        )
    )
    return KeepTogether([table, Spacer(1, 4 * mm)])


def _numbered_canvas(footer: str) -> type[Canvas]:
    """A canvas that knows the page count when it writes "page n of N" on each page."""

    class NumberedCanvas(Canvas):  # type: ignore[misc]  # reportlab is untyped
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for number, state in enumerate(self._pages, start=1):
                self.__dict__.update(state)
                self.setFont(FONT, 7.5)
                self.setFillColor(colors.grey)
                self.drawString(MARGIN, 10 * mm, footer)
                self.drawRightString(A4[0] - MARGIN, 10 * mm, f"Page {number} of {total}")
                super().showPage()
            super().save()

    return NumberedCanvas


def render(consent: Consent, participant: Participant) -> bytes:
    """The signed copy as PDF bytes: same record, same reportlab, same bytes."""
    _register_fonts()
    styles = _styles()
    text = _Text()
    document = consent.document
    study = participant.study
    story: list[Flowable] = [
        Paragraph(text(document.title), styles["title"]),
        _fields(
            [
                ("Study", f"{study.code} - {study.title}"),
                ("Participant", participant.subject_code),
                ("Consent record", str(consent.id)),
                ("Document", f"version {document.version} ({document.language})"),
                ("Document SHA-256", document.content_sha256),
                (
                    "Ethics approval",
                    f"{document.ethics_reference or '-'}, approved "
                    f"{document.approved_on or '-'}, effective {document.effective_from or '-'}",
                ),
                ("Consent completed", _utc(consent.completed_at)),
            ],
            styles,
            text,
        ),
        Spacer(1, 6 * mm),
        *markdown_flowables(document.body_markdown, styles, text),
    ]
    if document.optional_clauses:
        story.append(Paragraph("Optional clauses", styles["h1"]))
        for clause in document.optional_clauses:
            agreed = consent.clause_choices.get(clause["code"])
            choice = "Yes, I agree" if agreed else "No, I do not agree"
            story.append(
                Paragraph(
                    f"{text(clause['text'])} <b>{escape(choice)}</b> ({escape(clause['code'])})",
                    styles["body"],
                )
            )
    story.append(Paragraph("Signatures", styles["h1"]))
    story.extend(_signature_block(s, styles, text) for s in consent.signatures)
    story.append(
        Paragraph(
            "Each signature was executed electronically with the signer's password and is "
            f"bound to document SHA-256 {escape(document.content_sha256)} and to consent "
            f"record {consent.id}.",
            styles["note"],
        )
    )
    if text.changed:
        story.append(
            Paragraph(
                "Some characters are printed without their accents because the font of this "
                "copy lacks them; the electronic record holds the exact text.",
                styles["note"],
            )
        )
    buffer = io.BytesIO()
    SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN,
        title=f"Signed informed consent {participant.subject_code}",
        author=study.code,
        subject=f"Consent record {consent.id}",
        creator="DCT backend",
        invariant=1,
        pageCompression=1,
    ).build(story, canvasmaker=_numbered_canvas(f"Consent record {consent.id}"))
    return buffer.getvalue()
