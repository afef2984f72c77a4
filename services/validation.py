"""Normalisers for values that arrive from many endpoints: phones, emails, zones, codes,
and the text rules for what people read (names, addresses, consent documents)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers

from services.errors import Invalid

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_LANGUAGE = re.compile(r"^[a-z]{2}$")
_CLOCK = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
# Characters no stored string may hold: NUL (PostgreSQL refuses it in text) and lone
# surrogates (not Unicode scalar values, so not encodable as UTF-8).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Beyond those, what text shown to people (on a signature, a consent page, a letter)
# may not hold: control characters (C0 but tab and line breaks, DEL, C1), the Unicode
# line and paragraph separators, and the bidirectional embeddings, overrides and
# isolates that make text display in another order than it is stored ("Trojan Source").
# Bidi *marks* (U+200E, U+200F, U+061C) and joiners stay: real names need them.
_CONTROLS = "\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNREADABLE = re.compile(f"[\x00{_CONTROLS}\ud800-\udfff]")
_UNREADABLE_LINE = re.compile(f"[\x00\t\n\r{_CONTROLS}\ud800-\udfff]")


class Errors(dict[str, list[str]]):
    """Per-field messages collected over a whole request, keyed by the field's dotted
    path: one 422 then names every problem, so one round trip is enough to fix it."""

    def add(self, field: str, message: str) -> None:
        self.setdefault(field, []).append(message)

    def refuse(self, detail: str) -> None:
        """Raise Invalid with every message collected, if there is any."""
        if self:
            raise Invalid(detail, errors=self)


def _code_point(found: re.Match[str]) -> str:
    return f"U+{ord(found.group()):04X}"


def unstorable(value: str) -> str | None:
    """Why no column may store this string (NUL, a lone surrogate), or None."""
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "NUL characters (U+0000) are not allowed"
    return f"a lone surrogate ({_code_point(found)}) is not Unicode text"


def text_problem(value: str, *, multiline: bool = True) -> str | None:
    """Why this text may not be shown to people, or None: see `_UNREADABLE`. Single-line
    text also refuses tabs and line breaks."""
    found = (_UNREADABLE if multiline else _UNREADABLE_LINE).search(value)
    if found is None:
        return None
    return (
        "no control characters, line separators or bidirectional overrides "
        f"(found {_code_point(found)})"
    )


def document_text(raw: str, *, field: str, multiline: bool = True) -> str:
    """Text that people read as it is stored (a consent title or body): refused with a
    422 naming `field` when it holds what `text_problem` refuses; otherwise unchanged."""
    problem = text_problem(raw, multiline=multiline)
    if problem:
        raise Invalid("the text holds characters that are not allowed", errors={field: [problem]})
    return raw


def postal_address(raw: str | None, *, field: str = "address") -> str | None:
    """A postal address: several lines are fine, control characters are not."""
    return None if raw is None else document_text(raw, field=field)


def phone_e164(raw: str, *, region: str | None = None, field: str = "phone") -> str:
    """Parse a phone number into E.164; `region` lets a site's patients use national format."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise Invalid("invalid phone number", errors={field: [str(exc)]}) from exc
    if not phonenumbers.is_valid_number(number):
        raise Invalid(
            "invalid phone number",
            errors={field: ["not a valid number; use international format such as +32470123456"]},
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def email_normalised(raw: str, *, field: str = "email") -> str:
    value = raw.strip().lower()
    if not _EMAIL.match(value) or len(value) > 254:
        raise Invalid("invalid email address", errors={field: ["not a valid email address"]})
    return value


@cache
def _zone_names() -> frozenset[str]:
    """Read from the tz database once: a phone sends its zone with every submission."""
    return frozenset(available_timezones())


def timezone_name(raw: str, *, field: str = "timezone") -> str:
    if raw not in _zone_names():
        raise Invalid(
            "unknown time zone",
            errors={field: [f"{raw!r} is not an IANA time zone such as Europe/Brussels"]},
        )
    try:
        ZoneInfo(raw)
    except ZoneInfoNotFoundError as exc:  # pragma: no cover - listed zones load
        raise Invalid("unknown time zone", errors={field: [str(exc)]}) from exc
    return raw


def country_code(raw: str, *, field: str = "country") -> str:
    value = raw.upper()
    if value not in phonenumbers.SUPPORTED_REGIONS:
        raise Invalid("unknown country", errors={field: ["use an ISO 3166-1 alpha-2 code"]})
    return value


def language_code(raw: str, *, field: str = "locale") -> str:
    value = raw.lower()
    if not _LANGUAGE.match(value):
        raise Invalid("invalid language", errors={field: ["use an ISO 639-1 code such as nl"]})
    return value


def person_name(raw: str, *, field: str = "full_name") -> str:
    """The printed name later shown on signatures: trimmed, never blank, nothing that
    could hide or reorder what a signer reads (checked before white space is folded, as
    `str.split` counts some control characters as white space)."""
    document_text(raw, field=field)
    value = " ".join(raw.split())
    if not value or len(value) > 200:
        raise Invalid("invalid name", errors={field: ["give the full name, 1 to 200 characters"]})
    return value


def audit_reason(raw: str, *, field: str = "reason") -> str:
    """A reason for the audit trail: white space folded, never blank."""
    cleaned = " ".join(raw.split())
    if not cleaned:
        raise Invalid("reason required", errors={field: ["say why, for the audit trail"]})
    return cleaned


def birth_date(value: dt.date | None, *, field: str = "date_of_birth") -> dt.date | None:
    if value is not None and not dt.date(1900, 1, 1) <= value <= dt.date.today():
        raise Invalid("invalid date of birth", errors={field: ["must be in the past, after 1900"]})
    return value


DEVICE_FIELDS = ("manufacturer", "model", "serial", "firmware")
MAX_DEVICE_FIELD = 200


def device_problems(raw: object) -> Errors:
    """What is wrong with a home device's description (text fields only, the known
    ones), keyed `device.<field>`; empty when it is fine."""
    problems = Errors()
    if not isinstance(raw, Mapping):
        problems.add("device", "an object")
        return problems
    for name, value in raw.items():
        if why := _device_field_problem(name, value):
            problems.add(f"device.{name}", why)
    return problems


def _device_field_problem(name: object, value: object) -> str | None:
    """One line of text a person reads on a device's label, or why not."""
    if name not in DEVICE_FIELDS:
        return f"unknown field; use {', '.join(DEVICE_FIELDS)}"
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_DEVICE_FIELD:
        return f"a string of 1 to {MAX_DEVICE_FIELD} characters"
    return unstorable(value) or text_problem(value, multiline=False)


def is_clock_time(value: object) -> bool:
    """A local wall-clock time "HH:MM" (00:00 to 23:59); such strings sort as times do."""
    return isinstance(value, str) and _CLOCK.fullmatch(value) is not None
