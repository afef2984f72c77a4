"""Staff accounts: creation, changes, deactivation, reactivation and unlocking.

Patients' accounts are created and changed with their participant record."""

from __future__ import annotations

import uuid
from typing import Any

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Page

from api.auth import current_actor
from api.db import db_session
from api.fields import UtcDateTime
from api.openapi import Blueprint, QueryResults, protected
from api.resources.schemas import UpdateSchema, UserSchema, With
from services.actor import Role
from services.models import User
from services.people import accounts
from services.people import participants as people

blp = Blueprint("users", __name__, url_prefix="/api/v1/users", description="Staff accounts")

STAFF_ROLE_NAMES = [role.value for role in people.STAFF_ROLES_CREATED_BY_USERS_ENDPOINT]


class UserCreateSchema(ma.Schema):
    email = ma.fields.String(required=True)
    full_name = ma.fields.String(required=True, validate=ma.validate.Length(1, 200))
    role = ma.fields.String(required=True, validate=ma.validate.OneOf(STAFF_ROLE_NAMES))
    phone = ma.fields.String(load_default=None)
    locale = ma.fields.String(load_default="en")
    timezone = ma.fields.String(load_default="Europe/Brussels")
    site_ids = ma.fields.List(ma.fields.UUID(), load_default=list)
    study_ids = ma.fields.List(ma.fields.UUID(), load_default=list)


class UserCreatedSchema(UserSchema):
    activation_code = ma.fields.String(
        metadata={"description": "Shown once: give it to the person to set their password"}
    )


class UserUpdateSchema(UpdateSchema):
    """The fields sent change; the others stay. The role never changes."""

    FIXED = {"role": accounts.ROLE_NEVER_CHANGES}  # noqa: RUF012

    full_name = ma.fields.String(validate=ma.validate.Length(1, 200))
    email = ma.fields.String(
        metadata={"description": "admins only: the log-in email (a reset code goes there)"}
    )
    phone = ma.fields.String(allow_none=True, metadata={"description": "international format"})
    locale = ma.fields.String()
    timezone = ma.fields.String()
    site_ids = ma.fields.List(
        ma.fields.UUID(),
        metadata={
            "description": "the full new list; a coordinator adds or removes only their own sites"
        },
    )
    study_ids = ma.fields.List(ma.fields.UUID(), metadata={"description": "monitors only"})


class ReasonSchema(ma.Schema):
    reason = ma.fields.String(
        required=True,
        validate=ma.validate.Length(1, 1000),
        metadata={"description": "why, for the audit trail"},
    )


class FutureVisitSchema(ma.Schema):
    """A visit still booked with a deactivated nurse: rebook it with POST
    /visits/{id}/schedule."""

    id = ma.fields.UUID()
    participant_id = ma.fields.UUID()
    subject_code = ma.fields.String(attribute="participant.subject_code")
    site_id = ma.fields.UUID()
    code = ma.fields.String()
    status = ma.fields.String()
    start_at = UtcDateTime()
    end_at = UtcDateTime()


class ManagedUserSchema(UserSchema):
    future_visits = ma.fields.List(
        ma.fields.Nested(FutureVisitSchema),
        metadata={
            "description": "only on a deactivated account: visits booked with this nurse that "
            "have not started (a coordinator: at their sites), for rebooking"
        },
    )


def _answer(account: accounts.Account) -> User | With:
    if account.future_visits is None:
        return account.user
    return With(account.user, {"future_visits": account.future_visits})


@blp.route("")
class Users(MethodView):
    @protected(blp, 403, 409)
    @blp.arguments(UserCreateSchema)
    @blp.response(201, UserCreatedSchema)
    def post(self, body: dict[str, Any]) -> With:
        """Create a staff account (admin; coordinators: nurses of their sites).

        The answer carries a one-time activation code, valid 72 hours.
        """
        body["role"] = Role(body["role"])
        user, code = people.create_staff(db_session(), current_actor(), people.NewStaff(**body))
        return With(user, {"activation_code": code})

    @protected(blp, 403)
    @blp.response(200, UserSchema(many=True))
    @blp.paginate(Page)
    def get(self) -> QueryResults:
        """Accounts the caller manages."""
        return QueryResults(db_session(), accounts.listed_users(current_actor()))


@blp.route("/<uuid:user_id>")
class UserItem(MethodView):
    @protected(blp, 403, 404)
    @blp.response(200, ManagedUserSchema)
    def get(self, user_id: uuid.UUID) -> User | With:
        """One account the caller manages.

        A deactivated nurse's account lists `future_visits`: the visits still booked
        with this nurse, which the coordinator rebooks with another nurse.
        """
        return _answer(accounts.get_account(db_session(), current_actor(), user_id))

    @protected(blp, 403, 404, 409)
    @blp.arguments(UserUpdateSchema)
    @blp.response(200, ManagedUserSchema)
    def patch(self, body: dict[str, Any], user_id: uuid.UUID) -> User:
        """Change name, phone, locale, time zone or memberships (admin; coordinators:
        nurses of their sites, moved between their own sites only).

        The role never changes (422). Only an admin changes the log-in email (409 if
        another account has it). Audited by field name; names, emails and phones are
        never copied into the audit trail.
        """
        return accounts.update_user(db_session(), current_actor(), user_id, body)


@blp.route("/<uuid:user_id>/deactivate")
class UserDeactivate(MethodView):
    @protected(blp, 403, 404, 409)
    @blp.arguments(ReasonSchema)
    @blp.response(200, ManagedUserSchema)
    def post(self, body: dict[str, Any], user_id: uuid.UUID) -> User | With:
        """Deactivate an account (admin; coordinators: nurses of their sites).

        Every session ends at once: the account's access and refresh tokens answer
        401, and log-in answers 401 as for a wrong password. What the account recorded
        stays. A nurse is no longer offered in slot searches nor bookable (409); the
        answer lists `future_visits` still booked with this nurse, to rebook. Nobody
        deactivates their own account (409).
        """
        account = accounts.deactivate(db_session(), current_actor(), user_id, body["reason"])
        return _answer(account)


@blp.route("/<uuid:user_id>/reactivate")
class UserReactivate(MethodView):
    @protected(blp, 403, 404, 409)
    @blp.arguments(ReasonSchema)
    @blp.response(200, ManagedUserSchema)
    def post(self, body: dict[str, Any], user_id: uuid.UUID) -> User:
        """Reactivate a deactivated account (admin; coordinators: nurses of their sites).

        The holder logs in again with their password; no earlier session comes back.
        """
        return accounts.reactivate(db_session(), current_actor(), user_id, body["reason"])


@blp.route("/<uuid:user_id>/unlock")
class UserUnlock(MethodView):
    @protected(blp, 403, 404)
    @blp.arguments(ReasonSchema)
    @blp.response(200, ManagedUserSchema)
    def post(self, body: dict[str, Any], user_id: uuid.UUID) -> User:
        """Clear an account's log-in lock-outs (admin; coordinators: nurses of their sites).

        Removes the lock-outs from every client address and the count of failed
        passwords, for a holder locked out whose identity was checked.
        """
        return accounts.unlock(db_session(), current_actor(), user_id, body["reason"])
