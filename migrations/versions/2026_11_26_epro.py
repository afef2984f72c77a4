"""epro: questionnaires, instances and responses

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 20:17:13.505685
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "questionnaires",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("study_id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("version", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("title", sa.JSON(), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("schedule", sa.JSON(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_by", sa.Uuid(), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('draft', 'published', 'superseded')", name=op.f("ck_questionnaires_status")
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_questionnaires_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["published_by"], ["users.id"], name=op.f("fk_questionnaires_published_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_questionnaires_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_questionnaires")),
        sa.UniqueConstraint(
            "study_id", "code", "version", name=op.f("uq_questionnaires_study_id_code_version")
        ),
    )
    with op.batch_alter_table("questionnaires", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_questionnaires_study_id"), ["study_id"], unique=False)

    op.create_table(
        "epro_instances",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("participant_id", sa.Uuid(), nullable=False),
        sa.Column("study_id", sa.Uuid(), nullable=False),
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("questionnaire_id", sa.Uuid(), nullable=False),
        sa.Column("visit_id", sa.Uuid(), nullable=True),
        sa.Column("slot", sa.String(length=48), nullable=False),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("opens_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closes_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("timeliness", sa.String(length=8), nullable=True),
        sa.Column("cancel_reason", sa.String(length=300), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('scheduled', 'completed', 'declined', 'missed', 'cancelled')",
            name=op.f("ck_epro_instances_status"),
        ),
        sa.CheckConstraint(
            "timeliness IS NULL OR timeliness IN ('on_time', 'late')",
            name=op.f("ck_epro_instances_timeliness"),
        ),
        sa.CheckConstraint("closes_at > opens_at", name=op.f("ck_epro_instances_window")),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_epro_instances_participant_id_participants"),
        ),
        sa.ForeignKeyConstraint(
            ["questionnaire_id"],
            ["questionnaires.id"],
            name=op.f("fk_epro_instances_questionnaire_id_questionnaires"),
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_epro_instances_site_id_sites")
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_epro_instances_study_id_studies")
        ),
        sa.ForeignKeyConstraint(
            ["visit_id"], ["visits.id"], name=op.f("fk_epro_instances_visit_id_visits")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_epro_instances")),
        sa.UniqueConstraint(
            "participant_id",
            "questionnaire_id",
            "slot",
            name=op.f("uq_epro_instances_participant_id_questionnaire_id_slot"),
        ),
    )
    with op.batch_alter_table("epro_instances", schema=None) as batch_op:
        batch_op.create_index(
            "ix_epro_instances_participant_opens", ["participant_id", "opens_at"], unique=False
        )
        batch_op.create_index(
            "ix_epro_instances_status_closes", ["status", "closes_at"], unique=False
        )
        batch_op.create_index(
            "ix_epro_instances_study_participant", ["study_id", "participant_id"], unique=False
        )

    op.create_table(
        "epro_responses",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=True),
        sa.Column("instance_id", sa.Uuid(), nullable=False),
        sa.Column("participant_id", sa.Uuid(), nullable=False),
        sa.Column("questionnaire_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("corrects_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("device_utc_offset", sa.String(length=6), nullable=True),
        sa.Column("device_timezone", sa.String(length=64), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("clock_skew_seconds", sa.Integer(), nullable=True),
        sa.Column("clock_skew_flag", sa.Boolean(), nullable=False),
        sa.Column("timeliness", sa.String(length=8), nullable=False),
        sa.Column("originator", sa.String(length=16), nullable=False),
        sa.Column("entered_by", sa.Uuid(), nullable=False),
        sa.Column("visit_id", sa.Uuid(), nullable=True),
        sa.Column("reason", sa.String(length=1000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "originator IN ('patient', 'nurse', 'coordinator')",
            name=op.f("ck_epro_responses_originator"),
        ),
        sa.CheckConstraint(
            "status IN ('completed', 'declined')", name=op.f("ck_epro_responses_status")
        ),
        sa.CheckConstraint(
            "timeliness IN ('on_time', 'late')", name=op.f("ck_epro_responses_timeliness")
        ),
        sa.CheckConstraint(
            "(version = 1 AND corrects_id IS NULL) OR (version > 1 AND corrects_id IS NOT NULL)",
            name=op.f("ck_epro_responses_correction_chain"),
        ),
        sa.ForeignKeyConstraint(
            ["corrects_id"],
            ["epro_responses.id"],
            name=op.f("fk_epro_responses_corrects_id_epro_responses"),
        ),
        sa.ForeignKeyConstraint(
            ["entered_by"], ["users.id"], name=op.f("fk_epro_responses_entered_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["epro_instances.id"],
            name=op.f("fk_epro_responses_instance_id_epro_instances"),
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_epro_responses_participant_id_participants"),
        ),
        sa.ForeignKeyConstraint(
            ["questionnaire_id"],
            ["questionnaires.id"],
            name=op.f("fk_epro_responses_questionnaire_id_questionnaires"),
        ),
        sa.ForeignKeyConstraint(
            ["visit_id"], ["visits.id"], name=op.f("fk_epro_responses_visit_id_visits")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_epro_responses")),
        sa.UniqueConstraint("client_id", name=op.f("uq_epro_responses_client_id")),
        sa.UniqueConstraint(
            "instance_id", "version", name=op.f("uq_epro_responses_instance_id_version")
        ),
    )
    with op.batch_alter_table("epro_responses", schema=None) as batch_op:
        batch_op.create_index(
            "ix_epro_responses_participant", ["participant_id", "received_at"], unique=False
        )

    if op.get_bind().dialect.name == "postgresql":
        # Responses are never updated or deleted: a correction is a new row.
        op.execute(
            "CREATE TRIGGER epro_responses_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
            "ON epro_responses FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS epro_responses_append_only ON epro_responses")
    with op.batch_alter_table("epro_responses", schema=None) as batch_op:
        batch_op.drop_index("ix_epro_responses_participant")

    op.drop_table("epro_responses")
    with op.batch_alter_table("epro_instances", schema=None) as batch_op:
        batch_op.drop_index("ix_epro_instances_study_participant")
        batch_op.drop_index("ix_epro_instances_status_closes")
        batch_op.drop_index("ix_epro_instances_participant_opens")

    op.drop_table("epro_instances")
    with op.batch_alter_table("questionnaires", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_questionnaires_study_id"))

    op.drop_table("questionnaires")
