"""Authorisation by construction: one query per resource returning only what an actor
may see. Every read and write starts from these, so a foreign id is simply absent
(404), never a 403 that confirms it exists."""

from __future__ import annotations

import uuid
from typing import Protocol, TypeVar, cast

from sqlalchemy import Select, false, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from services.actor import Actor, Role
from services.errors import Forbidden, NotFound
from services.models import Participant, Site, Study, User, Visit, user_sites

T = TypeVar("T")


class _VersionColumns(Protocol):
    """What visible_study_versions reads of a versioned document's model class: its
    mapped study and status columns."""

    study_id: InstrumentedAttribute[uuid.UUID]
    status: InstrumentedAttribute[str]


def visible_studies(actor: Actor) -> Select[Study]:
    query = select(Study)
    if actor.role == Role.ADMIN:
        return query
    if actor.role in (Role.COORDINATOR, Role.NURSE, Role.MONITOR):
        return query.where(Study.id.in_(actor.study_ids))
    raise Forbidden("studies are listed for staff only")


def visible_sites(actor: Actor) -> Select[Site]:
    query = select(Site)
    if actor.role == Role.ADMIN:
        return query
    if actor.role in (Role.COORDINATOR, Role.NURSE):
        return query.where(Site.id.in_(actor.site_ids))
    if actor.role == Role.MONITOR:
        return query.where(Site.study_id.in_(actor.study_ids))
    raise Forbidden("sites are listed for staff only")


def visible_participants(actor: Actor) -> Select[Participant]:
    """Admins and monitors see every participant of their scope, pseudonymised (what
    each role reads of a record is services.people.disclosure's rule); coordinators their
    sites; patients themselves; nurses the participants of visits assigned to them."""
    query = select(Participant)
    if actor.role == Role.ADMIN:
        return query
    if actor.role == Role.COORDINATOR:
        return query.where(Participant.site_id.in_(actor.site_ids))
    if actor.role == Role.MONITOR:
        return query.where(Participant.study_id.in_(actor.study_ids))
    if actor.role == Role.PATIENT:
        return query.where(Participant.id == actor.participant_id)
    if actor.role == Role.NURSE:
        assigned = select(Visit.participant_id).where(Visit.nurse_id == actor.user_id)
        return query.where(Participant.id.in_(assigned))
    return query.where(false())


def visible_users(actor: Actor) -> Select[User]:
    """Admins manage every staff account; coordinators the nurses of their sites.
    Patients' accounts are reached through their participant record, which admins
    read pseudonymised, so they are not listed here with their identifiers."""
    query = select(User)
    if actor.role == Role.ADMIN:
        return query.where(User.role != Role.PATIENT.value)
    if actor.role == Role.COORDINATOR:
        nurses_here = select(user_sites.c.user_id).where(user_sites.c.site_id.in_(actor.site_ids))
        return query.where(User.role == Role.NURSE.value, User.id.in_(nurses_here))
    raise Forbidden("only admins and coordinators manage accounts")


def visible_study_versions(actor: Actor, model: type[T], draft: str) -> Select[T]:
    """Versioned study documents (consent texts, questionnaires): staff see those of
    their studies; a patient those of their own study past `draft`, since what they
    signed or answered stays readable after a newer version replaces it."""
    query = select(model)
    # Every versioned document model maps study_id and status; a TypeVar bound cannot say
    # so, since a model instance's attributes are plain values, not columns.
    columns = cast(_VersionColumns, model)
    if actor.role == Role.PATIENT:
        own_study = select(Participant.study_id).where(Participant.id == actor.participant_id)
        return query.where(columns.study_id.in_(own_study), columns.status != draft)
    return query.where(columns.study_id.in_(visible_studies(actor).with_only_columns(Study.id)))


def require_role(actor: Actor, *roles: Role) -> None:
    if actor.role not in roles:
        allowed = ", ".join(role.value for role in roles)
        raise Forbidden(f"this action is for {allowed} only")


def get_visible(session: Session, query: Select[T], entity_id: uuid.UUID, what: str) -> T:
    entity = session.scalars(
        query.where(query.column_descriptions[0]["entity"].id == entity_id)
    ).first()
    if entity is None:
        raise NotFound(f"no {what} with id {entity_id}")
    return entity
