"""Where an SMS leaves the system: Twilio in production, the log in development.

The dispatcher only sees `SmsGateway`: it sends, and after a lost answer asks
`find_sent` whether Twilio has the message anyway, so a retry never sends twice.
Errors are sorted into the three kinds the dispatcher acts on: transient (retry with
backoff), the recipient's number (fail the row, flag the phone) and our own
configuration (keep every row until an operator fixes it). Neither logs nor error
texts carry the number or the text: both are personal data, and a reminder's text
hints at care.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.rest import Client

from services.models import SmsStatus
from services.notifications import content as sms_content
from services.notifications import inbox_file

log = logging.getLogger("dct.sms")

TWILIO_API = "https://api.twilio.com"
STATUS_CALLBACK_PATH = "/api/v1/webhooks/twilio/status"
DEFAULT_TIMEOUT_SECONDS = 10.0
# Twilio lists the newest messages first; a lost answer is looked for among this many
# of the number's latest (a reminder's recipient gets a few a day at most).
RECONCILE_LIMIT = 50

# Twilio's message statuses as the outbox's. Twilio's intermediate states all mean
# "Twilio has it", which is `sent` for the outbox; unknown states (WhatsApp's `read`,
# scheduling) are not used here.
TWILIO_STATUSES: dict[str, SmsStatus] = {
    "accepted": SmsStatus.SENT,
    "queued": SmsStatus.SENT,
    "sending": SmsStatus.SENT,
    "sent": SmsStatus.SENT,
    "delivered": SmsStatus.DELIVERED,
    "undelivered": SmsStatus.UNDELIVERED,
    "failed": SmsStatus.FAILED,
}

# Error codes that say the recipient's phone is the problem: the coordinator must
# check the number with the participant. The texts are shown to coordinators. A send
# refused with one of these fails its row; any other 4xx is about our account or
# request, and no row is failed for it.
PHONE_PROBLEMS: dict[int, str] = {
    21211: "not a valid phone number",
    21408: "SMS to this number's country are not enabled",
    21610: "the number unsubscribed from SMS (replied STOP)",
    21614: "not a mobile number",
    30003: "the phone is unreachable",
    30004: "the message was blocked by the phone or the carrier",
    30005: "the number is unknown or no longer in service",
    30006: "a landline or an unreachable carrier",
}


def outbox_status(twilio_status: str) -> SmsStatus | None:
    """The outbox status a Twilio message status means, or None for one not tracked."""
    return TWILIO_STATUSES.get(twilio_status.strip().lower())


def error_text(code: int | None, http_status: int | None = None) -> str:
    """A description of a Twilio error without Twilio's own message, which quotes the number."""
    if code in PHONE_PROBLEMS:
        return f"{code}: {PHONE_PROBLEMS[code]}"
    if code is not None:
        return f"Twilio error {code}" + (f" (HTTP {http_status})" if http_status else "")
    return f"Twilio answered HTTP {http_status}" if http_status else "Twilio error"


class SmsError(Exception):
    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class TransientSmsError(SmsError):
    """Worth retrying later: throttling (429), Twilio's 5xx, no answer in time."""


class PermanentSmsError(SmsError):
    """Retrying cannot help: the recipient's number cannot take this SMS (one of
    PHONE_PROBLEMS)."""


class GatewayConfigError(SmsError):
    """Twilio refused our account or request (credentials, sender, messaging service):
    every message would fail alike, so none is failed, and all wait for the fix."""


@dataclass(frozen=True)
class SendResult:
    sid: str
    status: str  # an outbox status (SmsStatus value): sent, or already delivered/failed


class SmsGateway(Protocol):
    """`timeout_seconds` bounds one call: a dispatcher starts a call only while its
    lease outlasts it. `find_sent` returns every message with that body sent to that
    number since then, newest first: texts repeat, so the caller picks its own."""

    name: str
    timeout_seconds: float

    def send(self, to: str, body: str, message_id: uuid.UUID) -> SendResult: ...

    def find_sent(self, to: str, body: str, since: dt.datetime) -> list[SendResult]: ...


class ConsoleGateway:
    """The development gateway: a log line instead of an SMS, every send a success.

    With an inbox file, each text is also appended there: the developer's stand-in for
    the phone, where an activation or reset code can be read (never the log, which
    goes elsewhere). Production refuses this gateway."""

    name = "console"
    timeout_seconds = 0.0

    def __init__(self, inbox: Path | None = None) -> None:
        self.inbox = inbox

    def send(self, to: str, body: str, message_id: uuid.UUID) -> SendResult:
        log.info(
            "sms sent (console): message %s, %d characters, %d segment(s)",
            message_id,
            len(body),
            sms_content.segments(body),
        )
        if self.inbox is not None:
            stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            inbox_file.append(self.inbox, f"{stamp} to ...{to[-4:]}: {body}\n")
        return SendResult(sid=f"CONSOLE-{uuid.uuid4().hex}", status=SmsStatus.SENT.value)

    def find_sent(self, to: str, body: str, since: dt.datetime) -> list[SendResult]:
        """Nothing to ask: a console send cannot have been lost on the way."""
        return []


class RebasedHttpClient(TwilioHttpClient):  # type: ignore[misc]  # twilio is untyped
    """The SDK's HTTP client sending to another base URL (a local fake Twilio in tests
    and benchmarks), with a timeout, a connection per sending thread and no request
    logs (the SDK logs query strings, which hold the recipient's number)."""

    def __init__(self, base_url: str, timeout: float, pool_size: int) -> None:
        super().__init__(timeout=timeout)
        self.base_url = base_url.rstrip("/")
        assert self.session is not None
        for prefix in ("http://", "https://"):
            self.session.mount(prefix, HTTPAdapter(pool_maxsize=pool_size))

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> TwilioResponse:
        if url.startswith(TWILIO_API):
            url = self.base_url + url[len(TWILIO_API) :]
        return super().request(method, url, *args, **kwargs)

    def log_request(self, kwargs: dict[str, Any]) -> None:
        return

    def log_response(self, status_code: int, response: Any) -> None:
        return


class TwilioGateway:
    """Twilio's Programmable Messaging through the official SDK."""

    name = "twilio"

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        public_base_url: str,
        validity_seconds: int,
        messaging_service_sid: str = "",
        from_number: str = "",
        api_base_url: str = TWILIO_API,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        pool_size: int = 10,  # requests' own default
    ) -> None:
        self.timeout_seconds = timeout
        self.client = Client(
            account_sid,
            auth_token,
            http_client=RebasedHttpClient(api_base_url, timeout, pool_size),
        )
        self.callback_base = public_base_url.rstrip("/") + STATUS_CALLBACK_PATH
        self.validity_seconds = validity_seconds
        # A messaging service picks the sender itself; otherwise our own number sends.
        self.sender = (
            {"messaging_service_sid": messaging_service_sid}
            if messaging_service_sid
            else {"from_": from_number}
        )

    @classmethod
    def from_settings(
        cls, settings: Mapping[str, Any], *, timeout: float = DEFAULT_TIMEOUT_SECONDS
    ) -> TwilioGateway:
        """One pooled connection per dispatcher thread (DCT_SMS_THREADS), so concurrent
        sends neither wait for nor discard connections."""
        return cls(
            account_sid=settings["TWILIO_ACCOUNT_SID"],
            auth_token=settings["TWILIO_AUTH_TOKEN"],
            public_base_url=settings["PUBLIC_BASE_URL"],
            validity_seconds=int(settings["DCT_SMS_VALIDITY_SECONDS"]),
            messaging_service_sid=settings["TWILIO_MESSAGING_SERVICE_SID"],
            from_number=settings["TWILIO_FROM_NUMBER"],
            api_base_url=settings["TWILIO_API_BASE_URL"],
            timeout=timeout,
            pool_size=int(settings["DCT_SMS_THREADS"]),
        )

    def status_callback(self, message_id: uuid.UUID) -> str:
        """Carries the row id, so a callback finds its row even before the SID is stored."""
        return f"{self.callback_base}?message_id={message_id}"

    def send(self, to: str, body: str, message_id: uuid.UUID) -> SendResult:
        with _classified():
            message = self.client.messages.create(
                to=to,
                body=body,
                status_callback=self.status_callback(message_id),
                validity_period=self.validity_seconds,
                **self.sender,
            )
        return _result(message.sid, message.status)

    def find_sent(self, to: str, body: str, since: dt.datetime) -> list[SendResult]:
        """Every message with exactly this body created for this number since `since`,
        newest first.

        Listed by number alone: Twilio's `DateSent` filter leaves out messages still in
        its queue (no date sent yet), which are the ones a lost answer most likely left.
        Twilio stamps messages to the second; clock skew is the caller's margin."""
        earliest = since.replace(microsecond=0)
        with _classified():
            messages = self.client.messages.list(to=to, limit=RECONCILE_LIMIT)
        matches = [
            m
            for m in messages
            if m.body == body and m.date_created is not None and m.date_created >= earliest
        ]
        matches.sort(key=lambda m: m.date_created, reverse=True)
        return [_result(m.sid, m.status) for m in matches]


def _result(sid: str | None, twilio_status: Any) -> SendResult:
    status = outbox_status(str(twilio_status or "")) or SmsStatus.SENT
    return SendResult(sid=str(sid), status=status.value)


@contextmanager
def _classified() -> Iterator[None]:
    """Turns the SDK's and requests' exceptions into the gateway's three kinds."""
    try:
        yield
    except requests.Timeout as error:
        raise TransientSmsError("Twilio did not answer in time") from error
    except requests.RequestException as error:
        raise TransientSmsError(f"could not reach Twilio ({type(error).__name__})") from error
    except (TwilioRestException, TwilioServiceException) as error:
        raise _from_twilio(error.status, error.code) from error
    except TwilioException as error:
        raise _from_page(error) from error


def _from_page(error: TwilioException) -> SmsError:
    """A list page that did not answer 200 comes with Twilio's raw answer: sorted as a
    send's error would be (a refused account stays a configuration error)."""
    response = error.args[1] if len(error.args) > 1 else None
    if not isinstance(response, TwilioResponse):
        return TransientSmsError("Twilio's answer could not be read")
    try:
        code = json.loads(response.text).get("code")
    except (ValueError, AttributeError):
        code = None
    return _from_twilio(response.status_code, code if isinstance(code, int) else None)


def _from_twilio(http_status: int, code: int | None) -> SmsError:
    # Without an error body the SDK puts the HTTP status where Twilio's code belongs.
    code = None if code == http_status else code
    text = error_text(code, http_status)
    if http_status == 429 or http_status >= 500:
        return TransientSmsError(text, code)
    if code in PHONE_PROBLEMS:
        return PermanentSmsError(text, code)
    return GatewayConfigError(text, code)


def make_gateway(settings: Mapping[str, Any]) -> SmsGateway:
    """DCT_SMS_GATEWAY picks it; config.load has already checked Twilio's settings."""
    if settings["DCT_SMS_GATEWAY"] == "twilio":
        return TwilioGateway.from_settings(settings)
    inbox = settings.get("DCT_CONSOLE_SMS_INBOX")
    return ConsoleGateway(Path(inbox) if inbox else None)
