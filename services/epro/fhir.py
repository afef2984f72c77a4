"""FHIR R4 exports of ePRO questionnaires and responses.

Sponsors load ePRO data into their EDC and hospitals into their EHR; both read FHIR R4
Questionnaire and QuestionnaireResponse resources, so one standard export replaces a
bespoke format per partner. The builders are pure (model objects in, JSON-ready dicts
out): callers scope and authorise first. The tests parse every export with the
fhir.resources R4B models, which check the structure and types R4 prescribes.
"""

from __future__ import annotations

from typing import Any

from services.actor import Role
from services.epro.checks import BOUNDED_TYPES, CHOICE_TYPES, FIXED_BOUNDS, Item
from services.models import EproResponse, Questionnaire, QuestionnaireStatus, ResponseStatus
from services.people import disclosure

MEDIA_TYPE = "application/fhir+json"
MIN_VALUE = "http://hl7.org/fhir/StructureDefinition/minValue"
MAX_VALUE = "http://hl7.org/fhir/StructureDefinition/maxValue"
TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"
DATA_ABSENT_REASON = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
# How long a withheld answer is (our extension; FHIR has none for it).
WITHHELD_LENGTH = "https://dct.example/fhir/StructureDefinition/withheld-length"

STATUS = {
    QuestionnaireStatus.DRAFT.value: "draft",
    QuestionnaireStatus.PUBLISHED.value: "active",
    QuestionnaireStatus.SUPERSEDED.value: "retired",
}
# Per item type: the FHIR item type, and the suffix of the answer[x] / value[x] elements
# holding its answers (in enableWhen, answerOption, the bounds and the responses).
TYPES = {
    "single_choice": ("choice", "Coding"),
    "multiple_choice": ("choice", "Coding"),
    "integer": ("integer", "Integer"),
    "nrs": ("integer", "Integer"),
    "decimal": ("decimal", "Decimal"),
    "vas": ("decimal", "Decimal"),
    "boolean": ("boolean", "Boolean"),
    "date": ("date", "Date"),
    "text": ("text", "String"),
}
_AUTHOR = {
    Role.NURSE.value: "nurse entering for the participant during a visit",
    Role.COORDINATOR.value: "study coordinator correcting the response",
}


def _value_key(prefix: str, item: Item) -> str:
    return f"{prefix}{TYPES[item['type']][1]}"


# --- Questionnaire ---------------------------------------------------------------------


def _translations(texts: dict[str, str], language: str) -> dict[str, Any] | None:
    """The other languages' texts as FHIR translation extensions of a string element."""
    others = [other for other in sorted(texts) if other != language]
    if not others:
        return None
    return {
        "extension": [
            {
                "url": TRANSLATION,
                "extension": [
                    {"url": "lang", "valueCode": other},
                    {"url": "content", "valueString": texts[other]},
                ],
            }
            for other in others
        ]
    }


def _put_text(target: dict[str, Any], name: str, texts: dict[str, str], language: str) -> None:
    target[name] = texts[language]
    translations = _translations(texts, language)
    if translations:
        target[f"_{name}"] = translations


def _coding(option: dict[str, Any], language: str) -> dict[str, Any]:
    coding: dict[str, Any] = {"code": option["value"]}
    _put_text(coding, "display", option["text"], language)
    return coding


def _bounds(item: Item) -> list[dict[str, Any]]:
    kind = item["type"]
    if kind not in FIXED_BOUNDS and kind not in BOUNDED_TYPES:
        return []
    low, high = FIXED_BOUNDS.get(kind) or (item["min"], item["max"])
    key = _value_key("value", item)
    return [{"url": MIN_VALUE, key: low}, {"url": MAX_VALUE, key: high}]


def _condition(item: Item, sources: dict[str, Item], language: str) -> dict[str, Any]:
    """FHIR's "=" on a repeating (multiple_choice) question holds when any answer
    matches, which is our "includes"."""
    source_id, equals = item["enable_when"]["item"], item["enable_when"]["equals"]
    source = sources[source_id]
    condition: dict[str, Any] = {"question": source_id, "operator": "="}
    if source["type"] in CHOICE_TYPES:
        option = next(o for o in source["options"] if o["value"] == equals)
        condition["answerCoding"] = {"code": equals, "display": option["text"][language]}
    else:
        condition[_value_key("answer", source)] = equals
    return condition


def _question(item: Item, sources: dict[str, Item], language: str) -> dict[str, Any]:
    kind = item["type"]
    entry: dict[str, Any] = {"linkId": item["link_id"]}
    _put_text(entry, "text", item["text"], language)
    entry["type"] = TYPES[kind][0]
    entry["required"] = item["required"]
    if kind == "multiple_choice":
        entry["repeats"] = True
    if kind in CHOICE_TYPES:
        entry["answerOption"] = [
            {"valueCoding": _coding(option, language)} for option in item["options"]
        ]
    if kind == "text":
        entry["maxLength"] = item["max_length"]
    bounds = _bounds(item)
    if bounds:
        entry["extension"] = bounds
    if "enable_when" in item:
        entry["enableWhen"] = [_condition(item, sources, language)]
    return entry


def questionnaire(version: Questionnaire, language: str) -> dict[str, Any]:
    """The version as a FHIR R4 Questionnaire, texts in `language` and the other
    languages as translation extensions."""
    sources = {item["link_id"]: item for item in version.items}
    resource: dict[str, Any] = {
        "resourceType": "Questionnaire",
        "id": str(version.id),
        "language": language,
        "url": f"urn:uuid:{version.id}",
        "identifier": [{"value": version.code}],
        "version": version.version,
        "status": STATUS[version.status],
        "subjectType": ["Patient"],
    }
    _put_text(resource, "title", version.title, language)
    if version.published_at is not None:
        published = version.published_at.isoformat(timespec="seconds")
        resource["date"] = published.replace("+00:00", "Z")
    resource["item"] = [_question(item, sources, language) for item in version.items]
    return resource


# --- QuestionnaireResponse -------------------------------------------------------------


def _status(response: EproResponse) -> str:
    if response.status == ResponseStatus.DECLINED:
        return "stopped"
    return "amended" if response.version > 1 else "completed"


def _author(response: EproResponse, subject: dict[str, Any]) -> dict[str, Any]:
    if response.originator == Role.PATIENT.value:
        return {"type": "Patient", **subject}
    return {
        "type": "Practitioner",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{response.entered_by}"},
        "display": _AUTHOR[response.originator],
    }


def _withheld(key: str, value: str) -> dict[str, Any]:
    """A withheld free-text answer: the primitive without its value, with FHIR's
    data-absent-reason `masked` (absent for privacy) and the text's length."""
    marker = disclosure.withheld(value)
    return {
        f"_{key}": {
            "extension": [
                {"url": DATA_ABSENT_REASON, "valueCode": "masked"},
                {"url": WITHHELD_LENGTH, "valueInteger": marker["length"]},
            ]
        }
    }


def _answers(item: Item, value: Any, withhold: bool) -> list[dict[str, Any]]:
    key = _value_key("value", item)
    if item["type"] in CHOICE_TYPES:
        chosen = value if isinstance(value, list) else [value]
        return [{key: {"code": code}} for code in chosen]
    if withhold and item["type"] == disclosure.FREE_TEXT_ITEM_TYPE:
        return [_withheld(key, value)]
    return [{key: value}]


def _answered_items(
    items: list[Item], answers: list[dict[str, Any]], withhold: bool
) -> list[dict[str, Any]]:
    """Answered items in the questionnaire's order."""
    values = {answer["item"]: answer["value"] for answer in answers}
    return [
        {"linkId": item["link_id"], "answer": _answers(item, values[item["link_id"]], withhold)}
        for item in items
        if item["link_id"] in values
    ]


def questionnaire_response(
    response: EproResponse,
    version: Questionnaire,
    subject_code: str,
    *,
    withhold_free_text: bool = False,
) -> dict[str, Any]:
    """The response as a FHIR R4 QuestionnaireResponse: the subject by subject code and
    staff by user id, never by name; free-text answers withheld when told (for those
    `disclosure.sees_free_text` refuses)."""
    subject = {"identifier": {"value": subject_code}}
    resource: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "id": str(response.id),
        "questionnaire": f"urn:uuid:{version.id}|{version.version}",
        "status": _status(response),
        "subject": subject,
        "authored": response.completed_at.isoformat().replace("+00:00", "Z"),
        "source": {"type": "Patient", **subject},
        "author": _author(response, subject),
        "item": _answered_items(version.items, response.answers, withhold_free_text),
    }
    if response.client_id is not None:
        resource["identifier"] = {
            "system": "urn:ietf:rfc:3986",
            "value": f"urn:uuid:{response.client_id}",
        }
    return resource
