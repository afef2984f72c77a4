"""sms reminders: the outbox, preferences, study settings, webhook events

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 21:31:40.502426
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notification_preferences",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("sms_enabled", sa.Boolean(), nullable=False),
        sa.Column("locale", sa.String(length=8), nullable=True),
        sa.Column("send_from", sa.String(length=5), nullable=False),
        sa.Column("send_until", sa.String(length=5), nullable=False),
        sa.Column("opted_out_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("phone_problem", sa.String(length=300), nullable=True),
        sa.Column("phone_problem_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_notification_preferences_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_notification_preferences")),
    )
    op.create_table(
        "study_sms_settings",
        sa.Column("study_id", sa.Uuid(), nullable=False),
        sa.Column("sender_name", sa.String(length=11), nullable=False),
        sa.Column("help_contact", sa.String(length=64), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_study_sms_settings_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("study_id", name=op.f("pk_study_sms_settings")),
    )
    op.create_table(
        "sms_outbox",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=160), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("participant_id", sa.Uuid(), nullable=True),
        sa.Column("study_id", sa.Uuid(), nullable=True),
        sa.Column("template", sa.String(length=48), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("relevance", sa.JSON(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("status_reason", sa.String(length=300), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("segments", sa.Integer(), nullable=True),
        sa.Column("twilio_sid", sa.String(length=64), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("error_message", sa.String(length=300), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'sent', 'delivered', 'undelivered', 'failed', "
            "'cancelled', 'skipped')",
            name=op.f("ck_sms_outbox_status"),
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_sms_outbox_participant_id_participants"),
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_sms_outbox_study_id_studies")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_sms_outbox_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_outbox")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_sms_outbox_dedupe_key")),
        sa.UniqueConstraint("twilio_sid", name=op.f("uq_sms_outbox_twilio_sid")),
    )
    with op.batch_alter_table("sms_outbox", schema=None) as batch_op:
        batch_op.create_index("ix_sms_outbox_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(
            "ix_sms_outbox_participant", ["participant_id", "due_at"], unique=False
        )
        batch_op.create_index("ix_sms_outbox_user_sent", ["user_id", "sent_at"], unique=False)

    op.create_table(
        "sms_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("twilio_sid", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("keyword", sa.String(length=16), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["sms_outbox.id"], name=op.f("fk_sms_events_message_id_sms_outbox")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_events")),
    )
    with op.batch_alter_table("sms_events", schema=None) as batch_op:
        batch_op.create_index("ix_sms_events_message", ["message_id", "received_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sms_events", schema=None) as batch_op:
        batch_op.drop_index("ix_sms_events_message")

    op.drop_table("sms_events")
    with op.batch_alter_table("sms_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_sms_outbox_user_sent")
        batch_op.drop_index("ix_sms_outbox_participant")
        batch_op.drop_index("ix_sms_outbox_due")

    op.drop_table("sms_outbox")
    op.drop_table("study_sms_settings")
    op.drop_table("notification_preferences")
