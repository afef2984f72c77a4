"""ePRO questionnaires: versioned definitions and their schedules."""

from __future__ import annotations

import uuid
from typing import Any

import marshmallow as ma
from flask import Response, json
from flask.views import MethodView
from flask_smorest import Page

from api.auth import current_actor
from api.db import db_session
from api.fields import UtcDateTime
from api.openapi import Blueprint, QueryResults, protected
from api.resources.schemas import DisclosedSchema
from services.epro import checks, rendering
from services.epro import definitions as epro_definitions
from services.epro import fhir as epro_fhir
from services.epro.rendering import Rendering
from services.models import QuestionnaireStatus

blp = Blueprint("questionnaires", __name__, url_prefix="/api/v1", description="ePRO")

# The fields of a rendering that depend on the language; the others are the version's.
RENDERED_FIELDS = frozenset({"language", "title", "items", "languages"})

EXAMPLE_TITLE = {"en": "Heart failure diary", "nl": "Hartfalen dagboek"}
EXAMPLE_ITEMS = [
    {
        "link_id": "q1",
        "type": "single_choice",
        "required": True,
        "text": {"en": "Were you short of breath today?", "nl": "Was u vandaag kortademig?"},
        "options": [
            {"value": "none", "text": {"en": "No", "nl": "Nee"}},
            {"value": "some", "text": {"en": "A little", "nl": "Een beetje"}},
        ],
    },
    {"link_id": "q2", "type": "nrs", "text": {"en": "Pain (0-10)", "nl": "Pijn (0-10)"}},
    {"link_id": "q3", "type": "boolean", "text": {"en": "Did you fall?", "nl": "Viel u?"}},
    {
        "link_id": "q4",
        "type": "text",
        "max_length": 500,
        "text": {"en": "How did you fall?", "nl": "Hoe viel u?"},
        "enable_when": {"item": "q3", "equals": True},
    },
]
EXAMPLE_SCHEDULE = {
    "type": "daily",
    "start_day": 1,
    "end_day": 90,
    "window": {"opens": "18:00", "closes": "23:59", "close_after_days": 0},
}
ITEMS_DESCRIPTION = (
    "The questions, in order. Each: `link_id` (unique, 1-64 of letters, digits, _ . -), "
    "`type` (single_choice, multiple_choice, integer, decimal, nrs (0..10), vas (0..100), "
    "boolean, date, text), `required` (default false), `text` {language: text}; choices "
    "take `options` [{value, text}] (1-50), integer and decimal `min` < `max`, text "
    "`max_length` (1-10000); `enable_when` {item, equals} shows the item only when an "
    "earlier item's answer equals (for multiple_choice: includes) `equals`."
)
SCHEDULE_DESCRIPTION = (
    "When participants answer, in days from their baseline (day 0, -30..3650): `type` "
    "once (`start_day`), daily (`start_day` <= `end_day`), weekly (also `weekdays`, "
    "0 = Monday) or visit (`visit_code` of the study's schedule, `offset_days` default 0); "
    '`window` {opens "HH:MM", closes "HH:MM", close_after_days (0-30, default 0)} in the '
    "participant's local time: it closes on the day + close_after_days at `closes`."
)
LANG_DESCRIPTION = (
    "ISO 639-1 language of the texts; default: the caller's language. A patient gets "
    "exactly theirs (a version without it is a 409, never another language); staff get "
    "the study's first language the version has if it lacks theirs. `all` (staff): the "
    "{language: text} maps."
)


class EproQuestionnaireBodySchema(ma.Schema):
    """A whole version. Its nested shapes are checked by the service, so every problem
    comes back at once keyed by its path, such as `items.2.options` or
    `schedule.window.closes`."""

    code = ma.fields.String(
        required=True,
        metadata={
            "description": "Names the questionnaire across versions: 1-32 of letters, "
            "digits, _ . -",
            "example": "HFDIARY",
        },
    )
    version = ma.fields.String(
        required=True,
        metadata={
            "description": "1-16 characters, unique per code in the study",
            "example": "1.0",
        },
    )
    title = ma.fields.Dict(
        required=True,
        metadata={
            "description": "{language: text}; every text map of the version uses exactly "
            "these languages, all of them languages of the study",
            "example": EXAMPLE_TITLE,
        },
    )
    items = ma.fields.List(
        ma.fields.Dict(),
        required=True,
        metadata={"description": ITEMS_DESCRIPTION, "example": EXAMPLE_ITEMS},
    )
    schedule = ma.fields.Dict(
        required=True,
        metadata={"description": SCHEDULE_DESCRIPTION, "example": EXAMPLE_SCHEDULE},
    )


class EproQuestionnaireQuerySchema(ma.Schema):
    code = ma.fields.String(metadata={"description": "Only the versions of this code"})
    status = ma.fields.String(
        validate=ma.validate.OneOf([status.value for status in QuestionnaireStatus]),
        metadata={"description": "draft, published or superseded"},
    )


class EproLanguageQuerySchema(ma.Schema):
    lang = ma.fields.String(metadata={"description": LANG_DESCRIPTION, "example": "nl"})


class EproQuestionnaireSchema(DisclosedSchema):
    """A version with its texts in `language`, or as {language: text} maps when
    `language` is null (the write endpoints, the list, and `lang=all`). Patients need
    the questions, not which staff account wrote them (services.people.disclosure)."""

    RESOURCE = "questionnaire"

    id = ma.fields.UUID()
    study_id = ma.fields.UUID()
    code = ma.fields.String()
    version = ma.fields.String()
    status = ma.fields.String(
        metadata={
            "description": "draft (replaceable), published (frozen, answered) or "
            "superseded (a newer version of the code is published)"
        }
    )
    language = ma.fields.String(
        allow_none=True,
        metadata={"description": "The language of the texts; null: they are maps"},
    )
    languages = ma.fields.List(
        ma.fields.String(), metadata={"description": "The languages this version has"}
    )
    title = ma.fields.Raw(
        metadata={
            "description": "A string in `language`, or the {language: text} map",
            "oneOf": [
                {"type": "string"},
                {"type": "object", "additionalProperties": {"type": "string"}},
            ],
        }
    )
    items = ma.fields.List(
        ma.fields.Dict(),
        metadata={
            "description": "As posted, with `required` spelled out; each `text` (and "
            "option `text`) a string in `language`, or the map"
        },
    )
    schedule = ma.fields.Dict(metadata={"description": "As posted, with its defaults spelled out"})
    content_sha256 = ma.fields.String(
        allow_none=True,
        metadata={
            "description": "Set on publication: SHA-256 (hex) of the canonical JSON (keys "
            "sorted, no spaces, ASCII) of {code, version, title, items, schedule} as "
            "answered with lang=all"
        },
    )
    created_by = ma.fields.UUID()
    created_at = UtcDateTime()
    published_by = ma.fields.UUID(allow_none=True)
    published_at = UtcDateTime(allow_none=True)

    def get_attribute(self, obj: Rendering, attr: str, default: Any) -> Any:
        source = obj if attr in RENDERED_FIELDS else obj.questionnaire
        return super().get_attribute(source, attr, default)


class RenderedResults(QueryResults):
    """The list's page as renderings with every language's texts."""

    def __getitem__(self, window: slice) -> list[Rendering]:
        return [rendering.render(q, None) for q in super().__getitem__(window)]


@blp.route("/studies/<uuid:study_id>/questionnaires")
class StudyQuestionnaires(MethodView):
    @protected(blp, 403, 404, 409)
    @blp.arguments(EproQuestionnaireBodySchema)
    @blp.response(201, EproQuestionnaireSchema)
    def post(self, body: dict[str, Any], study_id: uuid.UUID) -> Rendering:
        """Draft a questionnaire version (a coordinator of the study).

        A code and version pair exists once per study (409). The answer has the texts
        as {language: text} maps.
        """
        questionnaire = epro_definitions.create_draft(
            db_session(), current_actor(), study_id, checks.Content(**body)
        )
        return rendering.render(questionnaire, None)

    @protected(blp, 403, 404)
    @blp.arguments(EproQuestionnaireQuerySchema, location="query")
    @blp.response(200, EproQuestionnaireSchema(many=True))
    @blp.paginate(Page)
    def get(self, filters: dict[str, Any], study_id: uuid.UUID) -> RenderedResults:
        """Every version of the study's questionnaires, by code and newest first, texts
        as maps (coordinators, nurses and monitors of the study; admins)."""
        session = db_session()
        query = epro_definitions.study_questionnaires(session, current_actor(), study_id, **filters)
        return RenderedResults(session, query)


@blp.route("/questionnaires/<uuid:questionnaire_id>")
class QuestionnaireItem(MethodView):
    @protected(blp, 403, 404, 409)
    @blp.arguments(EproLanguageQuerySchema, location="query")
    @blp.response(200, EproQuestionnaireSchema)
    def get(self, query: dict[str, Any], questionnaire_id: uuid.UUID) -> Rendering:
        """One version in one language (staff of the study; patients the published and
        superseded versions of their study).

        A `lang` the version does not have is a 422 naming those it has; `lang=all`
        (staff only) answers the {language: text} maps. Without `lang`, a patient whose
        language the version lacks gets a 409 naming those it has.
        """
        return epro_definitions.get_questionnaire(
            db_session(), current_actor(), questionnaire_id, query.get("lang")
        )

    @protected(blp, 403, 404, 409)
    @blp.arguments(EproQuestionnaireBodySchema)
    @blp.response(200, EproQuestionnaireSchema)
    def put(self, body: dict[str, Any], questionnaire_id: uuid.UUID) -> Rendering:
        """Replace a draft as a whole (a coordinator of the study).

        Published and superseded versions are frozen (409): create a new version.
        """
        questionnaire = epro_definitions.replace_draft(
            db_session(), current_actor(), questionnaire_id, checks.Content(**body)
        )
        return rendering.render(questionnaire, None)


@blp.route("/questionnaires/<uuid:questionnaire_id>/publish")
class QuestionnairePublication(MethodView):
    @protected(blp, 403, 404, 409, 422)
    @blp.response(200, EproQuestionnaireSchema)
    def post(self, questionnaire_id: uuid.UUID) -> Rendering:
        """Publish a draft (a coordinator of the study): frozen from then on, with its
        content_sha256.

        The previously published version of the code becomes superseded and keeps its
        open windows; the new version is planned for enrolled participants from the
        next window on. The draft is checked again (422), as the study's languages or
        visit definitions may have changed since it was saved, and it must have texts
        in every language of the study (422 naming the missing ones).
        """
        questionnaire = epro_definitions.publish(db_session(), current_actor(), questionnaire_id)
        return rendering.render(questionnaire, None)


@blp.route("/questionnaires/<uuid:questionnaire_id>/fhir")
class QuestionnaireFhir(MethodView):
    @protected(blp, 403, 404)
    @blp.arguments(EproLanguageQuerySchema, location="query")
    @blp.response(
        200,
        {"type": "object", "description": "A FHIR R4 Questionnaire resource"},
        content_type=epro_fhir.MEDIA_TYPE,
    )
    def get(self, query: dict[str, Any], questionnaire_id: uuid.UUID) -> Response:
        """The version as a FHIR R4 Questionnaire (staff of the study).

        Texts in `lang` (default as for GET /questionnaires/{id}; `all` is not a FHIR
        language), other languages as translation extensions; nrs, vas, integer and
        decimal bounds as the minValue and maxValue extensions; status draft, active
        (published) or retired (superseded).
        """
        questionnaire, language = epro_definitions.exportable(
            db_session(), current_actor(), questionnaire_id, query.get("lang")
        )
        resource = epro_fhir.questionnaire(questionnaire, language)
        return Response(json.dumps(resource), mimetype=epro_fhir.MEDIA_TYPE)
