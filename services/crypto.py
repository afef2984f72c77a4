"""Encryption at rest for direct identifiers, free text and the signed consent PDF,
and keyed hashes for looking identifiers up.

One 32-byte master key (DCT_ENCRYPTION_KEY) is split with HKDF into an AES-GCM key
and an HMAC key, so the blind index cannot be used to decrypt and vice versa.
Ciphertexts are bound to their column (associated data), so a value copied into
another column does not decrypt.

Stored files have data keys of their own (`services/diagnostics/envelope.py`), wrapped here under
key-encryption keys: one per key id, derived from a third HKDF output, so rotating the
key id (`flask uploads rotate-keys`) re-wraps every data key without touching a file.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import JSON, LargeBinary, Text, TypeDecorator

_VERSION = "v1"
# Binary ciphertexts start with this marker, so a stored value says how it was sealed
# (and a plaintext PDF, which starts with "%PDF", can never be mistaken for one).
_BYTES_VERSION = b"dct1"


class _Keys:
    aead: AESGCM | None = None
    index_key: bytes | None = None
    wrapping_root: bytes | None = None
    wrapping: dict[str, AESGCM] = {}  # noqa: RUF012 - a per-process cache, reset by configure


def decode_master_key(text: str) -> bytes:
    """Parse the configured key: 32 random bytes in URL-safe base64."""
    try:
        key = base64.urlsafe_b64decode(text.encode() + b"=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("DCT_ENCRYPTION_KEY is not URL-safe base64") from exc
    if len(key) != 32:
        raise ValueError("DCT_ENCRYPTION_KEY must decode to exactly 32 bytes")
    return key


def configure(master_key: bytes) -> None:
    """Install the process-wide keys; called once by the app factory and the CLI."""

    def derive(label: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(master_key)

    _Keys.aead = AESGCM(derive(b"dct/field-encryption"))
    _Keys.index_key = derive(b"dct/blind-index")
    _Keys.wrapping_root = derive(b"dct/upload-key-wrap")
    _Keys.wrapping = {}


def is_configured() -> bool:
    """Whether `configure` ran: the migrations configure the keys themselves when run
    outside the app (plain `alembic upgrade`), and leave the app's keys alone."""
    return _Keys.aead is not None


def _aead() -> AESGCM:
    if _Keys.aead is None:
        raise RuntimeError("encryption keys are not configured")
    return _Keys.aead


def encrypt(plaintext: str, purpose: str) -> str:
    nonce = os.urandom(12)
    sealed = _aead().encrypt(nonce, plaintext.encode(), purpose.encode())
    return f"{_VERSION}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def decrypt(token: str, purpose: str) -> str:
    version, _, body = token.partition(":")
    if version != _VERSION:
        raise ValueError(f"unknown ciphertext version {version!r}")
    raw = base64.urlsafe_b64decode(body)
    return _aead().decrypt(raw[:12], raw[12:], purpose.encode()).decode()


def encrypt_bytes(plaintext: bytes, purpose: str) -> bytes:
    """Binary AES-GCM: the marker, the 12-byte nonce, then ciphertext and tag, raw (a
    signed PDF would grow by a third in base64)."""
    nonce = os.urandom(12)
    return _BYTES_VERSION + nonce + _aead().encrypt(nonce, plaintext, purpose.encode())


def decrypt_bytes(sealed: bytes, purpose: str) -> bytes:
    if not sealed.startswith(_BYTES_VERSION):
        raise ValueError("not a dct1 ciphertext")
    raw = sealed[len(_BYTES_VERSION) :]
    return _aead().decrypt(raw[:12], raw[12:], purpose.encode())


def blind_index(value: str, purpose: str) -> str:
    """Keyed hash for equality look-ups (log-in by phone, inbound SMS) without plaintext,
    and for seals over records (signatures) that only this service can recompute."""
    if _Keys.index_key is None:
        raise RuntimeError("encryption keys are not configured")
    message = f"{purpose}\x00{value}".encode()
    return hmac.new(_Keys.index_key, message, hashlib.sha256).hexdigest()


def new_key_id() -> str:
    """A fresh key id: random, so a key-encryption key is never derived twice."""
    return secrets.token_hex(8)


def _wrapping(key_id: str) -> AESGCM:
    """The key-encryption key of `key_id` (HKDF of the wrapping root, cached)."""
    if _Keys.wrapping_root is None:
        raise RuntimeError("encryption keys are not configured")
    aead = _Keys.wrapping.get(key_id)
    if aead is None:
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"dct/kek/" + key_id.encode()
        ).derive(_Keys.wrapping_root)
        aead = _Keys.wrapping[key_id] = AESGCM(derived)
    return aead


def _wrap_aad(key_id: str) -> bytes:
    return b"dct/upload-data-key\x00" + key_id.encode()


def wrap_key(data_key: bytes, key_id: str) -> bytes:
    """A data key sealed under `key_id`'s key-encryption key: nonce, ciphertext, tag
    (60 bytes for a 32-byte key). The key id is bound in, so a wrapped key relabelled
    with another id does not unwrap."""
    nonce = os.urandom(12)
    return nonce + _wrapping(key_id).encrypt(nonce, data_key, _wrap_aad(key_id))


def unwrap_key(wrapped: bytes, key_id: str) -> bytes:
    """The data key; `cryptography.exceptions.InvalidTag` when `wrapped` was not made
    by `wrap_key` under this key id and master key."""
    return _wrapping(key_id).decrypt(wrapped[:12], wrapped[12:], _wrap_aad(key_id))


class EncryptedText(TypeDecorator[str]):
    """A string column stored as AES-GCM ciphertext bound to `purpose`."""

    impl = Text
    cache_ok = True

    def __init__(self, purpose: str) -> None:
        super().__init__()
        self.purpose = purpose

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else encrypt(value, self.purpose)

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else decrypt(value, self.purpose)


class EncryptedDate(EncryptedText):
    """A date stored encrypted (as its ISO text)."""

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return super().process_bind_param(None if value is None else value.isoformat(), dialect)

    def process_result_value(self, value: str | None, dialect: Any) -> Any:
        text = super().process_result_value(value, dialect)
        return None if text is None else dt.date.fromisoformat(text)


class EncryptedBytes(TypeDecorator[bytes]):
    """A binary column (the signed consent PDF) stored as AES-GCM ciphertext bound to
    `purpose`; readers get the plaintext bytes, so hashes and ETags stay theirs."""

    impl = LargeBinary
    cache_ok = True

    def __init__(self, purpose: str) -> None:
        super().__init__()
        self.purpose = purpose

    def process_bind_param(self, value: bytes | None, dialect: Any) -> bytes | None:
        return None if value is None else encrypt_bytes(bytes(value), self.purpose)

    def process_result_value(self, value: bytes | None, dialect: Any) -> bytes | None:
        return None if value is None else decrypt_bytes(bytes(value), self.purpose)


class EncryptedJSON(TypeDecorator[Any]):
    """A JSON value encrypted as a whole (ePRO answers: the free text in them and the
    health data around it), stored as one JSON string, the token. The column stays
    JSON, so making it encrypted rewrote values, not the table. Nothing may query
    inside it in SQL."""

    impl = JSON
    cache_ok = True

    def __init__(self, purpose: str) -> None:
        super().__init__()
        self.purpose = purpose

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        return encrypt(json.dumps(value, ensure_ascii=False), self.purpose)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return None if value is None else json.loads(decrypt(value, self.purpose))
