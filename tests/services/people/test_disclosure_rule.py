"""The disclosure rule itself (services.people.disclosure) and its agreement with the API's
documented schemas; tests/api/test_disclosure.py reads it through every endpoint."""

from __future__ import annotations

from api.resources import schemas
from services.actor import Actor, Role
from services.people import disclosure

NOTES = "Anna (daughter) says he fell twice; wound on the left shin."

MONITOR = Actor(user_id=None, role=Role.MONITOR)


def test_identifiers_are_left_out_and_free_text_withheld_for_a_discussion():
    record = {"mode": "phone", "notes": NOTES, "lar_name": "Anna Peeters", "witness_name": None}

    shown = disclosure.disclose(MONITOR, "consent_discussion", record)

    assert shown == {"mode": "phone", "notes": {"withheld": True, "length": len(NOTES)}}


def test_every_declared_free_text_field_is_documented_as_such(app):
    """The served schemas and the rule agree: a field the rule withholds is a FreeText
    field (documented with the marker), and every FreeText field is withheld. (`app`:
    every resource module is imported.)"""
    declared = _subclasses(schemas.DisclosedSchema)
    assert {schema.RESOURCE for schema in declared} == set(disclosure.RESOURCES)
    for schema in declared:
        fields = schema._declared_fields
        free_text = {name for name, field in fields.items() if isinstance(field, schemas.FreeText)}
        rule = disclosure.RESOURCES[schema.RESOURCE]
        assert free_text == rule.free_text, schema
        named = rule.identifiers | rule.carers_only | rule.team_only | rule.answers
        assert named | rule.payloads <= set(fields), schema


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def marker(length: int) -> dict[str, object]:
    return {"withheld": True, "length": length}


def test_in_audit_payloads_strings_under_free_text_keys_are_withheld_however_deep():
    event = {
        "reason": None,
        "after": {
            "status": "cancelled",
            "answers": {"q9": "two words", "q5": 4, "q2": ["cough"], "q7": True},
            "visit": {"notes": "ab"},
        },
    }

    shown = disclosure.disclose(MONITOR, "audit_event", event)

    assert shown == {
        "reason": None,
        "after": {
            "status": "cancelled",
            "answers": {"q9": marker(9), "q5": 4, "q2": [marker(5)], "q7": True},
            "visit": {"notes": marker(2)},
        },
    }


def test_those_who_care_for_the_participant_read_the_record_as_it_is():
    record = {"notes": NOTES, "nurse_id": "n-1", "address": "Rue Haute 5"}
    coordinator = Actor(user_id=None, role=Role.COORDINATOR)
    patient = Actor(user_id=None, role=Role.PATIENT)

    assert disclosure.disclose(coordinator, "visit", record) == record
    assert disclosure.disclose(patient, "visit", record) == {"address": "Rue Haute 5"}
