"""Failed-password counting: a lock per account and client address, an alert per account.

Locking the account itself would let anyone lock out anyone (the admin included) by
typing wrong passwords at their email. So the lock is kept per pair of account and
client address (a keyed hash of it: addresses are personal data): the attacker's
address is locked, the holder's is not. Failures from every address add up on the
account, and each `alert_ceiling` of them raises an audit alert instead of a lock, for
someone to look at. Log-in applies the lock silently (the answer is that of a wrong
password), so it tells nobody whether an account exists or is locked.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass

from sqlalchemy import delete, or_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from services import crypto, passwords
from services.actor import Actor
from services.audit import chain as audit
from services.db import affected_rows, utcnow
from services.models import LoginLockout, User

UNKNOWN_ADDRESS = "unknown"


@dataclass(frozen=True)
class LockoutPolicy:
    max_failures: int = 5  # within `lockout` of each other
    lockout: dt.timedelta = dt.timedelta(minutes=15)
    alert_ceiling: int = 50


def client_network(address: str | None) -> str:
    """The unit a client is counted by: an IPv4 address, or an IPv6 /64, since one
    subscriber is routinely given a whole /64 and could otherwise rotate through it."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return address or UNKNOWN_ADDRESS
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)


def client_key(address: str | None) -> str:
    return crypto.blind_index(client_network(address), "client-address")


def locked_until(
    session: Session, user: User, address: str | None, now: dt.datetime
) -> dt.datetime | None:
    """When this account may try again from this address, if it is locked there now."""
    row = session.get(LoginLockout, (user.id, client_key(address)))
    if row is not None and row.locked_until is not None and row.locked_until > now:
        return row.locked_until
    return None


def password_matches(
    session: Session,
    actor: Actor,
    policy: LockoutPolicy,
    user: User,
    password: str,
    address: str | None,
    *,
    failed_action: str,
) -> bool:
    """The one check of a password against an account, wherever one is asked for: a
    miss counts towards the lock-out of the account from `address`, a match clears it."""
    if passwords.verify_password(user.password_hash, password):
        clear_address(session, user, address)
        return True
    count_failure(session, actor, policy, user, address, action=failed_action)
    return False


def count_failure(
    session: Session,
    actor: Actor,
    policy: LockoutPolicy,
    user: User,
    address: str | None,
    *,
    action: str,
) -> None:
    """One more wrong password from `address`: audited; locks the pair at the limit;
    alerts at every `alert_ceiling` failures of the account from all addresses."""
    now = utcnow()
    key = client_key(address)
    row = _locked_row(session, user, key, now)
    if row.updated_at < now - policy.lockout:
        row.failures = 0  # wrong passwords long apart are typos, not a guesser
    row.failures += 1
    row.updated_at = now
    # Counted in SQL: concurrent failures must all add up towards the alert.
    user_failures = session.execute(
        update(User)
        .where(User.id == user.id)
        .values(failed_logins=User.failed_logins + 1)
        .returning(User.failed_logins)
    ).scalar_one()
    set_committed_value(user, "failed_logins", user_failures)
    subject = audit.Subject(user_id=user.id)
    acting = actor.as_account(user.id, user.role)
    audit.record_change(
        session,
        acting,
        action,
        user,
        subject=subject,
        after={"failed_logins": user.failed_logins, "from_address": key[:16]},
    )
    if row.failures >= policy.max_failures:
        row.locked_until = now + policy.lockout
        row.failures = 0
        audit.record_change(
            session,
            acting,
            "auth.lockout",
            user,
            subject=subject,
            after={"locked_until": row.locked_until.isoformat(), "from_address": key[:16]},
        )
    if user.failed_logins % policy.alert_ceiling == 0:
        audit.record_change(
            session,
            acting,
            "security.alert.password_guessing",
            user,
            subject=subject,
            after={"failed_logins": user.failed_logins},
        )


def _locked_row(session: Session, user: User, key: str, now: dt.datetime) -> LoginLockout:
    """The pair's row, created if new and locked for this transaction, so two wrong
    passwords at once both count and neither fails on the primary key."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(
        insert(LoginLockout)
        .values(user_id=user.id, client_key=key, failures=0, updated_at=now)
        .on_conflict_do_nothing()
    )
    # Inserted above when absent, in this transaction: the row is there.
    return session.get_one(
        LoginLockout, (user.id, key), with_for_update=True, populate_existing=True
    )


def clear_address(session: Session, user: User, address: str | None) -> None:
    """A correct password clears its own address's count. The account-wide count stays:
    a guesser elsewhere must not be forgiven because the holder logged in."""
    session.execute(
        delete(LoginLockout).where(
            LoginLockout.user_id == user.id, LoginLockout.client_key == client_key(address)
        )
    )


def clear_all(session: Session, user: User) -> None:
    """Every lock and count of the account: an unlock, or a password set anew."""
    session.execute(delete(LoginLockout).where(LoginLockout.user_id == user.id))
    user.failed_logins = 0


def purge_stale(session: Session, now: dt.datetime, older_than: dt.timedelta) -> int:
    """Counts untouched for long and no longer locking anything can go."""
    return affected_rows(
        session.execute(
            delete(LoginLockout).where(
                LoginLockout.updated_at < now - older_than,
                or_(LoginLockout.locked_until.is_(None), LoginLockout.locked_until < now),
            )
        )
    )
