"""Where a password came from, and what that allows.

A password is set by activation (with a code that staff were shown), by a reset the
holder asked for, by a reset staff triggered, or by the holder changing it. The two
staff-influenced origins are the ones a staff member could have used to take the
account over (21 CFR 11.300(c): replacements of lost credentials need "suitable,
rigorous controls"), so a signature soon after them is held or flagged
(`signing_check`; docs/part11-credentials.md gives the argument).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeGuard, cast

from sqlalchemy.orm import Session

from services import passwords
from services.models import ActivationCode, PasswordResetCode, User
from services.people import lockout


class PasswordOrigin(StrEnum):
    ACTIVATION = "activation"
    SELF_RESET = "self_reset"
    STAFF_RESET = "staff_reset"
    CHANGE = "change"


STAFF_INFLUENCED = frozenset({PasswordOrigin.ACTIVATION, PasswordOrigin.STAFF_RESET})


def _within(
    moment: dt.datetime | None, window: dt.timedelta, now: dt.datetime
) -> TypeGuard[dt.datetime]:
    return moment is not None and now - moment < window


def set_password(
    session: Session,
    user: User,
    password: str,
    origin: PasswordOrigin,
    *,
    hold: dt.timedelta,
    now: dt.datetime,
) -> None:
    """Set a new password and its provenance; every lock-out of the account ends.

    Origins carry over where a taker could otherwise shed them:
    - a change, or a reset the holder asked for, made while a staff-influenced
      password is within its hold keeps that origin and time (a reset after an
      activation would otherwise strip the activation's flag, a change the hold);
      only a reset the holder asks for lifts a staff-triggered reset's hold;
    - a reset the holder asked for while their phone or email is one staff set and
      they have not confirmed counts as staff-triggered: the code went there.
    """
    passwords.check_strength(password)
    previous = PasswordOrigin(user.password_set_via) if user.password_set_via else None
    within_hold = previous in STAFF_INFLUENCED and _within(user.password_set_at, hold, now)
    set_at = now
    if origin == PasswordOrigin.SELF_RESET and user.contact_changed_by_staff_at is not None:
        origin = PasswordOrigin.STAFF_RESET
    elif within_hold and (
        origin == PasswordOrigin.CHANGE
        or (origin == PasswordOrigin.SELF_RESET and previous == PasswordOrigin.ACTIVATION)
    ):
        # within_hold: the previous origin is a staff-influenced one, set at a known time.
        origin, set_at = cast(PasswordOrigin, previous), cast(dt.datetime, user.password_set_at)
    user.password_hash = passwords.hash_password(password)
    user.password_set_via, user.password_set_at = origin.value, set_at
    lockout.clear_all(session, user)


def holder_confirmed_contact(user: User) -> None:
    """The holder set their own phone or email: reset codes sent there are theirs."""
    user.contact_changed_by_staff_at = None


@dataclass(frozen=True)
class SigningCheck:
    """`refused`: why the signer may not sign yet; `note`: what the manifestation must
    say about the signer's credential. At most one is set."""

    refused: str | None = None
    note: str | None = None


def signing_check(user: User, *, hold: dt.timedelta, now: dt.datetime) -> SigningCheck:
    """A password set by a staff-triggered reset cannot sign until the hold has passed;
    one set with a staff-issued activation code signs, flagged on the manifestation.

    Activation must stay usable at once: a new participant activates and signs in
    the same sitting, after the identity check of the consent discussion
    (11.100(b)). A reset replaces a credential its genuine owner already had, so
    nothing is lost by waiting, and the holder can lift the hold at once with a
    reset they request themselves."""
    if not _within(user.password_set_at, hold, now):
        return SigningCheck()
    set_at = user.password_set_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%MZ")
    if user.password_set_via == PasswordOrigin.STAFF_RESET:
        until = (user.password_set_at + hold).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%MZ")
        return SigningCheck(
            refused=(
                f"this password was reset at the study team's request ({set_at}); for the "
                f"account holder's protection it cannot sign before {until} (21 CFR "
                "11.300). The holder can lift this by resetting the password themselves: "
                "POST /api/v1/auth/password-reset"
            )
        )
    if user.password_set_via == PasswordOrigin.ACTIVATION:
        return SigningCheck(note=f"password set with a staff-issued activation code at {set_at}")
    return SigningCheck()


def code_problem(
    code: ActivationCode | PasswordResetCode, what: str, now: dt.datetime
) -> str | None:
    """Why a message carrying a one-time code is moot (the code is used, replaced or
    expired), if it is; `what` names the code ("reset", "activation")."""
    if code.used_at is not None:
        return f"{what} code already used"
    if code.revoked_at is not None:
        return f"{what} code replaced by a newer one"
    if code.expires_at <= now:
        return f"{what} code expired"
    return None
