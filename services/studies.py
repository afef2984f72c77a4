"""Studies and sites: created by admins, read by staff within their scope."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from services import audit
from services.access import get_visible, require_role, visible_studies
from services.actor import Actor, Role
from services.errors import Conflict, Invalid
from services.models import Site, Study
from services.validation import country_code, language_code, timezone_name


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
    languages = [language_code(lang, field="languages") for lang in data.languages]
    if not languages or len(set(languages)) != len(languages):
        raise Invalid("languages", errors={"languages": ["list each language once, at least one"]})
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
    audit.record(
        session,
        actor,
        "study.create",
        entity_type="study",
        entity_id=study.id,
        subject=audit.Subject(study_id=study.id),
        after=study_snapshot(study),
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
    audit.record(
        session,
        actor,
        "site.create",
        entity_type="site",
        entity_id=site.id,
        subject=audit.Subject(study_id=study.id, site_id=site.id),
        after={
            "code": site.code,
            "name": site.name,
            "country": site.country,
            "timezone": site.timezone,
        },
    )
    return site


def study_snapshot(study: Study) -> dict[str, object]:
    return {
        "code": study.code,
        "title": study.title,
        "languages": study.languages,
        "default_timezone": study.default_timezone,
    }
