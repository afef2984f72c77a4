"""A local Twilio for tests and benchmarks: the two Messages API calls the gateway makes,
over real HTTP, so the real SDK builds and parses every request and answer.

It records the exact form fields of every create request, accepts messages like
Twilio (201, sid "SM" + 32 hex, status queued), lists them for reconciliation (newest
first; a message still in Twilio's queue has no `date_sent`, and `DateSent` filters
leave it out, as Twilio's do), and can be scripted to fail: the next calls answer
429/5xx, a 4xx with a Twilio error code, or accept the message but answer too late
(a lost answer).
"""

from __future__ import annotations

import base64
import collections
import datetime as dt
import json
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

ACCOUNT_SID = "AC" + "f" * 32
AUTH_TOKEN = "fake-twilio-auth-token"
MESSAGING_SERVICE_SID = "MG" + "e" * 32
API_VERSION = "2010-04-01"
_MESSAGES = re.compile(rf"/{API_VERSION}/Accounts/(?P<account>AC[0-9a-f]{{32}})/Messages\.json")
# What Twilio answers with each scripted status when no code is given.
_DEFAULT_CODES = {429: 20429, 500: 20500, 503: 20503}
_MESSAGES_BY_CODE = {
    21211: "The 'To' number {to} is not a valid phone number.",
    21610: "Attempt to send to unsubscribed recipient {to}",
    21614: "'To' number {to} is not a valid mobile number",
}


@dataclass(frozen=True)
class Script:
    """How to answer one coming create request."""

    status: int = 201
    code: int | None = None
    delay: float = 0.0  # seconds before answering (the message is accepted first)


def _twilio_time(when: dt.datetime) -> str:
    return format_datetime(when, usegmt=True)


def _sent_after(message: dict[str, Any], bound: str) -> bool:
    """Twilio's `DateSent>` filter: a date or a UTC timestamp, inclusive; a message
    not sent yet has no date to compare."""
    fmt = "%Y-%m-%dT%H:%M:%SZ" if "T" in bound else "%Y-%m-%d"
    limit = dt.datetime.strptime(bound, fmt).replace(tzinfo=dt.UTC)
    return message["_sent_at"] is not None and message["_sent_at"] >= limit


class FakeTwilio:
    """The server's state: what was asked, what was accepted, what is scripted next."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict[str, str]] = []  # form fields of every create, in order
        self.messages: list[dict[str, Any]] = []  # accepted messages, Twilio's JSON
        self.queries: list[dict[str, str]] = []  # query parameters of every list
        self.scripts: collections.deque[Script] = collections.deque()
        self.latency = 0.0  # added to every answer (benchmarks)
        self.queueing = False  # accepted messages stay queued: no date_sent yet
        self.stopping = threading.Event()
        self.url = ""

    def fail_next(self, status: int, *, times: int = 1, code: int | None = None) -> None:
        """The next `times` creates answer `status` with Twilio's error JSON."""
        self.scripts.extend([Script(status, code or _DEFAULT_CODES.get(status))] * times)

    def answer_late(self, seconds: float, *, times: int = 1) -> None:
        """The next `times` creates are accepted but answered after `seconds`."""
        self.scripts.extend([Script(delay=seconds)] * times)

    def next_script(self) -> Script:
        with self.lock:
            return self.scripts.popleft() if self.scripts else Script()

    def accept(self, account: str, form: dict[str, str]) -> dict[str, Any]:
        now = dt.datetime.now(dt.UTC)
        sent_at = None if self.queueing else now.replace(microsecond=0)
        sid = "SM" + uuid.uuid4().hex
        message = {
            "account_sid": account,
            "api_version": API_VERSION,
            "body": form.get("Body", ""),
            "date_created": _twilio_time(now),
            "date_sent": _twilio_time(sent_at) if sent_at else None,
            "date_updated": _twilio_time(now),
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {
                "media": f"/{API_VERSION}/Accounts/{account}/Messages/{sid}/Media.json"
            },
            "to": form.get("To"),
            "uri": f"/{API_VERSION}/Accounts/{account}/Messages/{sid}.json",
            "_created_at": now,
            "_sent_at": sent_at,
        }
        with self.lock:
            self.messages.append(message)
        return message

    def listed(self, query: dict[str, str]) -> list[dict[str, Any]]:
        """One page, newest first, at most `PageSize` long."""
        with self.lock:
            self.queries.append(query)
            found = [m for m in self.messages if m["to"] == query.get("To", m["to"])]
        if "DateSent>" in query:
            found = [m for m in found if _sent_after(m, query["DateSent>"])]
        found.sort(key=lambda m: m["_created_at"], reverse=True)
        return found[: int(query.get("PageSize", 50))]


def public(message: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in message.items() if not key.startswith("_")}


class _Handler(BaseHTTPRequestHandler):
    server: _Server  # HTTP/1.0: one connection per request, so no socket outlives a test

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: the test output is not the place for request lines

    def do_POST(self) -> None:
        fake = self.server.fake
        account = self._account()
        if account is None:
            return
        length = int(self.headers.get("Content-Length") or 0)
        form = dict(parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True))
        with fake.lock:
            fake.requests.append(form)
        script = fake.next_script()
        if script.status != 201:
            text = _MESSAGES_BY_CODE.get(script.code or 0, "Scripted failure").format(
                to=form.get("To")
            )
            self._error(script.status, script.code, text)
            return
        message = fake.accept(account, form)
        fake.stopping.wait(script.delay + fake.latency)
        self._json(201, public(message))

    def do_GET(self) -> None:
        fake = self.server.fake
        account = self._account()
        if account is None:
            return
        query = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        messages = [public(m) for m in fake.listed(query)]
        fake.stopping.wait(fake.latency)
        page_uri = f"/{API_VERSION}/Accounts/{account}/Messages.json"
        self._json(
            200,
            {
                "messages": messages,
                "end": max(len(messages) - 1, 0),
                "first_page_uri": page_uri,
                "next_page_uri": None,
                "page": 0,
                "page_size": int(query.get("PageSize", 50)),
                "previous_page_uri": None,
                "start": 0,
                "uri": page_uri,
            },
        )

    def _account(self) -> str | None:
        """The account SID of a Messages URL called with that account's credentials."""
        match = _MESSAGES.fullmatch(urlsplit(self.path).path)
        if match is None:
            self._error(404, 20404, "The requested resource was not found")
            return None
        expected = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
        if match["account"] != ACCOUNT_SID or self.headers.get("Authorization") != (
            f"Basic {expected}"
        ):
            self._error(401, 20003, "Authenticate")
            return None
        return match["account"]

    def _error(self, status: int, code: int | None, message: str) -> None:
        self._json(
            status,
            {
                "code": code,
                "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            },
        )

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            return  # the client gave up waiting: that is what a late answer tests


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeTwilio) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


def start(fake: FakeTwilio | None = None) -> tuple[FakeTwilio, _Server]:
    """Serve a fake Twilio on a free port in a background thread (benchmarks call this)."""
    fake = fake or FakeTwilio()
    server = _Server(fake)
    host, port = server.server_address[:2]
    fake.url = f"http://{host}:{port}"
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-twilio", daemon=True
    ).start()
    return fake, server


def stop(fake: FakeTwilio, server: _Server) -> None:
    fake.stopping.set()  # wakes late answers, so shutdown does not wait for them
    server.shutdown()
    server.server_close()


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    """A fresh fake Twilio per test; settings for it come from `twilio_settings`."""
    fake, server = start()
    try:
        yield fake
    finally:
        stop(fake, server)


def twilio_settings(fake: FakeTwilio, **extra: Any) -> dict[str, Any]:
    """App settings sending through the fake with a messaging service."""
    return {
        "DCT_SMS_GATEWAY": "twilio",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_MESSAGING_SERVICE_SID": MESSAGING_SERVICE_SID,
        "TWILIO_FROM_NUMBER": "",
        "TWILIO_API_BASE_URL": fake.url,
        "PUBLIC_BASE_URL": "https://dct.example.org",
        "DCT_SMS_VALIDITY_SECONDS": 14400,
        "DCT_SMS_THREADS": 8,
        **extra,
    }
