"""The caller's own profile."""

from __future__ import annotations

from flask.views import MethodView

from api.auth import current_actor
from api.db import db_session
from api.openapi import Blueprint, protected
from api.resources.schemas import MeSchema, With
from services.models import User
from services.people import participants as people

blp = Blueprint("me", __name__, url_prefix="/api/v1/me", description="The caller's profile")


@blp.route("")
class Me(MethodView):
    @protected(blp)
    @blp.response(200, MeSchema)
    def get(self) -> With:
        """Role, sites, studies, participant id (patients), locale and time zone."""
        session = db_session()
        user = session.get(User, current_actor().user_id)
        return With(user, people.profile_scope(session, user))
