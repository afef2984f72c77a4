"""Marshmallow fields that enforce the API's time conventions."""

from __future__ import annotations

import datetime as dt
from typing import Any

import marshmallow as ma


class UtcDateTime(ma.fields.AwareDateTime):
    """Accepts RFC 3339 with any offset (naive input is a 422), answers UTC with `Z`."""

    default_error_messages = {  # noqa: RUF012 - marshmallow merges this class attribute
        "invalid_awareness": "Give a time zone offset (for example 2026-03-30T09:00:00+02:00 "
        "or ...Z): naive times are refused."
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="iso", **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> dt.datetime:
        return super()._deserialize(value, attr, data, **kwargs).astimezone(dt.UTC)

    def _serialize(self, value: dt.datetime | None, attr: Any, obj: Any, **kwargs: Any) -> Any:
        if value is None:
            return None
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
