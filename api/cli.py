"""Operator commands: `flask --app wsgi db|users|audit|uploads|demo|scheduler|serve`."""

from __future__ import annotations

import atexit
import datetime as dt
import json
import signal
import sys
import threading
from pathlib import Path
from typing import TextIO

import click
from alembic import command
from alembic.config import Config
from apscheduler.schedulers.base import BaseScheduler
from flask import Flask, current_app
from flask.cli import AppGroup, run_command
from flask.helpers import get_debug_flag
from werkzeug.serving import is_running_from_reloader, run_simple

from api.db import database
from demo import consent as consent_demo
from demo import diagnostics as demo_diagnostics
from demo import epro as demo_epro
from demo import seed as demo
from demo import visits as demo_visits
from services.actor import Actor, Role
from services.audit import anchors as audit_anchors
from services.audit import integrity
from services.diagnostics import reads as upload_reads
from services.diagnostics import upload_keys
from services.errors import DomainError
from services.people import bootstrap

ROOT = Path(__file__).resolve().parent.parent

db_cli = AppGroup("db", help="Database schema (Alembic migrations).")
users_cli = AppGroup("users", help="Accounts.")
audit_cli = AppGroup("audit", help="The audit trail.")
uploads_cli = AppGroup("uploads", help="Uploaded files.")
demo_cli = AppGroup("demo", help="Demo data for `make run`.")
scheduler_cli = AppGroup("scheduler", help="Time-driven jobs.")


def alembic_config(url: str) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: head)."""
    url = current_app.config["DATABASE_URL"]
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), revision)
    click.echo(f"database at {revision}")


@users_cli.command("create")
@click.option("--role", type=click.Choice([Role.ADMIN.value]), required=True)
@click.option("--email", required=True)
@click.option("--full-name", required=True)
@click.option("--timezone", default="Europe/Brussels", show_default=True)
@click.option("--locale", default="en", show_default=True)
@click.password_option(help="Read from a prompt, or from standard input when piped.")
def users_create(
    role: str, email: str, full_name: str, timezone: str, locale: str, password: str
) -> None:
    """Create an admin with a password: how a deployment gets its first account.

    Every other account is created through the API and activated with a code.
    """
    with database().sessions() as session:
        try:
            user = bootstrap.create_admin(
                session,
                email=email,
                full_name=full_name,
                timezone=timezone,
                locale=locale,
                password=password,
            )
        except DomainError as error:  # a message for the operator, not a traceback
            fields = [f"{name}: {' '.join(msgs)}" for name, msgs in (error.errors or {}).items()]
            raise click.ClickException("; ".join([error.detail, *fields])) from None
        session.commit()
        click.echo(f"created {role} {user.id}")


@audit_cli.command("verify")
@click.option(
    "--anchors",
    type=click.File("r"),
    multiple=True,
    help="a seal digest from `audit export-seals`, kept outside; may be repeated",
)
def audit_verify(anchors: tuple[TextIO, ...]) -> None:
    """Walk every hash chain and the seals; exit 1 at the first broken link. With
    --anchors, also exit 1 when a seal exported earlier is missing or changed (which
    is also written to the audit trail as a security alert)."""
    try:
        anchored = [line for file in anchors for line in audit_anchors.read_anchor_lines(file)]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--anchors") from None
    with database().sessions() as session:
        checked, broken = integrity.verify(session)
        mismatches = audit_anchors.check(session, anchored)
        if mismatches:
            actor = Actor.system("audit-verify-anchors")
            audit_anchors.record_mismatches(session, actor, mismatches)
            session.commit()
    if broken:
        click.echo(f"BROKEN after {checked} good events: {broken.where}: {broken.problem}")
    for mismatch in mismatches:
        click.echo(f"ANCHOR MISMATCH {mismatch.describe()}")
    if broken or mismatches:
        sys.exit(1)
    click.echo(f"audit trail intact: {checked} events verified")
    if anchored:
        click.echo(f"{len(anchored)} anchored seals match")


@audit_cli.command("export-seals")
@click.option(
    "--date",
    "day",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="the UTC day whose seals to export (default: yesterday)",
)
def audit_export_seals(day: dt.datetime | None) -> None:
    """Print a day's seals as JSON Lines, to copy to write-once storage (an S3 bucket
    with Object Lock, WORM media) and check later with `audit verify --anchors`."""
    chosen = day.date() if day else dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    with database().sessions() as session:
        for line in audit_anchors.seal_digest(session, chosen):
            click.echo(json.dumps(line, sort_keys=True))


@audit_cli.command("seal")
def audit_seal() -> None:
    """Seal the current chain heads now (the scheduler does this periodically)."""
    with database().sessions() as session:
        sealed = integrity.seal(session)
        session.commit()
    click.echo(f"seal {sealed.seq} written" if sealed else "nothing new to seal")


@uploads_cli.command("verify")
def uploads_verify() -> None:
    """Open every stored file (each sealed chunk authenticated) and re-hash it; exit 1
    when any is altered, cut, missing or does not match its SHA-256.

    Each failure is also written to the audit trail as an integrity alert.
    """
    with database().sessions() as session:
        result = upload_reads.verify_all(
            session, current_app.extensions["storage"], Actor.system("uploads-verify")
        )
        session.commit()
    for finding in result.findings:
        click.echo(finding.describe())
    failed = len(result.findings)
    click.echo(f"{result.checked} files checked: {failed} failed, {result.checked - failed} intact")
    if result.in_clear:
        click.echo(f"{result.in_clear} of them stored in clear (before files were encrypted)")
    if failed:
        sys.exit(1)


@uploads_cli.command("rotate-keys")
def uploads_rotate_keys() -> None:
    """Re-wrap every stored file's data key (and every transfer's in progress) under a
    new key id, and retire the old ids. No file is read or rewritten.

    Run it when a key-encryption key's period ends or may have leaked; the rotation is
    written to the audit trail.
    """
    rotation = upload_keys.rotate(database().sessions, Actor.system("uploads-rotate-keys"))
    click.echo(
        f"key id {rotation.key_id} now wraps the data keys of {rotation.files} files and "
        f"{rotation.transfers} transfers in progress; retired: "
        f"{', '.join(rotation.retired) or 'none'}"
    )


@demo_cli.command("seed")
def demo_seed() -> None:
    """Create the demo study, sites and accounts (idempotent) and print the log-ins."""
    with database().sessions() as session:
        logins = demo.seed(session)
        demo_visits.seed_schedule_and_nurses(session)
        demo_epro.seed_questionnaires(session)
        consent_demo.seed(session)
        demo_visits.book_first_visit(session)
        demo_diagnostics.seed(session, current_app.extensions["storage"])
        session.commit()
    click.echo(f"\nDemo log-ins (password for all: {demo.DEMO_PASSWORD})")
    for role, identifier in logins:
        click.echo(f"  {role:<12} {identifier}")
    click.echo("\nAPI docs: http://127.0.0.1:5000/api/v1/docs")
    settings = current_app.config
    if settings["DCT_SMS_GATEWAY"] == "console" and settings["DCT_CONSOLE_SMS_INBOX"]:
        click.echo(f"SMS (activation and reset codes too): {settings['DCT_CONSOLE_SMS_INBOX']}")
    if settings["DCT_EMAIL_GATEWAY"] == "console" and settings["DCT_CONSOLE_MAIL_INBOX"]:
        click.echo(f"E-mails (reset codes): {settings['DCT_CONSOLE_MAIL_INBOX']}")
    click.echo("")


def build_scheduler(app: Flask, *, blocking: bool) -> BaseScheduler:
    from consent.jobs import CONSENT_JOBS
    from scheduling.runner import build_scheduler as build

    return build(
        app.extensions["db"].sessions, app.config, blocking=blocking, extra_jobs=CONSENT_JOBS
    )


@scheduler_cli.command("run")
def scheduler_run() -> None:
    """Run the scheduler in the foreground: production runs this as its own process
    (one or more: every job claims its work in the database)."""
    scheduler = build_scheduler(current_app, blocking=False)
    # SIGTERM (how process managers stop it) and Ctrl+C only set a flag: the main
    # thread then shuts down, waiting for running jobs and writing the last audit seal.
    # (Raising from a signal handler could land inside the scheduler's own locking.)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda _signum, _frame: stop.set())
    scheduler.start()
    click.echo("scheduler running; Ctrl+C to stop")
    stop.wait()
    scheduler.shutdown()
    click.echo("scheduler stopped")


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True)
def serve(host: str, port: int) -> None:
    """Development server with the scheduler in the same process (`make run`), unless
    DCT_SCHEDULER_ENABLED is false."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    scheduler = (
        build_scheduler(app, blocking=False) if app.config["DCT_SCHEDULER_ENABLED"] else None
    )
    if scheduler is not None:
        scheduler.start()
    click.echo(f"serving http://{host}:{port} (docs: /api/v1/docs); Ctrl+C stops")
    try:
        run_simple(host, port, app, threaded=True)
    finally:
        if scheduler is not None:
            scheduler.shutdown(wait=False)


def start_scheduler_under_flask_run(app: Flask) -> BaseScheduler | None:
    """`flask --app wsgi run` is Flask's own command, so the app starts the scheduler
    itself when that command is what loads it. Nothing else does this: gunicorn
    imports the app outside any click command, and the other commands are not `run`.
    With the reloader, only the child process that serves starts it, not the parent
    that watches files. It runs in daemon threads and ends with the server."""
    ctx = click.get_current_context(silent=True)
    if ctx is None or ctx.command is not run_command or not app.config["DCT_SCHEDULER_ENABLED"]:
        return None
    reload = ctx.params.get("reload")
    if (get_debug_flag() if reload is None else reload) and not is_running_from_reloader():
        return None
    scheduler = build_scheduler(app, blocking=False)
    scheduler.start()
    atexit.register(_stop, scheduler)  # its daemon threads would die without a last seal
    return scheduler


def _stop(scheduler: BaseScheduler) -> None:
    if scheduler.running:
        scheduler.shutdown(wait=False)


def init_app(app: Flask) -> None:
    for group in (db_cli, users_cli, audit_cli, uploads_cli, demo_cli, scheduler_cli, serve):
        app.cli.add_command(group)
