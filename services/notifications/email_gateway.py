"""Where account e-mails go: an SMTP server in production, a file in development.

`DCT_EMAIL_GATEWAY` picks one: `smtp` (`DCT_SMTP_*`, STARTTLS unless told otherwise),
`console` (each message appended to a file, the developer's stand-in for an inbox;
refused in production) or `none` (accounts get their codes by SMS only).
"""

from __future__ import annotations

import datetime as dt
import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage as MimeMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any, Protocol

from services.notifications import inbox_file
from services.notifications.email_content import Email


class EmailGatewayError(Exception):
    """The message did not go; the dispatcher tries again later."""


class EmailGateway(Protocol):
    def send(self, to: str, email: Email) -> None: ...


def _mime(sender: str, to: str, email: Email) -> MimeMessage:
    message = MimeMessage()
    message["From"], message["To"], message["Subject"] = sender, to, email.subject
    message["Date"] = format_datetime(dt.datetime.now(dt.UTC))
    message["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1].strip(">"))
    message.set_content(email.body)
    return message


class SmtpGateway:
    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        *,
        username: str = "",
        password: str = "",
        starttls: bool = True,
        timeout: float = 10.0,
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password = username, password
        self.starttls, self.timeout = starttls, timeout

    def send(self, to: str, email: Email) -> None:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password)
                smtp.send_message(_mime(self.sender, to, email))
        except (OSError, smtplib.SMTPException) as exc:
            # The text of an SMTP error can quote the recipient: keep only its kind.
            raise EmailGatewayError(f"SMTP delivery failed: {type(exc).__name__}") from exc


class ConsoleMailGateway:
    """Development: every message appended to one file (mode 0600), as plain text a
    developer can read (no MIME transfer encoding)."""

    def __init__(self, inbox: Path, sender: str) -> None:
        self.inbox, self.sender = inbox, sender

    def send(self, to: str, email: Email) -> None:
        stamp = format_datetime(dt.datetime.now(dt.UTC))
        inbox_file.append(
            self.inbox,
            f"From: {self.sender}\nTo: {to}\nDate: {stamp}\nSubject: {email.subject}\n\n"
            f"{email.body}\n",
        )


def make_email_gateway(settings: Mapping[str, Any]) -> EmailGateway | None:
    """None when e-mail is off: reset codes then go by SMS only."""
    kind = settings["DCT_EMAIL_GATEWAY"]
    sender = settings["DCT_EMAIL_FROM"]
    if kind == "smtp":
        return SmtpGateway(
            settings["DCT_SMTP_HOST"],
            settings["DCT_SMTP_PORT"],
            sender,
            username=settings["DCT_SMTP_USERNAME"],
            password=settings["DCT_SMTP_PASSWORD"],
            starttls=settings["DCT_SMTP_STARTTLS"],
        )
    if kind == "console" and settings["DCT_CONSOLE_MAIL_INBOX"]:
        return ConsoleMailGateway(Path(settings["DCT_CONSOLE_MAIL_INBOX"]), sender)
    return None
