"""Studies and sites: created and changed by admins, read by staff within their scope."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, column, func, select, table
from sqlalchemy.orm import Session

from services.access import get_visible, require_role, visible_sites, visible_studies
from services.actor import Actor, Role
from services.audit import chain as audit
from services.errors import Conflict, Invalid
from services.models import Participant, Site, Study, User
from services.validation import country_code, language_code, timezone_name

# What an update may change; the codes are in every subject code, the country decides
# how national phone numbers are read, so they stay as created.
STUDY_UPDATABLE = frozenset({"title", "languages", "default_timezone"})
SITE_UPDATABLE = frozenset({"name", "timezone"})
STUDY_FIXED = {"code": "a study's code never changes: subject codes are built from it"}
SITE_FIXED = {
    "code": "a site's code never changes: subject codes are built from it",
    "country": "a site's country never changes: its participants' phones were read in it",
}
# consent/ owns this table and depends on services, never the reverse: the language
# rule reads the three columns it needs without importing consent's model.
_consent_documents = table(
    "consent_documents", column("study_id"), column("language"), column("status")
)
_APPROVED = "approved"


@dataclass(frozen=True)
class NewStudy:
    code: str
    title: str
    languages: list[str]
    default_timezone: str


@dataclass(frozen=True)
class NewSite:
    code: str
    name: str
    country: str
    timezone: str


def create_study(session: Session, actor: Actor, data: NewStudy) -> Study:
    require_role(actor, Role.ADMIN)
    languages = _languages(data.languages)
    if session.scalars(select(Study.id).where(Study.code == data.code)).first():
        raise Conflict(f"a study with code {data.code!r} already exists")
    study = Study(
        code=data.code,
        title=data.title,
        languages=languages,
        default_timezone=timezone_name(data.default_timezone, field="default_timezone"),
    )
    session.add(study)
    session.flush()
    audit.record_change(
        session,
        actor,
        "study.create",
        study,
        subject=audit.Subject(study_id=study.id),
        after=audit.snapshot(study, STUDY_FIELDS),
    )
    return study


def create_site(session: Session, actor: Actor, study_id: uuid.UUID, data: NewSite) -> Site:
    require_role(actor, Role.ADMIN)
    study = get_visible(session, visible_studies(actor), study_id, "study")
    if session.scalars(
        select(Site.id).where(Site.study_id == study.id, Site.code == data.code)
    ).first():
        raise Conflict(f"study {study.code} already has a site with code {data.code!r}")
    site = Site(
        study_id=study.id,
        code=data.code,
        name=data.name,
        country=country_code(data.country),
        timezone=timezone_name(data.timezone),
    )
    session.add(site)
    session.flush()
    audit.record_change(
        session,
        actor,
        "site.create",
        site,
        subject=audit.Subject(study_id=study.id, site_id=site.id),
        after=audit.snapshot(site, SITE_FIELDS),
    )
    return site


# What an event keeps of the row before and after a change.
STUDY_FIELDS = ("code", "title", "languages", "default_timezone")


def _languages(raw: list[str]) -> list[str]:
    languages = [language_code(lang, field="languages") for lang in raw]
    if not languages or len(set(languages)) != len(languages):
        raise Invalid("languages", errors={"languages": ["list each language once, at least one"]})
    return languages


def _refuse_fields(
    changes: dict[str, Any], updatable: frozenset[str], fixed: dict[str, str]
) -> None:
    """Fields that stay say why; anything else unknown is named; an empty change is refused."""
    errors = {name: [why] for name, why in fixed.items() if name in changes}
    errors.update(
        {name: ["not a field you can change"] for name in set(changes) - updatable - set(fixed)}
    )
    if errors:
        raise Invalid("these fields cannot be changed", errors=errors)
    if not changes:
        raise Invalid("nothing to change", errors={"_schema": ["send at least one field"]})


def _language_uses(session: Session, study: Study, language: str) -> list[str]:
    """What still needs this language in the study, in words for the 409."""
    uses = []
    documents = session.scalar(
        select(func.count())
        .select_from(_consent_documents)
        .where(
            _consent_documents.c.study_id == study.id,
            _consent_documents.c.language == language,
            _consent_documents.c.status == _APPROVED,
        )
    )
    if documents:
        uses.append(f"{documents} approved consent document(s)")
    participants = session.scalar(
        select(func.count())
        .select_from(Participant)
        .join(User, User.id == Participant.user_id)
        .where(Participant.study_id == study.id, User.locale == language)
    )
    if participants:
        uses.append(f"{participants} participant(s) whose language it is")
    return uses


def update_study(
    session: Session, actor: Actor, study_id: uuid.UUID, changes: dict[str, Any]
) -> Study:
    """Change a study's title, languages or default time zone (admin).

    A language may be added at any time. One may be removed only while nothing uses
    it: no approved consent document is in it and no participant has it as their
    language (they read their consent and questionnaires in it)."""
    require_role(actor, Role.ADMIN)
    study = get_visible(session, visible_studies(actor), study_id, "study")
    _refuse_fields(changes, STUDY_UPDATABLE, STUDY_FIXED)
    before = audit.snapshot(study, STUDY_FIELDS)
    if "title" in changes:
        title = str(changes["title"]).strip()
        if not title:
            raise Invalid("title", errors={"title": ["give the study a title"]})
        study.title = title
    if "default_timezone" in changes:
        study.default_timezone = timezone_name(
            changes["default_timezone"], field="default_timezone"
        )
    if "languages" in changes:
        languages = _languages(changes["languages"])
        in_use = {
            language: uses
            for language in study.languages
            if language not in languages and (uses := _language_uses(session, study, language))
        }
        if in_use:
            raise Conflict(
                "a language in use cannot be removed: "
                + "; ".join(
                    f"{lang} is used by {' and '.join(uses)}" for lang, uses in in_use.items()
                )
            )
        study.languages = languages
    audit.record_update(
        session,
        actor,
        "study.update",
        study,
        subject=audit.Subject(study_id=study.id),
        before=before,
        after=audit.snapshot(study, STUDY_FIELDS),
    )
    return study


def study_sites(session: Session, actor: Actor, study_id: uuid.UUID) -> Select[Site]:
    """The study's sites the actor works at (admins and monitors: all), by code; 404 for
    a study they cannot see."""
    get_visible(session, visible_studies(actor), study_id, "study")
    return visible_sites(actor).where(Site.study_id == study_id).order_by(Site.code)


def update_site(
    session: Session, actor: Actor, site_id: uuid.UUID, changes: dict[str, Any]
) -> Site:
    """Change a site's name or time zone (admin); its code and country stay."""
    require_role(actor, Role.ADMIN)
    site = get_visible(session, visible_sites(actor), site_id, "site")
    _refuse_fields(changes, SITE_UPDATABLE, SITE_FIXED)
    before = audit.snapshot(site, SITE_FIELDS)
    if "name" in changes:
        name = str(changes["name"]).strip()
        if not name:
            raise Invalid("name", errors={"name": ["give the site a name"]})
        site.name = name
    if "timezone" in changes:
        site.timezone = timezone_name(changes["timezone"])
    subject = audit.Subject(study_id=site.study_id, site_id=site.id)
    audit.record_update(
        session,
        actor,
        "site.update",
        site,
        subject=subject,
        before=before,
        after=audit.snapshot(site, SITE_FIELDS),
    )
    return site


# What an event keeps of the row before and after a change.
SITE_FIELDS = ("code", "name", "country", "timezone")
