"""ePRO: what a participant must answer now and next."""

from __future__ import annotations

import datetime as dt
from typing import Any

import marshmallow as ma
from flask.views import MethodView

from api.auth import current_actor
from api.db import db_session
from api.fields import UtcDateTime
from api.openapi import Blueprint, protected
from api.resources.schemas import EntitySchema, With
from services.db import utcnow
from services.epro import plan as epro_plan
from services.epro import rendering
from services.models import User

blp = Blueprint("epro_due", __name__, url_prefix="/api/v1", description="ePRO")


class DueArgsSchema(ma.Schema):
    days = ma.fields.Integer(
        load_default=7,
        validate=ma.validate.Range(1, 31),
        metadata={"description": "how far ahead to list upcoming windows (1 to 31 days)"},
    )


class DueInstanceSchema(EntitySchema):
    instance_id = ma.fields.UUID(attribute="instance.id")
    state = ma.fields.String(
        metadata={"description": "open: answer now; upcoming: its window opens later"}
    )
    opens_at = UtcDateTime(attribute="instance.opens_at")
    closes_at = UtcDateTime(attribute="instance.closes_at")
    local_date = ma.fields.Date(
        attribute="instance.local_date", metadata={"description": "in the participant's zone"}
    )
    questionnaire_id = ma.fields.UUID(attribute="questionnaire.id")
    code = ma.fields.String(attribute="questionnaire.code")
    version = ma.fields.String(attribute="questionnaire.version")
    title = ma.fields.String(metadata={"description": "in the patient's language"})


class DueListSchema(ma.Schema):
    timezone = ma.fields.String(metadata={"description": "the participant's zone"})
    instances = ma.fields.List(ma.fields.Nested(DueInstanceSchema))


@blp.route("/me/epro/due")
class MyDueQuestionnaires(MethodView):
    @protected(blp, 403, 409)
    @blp.arguments(DueArgsSchema, location="query", as_kwargs=True)
    @blp.response(200, DueListSchema)
    def get(self, days: int) -> dict[str, Any]:
        """Open ePRO windows and those opening in the next `days` (patient).

        Only for an enrolled participant with a current consent (409 says why not).
        Titles are in the patient's language; a due questionnaire without texts in it
        is a 409 naming the languages it has, never a list in another language.
        Answer an instance with POST /epro/responses and its `instance_id`; fetch the
        questionnaire itself with GET /questionnaires/{questionnaire_id}.
        """
        actor = current_actor()
        session = db_session()
        items = epro_plan.due(session, actor, utcnow(), dt.timedelta(days=days))
        user = session.get(User, actor.user_id)
        return {
            "timezone": user.timezone,
            "instances": [
                With(
                    due,
                    {"title": rendering.participant_title(due.questionnaire, user.locale)},
                )
                for due in items
            ],
        }
