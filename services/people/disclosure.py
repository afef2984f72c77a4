"""What each role reads of a record: one rule, in one place, for every resource.

Those who care for a participant (coordinators of their site, nurses of their visits,
the participant themselves) read a record as the endpoint answers it. Everyone else
who may read it at all (monitors, admins) reads it pseudonymised:

- direct identifiers (names, contact data, date of birth) are left out;
- free text entered by people (reasons, notes, free-text answers, file names) keeps
  its field, but as a marker, `{"withheld": true, "length": 37}`. No filter can tell
  "daughter Anna phoned, +32..." from "felt unwell", so none of it leaves the study
  team; the marker still says that a reason was given and how long it is, so a monitor
  can ask for it at the site (source data verification).

Admins are treated like monitors: they run accounts and studies, and do not care for
participants; the reasons they read in the audit trail name people too.

A resource takes part by being declared in RESOURCES; the API's output schemas apply
`disclose` to what they dump, and the FHIR export asks `sees_free_text`. Fields a
resource does not declare go to whoever may read the resource at all, so adding a
field that names or describes a person means declaring it here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from services.actor import Actor, Role

# Read in full; everyone else reads pseudonymised.
CARERS = frozenset({Role.COORDINATOR, Role.NURSE, Role.PATIENT})
# The questionnaire item type whose answers are free text.
FREE_TEXT_ITEM_TYPE = "text"


def sees_identity(actor: Actor) -> bool:
    """Direct identifiers go only to those who care for the participant."""
    return actor.role in CARERS


def sees_free_text(actor: Actor) -> bool:
    """Free text goes where identifiers go: people write names and numbers into it."""
    return sees_identity(actor)


def withheld(text: str) -> dict[str, Any]:
    """The marker standing in for withheld text: its length in characters, no more."""
    return {"withheld": True, "length": len(text)}


def free_text_items(items: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """The link ids of a questionnaire version's items answered in free text."""
    return frozenset(item["link_id"] for item in items if item["type"] == FREE_TEXT_ITEM_TYPE)


@dataclass(frozen=True)
class Fields:
    """How one resource's fields are read, by name as the API answers them.

    `identifiers` and `carers_only` (the rest of the care record) are left out and
    `free_text` withheld for those who do not care for the participant; `team_only`
    is the study team's working record, left out for the participant. `answers` name
    lists of {"item", "value"} whose values are free text for the items the record
    names (`free_text_items`); `payloads` name objects (audit before/after) in which
    any key of PAYLOAD_FREE_TEXT holds free text. `team_only_within` names (list, key)
    pairs: that key of each item of the list is the team's too (a quiz's right answers).
    `nurse_only` and `patient_only` split a record both read about one visit: the
    nurse's day (who, where, what) and the patient's (who is coming)."""

    identifiers: frozenset[str] = frozenset()
    carers_only: frozenset[str] = frozenset()
    free_text: frozenset[str] = frozenset()
    team_only: frozenset[str] = frozenset()
    answers: frozenset[str] = frozenset()
    payloads: frozenset[str] = frozenset()
    team_only_within: frozenset[tuple[str, str]] = frozenset()
    nurse_only: frozenset[str] = frozenset()
    patient_only: frozenset[str] = frozenset()


def _fields(**names: Collection[Any]) -> Fields:
    return Fields(**{key: frozenset(value) for key, value in names.items()})


RESOURCES: Mapping[str, Fields] = {
    "participant": _fields(identifiers=("full_name", "phone", "email", "address", "date_of_birth")),
    "visit": _fields(
        identifiers=("address", "phone", "nurse_name"),
        # Monitors and admins read which visit, when, and its status.
        carers_only=(
            "nurse_id",
            "procedures",
            "duration_minutes",
            "confirmed_at",
            "checked_in_at",
            "checked_out_at",
            "completed_procedures",
        ),
        free_text=("notes", "cancel_reason", "deviation_reason", "check_in_location"),
        team_only=("nurse_id", "notes", "check_in_location", "deviation_reason"),
    ),
    "my_visit": _fields(
        nurse_only=("participant_id", "subject_code", "address", "phone", "procedures"),
        patient_only=("nurse_name",),
    ),
    "consent_document": _fields(team_only_within=(("quiz", "answer"),)),
    "questionnaire": _fields(team_only=("created_by", "published_by")),
    "epro_response": _fields(free_text=("reason",), answers=("answers",)),
    "consent": _fields(free_text=("withdrawal_reason",)),
    "consent_signature": _fields(identifiers=("printed_name",)),
    "consent_discussion": _fields(identifiers=("lar_name", "witness_name"), free_text=("notes",)),
    "upload": _fields(free_text=("filename", "supersede_reason")),
    "audit_event": _fields(free_text=("reason",), payloads=("before", "after")),
}

# Keys that hold free text wherever they appear in an audit payload: every resource's
# free-text field names, and the answers a correction records (item -> value; their
# strings are withheld whatever the item's type, since the event does not say).
PAYLOAD_FREE_TEXT = frozenset({"answers"}.union(*(f.free_text for f in RESOURCES.values())))


def _withhold(value: Any) -> Any:
    """Strings become markers, however deep; numbers, booleans and nulls stay."""
    if isinstance(value, str):
        return withheld(value)
    if isinstance(value, Mapping):
        return {key: _withhold(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_withhold(item) for item in value]
    return value


def _withhold_payload(payload: Any) -> Any:
    if not isinstance(payload, Mapping):
        return payload
    return {
        key: _withhold(value) if key in PAYLOAD_FREE_TEXT else _withhold_payload(value)
        for key, value in payload.items()
    }


def _withhold_answers(answers: Any, items: Collection[str]) -> Any:
    if not isinstance(answers, list):
        return answers
    return [
        {**answer, "value": _withhold(answer.get("value"))}
        if isinstance(answer, Mapping) and answer.get("item") in items
        else answer
        for answer in answers
    ]


def _free_text_withheld(fields: Fields, key: str, value: Any, items: Collection[str]) -> Any:
    if key in fields.free_text:
        return _withhold(value)
    if key in fields.answers:
        return _withhold_answers(value, items)
    if key in fields.payloads:
        return _withhold_payload(value)
    return value


def _without_team_keys(data: dict[str, Any], pairs: Collection[tuple[str, str]]) -> dict[str, Any]:
    for name, key in pairs:
        if isinstance(data.get(name), list):
            data[name] = [
                {k: v for k, v in item.items() if k != key} if isinstance(item, Mapping) else item
                for item in data[name]
            ]
    return data


def disclose(
    actor: Actor,
    resource: str,
    data: dict[str, Any],
    *,
    free_text_items: Collection[str] = (),
) -> dict[str, Any]:
    """`data` (one record as answered) as `actor` may read it. Withheld fields stay,
    with the marker; a null stays null (there was nothing to withhold)."""
    fields = RESOURCES[resource]
    if actor.role == Role.PATIENT:
        data = {key: value for key, value in data.items() if key not in fields.team_only}
        data = _without_team_keys(data, fields.team_only_within)
    if actor.role != Role.NURSE:
        data = {key: value for key, value in data.items() if key not in fields.nurse_only}
    if actor.role != Role.PATIENT:
        data = {key: value for key, value in data.items() if key not in fields.patient_only}
    if not sees_identity(actor):
        hidden = fields.identifiers | fields.carers_only
        data = {key: value for key, value in data.items() if key not in hidden}
    if not sees_free_text(actor):
        data = {
            key: _free_text_withheld(fields, key, value, free_text_items)
            for key, value in data.items()
        }
    return data
