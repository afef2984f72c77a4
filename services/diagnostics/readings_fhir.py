"""A device reading as a FHIR R4 Observation (LOINC codes, UCUM units, high/low
interpretation against the study's thresholds), for EDCs and EHRs that load FHIR."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from services.actor import Actor
from services.diagnostics.readings import (
    BLOOD_PRESSURE,
    PRESSURES,
    get_reading,
    subject_codes,
)
from services.models import (
    Reading,
)

LOINC = "http://loinc.org"


UCUM = "http://unitsofmeasure.org"


CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"


_UNIT_DISPLAY = {
    "mm[Hg]": "mmHg",
    "/min": "beats/minute",
    "[lb_av]": "lb",
    "Cel": "°C",
    "[degF]": "°F",
}


_INTERPRETATIONS = {"above": ("H", "High"), "below": ("L", "Low")}


def _concept(key: str) -> dict[str, Any]:
    code, display = _CODES[key]
    return {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display}


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": _UNIT_DISPLAY.get(unit, unit), "system": UCUM, "code": unit}


def _interpretation(directions: set[str]) -> list[dict[str, Any]]:
    return [
        {"coding": [{"system": INTERPRETATION, "code": code, "display": display}]}
        for direction, (code, display) in _INTERPRETATIONS.items()
        if direction in directions
    ]


def _directions(reading: Reading) -> dict[str, set[str]]:
    """Per label, "above" and/or "below", read back from the reasons `_flags` wrote
    ("systolic 182 mm[Hg] above 160": UCUM codes hold no spaces)."""
    found: dict[str, set[str]] = {}
    for reason in reading.flag_reasons:
        label, _value, _unit, direction, *_limit = reason.split(" ")
        found.setdefault(label, set()).add(direction)
    return found


def _device_display(device: Mapping[str, str]) -> str | None:
    named = [device[name] for name in ("manufacturer", "model") if device.get(name)]
    return " ".join(named) or None


def observation(reading: Reading, subject_code: str) -> dict[str, Any]:
    """The reading as a FHIR R4 vital-signs Observation: the subject by subject code,
    never by name; blood pressure as the panel with its two components; `H`/`L` when
    flagged against the study's thresholds."""
    directions = _directions(reading)
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": str(reading.id),
        "status": "final",
        "category": [
            {"coding": [{"system": CATEGORY, "code": "vital-signs", "display": "Vital Signs"}]}
        ],
        "code": _concept(reading.unit if reading.type == "glucose" else reading.type),
        "subject": {"identifier": {"value": subject_code}},
        "effectiveDateTime": _fhir_time(reading.measured_at),
        "issued": _fhir_time(reading.received_at),
    }
    if reading.client_id is not None:
        resource["identifier"] = [
            {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{reading.client_id}"}
        ]
    if reading.type == BLOOD_PRESSURE:
        resource["component"] = [
            _component(name, number, reading.unit, directions.get(name, set()))
            for name, number in zip(PRESSURES, (reading.value, reading.value_2), strict=True)
        ]
    else:
        resource["valueQuantity"] = _quantity(reading.value, reading.unit)
    if reading.flagged:
        resource["interpretation"] = _interpretation(set().union(*directions.values()))
    device = _device_display(reading.device)
    if device is not None:
        resource["device"] = {"display": device}
    return resource


def _component(name: str, number: float | None, unit: str, directions: set[str]) -> dict[str, Any]:
    component: dict[str, Any] = {"code": _concept(name), "valueQuantity": _quantity(number, unit)}  # type: ignore[arg-type]
    if directions:
        component["interpretation"] = _interpretation(directions)
    return component


def _fhir_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def fhir_observation(session: Session, actor: Actor, reading_id: uuid.UUID) -> dict[str, Any]:
    """The reading as a FHIR R4 Observation, for whoever may read it."""
    reading = get_reading(session, actor, reading_id)
    return observation(reading, subject_codes(session, [reading])[reading.participant_id])


# LOINC per type, or per unit where the unit changes the property (glucose).
_CODES: dict[str, tuple[str, str]] = {
    BLOOD_PRESSURE: ("85354-9", "Blood pressure panel with all children optional"),
    "systolic": ("8480-6", "Systolic blood pressure"),
    "diastolic": ("8462-4", "Diastolic blood pressure"),
    "heart_rate": ("8867-4", "Heart rate"),
    "spo2": ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"),
    "mmol/L": ("15074-8", "Glucose [Moles/volume] in Blood"),
    "mg/dL": ("2339-0", "Glucose [Mass/volume] in Blood"),
    "weight": ("29463-7", "Body weight"),
    "temperature": ("8310-5", "Body temperature"),
    "fev1": ("20150-9", "FEV1"),
}
