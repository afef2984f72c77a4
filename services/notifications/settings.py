"""A study's SMS settings as they apply: its own, over defaults. Kept apart from the
preferences service so the planning rules can read them without its imports."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from services.models import StudySmsSettings

DEFAULT_RULES: dict[str, bool | int] = {
    "visit_24h": True,
    "visit_morning": True,
    "nurse_next_day": True,
    "epro_open": True,
    "epro_closing": True,
    "reconsent": True,
    "reconsent_every_days": 3,
    "reconsent_max": 3,
}
# Neutral until the coordinator names the study's sender; HELP needs a contact set.
DEFAULT_SENDER_NAME = "Research"
DEFAULT_HELP_CONTACT = ""


@dataclass(frozen=True)
class SmsSettings:
    study_id: uuid.UUID
    sender_name: str
    help_contact: str
    rules: dict[str, Any]
    updated_at: dt.datetime | None  # None: the defaults, never saved


def settings_of(session: Session, study_id: uuid.UUID) -> SmsSettings:
    """A study's settings with the defaults filled in (a rule added later gets its
    default in studies that saved theirs before)."""
    row = session.get(StudySmsSettings, study_id)
    if row is None:
        return SmsSettings(
            study_id, DEFAULT_SENDER_NAME, DEFAULT_HELP_CONTACT, dict(DEFAULT_RULES), None
        )
    return SmsSettings(
        study_id, row.sender_name, row.help_contact, {**DEFAULT_RULES, **row.rules}, row.updated_at
    )
