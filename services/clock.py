"""Calendar dates where they are lived: an ethics approval "effective 1 March" starts
at midnight in the study's zone, not in the server's."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo


def today_in(zone: str) -> dt.date:
    return dt.datetime.now(ZoneInfo(zone)).date()
