"""remote diagnostics: uploads, resumable transfers, device readings

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 20:54:09.328715
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reading_thresholds",
        sa.Column("study_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=24), nullable=False),
        sa.Column("component", sa.String(length=16), nullable=False),
        sa.Column("unit", sa.String(length=16), nullable=False),
        sa.Column("low", sa.Double(), nullable=True),
        sa.Column("high", sa.Double(), nullable=True),
        sa.Column("updated_by", sa.Uuid(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "type IN ('blood_pressure', 'heart_rate', 'spo2', 'glucose', 'weight', "
            "'temperature', 'fev1')",
            name=op.f("ck_reading_thresholds_type"),
        ),
        sa.CheckConstraint(
            "low IS NULL OR high IS NULL OR low < high", name=op.f("ck_reading_thresholds_ordered")
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_reading_thresholds_study_id_studies")
        ),
        sa.ForeignKeyConstraint(
            ["updated_by"], ["users.id"], name=op.f("fk_reading_thresholds_updated_by_users")
        ),
        sa.PrimaryKeyConstraint(
            "study_id", "type", "component", name=op.f("pk_reading_thresholds")
        ),
    )
    op.create_table(
        "readings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=True),
        sa.Column("participant_id", sa.Uuid(), nullable=False),
        sa.Column("study_id", sa.Uuid(), nullable=False),
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("visit_id", sa.Uuid(), nullable=True),
        sa.Column("type", sa.String(length=24), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("value_2", sa.Double(), nullable=True),
        sa.Column("unit", sa.String(length=16), nullable=False),
        sa.Column("measured_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("device", sa.JSON(), nullable=False),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("flag_reasons", sa.JSON(), nullable=False),
        sa.Column("originator", sa.String(length=16), nullable=False),
        sa.Column("entered_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "originator IN ('patient', 'nurse')", name=op.f("ck_readings_originator")
        ),
        sa.CheckConstraint(
            "type IN ('blood_pressure', 'heart_rate', 'spo2', 'glucose', 'weight', "
            "'temperature', 'fev1')",
            name=op.f("ck_readings_type"),
        ),
        sa.ForeignKeyConstraint(
            ["entered_by"], ["users.id"], name=op.f("fk_readings_entered_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_readings_participant_id_participants"),
        ),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_readings_site_id_sites")),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_readings_study_id_studies")
        ),
        sa.ForeignKeyConstraint(
            ["visit_id"], ["visits.id"], name=op.f("fk_readings_visit_id_visits")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_readings")),
        sa.UniqueConstraint("client_id", name=op.f("uq_readings_client_id")),
    )
    with op.batch_alter_table("readings", schema=None) as batch_op:
        batch_op.create_index(
            "ix_readings_participant_measured", ["participant_id", "measured_at"], unique=False
        )
        batch_op.create_index("ix_readings_study_flagged", ["study_id", "flagged"], unique=False)

    op.create_table(
        "uploads",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=True),
        sa.Column("participant_id", sa.Uuid(), nullable=False),
        sa.Column("study_id", sa.Uuid(), nullable=False),
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("visit_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("filename", sa.Text(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("storage_backend", sa.String(length=8), nullable=False),
        sa.Column("storage_key", sa.String(length=128), nullable=False),
        sa.Column("captured_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("device", sa.JSON(), nullable=False),
        sa.Column("transfer", sa.String(length=12), nullable=False),
        sa.Column("originator", sa.String(length=16), nullable=False),
        sa.Column("uploaded_by", sa.Uuid(), nullable=False),
        sa.Column("supersedes_id", sa.Uuid(), nullable=True),
        sa.Column("supersede_reason", sa.String(length=1000), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('ecg', 'spirometry', 'blood_pressure', 'glucose', 'image', "
            "'wearable_export', 'other')",
            name=op.f("ck_uploads_kind"),
        ),
        sa.CheckConstraint(
            "originator IN ('patient', 'nurse')", name=op.f("ck_uploads_originator")
        ),
        sa.CheckConstraint("transfer IN ('multipart', 'tus')", name=op.f("ck_uploads_transfer")),
        sa.CheckConstraint("size_bytes >= 0", name=op.f("ck_uploads_size")),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_uploads_participant_id_participants"),
        ),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_uploads_site_id_sites")),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_uploads_study_id_studies")
        ),
        sa.ForeignKeyConstraint(
            ["supersedes_id"], ["uploads.id"], name=op.f("fk_uploads_supersedes_id_uploads")
        ),
        sa.ForeignKeyConstraint(
            ["uploaded_by"], ["users.id"], name=op.f("fk_uploads_uploaded_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["visit_id"], ["visits.id"], name=op.f("fk_uploads_visit_id_visits")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_uploads")),
        sa.UniqueConstraint("client_id", name=op.f("uq_uploads_client_id")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_uploads_storage_key")),
    )
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.create_index(
            "ix_uploads_participant_received", ["participant_id", "received_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_uploads_study_id"), ["study_id"], unique=False)

    op.create_table(
        "tus_transfers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("participant_id", sa.Uuid(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("length_bytes", sa.BigInteger(), nullable=False),
        sa.Column("offset_bytes", sa.BigInteger(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("filename", sa.Text(), nullable=True),
        sa.Column("upload_id", sa.Uuid(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "offset_bytes >= 0 AND offset_bytes <= length_bytes",
            name=op.f("ck_tus_transfers_offset"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_tus_transfers_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_tus_transfers_participant_id_participants"),
        ),
        sa.ForeignKeyConstraint(
            ["upload_id"], ["uploads.id"], name=op.f("fk_tus_transfers_upload_id_uploads")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tus_transfers")),
    )
    with op.batch_alter_table("tus_transfers", schema=None) as batch_op:
        batch_op.create_index("ix_tus_transfers_expires", ["expires_at"], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        # Uploads and readings are never updated or deleted: a replacement is a new row.
        for table in ("uploads", "readings"):
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
                f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("uploads", "readings"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    with op.batch_alter_table("tus_transfers", schema=None) as batch_op:
        batch_op.drop_index("ix_tus_transfers_expires")

    op.drop_table("tus_transfers")
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_uploads_study_id"))
        batch_op.drop_index("ix_uploads_participant_received")

    op.drop_table("uploads")
    with op.batch_alter_table("readings", schema=None) as batch_op:
        batch_op.drop_index("ix_readings_study_flagged")
        batch_op.drop_index("ix_readings_participant_measured")

    op.drop_table("readings")
    op.drop_table("reading_thresholds")
