"""When an SMS may go: the sending hours, wall-clock times in the recipient's zone.

08:00-21:00 at most (the US quiet-hours rule, applied everywhere), narrowed by the
recipient's preferences; a reminder due outside them waits for the next opening,
DST-correct. The planner, the dispatcher and the preference checks all read them here.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from services.models import NotificationPreference

# The widest hours any SMS reminder may go, whatever the preferences (47 CFR 64.1200(c)(1)).
ALLOWED_FROM = "08:00"
ALLOWED_UNTIL = "21:00"


def _clock(value: str) -> dt.time:
    return dt.time.fromisoformat(value)


def _aware(at: dt.datetime) -> None:
    if at.tzinfo is None:
        raise ValueError("a naive datetime has no instant: give it a time zone")


def _local_instant(day: dt.date, at: dt.time, zone: ZoneInfo) -> dt.datetime:
    """A wall-clock time on a day as a UTC instant; a time skipped by a spring-forward
    reads as the instant an hour later (fold=0), as elsewhere in the project."""
    return dt.datetime.combine(day, at, tzinfo=zone).astimezone(dt.UTC)


def next_allowed(due: dt.datetime, zone: str, send_from: str, send_until: str) -> dt.datetime:
    """The first instant at or after `due` inside [send_from, send_until) local time:
    `due` itself inside the window, else the next send_from (today's or tomorrow's).
    Preferences outside 08:00-21:00 are held to it."""
    _aware(due)
    opens = _clock(max(send_from, ALLOWED_FROM))
    closes = _clock(min(send_until, ALLOWED_UNTIL))
    if opens >= closes:
        raise ValueError(f"empty sending window {send_from}-{send_until}")
    tz = ZoneInfo(zone)
    local = due.astimezone(tz)
    if opens <= local.time() < closes:
        return due
    day = local.date() if local.time() < opens else local.date() + dt.timedelta(days=1)
    return _local_instant(day, opens, tz)


def day_bounds(at: dt.datetime, zone: str) -> tuple[dt.datetime, dt.datetime]:
    """The recipient's local day around `at` as [start, end) in UTC: 23 or 25 hours
    on DST days, so a daily cap counts the day the recipient lives."""
    _aware(at)
    tz = ZoneInfo(zone)
    day = at.astimezone(tz).date()
    midnight = dt.time(0, 0)
    return _local_instant(day, midnight, tz), _local_instant(
        day + dt.timedelta(days=1), midnight, tz
    )


def quiet_window(preference: NotificationPreference | None) -> tuple[str, str]:
    """The recipient's sending hours, never wider than the allowed ones ("HH:MM"
    strings order as the times do)."""
    if preference is None:
        return ALLOWED_FROM, ALLOWED_UNTIL
    return (
        max(preference.send_from, ALLOWED_FROM),
        min(preference.send_until, ALLOWED_UNTIL),
    )
