"""Password and one-time code hashing.

Passwords use Argon2id (argon2-cffi's defaults, RFC 9106 low-memory profile);
tests may install a cheaper profile through `configure`. Activation codes are
long random strings, so a plain SHA-256 is enough to store them.
"""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError

MIN_PASSWORD_LENGTH = 12
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud or typed from SMS


class _Hasher:
    current = PasswordHasher.from_parameters(profiles.RFC_9106_LOW_MEMORY)


def configure(cheap: bool = False) -> None:
    """Tests hash hundreds of passwords; they opt into the cheapest profile."""
    params = profiles.CHEAPEST if cheap else profiles.RFC_9106_LOW_MEMORY
    _Hasher.current = PasswordHasher.from_parameters(params)


def hash_password(password: str) -> str:
    return _Hasher.current.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        # Spend the same time as a real check so unknown accounts are not revealed.
        _Hasher.current.hash(password)
        return False
    try:
        return _Hasher.current.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_activation_code() -> str:
    """12 characters from a 32-symbol alphabet: 60 bits, shown as XXXX-XXXX-XXXX."""
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(12))
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


def hash_code(code: str) -> str:
    normalised = code.replace("-", "").replace(" ", "").upper()
    return hashlib.sha256(normalised.encode()).hexdigest()


def needs_rehash(password_hash: str) -> bool:
    return _Hasher.current.check_needs_rehash(password_hash)


def check_strength(password: str) -> None:
    """A length rule only (NIST SP 800-63B): composition rules do not help."""
    from services.errors import Invalid

    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(
            "password too short",
            errors={"password": [f"use at least {MIN_PASSWORD_LENGTH} characters"]},
        )
