"""Encryption at rest for direct identifiers, and keyed hashes for looking them up.

One 32-byte master key (DCT_ENCRYPTION_KEY) is split with HKDF into an AES-GCM key
and an HMAC key, so the blind index cannot be used to decrypt and vice versa.
Ciphertexts are bound to their column (associated data), so a value copied into
another column does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import os
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Text, TypeDecorator

_VERSION = "v1"


class _Keys:
    aead: AESGCM | None = None
    index_key: bytes | None = None


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


def blind_index(value: str, purpose: str) -> str:
    """Keyed hash for equality look-ups (log-in by phone, inbound SMS) without plaintext,
    and for seals over records (signatures) that only this service can recompute."""
    if _Keys.index_key is None:
        raise RuntimeError("encryption keys are not configured")
    message = f"{purpose}\x00{value}".encode()
    return hmac.new(_Keys.index_key, message, hashlib.sha256).hexdigest()


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
