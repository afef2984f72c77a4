"""Output schemas shared by several resources, and the one way a role's view is made."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import marshmallow as ma

from api.auth import current_actor
from api.fields import UtcDateTime
from services.people import disclosure


@dataclass(frozen=True)
class With:
    """An entity answered with extra top-level fields (a one-time code, a profile's scope)."""

    entity: Any
    extra: dict[str, Any] = field(default_factory=dict)


class EntitySchema(ma.Schema):
    """Output schema that also dumps `With` wrappers, so views return objects, never dicts
    that a second dump would mangle."""

    def get_attribute(self, obj: Any, attr: str, default: Any) -> Any:
        if isinstance(obj, With):
            if attr in obj.extra:
                return obj.extra[attr]
            obj = obj.entity
        return super().get_attribute(obj, attr, default)


WITHHELD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "free text withheld from this reader: only its length in characters",
    "properties": {
        "withheld": {"type": "boolean", "const": True},
        "length": {"type": "integer", "minimum": 0},
    },
    "required": ["withheld", "length"],
    "additionalProperties": False,
}
WITHHELD_NOTE = (
    'Monitors and admins read {"withheld": true, "length": <characters>} instead (null stays null).'
)


class FreeText(ma.fields.Raw):
    """Text people typed, documented as what it is answered as: the text (or null) to
    those who care for the participant, the withheld marker to everyone else. Raw, so
    the OpenAPI schema is the `oneOf` alone; the text itself is dumped as stored."""

    def __init__(self, description: str, **kwargs: Any) -> None:
        super().__init__(
            allow_none=True,
            metadata={
                "description": f"{description}. {WITHHELD_NOTE}",
                "oneOf": [{"type": ["string", "null"]}, WITHHELD_SCHEMA],
            },
            **kwargs,
        )


class DisclosedSchema(EntitySchema):
    """An output schema of a resource declared in `services.people.disclosure.RESOURCES`
    (`RESOURCE` names it): each role reads what that rule leaves of the dump. Free-text
    answer items come from the `With` wrapper's `free_text_items`, when it has them."""

    RESOURCE: ClassVar[str]

    @ma.post_dump(pass_original=True)
    def _disclose(self, data: dict[str, Any], original: Any, **_kwargs: Any) -> dict[str, Any]:
        items = original.extra.get("free_text_items", ()) if isinstance(original, With) else ()
        return disclosure.disclose(current_actor(), self.RESOURCE, data, free_text_items=items)


class UpdateSchema(ma.Schema):
    """A PATCH body. `FIXED` names the fields that never change, with why: sending one
    answers 422 saying so, rather than marshmallow's bare "Unknown field."."""

    FIXED: ClassVar[Mapping[str, str]] = {}

    @ma.pre_load
    def _refuse_fixed(self, data: Any, **_kwargs: Any) -> Any:
        if isinstance(data, Mapping):
            sent = {name: [why] for name, why in self.FIXED.items() if name in data}
            if sent:
                raise ma.ValidationError(sent)
        return data


class SiteSchema(ma.Schema):
    id = ma.fields.UUID(dump_only=True)
    study_id = ma.fields.UUID(dump_only=True)
    code = ma.fields.String(required=True, validate=ma.validate.Length(1, 32))
    name = ma.fields.String(required=True, validate=ma.validate.Length(1, 300))
    country = ma.fields.String(required=True, validate=ma.validate.Length(2, 2))
    timezone = ma.fields.String(required=True)
    created_at = UtcDateTime(dump_only=True)


class UserSchema(EntitySchema):
    """An account as its owner and administrators see it."""

    id = ma.fields.UUID()
    role = ma.fields.String()
    full_name = ma.fields.String()
    email = ma.fields.String(allow_none=True)
    phone = ma.fields.String(allow_none=True)
    locale = ma.fields.String()
    timezone = ma.fields.String()
    is_active = ma.fields.Boolean()
    site_ids = ma.fields.List(ma.fields.UUID())
    study_ids = ma.fields.List(ma.fields.UUID())
    activated = ma.fields.Boolean()
    created_at = UtcDateTime()


class MeSchema(UserSchema):
    """The caller's own account with its scope: GET /me and the user of a token pair."""

    participant_id = ma.fields.UUID(allow_none=True)
