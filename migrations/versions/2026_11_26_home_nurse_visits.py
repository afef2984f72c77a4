"""home nurse visits

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 19:04:13.417099
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "delegations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("nurse_id", sa.Uuid(), nullable=False),
        sa.Column("study_id", sa.Uuid(), nullable=False),
        sa.Column("delegated_by", sa.Uuid(), nullable=False),
        sa.Column("training_valid_until", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["delegated_by"], ["users.id"], name=op.f("fk_delegations_delegated_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["nurse_id"], ["users.id"], name=op.f("fk_delegations_nurse_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_delegations_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delegations")),
        sa.UniqueConstraint("nurse_id", "study_id", name=op.f("uq_delegations_nurse_id_study_id")),
    )
    with op.batch_alter_table("delegations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_delegations_nurse_id"), ["nurse_id"], unique=False)

    op.create_table(
        "nurse_profiles",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("weekly_hours", sa.JSON(), nullable=False),
        sa.Column("calendar_token_hash", sa.String(length=64), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_nurse_profiles_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_nurse_profiles")),
        sa.UniqueConstraint(
            "calendar_token_hash", name=op.f("uq_nurse_profiles_calendar_token_hash")
        ),
    )
    op.create_table(
        "nurse_time_off",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("nurse_id", sa.Uuid(), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("end_at > start_at", name=op.f("ck_nurse_time_off_ordered")),
        sa.ForeignKeyConstraint(
            ["nurse_id"], ["users.id"], name=op.f("fk_nurse_time_off_nurse_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nurse_time_off")),
    )
    with op.batch_alter_table("nurse_time_off", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_nurse_time_off_nurse_id"), ["nurse_id"], unique=False)

    op.create_table(
        "visit_definitions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("study_id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("window_before", sa.Integer(), nullable=False),
        sa.Column("window_after", sa.Integer(), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("location", sa.String(length=8), nullable=False),
        sa.Column("procedures", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "location IN ('home', 'site')", name=op.f("ck_visit_definitions_location")
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_visit_definitions_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_visit_definitions")),
        sa.UniqueConstraint("study_id", "code", name=op.f("uq_visit_definitions_study_id_code")),
    )
    with op.batch_alter_table("visit_definitions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_visit_definitions_study_id"), ["study_id"], unique=False
        )

    op.create_table(
        "visits",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("participant_id", sa.Uuid(), nullable=False),
        sa.Column("study_id", sa.Uuid(), nullable=False),
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("definition_id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("location", sa.String(length=8), nullable=False),
        sa.Column("procedures", sa.JSON(), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("target_date", sa.Date(), nullable=False),
        sa.Column("window_start", sa.Date(), nullable=False),
        sa.Column("window_end", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("nurse_id", sa.Uuid(), nullable=True),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("busy_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deviation_reason", sa.String(length=1000), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checked_in_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("check_in_location", sa.Text(), nullable=True),
        sa.Column("checked_out_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_procedures", sa.JSON(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("cancel_reason", sa.String(length=1000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('planned', 'scheduled', 'confirmed', 'in_progress', 'completed', "
            "'missed', 'cancelled')",
            name=op.f("ck_visits_status"),
        ),
        sa.ForeignKeyConstraint(
            ["definition_id"],
            ["visit_definitions.id"],
            name=op.f("fk_visits_definition_id_visit_definitions"),
        ),
        sa.ForeignKeyConstraint(["nurse_id"], ["users.id"], name=op.f("fk_visits_nurse_id_users")),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_visits_participant_id_participants"),
        ),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_visits_site_id_sites")),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_visits_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_visits")),
        sa.UniqueConstraint(
            "participant_id", "definition_id", name=op.f("uq_visits_participant_id_definition_id")
        ),
    )
    with op.batch_alter_table("visits", schema=None) as batch_op:
        batch_op.create_index("ix_visits_nurse_start", ["nurse_id", "start_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_visits_participant_id"), ["participant_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_visits_site_id"), ["site_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_visits_study_id"), ["study_id"], unique=False)
        batch_op.create_index("ix_visits_window_open", ["status", "window_end"], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        # One nurse is never booked twice: overlapping busy ranges (the visit plus the
        # travel buffer) of active visits are refused by the database itself.
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        op.execute(
            "ALTER TABLE visits ADD CONSTRAINT visits_nurse_no_overlap EXCLUDE USING gist "
            "(nurse_id WITH =, tstzrange(start_at, busy_until) WITH &&) "
            "WHERE (status IN ('scheduled', 'confirmed', 'in_progress'))"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE visits DROP CONSTRAINT visits_nurse_no_overlap")
    with op.batch_alter_table("visits", schema=None) as batch_op:
        batch_op.drop_index("ix_visits_window_open")
        batch_op.drop_index(batch_op.f("ix_visits_study_id"))
        batch_op.drop_index(batch_op.f("ix_visits_site_id"))
        batch_op.drop_index(batch_op.f("ix_visits_participant_id"))
        batch_op.drop_index("ix_visits_nurse_start")

    op.drop_table("visits")
    with op.batch_alter_table("visit_definitions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_visit_definitions_study_id"))

    op.drop_table("visit_definitions")
    with op.batch_alter_table("nurse_time_off", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_nurse_time_off_nurse_id"))

    op.drop_table("nurse_time_off")
    op.drop_table("nurse_profiles")
    with op.batch_alter_table("delegations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delegations_nurse_id"))

    op.drop_table("delegations")
