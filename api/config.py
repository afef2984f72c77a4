"""Configuration from environment variables, with safe development defaults.

Every variable is listed in README.md. Production (`DCT_ENV=production`) refuses to
start with a missing or development secret.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from services.audit.key import decode_audit_key
from services.crypto import decode_master_key
from services.diagnostics.zip_inspection import ZipLimits

ROOT = Path(__file__).resolve().parent.parent
# Development-only values: known to everyone, so production refuses them.
DEV_JWT_SECRET = "dev-only-jwt-secret-do-not-use-in-production-0000"  # noqa: S105 - the public development default
DEV_ENCRYPTION_KEY = "ZGV2LW9ubHkta2V5LWRvLW5vdC11c2UtaW4tcHJvZCE="
DEV_AUDIT_KEY = "ZGV2LW9ubHktYXVkaXQta2V5LW5vdC1mb3ItcHJvZCE="

DEFAULTS: dict[str, Any] = {
    "DCT_ENV": "development",
    "DATABASE_URL": f"sqlite:///{ROOT / 'instance' / 'dct.sqlite3'}",
    "JWT_SECRET_KEY": DEV_JWT_SECRET,
    "DCT_ENCRYPTION_KEY": DEV_ENCRYPTION_KEY,
    "DCT_AUDIT_KEY": DEV_AUDIT_KEY,
    "DCT_ACCESS_TOKEN_MINUTES": 15,
    "DCT_REFRESH_TOKEN_DAYS": 30,
    "DCT_MAX_FAILED_LOGINS": 5,
    "DCT_LOCKOUT_MINUTES": 15,
    "DCT_LOGIN_ALERT_CEILING": 50,
    "DCT_RESET_CODE_MINUTES": 30,
    "DCT_SIGNATURE_HOLD_HOURS": 24,
    "DCT_LOGIN_RATE_LIMIT": "20 per minute",
    "DCT_RATELIMIT_STORAGE_URI": "memory://",
    "DCT_MAX_REQUEST_BYTES": 1024 * 1024,
    "DCT_TRUSTED_PROXIES": 0,
    "DCT_LOG_LEVEL": "INFO",
    "DCT_AUDIT_SEAL_MINUTES": 1,
    "DCT_PASSWORD_HASH_CHEAP": False,
    "DCT_TRAVEL_BUFFER_MINUTES": 30,
    "DCT_CHECK_IN_MARGIN_MINUTES": 60,
    "DCT_EPRO_GRACE_MINUTES": 1440,
    "DCT_STORAGE_BACKEND": "local",
    "DCT_UPLOAD_DIR": str(ROOT / "instance" / "uploads"),
    "DCT_S3_BUCKET": "",
    "DCT_S3_PREFIX": "uploads/",
    "DCT_S3_ENDPOINT_URL": "",
    "DCT_S3_REGION": "",
    "DCT_UPLOAD_MAX_BYTES": 200 * 1024 * 1024,
    "DCT_UPLOAD_MAX_BYTES_BY_KIND": "",
    "DCT_ZIP_MAX_ENTRIES": ZipLimits.entries,
    "DCT_ZIP_MAX_UNCOMPRESSED_BYTES": ZipLimits.uncompressed,
    "DCT_ZIP_MAX_RATIO": ZipLimits.ratio,
    "DCT_CORS_ORIGINS": "",
    "DCT_TUS_EXPIRY_HOURS": 24,
    "DCT_SCHEDULER_ENABLED": True,
    "DCT_SMS_GATEWAY": "console",
    "DCT_CONSOLE_SMS_INBOX": str(ROOT / "instance" / "console-sms.txt"),
    "DCT_EMAIL_GATEWAY": "console",
    "DCT_CONSOLE_MAIL_INBOX": str(ROOT / "instance" / "console-mail.txt"),
    "DCT_EMAIL_FROM": "no-reply@dct.example",
    "DCT_SMTP_HOST": "",
    "DCT_SMTP_PORT": 587,
    "DCT_SMTP_USERNAME": "",
    "DCT_SMTP_PASSWORD": "",
    "DCT_SMTP_STARTTLS": True,
    "DCT_EMAIL_DISPATCH_SECONDS": 10,
    "DCT_EMAIL_MAX_ATTEMPTS": 6,
    "TWILIO_ACCOUNT_SID": "",
    "TWILIO_AUTH_TOKEN": "",
    "TWILIO_MESSAGING_SERVICE_SID": "",
    "TWILIO_FROM_NUMBER": "",
    "TWILIO_API_BASE_URL": "https://api.twilio.com",
    "PUBLIC_BASE_URL": "http://127.0.0.1:5000",
    "DCT_SMS_VALIDITY_SECONDS": 14400,
    "DCT_SMS_DAILY_CAP": 3,
    "DCT_SMS_DISPATCH_SECONDS": 5,
    "DCT_SMS_LEASE_SECONDS": 120,
    "DCT_SMS_MAX_ATTEMPTS": 6,
    "DCT_SMS_THREADS": 8,
}


# Settings that switch a protection off (or break it) at 0 or below.
POSITIVE = (
    "DCT_MAX_FAILED_LOGINS",
    "DCT_LOCKOUT_MINUTES",
    "DCT_LOGIN_ALERT_CEILING",
    "DCT_RESET_CODE_MINUTES",
    "DCT_EMAIL_MAX_ATTEMPTS",
    "DCT_AUDIT_SEAL_MINUTES",
    "DCT_ZIP_MAX_ENTRIES",
    "DCT_ZIP_MAX_UNCOMPRESSED_BYTES",
    "DCT_ZIP_MAX_RATIO",
)
# A browser origin as the Origin header spells it: scheme, host, optional port.
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


def cors_origins(settings: Mapping[str, Any]) -> list[str]:
    """DCT_CORS_ORIGINS as a list: exact origins, comma-separated; none by default.
    No wildcard: an allow-list names each staff tool."""
    return [origin.strip() for origin in settings["DCT_CORS_ORIGINS"].split(",") if origin.strip()]


def _coerce(default: Any, raw: str) -> Any:
    if isinstance(default, bool):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return int(raw)
    return raw


def load(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Defaults, then the environment, then explicit overrides (tests pass theirs)."""
    settings = dict(DEFAULTS)
    for key, default in DEFAULTS.items():
        if key in os.environ:
            settings[key] = _coerce(default, os.environ[key])
    settings.update(overrides or {})
    _check(settings)
    return settings


def _check(settings: Mapping[str, Any]) -> None:
    if settings["DCT_ENV"] not in ("development", "production"):
        raise RuntimeError("DCT_ENV must be 'development' or 'production'")
    if settings["DCT_STORAGE_BACKEND"] not in ("local", "s3"):
        raise RuntimeError("DCT_STORAGE_BACKEND must be 'local' or 's3'")
    if settings["DCT_STORAGE_BACKEND"] == "s3" and not settings["DCT_S3_BUCKET"]:
        raise RuntimeError("DCT_S3_BUCKET must be set for DCT_STORAGE_BACKEND=s3")
    if settings["DCT_CHECK_IN_MARGIN_MINUTES"] < 0:
        raise RuntimeError("DCT_CHECK_IN_MARGIN_MINUTES must be 0 or more")
    for key in POSITIVE:
        if settings[key] < 1:
            raise RuntimeError(f"{key} must be 1 or more")
    if settings["DCT_SIGNATURE_HOLD_HOURS"] < 0:
        raise RuntimeError("DCT_SIGNATURE_HOLD_HOURS must be 0 or more")
    if settings["DCT_EMAIL_GATEWAY"] not in ("none", "console", "smtp"):
        raise RuntimeError("DCT_EMAIL_GATEWAY must be 'none', 'console' or 'smtp'")
    if settings["DCT_EMAIL_GATEWAY"] == "smtp" and not settings["DCT_SMTP_HOST"]:
        raise RuntimeError("DCT_EMAIL_GATEWAY=smtp needs DCT_SMTP_HOST")
    if settings["DCT_SMS_GATEWAY"] not in ("console", "twilio"):
        raise RuntimeError("DCT_SMS_GATEWAY must be 'console' or 'twilio'")
    if settings["DCT_SMS_GATEWAY"] == "twilio" and not (
        settings["TWILIO_ACCOUNT_SID"]
        and settings["TWILIO_AUTH_TOKEN"]
        and (settings["TWILIO_MESSAGING_SERVICE_SID"] or settings["TWILIO_FROM_NUMBER"])
    ):
        raise RuntimeError(
            "DCT_SMS_GATEWAY=twilio needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and "
            "TWILIO_MESSAGING_SERVICE_SID or TWILIO_FROM_NUMBER"
        )
    for origin in cors_origins(settings):
        if not _ORIGIN.fullmatch(origin):
            raise RuntimeError(
                f"DCT_CORS_ORIGINS: {origin!r} is not an origin such as https://tools.example.org"
            )
    # Keys are compared as the bytes they decode to: base64 may be spelled several ways.
    encryption_key = decode_master_key(settings["DCT_ENCRYPTION_KEY"])
    audit_key = decode_audit_key(settings["DCT_AUDIT_KEY"])
    if audit_key == encryption_key:
        # One leaked key must not both decrypt the data and re-sign the audit trail.
        raise RuntimeError("DCT_AUDIT_KEY must differ from DCT_ENCRYPTION_KEY")
    if settings["DCT_ENV"] != "production":
        return
    problems = []
    jwt_secret = settings["JWT_SECRET_KEY"]
    if jwt_secret == DEV_JWT_SECRET or len(jwt_secret) < 32:
        problems.append("JWT_SECRET_KEY must be set to a random secret of 32+ characters")
    if encryption_key == decode_master_key(DEV_ENCRYPTION_KEY):
        problems.append("DCT_ENCRYPTION_KEY must be set to 32 random bytes in URL-safe base64")
    if audit_key == decode_audit_key(DEV_AUDIT_KEY):
        problems.append("DCT_AUDIT_KEY must be set to 32 random bytes in URL-safe base64")
    if settings["DCT_PASSWORD_HASH_CHEAP"]:
        problems.append("DCT_PASSWORD_HASH_CHEAP is for tests only")
    if settings["DCT_EMAIL_GATEWAY"] == "console":
        problems.append("DCT_EMAIL_GATEWAY must be smtp or none (console writes to a file)")
    if settings["DCT_SMS_GATEWAY"] != "twilio":
        problems.append("DCT_SMS_GATEWAY must be twilio (the console gateway sends nothing)")
    if not settings["PUBLIC_BASE_URL"].startswith("https://"):
        problems.append("PUBLIC_BASE_URL must be the service's public https:// address")
    if problems:
        raise RuntimeError("refusing to start in production: " + "; ".join(problems))
