"""A recipient's SMS preferences and a study's SMS settings, read with their defaults.

Preferences belong to the patients and nurses who receive reminders: SMS on or off,
the language, and sending hours that may only narrow 08:00-21:00. The opt-out an
inbound STOP records is shown but not changed here: the carrier blocks the number
until the person replies START, so switching SMS back on in the app could not undo it.

A study's settings are the sender name every text starts with, the contact HELP
answers with, and which reminders are sent. The sender name is shown on lock screens,
so it must not reveal a condition: it goes through the same checker as the templates.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services import validation
from services.access import get_visible, require_role, visible_studies
from services.actor import Actor, Role
from services.audit import chain as audit
from services.errors import Invalid
from services.models import (
    NotificationPreference,
    Participant,
    Study,
    StudySmsSettings,
    User,
)
from services.notifications.content import FALLBACK_LOCALE, LOCALES, health_terms_in
from services.notifications.sending_hours import ALLOWED_FROM, ALLOWED_UNTIL
from services.notifications.settings import (
    DEFAULT_RULES,
    SmsSettings,
    settings_of,
)
from services.people import participants as people
from services.validation import Errors, phone_e164

_RULE_RANGES = {"reconsent_every_days": (1, 30), "reconsent_max": (0, 10)}
MAX_SENDER_NAME, MAX_HELP_CONTACT = 11, 64

# Alphanumeric sender ids: letters, digits and spaces, at least one letter.
_SENDER = re.compile(r"[A-Za-z0-9 ]+")
_PHONE_LIKE = re.compile(r"\+?[0-9 ()./-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# --- a recipient's preferences -------------------------------------------------------


@dataclass(frozen=True)
class Preferences:
    sms_enabled: bool
    locale: str
    send_from: str
    send_until: str
    opted_out_at: dt.datetime | None


@dataclass(frozen=True)
class PreferenceChange:
    sms_enabled: bool
    locale: str
    send_from: str
    send_until: str


def preferences_of(session: Session, user: User) -> Preferences:
    """What applies to a recipient: theirs, or SMS on in their account's language over
    the whole allowed window when they never saved any."""
    row = session.get(NotificationPreference, user.id)
    account_locale = user.locale if user.locale in LOCALES else FALLBACK_LOCALE
    if row is None:
        return Preferences(True, account_locale, ALLOWED_FROM, ALLOWED_UNTIL, None)
    return Preferences(
        sms_enabled=row.sms_enabled,
        locale=row.locale or account_locale,
        send_from=row.send_from,
        send_until=row.send_until,
        opted_out_at=row.opted_out_at,
    )


def sms_status(session: Session, user_id: uuid.UUID) -> dict[str, Any]:
    """What the site must know of a participant's SMS: switched off, stopped by a STOP
    reply, or a phone number Twilio refused."""
    row = session.get(NotificationPreference, user_id)
    return {
        "sms_enabled": row.sms_enabled if row else True,
        "opted_out_at": row.opted_out_at if row else None,
        "phone_problem": row.phone_problem if row else None,
        "phone_problem_at": row.phone_problem_at if row else None,
    }


def _recipient(session: Session, actor: Actor) -> User:
    require_role(actor, Role.PATIENT, Role.NURSE)
    return session.get_one(User, actor.user_id)


def my_preferences(session: Session, actor: Actor) -> Preferences:
    return preferences_of(session, _recipient(session, actor))


def _clock_problem(value: object) -> str | None:
    if not isinstance(value, str) or not validation.is_clock_time(value):
        return 'a local time "HH:MM"'
    if not ALLOWED_FROM <= value <= ALLOWED_UNTIL:  # "HH:MM" strings sort as times do
        return f"between {ALLOWED_FROM} and {ALLOWED_UNTIL}"
    return None


def _preference_errors(change: PreferenceChange) -> Errors:
    errors = Errors()
    if not isinstance(change.sms_enabled, bool):
        errors.add("sms_enabled", "true or false")
    if change.locale not in LOCALES:
        errors.add("locale", f"one of {', '.join(LOCALES)}")
    for name in ("send_from", "send_until"):
        if problem := _clock_problem(getattr(change, name)):
            errors.add(name, problem)
    if not errors.keys() & {"send_from", "send_until"} and change.send_from >= change.send_until:
        errors.add("send_until", "must be after send_from")
    return errors


def _preference_subject(session: Session, actor: Actor) -> audit.Subject:
    """A patient's change goes to their participant's chain, a nurse's to their own."""
    if actor.participant_id is None:
        return audit.Subject(user_id=actor.user_id)
    return people.participant_subject(session.get_one(Participant, actor.participant_id))


def put_my_preferences(session: Session, actor: Actor, change: PreferenceChange) -> Preferences:
    """Replace the caller's preferences (patients and nurses)."""
    user = _recipient(session, actor)
    _preference_errors(change).refuse("invalid notification preferences")
    # Serialise a user's own concurrent saves, so the first one's insert is not raced.
    session.execute(select(User.id).where(User.id == user.id).with_for_update())
    existing = session.get(NotificationPreference, user.id)
    before = _audited(preferences_of(session, user)) if existing else None
    row = existing or NotificationPreference(user_id=user.id)
    row.sms_enabled, row.locale = change.sms_enabled, change.locale
    row.send_from, row.send_until = change.send_from, change.send_until
    session.add(row)
    session.flush()
    audit.record_change(
        session,
        actor,
        "user.notification_preferences",
        user,
        subject=_preference_subject(session, actor),
        before=before,
        after=asdict(change),
    )
    return preferences_of(session, user)


def _audited(preferences: Preferences) -> dict[str, Any]:
    values = asdict(preferences)
    values.pop("opted_out_at")
    return values


# --- a study's settings --------------------------------------------------------------


@dataclass(frozen=True)
class SettingsChange:
    sender_name: str
    help_contact: str
    rules: dict[str, Any]


def get_study_settings(session: Session, actor: Actor, study_id: uuid.UUID) -> SmsSettings:
    """Coordinators and monitors of the study."""
    require_role(actor, Role.COORDINATOR, Role.MONITOR)
    study = get_visible(session, visible_studies(actor), study_id, "study")
    return settings_of(session, study.id)


def _sender_problems(name: object) -> list[str]:
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_SENDER_NAME:
        return [f"1 to {MAX_SENDER_NAME} characters"]
    if not _SENDER.fullmatch(name) or not any(char.isalpha() for char in name):
        return ["letters A-Z, digits and spaces, with at least one letter"]
    if terms := health_terms_in(name):
        return [f"must not reveal a condition or treatment (found: {', '.join(terms)})"]
    return []


def _contact_problems(contact: object) -> list[str]:
    if not isinstance(contact, str) or not 1 <= len(contact) <= MAX_HELP_CONTACT:
        return [f"1 to {MAX_HELP_CONTACT} characters"]
    if _CONTROL.search(contact):
        return ["one line of text, without control characters"]
    if _PHONE_LIKE.fullmatch(contact):
        try:
            phone_e164(contact, field="help_contact")
        except Invalid as exc:
            return list((exc.errors or {}).get("help_contact", [exc.detail]))
    if terms := health_terms_in(contact):
        return [f"must not reveal a condition or treatment (found: {', '.join(terms)})"]
    return []


def _rule_problems(rules: object) -> Errors:
    errors = Errors()
    if not isinstance(rules, dict):
        errors.add("rules", "an object")
        return errors
    for key, value in rules.items():
        default = DEFAULT_RULES.get(key)
        if default is None:
            errors.add(f"rules.{key}", f"unknown rule; known: {', '.join(DEFAULT_RULES)}")
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                errors.add(f"rules.{key}", "true or false")
        elif not isinstance(value, int) or isinstance(value, bool):
            errors.add(f"rules.{key}", "an integer")
        elif not _RULE_RANGES[key][0] <= value <= _RULE_RANGES[key][1]:
            errors.add(f"rules.{key}", "from {} to {}".format(*_RULE_RANGES[key]))
    return errors


def _settings_errors(change: SettingsChange) -> Errors:
    errors = _rule_problems(change.rules)
    for name, problems in (
        ("sender_name", _sender_problems(change.sender_name)),
        ("help_contact", _contact_problems(change.help_contact)),
    ):
        if problems:
            errors[name] = problems
    return errors


def _stripped(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


# What an event keeps of the row before and after a change.
SETTINGS_FIELDS = ("sender_name", "help_contact", "rules")


def put_study_settings(
    session: Session, actor: Actor, study_id: uuid.UUID, change: SettingsChange
) -> SmsSettings:
    """Replace the study's settings (its coordinators); rules not given take their
    defaults."""
    require_role(actor, Role.COORDINATOR)
    study = get_visible(session, visible_studies(actor), study_id, "study")
    change = SettingsChange(
        _stripped(change.sender_name), _stripped(change.help_contact), change.rules
    )
    _settings_errors(change).refuse("invalid SMS settings")
    session.execute(select(Study.id).where(Study.id == study.id).with_for_update())
    before = settings_of(session, study.id)
    row = session.get(StudySmsSettings, study.id) or StudySmsSettings(study_id=study.id)
    row.sender_name, row.help_contact = change.sender_name, change.help_contact
    row.rules = {**DEFAULT_RULES, **change.rules}
    session.add(row)
    session.flush()
    after = settings_of(session, study.id)
    audit.record_change(
        session,
        actor,
        "study.sms_settings",
        study,
        subject=audit.Subject(study_id=study.id),
        before=audit.snapshot(before, SETTINGS_FIELDS) if before.updated_at else None,
        after=audit.snapshot(after, SETTINGS_FIELDS),
    )
    return after
