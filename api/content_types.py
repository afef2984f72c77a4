"""What the API reads from a request, checked once at the edge before any view runs.

- A body in a media type the endpoint does not read is a 415: webargs would otherwise
  ignore a non-JSON body and report missing fields, which hides the client's mistake.
- A JSON body is parsed here, once, and must be JSON that every layer behind can hold:
  nested at most `MAX_JSON_DEPTH` deep (400), integers within I-JSON's exact range and
  finite numbers (RFC 7493; a 422 naming the field), strings and keys without NUL or
  lone surrogates (a 422 naming the field: PostgreSQL refuses NUL, UTF-8 cannot encode
  a surrogate). The views' webargs parser reads the parsed body from here.
- Query parameters and URL-encoded form fields (422) and path segments (404) obey the
  same string rule.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from typing import Any

from flask import Flask, current_app, g, request
from werkzeug.exceptions import BadRequest, NotFound, UnsupportedMediaType

from services.errors import Invalid
from services.validation import unstorable

JSON_TYPES = frozenset({"application/json"})
FORM = "application/x-www-form-urlencoded"  # what Twilio's webhooks send
# A MethodView reading another media type (uploads, tus) sets `accepted_media_types`.
MAX_JSON_DEPTH = 32  # the deepest body the API documents is a questionnaire, at about 8
MAX_JSON_INTEGER = 2**53 - 1  # RFC 7493 section 2.2: beyond it, parsers round integers
_INTEGER_DIGITS = len(str(MAX_JSON_INTEGER))


class _Refused:
    """A number the body may not hold, kept in place so the check can name its field."""

    def __init__(self, why: str) -> None:
        self.why = why


def _integer(text: str) -> int | _Refused:
    # Counting digits first: int() of 4,301 digits or more raises (CVE-2020-10735 guard).
    if len(text.lstrip("-")) > _INTEGER_DIGITS or abs(int(text)) > MAX_JSON_INTEGER:
        return _Refused(f"an integer between -{MAX_JSON_INTEGER} and {MAX_JSON_INTEGER}")
    return int(text)


def _float(text: str) -> float | _Refused:
    value = float(text)
    return value if math.isfinite(value) else _Refused("a finite number")


def _constant(_text: str) -> _Refused:
    return _Refused("a finite number (NaN and Infinity are not JSON)")


def parse_json(data: bytes | str) -> Any:
    """Parse a JSON document under this module's rules, raising a 400 or 422 problem."""
    try:
        text = data.decode() if isinstance(data, bytes) else data
        parsed = json.loads(text, parse_int=_integer, parse_float=_float, parse_constant=_constant)
    except RecursionError:
        raise BadRequest(_too_deep()) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    problems: dict[str, list[str]] = {}
    for path, value in _leaves(parsed):
        why = value.why if isinstance(value, _Refused) else unstorable(value)
        if why:
            problems.setdefault(path or "json", []).append(why)
    if problems:
        raise Invalid("the request body holds values that cannot be stored", errors=problems)
    return parsed


def _too_deep() -> str:
    return f"the request body is nested too deep (at most {MAX_JSON_DEPTH} levels)"


def _leaves(document: Any) -> Iterator[tuple[str, Any]]:
    """The strings (keys included) and refused numbers of a parsed document, by their
    dotted path (`quiz.0.question`); iterative, so no depth can exhaust the stack."""
    stack: list[tuple[str, Any, int]] = [("", document, 0)]
    while stack:
        path, value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise BadRequest(_too_deep())
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                child = f"{path}.{key}" if path else str(key)
                if isinstance(key, str):
                    yield child, key
                stack.append((child, item, depth + 1))
        elif isinstance(value, str | _Refused):
            yield path, value


def json_body() -> Any:
    """The request's JSON body, parsed and checked once per request."""
    if "json_body" not in g:
        g.json_body = parse_json(request.get_data(cache=True))
    return g.json_body


def _unstorable(pairs: Iterable[tuple[str, Any]]) -> dict[str, list[str]]:
    return {
        name: [why]
        for name, value in pairs
        if isinstance(value, str) and (why := unstorable(name) or unstorable(value))
    }


def _check() -> None:
    problems = _unstorable(request.args.items(multi=True))
    if problems:
        raise Invalid("the query string holds values that cannot be stored", errors=problems)
    if _unstorable((request.view_args or {}).items()):
        raise NotFound()
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    has_body = bool(request.content_length) or "chunked" in request.headers.get(
        "Transfer-Encoding", ""
    )
    if not has_body:
        return
    view = current_app.view_functions.get(request.endpoint or "")
    accepted = getattr(getattr(view, "view_class", None), "accepted_media_types", JSON_TYPES)
    if request.mimetype not in accepted:
        raise UnsupportedMediaType(
            f"send the body as {' or '.join(sorted(accepted))}, not {request.mimetype or 'untyped'}"
        )
    if request.is_json:
        json_body()
    elif request.mimetype == FORM:  # multipart is left to its view: it streams a file
        problems = _unstorable(request.form.items(multi=True))
        if problems:
            raise Invalid("the form holds values that cannot be stored", errors=problems)


def init_app(app: Flask) -> None:
    app.before_request(_check)
