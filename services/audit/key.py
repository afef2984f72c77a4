"""The audit key (DCT_AUDIT_KEY): HMAC-SHA256 over audit events and seals.

The key lives only in the environment of the app, the scheduler and `audit verify`,
never in the database, and apart from DCT_ENCRYPTION_KEY, so a database writer cannot
compute a valid hash for an event or a seal they forged, and a leaked encryption key
does not also let its holder re-sign the trail. Each MAC is over a kind label and the
canonical JSON of the record, so an event's MAC can never pass as a seal's.

Events written before the key existed were hashed with plain SHA-256; `legacy_hash`
still computes that, for the events a keyed cut-over seal vouches for.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from services.crypto import decode_master_key


class _Key:
    value: bytes | None = None


def decode_audit_key(text: str) -> bytes:
    """Parse DCT_AUDIT_KEY: 32 random bytes in URL-safe base64, like the encryption key."""
    try:
        return decode_master_key(text)
    except ValueError as exc:
        raise ValueError(str(exc).replace("DCT_ENCRYPTION_KEY", "DCT_AUDIT_KEY")) from None


def configure(key: bytes) -> None:
    """Install the process-wide audit key; called by the app factory."""
    _Key.value = key


def is_configured() -> bool:
    return _Key.value is not None


def canonical(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()


def mac(kind: str, payload: Mapping[str, Any], key: bytes | None = None) -> str:
    """HMAC-SHA256 (hex) of `kind`, a NUL, and the canonical JSON of `payload`."""
    key = key if key is not None else _Key.value
    if key is None:
        raise RuntimeError("the audit key (DCT_AUDIT_KEY) is not configured")
    return hmac.new(key, kind.encode() + b"\x00" + canonical(payload), hashlib.sha256).hexdigest()


def legacy_hash(payload: Mapping[str, Any]) -> str:
    """Plain SHA-256 of the canonical JSON: how events and seals were hashed before the key."""
    return hashlib.sha256(canonical(payload)).hexdigest()


def matches(expected: str, actual: str) -> bool:
    return hmac.compare_digest(expected, actual)
