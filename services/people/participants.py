"""Accounts and participants: creation, contact data, activation codes.

Direct identifiers are validated here and stored encrypted by the models; audit
payloads name a changed identifier but never copy its value.

A little over the usual size: creation, contact changes and activation all write the
same encrypted identifiers and audit snapshots, which are kept in one place.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session, selectinload

from services import crypto
from services.access import (
    get_visible,
    require_role,
    visible_participants,
    visible_sites,
    visible_studies,
)
from services.actor import Actor, Role
from services.audit import chain as audit
from services.db import utcnow
from services.errors import Conflict, Forbidden, Invalid
from services.models import Participant, Site, Study, User
from services.notifications import planning as sms_rules
from services.notifications import preferences as sms_preferences
from services.people import credentials
from services.people.activation import issue_activation_code
from services.validation import (
    birth_date,
    email_normalised,
    language_code,
    person_name,
    phone_e164,
    postal_address,
    timezone_name,
)

STAFF_ROLES_CREATED_BY_USERS_ENDPOINT = (Role.ADMIN, Role.COORDINATOR, Role.NURSE, Role.MONITOR)
# Who may list a study's participants (nurses reach theirs through their visits).
PARTICIPANT_LISTERS = (Role.ADMIN, Role.COORDINATOR, Role.MONITOR)


def actor_for(session: Session, user: User, request_id: str | None) -> Actor:
    """Resolve an account's scope once per request: coordinators and nurses reach their
    sites' studies; a patient is tied to their participant record."""
    if user.role == Role.PATIENT.value:
        # A patient has no memberships: their scope is their participant record.
        participant_id = session.scalars(
            select(Participant.id).where(Participant.user_id == user.id)
        ).first()
        return Actor(
            user_id=user.id,
            role=Role.PATIENT,
            participant_id=participant_id,
            request_id=request_id,
        )
    return Actor(
        user_id=user.id,
        role=Role(user.role),
        site_ids=frozenset(user.site_ids),
        study_ids=frozenset(set(user.study_ids) | {site.study_id for site in user.sites}),
        request_id=request_id,
    )


def email_index(email: str) -> str:
    return crypto.blind_index(email_normalised(email), "email")


def phone_index(phone: str) -> str:
    return crypto.blind_index(phone_e164(phone), "phone")


@dataclass(frozen=True)
class NewStaff:
    email: str
    full_name: str
    role: Role
    locale: str
    timezone: str
    phone: str | None = None
    site_ids: list[uuid.UUID] = field(default_factory=list)
    study_ids: list[uuid.UUID] = field(default_factory=list)


@dataclass(frozen=True)
class NewParticipant:
    site_id: uuid.UUID
    full_name: str
    phone: str
    locale: str
    timezone: str
    email: str | None = None
    address: str | None = None
    date_of_birth: dt.date | None = None


def set_email(session: Session, user: User, raw: str | None) -> None:
    if raw is None:
        user.email, user.email_index = None, None
        return
    email = email_normalised(raw)
    index = crypto.blind_index(email, "email")
    taken = session.scalars(select(User.id).where(User.email_index == index, User.id != user.id))
    if taken.first():
        raise Conflict("this email address already belongs to another account")
    user.email, user.email_index = email, index


def set_phone(session: Session, user: User, raw: str | None, region: str | None) -> None:
    """Store a phone as E.164 (national format read in `region`), with its blind index."""
    if raw is None:
        user.phone, user.phone_index = None, None
        return
    phone = phone_e164(raw, region=region)
    user.phone, user.phone_index = phone, crypto.blind_index(phone, "phone")


def _check_login_phone_free(session: Session, user: User) -> None:
    """A patient without email logs in by phone, so no two such patients may share one."""
    if user.role != Role.PATIENT.value or user.email_index or not user.phone_index:
        return
    clash = session.scalars(
        select(User.id).where(
            User.role == Role.PATIENT.value,
            User.email_index.is_(None),
            User.phone_index == user.phone_index,
            User.id != user.id,
        )
    ).first()
    if clash:
        raise Conflict(
            "another patient without an email logs in with this phone number; "
            "give this participant an email address"
        )


def create_staff(session: Session, actor: Actor, data: NewStaff) -> tuple[User, str]:
    """Create a staff account; return it with its first activation code."""
    require_role(actor, Role.ADMIN, Role.COORDINATOR)
    if data.role not in STAFF_ROLES_CREATED_BY_USERS_ENDPOINT:
        raise Invalid(
            "patients are created as participants",
            errors={"role": ["create patients with POST /studies/{id}/participants"]},
        )
    if actor.role == Role.COORDINATOR and (
        data.role != Role.NURSE or not set(data.site_ids) <= actor.site_ids
    ):
        raise Forbidden("coordinators create nurses of their own sites only")
    sites = sites_for(session, data.role, data.site_ids)
    studies = studies_for(session, data.role, data.study_ids)
    user = User(
        id=uuid.uuid4(),
        role=data.role.value,
        full_name=person_name(data.full_name),
        locale=language_code(data.locale),
        timezone=timezone_name(data.timezone),
        sites=sites,
        studies=studies,
    )
    set_email(session, user, data.email)
    set_phone(session, user, data.phone, None)
    session.add(user)
    session.flush()
    audit.record_change(
        session,
        actor,
        "user.create",
        user,
        subject=audit.Subject(user_id=user.id),
        after=audit.snapshot(user, USER_FIELDS),
    )
    return user, issue_activation_code(session, user)


def sites_for(session: Session, role: Role, site_ids: list[uuid.UUID]) -> list[Site]:
    """The sites a staff account of this role is given: coordinators and nurses need
    one at least, other roles none (also when accounts.update_user changes them)."""
    if role in (Role.COORDINATOR, Role.NURSE):
        if not site_ids:
            raise Invalid("site required", errors={"site_ids": [f"a {role} needs a site"]})
    elif site_ids:
        raise Invalid("no sites", errors={"site_ids": [f"a {role} has no site"]})
    sites = list(session.scalars(select(Site).where(Site.id.in_(site_ids))))
    if len(sites) != len(set(site_ids)):
        raise Invalid("unknown site", errors={"site_ids": ["one or more sites do not exist"]})
    return sites


def studies_for(session: Session, role: Role, study_ids: list[uuid.UUID]) -> list[Study]:
    """The studies a staff account is given directly: only monitors have (and need) them;
    coordinators and nurses reach their studies through their sites."""
    if role == Role.MONITOR:
        if not study_ids:
            raise Invalid("study required", errors={"study_ids": ["a monitor needs a study"]})
    elif study_ids:
        raise Invalid(
            "no studies", errors={"study_ids": ["only monitors are given studies directly"]}
        )
    studies = list(session.scalars(select(Study).where(Study.id.in_(study_ids))))
    if len(studies) != len(set(study_ids)):
        raise Invalid("unknown study", errors={"study_ids": ["one or more studies do not exist"]})
    return studies


# What an event keeps of the row before and after a change.
USER_FIELDS = ("role", "locale", "timezone", "is_active", "site_ids", "study_ids")
PARTICIPANT_FIELDS = ("subject_code", "status", "site_id")


def participant_snapshot(participant: Participant) -> dict[str, Any]:
    """A participation with the account settings that go with it."""
    return audit.snapshot(participant, PARTICIPANT_FIELDS) | audit.snapshot(
        participant.user, ("locale", "timezone")
    )


def participant_subject(participant: Participant) -> audit.Subject:
    return audit.Subject(
        study_id=participant.study_id,
        site_id=participant.site_id,
        participant_id=participant.id,
        user_id=participant.user_id,
    )


def _next_subject_code(session: Session, study: Study, site: Site) -> str:
    """Atomic per-site counter: concurrent enrolments at one site never share a code."""
    number = session.execute(
        update(Site)
        .where(Site.id == site.id)
        .values(next_subject_number=Site.next_subject_number + 1)
        .returning(Site.next_subject_number)
    ).scalar_one()
    return f"{study.code}-{site.code}-{number - 1:04d}"


def create_participant(
    session: Session, actor: Actor, study_id: uuid.UUID, data: NewParticipant
) -> tuple[Participant, str]:
    """Create the patient's account and participation; return it with its activation code."""
    require_role(actor, Role.COORDINATOR)
    site = session.scalars(
        visible_sites(actor).where(Site.id == data.site_id, Site.study_id == study_id)
    ).first()
    if site is None:
        raise Invalid(
            "unknown site",
            errors={"site_id": ["not one of your sites in this study"]},
        )
    study = site.study
    locale = language_code(data.locale)
    if locale not in study.languages:
        raise Invalid(
            "language not offered",
            errors={"locale": [f"this study runs in {', '.join(study.languages)}"]},
        )
    user = User(
        id=uuid.uuid4(),
        role=Role.PATIENT.value,
        full_name=person_name(data.full_name),
        locale=locale,
        timezone=timezone_name(data.timezone),
    )
    set_email(session, user, data.email)
    set_phone(session, user, data.phone, site.country)
    _check_login_phone_free(session, user)
    session.add(user)
    participant = Participant(
        id=uuid.uuid4(),
        study_id=study.id,
        site_id=site.id,
        user=user,
        subject_code=_next_subject_code(session, study, site),
        address=postal_address(data.address),
        date_of_birth=birth_date(data.date_of_birth),
    )
    session.add(participant)
    session.flush()
    audit.record_change(
        session,
        actor,
        "participant.create",
        participant,
        subject=participant_subject(participant),
        after=participant_snapshot(participant),
    )
    code = issue_activation_code(session, user)
    sms_rules.plan_activation_sms(session, user, code)
    return participant, code


# Contact fields a patient may correct themselves; staff may change any of them.
PATIENT_EDITABLE = frozenset({"phone", "email", "address", "locale", "timezone"})
CONTACT_FIELDS = PATIENT_EDITABLE | {"full_name", "date_of_birth"}
# Where reset codes are delivered: a staff member changing one may be redirecting them.
CONTACT_CHANNELS = frozenset({"phone", "email"})


def update_participant(
    session: Session, actor: Actor, participant_id: uuid.UUID, changes: dict[str, Any]
) -> Participant:
    require_role(actor, Role.COORDINATOR, Role.PATIENT)
    participant = get_visible(session, visible_participants(actor), participant_id, "participant")
    allowed = PATIENT_EDITABLE if actor.role == Role.PATIENT else CONTACT_FIELDS
    if not changes:
        raise Invalid("nothing to change", errors={"_schema": ["send at least one field"]})
    refused = sorted(set(changes) - allowed)
    if refused:
        raise Forbidden(f"you may not change: {', '.join(refused)}")
    before = participant_snapshot(participant)
    user = participant.user
    # No autoflush: the uniqueness checks must run before a half-applied change reaches
    # the database's unique indexes (which would answer 500 instead of 409).
    with session.no_autoflush:
        for name, value in changes.items():
            _apply_change(session, participant, name, value)
        _check_login_phone_free(session, user)
    if changes.keys() & CONTACT_CHANNELS:
        if actor.role == Role.PATIENT:
            credentials.holder_confirmed_contact(user)
        else:
            user.contact_changed_by_staff_at = utcnow()
    session.flush()
    after = participant_snapshot(participant)
    after.update({name: audit.REDACTED for name in changes if name in audit.DIRECT_IDENTIFIERS})
    audit.record_change(
        session,
        actor,
        "participant.update",
        participant,
        subject=participant_subject(participant),
        before=before,
        after=after,
    )
    return participant


def _apply_change(session: Session, participant: Participant, name: str, value: Any) -> None:
    user = participant.user
    if name == "email":
        set_email(session, user, value)
    elif name == "phone":
        if value is None:
            raise Invalid("phone required", errors={"phone": ["a participant needs a phone"]})
        set_phone(session, user, value, participant.site.country)
    elif name == "full_name":
        user.full_name = person_name(value)
    elif name == "date_of_birth":
        participant.date_of_birth = birth_date(value)
    elif name == "locale":
        locale = language_code(value)
        if locale not in participant.study.languages:
            raise Invalid("language not offered", errors={"locale": ["not a study language"]})
        user.locale = locale
    elif name == "timezone":
        user.timezone = timezone_name(value)
    elif name == "address":
        participant.address = postal_address(value)
    else:
        setattr(participant, name, value)


def participant_with_reach(
    session: Session, actor: Actor, participant_id: uuid.UUID
) -> tuple[Participant, dict[str, Any] | None]:
    """One participant and, for their coordinator alone, whether SMS reach them (who
    else sees the participant needs no say in their reminders)."""
    participant = get_visible(session, visible_participants(actor), participant_id, "participant")
    if actor.role != Role.COORDINATOR:
        return participant, None
    return participant, sms_preferences.sms_status(session, participant.user_id)


def reissue_activation_code(session: Session, actor: Actor, participant_id: uuid.UUID) -> str:
    require_role(actor, Role.COORDINATOR)
    participant = get_visible(session, visible_participants(actor), participant_id, "participant")
    code = issue_activation_code(session, participant.user)
    sms_rules.plan_activation_sms(session, participant.user, code)
    audit.record_change(
        session,
        actor,
        "participant.activation_code_issued",
        participant,
        subject=participant_subject(participant),
    )
    return code


def profile_scope(session: Session, user: User) -> dict[str, Any]:
    """What an account reaches, as its profile shows it: the log-in and refresh answers
    and GET /me give the same, so an app can trust whichever it read last."""
    actor = actor_for(session, user, None)
    scope: dict[str, Any] = {
        "participant_id": actor.participant_id,
        "site_ids": sorted(actor.site_ids, key=str),
        "study_ids": sorted(actor.study_ids, key=str),
    }
    # A patient belongs to a site through their participation, not a membership.
    if actor.participant_id and (participant := session.get(Participant, actor.participant_id)):
        scope.update(site_ids=[participant.site_id], study_ids=[participant.study_id])
    return scope


def study_participants(session: Session, actor: Actor, study_id: uuid.UUID) -> Select[Participant]:
    """The study's participants in the caller's scope, by subject code (monitors get
    them pseudonymised by the disclosure rule). Their accounts (name, contact data)
    are loaded in one query for the page, not one per participant."""
    require_role(actor, *PARTICIPANT_LISTERS)
    get_visible(session, visible_studies(actor), study_id, "study")
    return (
        visible_participants(actor)
        .where(Participant.study_id == study_id)
        .options(selectinload(Participant.user))
        .order_by(Participant.subject_code)
    )
