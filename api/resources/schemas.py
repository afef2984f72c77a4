"""Output schemas shared by several resources."""

from __future__ import annotations

import marshmallow as ma

from api.fields import UtcDateTime


class SiteSchema(ma.Schema):
    id = ma.fields.UUID(dump_only=True)
    study_id = ma.fields.UUID(dump_only=True)
    code = ma.fields.String(required=True, validate=ma.validate.Length(1, 32))
    name = ma.fields.String(required=True, validate=ma.validate.Length(1, 300))
    country = ma.fields.String(required=True, validate=ma.validate.Length(2, 2))
    timezone = ma.fields.String(required=True)
    created_at = UtcDateTime(dump_only=True)


class UserSchema(ma.Schema):
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
    activated = ma.fields.Function(lambda user: user.password_hash is not None)
    created_at = UtcDateTime()
