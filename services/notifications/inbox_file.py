"""The development gateways' stand-in for a phone or a mailbox: a file only its owner
can read, each message appended to it."""

from __future__ import annotations

import os
from pathlib import Path


def append(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(descriptor, "a", encoding="utf-8") as inbox:
        inbox.write(text)
