"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, for the
e-mail tests: the gateway speaks real SMTP to it through smtplib."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller


@dataclass
class Inbox:
    """What the server accepted: (envelope recipients, parsed message) in order."""

    received: list[tuple[list[str], EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.original_content, policy=policy.default)
        self.received.append((list(envelope.rcpt_tos), parsed))  # type: ignore[arg-type]
        return "250 OK"


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    inbox: Inbox

    def settings(self) -> dict[str, object]:
        return {
            "DCT_EMAIL_GATEWAY": "smtp",
            "DCT_SMTP_HOST": self.host,
            "DCT_SMTP_PORT": self.port,
            "DCT_SMTP_STARTTLS": False,  # loopback test server without a certificate
        }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", controller.port, inbox)
    finally:
        controller.stop()
