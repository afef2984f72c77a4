"""The OpenAPI document is the contract the apps and tools code against: a change of
layout must not change one byte of it. The saved copy was taken before the code moved
into one package per capability; a deliberate API change updates it in the same commit
(`DCT_UPDATE_OPENAPI_SNAPSHOT=1 pytest tests/api/test_openapi_snapshot.py`)."""

from __future__ import annotations

import os
from pathlib import Path

SNAPSHOT = Path(__file__).parent / "snapshots" / "openapi.json"


def served_document(client) -> bytes:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.data


def test_openapi_document_is_the_saved_one(client):
    served = served_document(client)
    if os.environ.get("DCT_UPDATE_OPENAPI_SNAPSHOT") == "1":
        SNAPSHOT.write_bytes(served)
    saved = SNAPSHOT.read_bytes()
    assert served == saved, "the OpenAPI document differs from tests/api/snapshots/openapi.json"


def test_openapi_bytes_are_stable_between_requests(client):
    assert served_document(client) == served_document(client)
