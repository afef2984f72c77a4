"""accounts: password reset codes, log-in lockouts per client address, password provenance

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 07:53:01.438353
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_lockouts",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("client_key", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_login_lockouts_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "client_key", name=op.f("pk_login_lockouts")),
    )
    op.create_table(
        "password_reset_codes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("requested_by_id", sa.Uuid(), nullable=True),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["requested_by_id"],
            ["users.id"],
            name=op.f("fk_password_reset_codes_requested_by_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_password_reset_codes_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_password_reset_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_password_reset_codes_code_hash")),
    )
    with op.batch_alter_table("password_reset_codes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_password_reset_codes_user_id"), ["user_id"], unique=False
        )

    with op.batch_alter_table("consent_signatures", schema=None) as batch_op:
        batch_op.add_column(sa.Column("credential_note", sa.String(length=300), nullable=True))

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("password_set_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("password_set_via", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("contact_changed_by_staff_at", sa.DateTime(timezone=True), nullable=True)
        )
        # Lock-outs moved to login_lockouts (per account and client address).
        batch_op.drop_column("locked_until")

    op.create_table(
        "email_outbox",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("template", sa.String(length=48), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("password_reset_code_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("status_reason", sa.String(length=300), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'failed', 'skipped')",
            name=op.f("ck_email_outbox_status"),
        ),
        sa.ForeignKeyConstraint(
            ["password_reset_code_id"],
            ["password_reset_codes.id"],
            name=op.f("fk_email_outbox_password_reset_code_id_password_reset_codes"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_email_outbox_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_outbox")),
    )
    with op.batch_alter_table("email_outbox", schema=None) as batch_op:
        batch_op.create_index("ix_email_outbox_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_email_outbox_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("email_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_email_outbox_user_id"))
        batch_op.drop_index("ix_email_outbox_due")
    op.drop_table("email_outbox")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.drop_column("contact_changed_by_staff_at")
        batch_op.drop_column("password_set_via")
        batch_op.drop_column("password_set_at")

    with op.batch_alter_table("consent_signatures", schema=None) as batch_op:
        batch_op.drop_column("credential_note")

    with op.batch_alter_table("password_reset_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_password_reset_codes_user_id"))

    op.drop_table("password_reset_codes")
    op.drop_table("login_lockouts")
