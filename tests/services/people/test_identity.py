"""Identity rules below the HTTP layer: who may log in with what, lockout timing,
refresh families and activation codes."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from services import passwords
from services.actor import Actor, Role
from services.db import utcnow
from services.errors import Invalid, TooManyAttempts, Unauthenticated
from services.models import ActivationCode, AuthSession, LoginLockout
from services.people import identity, lockout
from services.people import participants as people
from services.people.activation import issue_activation_code
from tests.factories.people import (
    ADMIN,
    PASSWORD,
    make_participant,
    make_site,
    make_staff,
    make_study,
)

ANONYMOUS = Actor.system("test")
POLICY = identity.AuthPolicy()


def log_in(db: Session, policy: identity.AuthPolicy = POLICY, **credentials: str | None):
    credentials.setdefault("email", None)
    credentials.setdefault("phone", None)
    credentials.setdefault("password", PASSWORD)
    return identity.login(db, ANONYMOUS, policy, **credentials)


def test_staff_cannot_log_in_by_phone(db):
    staff, code = people.create_staff(
        db,
        ADMIN,
        people.NewStaff(
            email="with.phone@example.org",
            full_name="Staff With Phone",
            role=Role.ADMIN,
            locale="en",
            timezone="Europe/Brussels",
            phone="+32470555444",
        ),
    )
    identity.activate(db, ANONYMOUS, POLICY, code=code, password=PASSWORD)

    with pytest.raises(Unauthenticated):
        log_in(db, phone="+32470555444")
    assert log_in(db, email=staff.email).user.id == staff.id


def test_phone_login_accepts_any_international_spelling(db):
    patient = make_participant(db, make_site(db, make_study(db)), email=False)
    spaced = f"{patient.user.phone[:3]} {patient.user.phone[3:6]} {patient.user.phone[6:]}"

    assert log_in(db, phone=spaced).user.id == patient.user.id


def test_malformed_phone_is_invalid_not_unauthenticated(db):
    with pytest.raises(Invalid):
        log_in(db, phone="not a phone")


def test_lockout_lasts_the_configured_time_and_answers_like_a_wrong_password(db):
    admin = make_staff(db, Role.ADMIN)
    policy = identity.AuthPolicy(max_failed_logins=3, lockout=dt.timedelta(minutes=2))
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            log_in(db, policy, email=admin.email, password="wrong password", address="198.51.100.7")

    with pytest.raises(Unauthenticated) as locked:
        log_in(db, policy, email=admin.email, address="198.51.100.7")

    assert str(locked.value) == identity.BAD_CREDENTIALS
    (row,) = db.scalars(select(LoginLockout).where(LoginLockout.user_id == admin.id))
    assert dt.timedelta(minutes=1) < row.locked_until - utcnow() <= dt.timedelta(minutes=2)
    # The same account from another address is not locked.
    assert log_in(db, policy, email=admin.email, address="192.0.2.1").user.id == admin.id


def test_signing_reauthentication_says_plainly_that_the_address_is_locked(db):
    admin = make_staff(db, Role.ADMIN)
    policy = identity.AuthPolicy(max_failed_logins=2)
    actor = Actor(user_id=admin.id, role=Role.ADMIN)
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            identity.reauthenticate(db, actor, policy, "wrong", purpose="sign", address="x")

    with pytest.raises(TooManyAttempts) as locked:
        identity.reauthenticate(db, actor, policy, PASSWORD, purpose="sign", address="x")

    assert 0 < locked.value.retry_after_seconds <= 15 * 60


def test_refresh_token_used_twice_revokes_its_family(db):
    admin = make_staff(db, Role.ADMIN)
    grant = log_in(db, email=admin.email)
    successor = identity.refresh(db, ANONYMOUS, POLICY, grant.refresh_jti)

    with pytest.raises(Unauthenticated):
        identity.refresh(db, ANONYMOUS, POLICY, grant.refresh_jti)

    assert successor.session_id == grant.session_id
    assert not identity.session_is_active(db, grant.session_id)
    with pytest.raises(Unauthenticated):
        identity.refresh(db, ANONYMOUS, POLICY, successor.refresh_jti)


def test_expired_session_is_not_active(db):
    admin = make_staff(db, Role.ADMIN)
    grant = log_in(db, email=admin.email)
    assert identity.session_is_active(db, grant.session_id)

    db.get(AuthSession, grant.session_id).expires_at = utcnow() - dt.timedelta(seconds=1)

    assert not identity.session_is_active(db, grant.session_id)


def test_refresh_never_outlives_the_session(db):
    admin = make_staff(db, Role.ADMIN)
    grant = log_in(db, identity.AuthPolicy(refresh_ttl=dt.timedelta(days=2)), email=admin.email)

    later = identity.refresh(db, ANONYMOUS, identity.AuthPolicy(), grant.refresh_jti)

    assert later.refresh_expires_at <= db.get(AuthSession, grant.session_id).expires_at


def test_disabled_account_cannot_refresh_or_activate(db):
    admin = make_staff(db, Role.ADMIN)
    grant = log_in(db, email=admin.email)
    newcomer = make_staff(db, Role.ADMIN, activated=False)
    code = issue_activation_code(db, newcomer)
    admin.is_active = newcomer.is_active = False

    with pytest.raises(Unauthenticated):
        identity.refresh(db, ANONYMOUS, POLICY, grant.refresh_jti)
    with pytest.raises(Unauthenticated):
        identity.activate(db, ANONYMOUS, POLICY, code=code, password=PASSWORD)


def test_issuing_a_code_revokes_the_unused_one(db):
    admin = make_staff(db, Role.ADMIN, activated=False)
    first = db.scalars(select(ActivationCode).where(ActivationCode.user_id == admin.id)).one()

    issue_activation_code(db, admin)

    assert first.revoked_at is not None


def test_activation_codes_are_readable_and_normalised_before_hashing():
    code = passwords.new_activation_code()

    assert re.fullmatch(r"[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}", code)
    assert passwords.hash_code(code) == passwords.hash_code(code.replace("-", " ").lower())
    assert passwords.hash_code(code) != passwords.hash_code(passwords.new_activation_code())


def test_wrong_passwords_long_apart_do_not_add_up_to_a_lock(db):
    admin = make_staff(db, Role.ADMIN)
    policy = identity.AuthPolicy(max_failed_logins=3, lockout=dt.timedelta(minutes=15))
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            log_in(db, policy, email=admin.email, password="typo", address="192.0.2.9")
    row = db.scalars(select(LoginLockout).where(LoginLockout.user_id == admin.id)).one()
    row.updated_at = utcnow() - dt.timedelta(minutes=16)
    db.flush()

    with pytest.raises(Unauthenticated):
        log_in(db, policy, email=admin.email, password="typo", address="192.0.2.9")

    db.refresh(row)
    assert (row.failures, row.locked_until) == (1, None)
    assert log_in(db, policy, email=admin.email, address="192.0.2.9").user.id == admin.id


def test_stale_lock_out_counts_are_purged_but_live_locks_stay(db):
    stale, locked = make_staff(db, Role.ADMIN), make_staff(db, Role.ADMIN)
    now = utcnow()
    db.add_all(
        [
            LoginLockout(
                user_id=stale.id, client_key="a", failures=2, updated_at=now - dt.timedelta(days=2)
            ),
            LoginLockout(
                user_id=locked.id,
                client_key="b",
                failures=0,
                locked_until=now + dt.timedelta(minutes=5),
                updated_at=now - dt.timedelta(days=2),
            ),
        ]
    )
    db.flush()

    assert lockout.purge_stale(db, now, dt.timedelta(days=1)) == 1
    assert [row.user_id for row in db.scalars(select(LoginLockout))] == [locked.id]
