"""econsent

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 18:25:02.560359
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consent_documents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("study_id", sa.Uuid(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("body_markdown", sa.Text(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("signer_roles", sa.JSON(), nullable=False),
        sa.Column("optional_clauses", sa.JSON(), nullable=False),
        sa.Column("quiz", sa.JSON(), nullable=False),
        sa.Column("quiz_pass_mark", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("ethics_reference", sa.String(length=200), nullable=True),
        sa.Column("approved_on", sa.Date(), nullable=True),
        sa.Column("effective_from", sa.Date(), nullable=True),
        sa.Column("requires_reconsent", sa.Boolean(), nullable=False),
        sa.Column("approved_by", sa.Uuid(), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('draft', 'approved', 'superseded')",
            name=op.f("ck_consent_documents_status"),
        ),
        sa.ForeignKeyConstraint(
            ["approved_by"], ["users.id"], name=op.f("fk_consent_documents_approved_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_consent_documents_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_consent_documents_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_documents")),
        sa.UniqueConstraint(
            "study_id",
            "language",
            "version",
            name=op.f("uq_consent_documents_study_id_language_version"),
        ),
    )
    with op.batch_alter_table("consent_documents", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_consent_documents_study_id"), ["study_id"], unique=False
        )

    op.create_table(
        "consent_discussions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("participant_id", sa.Uuid(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("held_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("participant_can_read", sa.Boolean(), nullable=False),
        sa.Column("lar_name", sa.Text(), nullable=True),
        sa.Column("witness_name", sa.Text(), nullable=True),
        sa.Column("recorded_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "mode IN ('in_person', 'video', 'phone')", name=op.f("ck_consent_discussions_mode")
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_consent_discussions_participant_id_participants"),
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by"], ["users.id"], name=op.f("fk_consent_discussions_recorded_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_discussions")),
    )
    with op.batch_alter_table("consent_discussions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_consent_discussions_participant_id"), ["participant_id"], unique=False
        )

    op.create_table(
        "consents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("participant_id", sa.Uuid(), nullable=False),
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("clause_choices", sa.JSON(), nullable=False),
        sa.Column("withdrawn_clauses", sa.JSON(), nullable=False),
        sa.Column("contact_withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawal_reason", sa.String(length=1000), nullable=True),
        sa.Column("pdf", sa.LargeBinary(), nullable=True),
        sa.Column("pdf_sha256", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending_countersign', 'complete', 'withdrawn', 'superseded', "
            "'requires_reconsent')",
            name=op.f("ck_consents_status"),
        ),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["consent_documents.id"],
            name=op.f("fk_consents_document_id_consent_documents"),
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_consents_participant_id_participants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
        sa.UniqueConstraint(
            "participant_id", "document_id", name=op.f("uq_consents_participant_id_document_id")
        ),
    )
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consents_document_id"), ["document_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_consents_participant_id"), ["participant_id"], unique=False
        )

    op.create_table(
        "consent_signatures",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("consent_id", sa.Uuid(), nullable=False),
        sa.Column("participant_id", sa.Uuid(), nullable=False),
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("document_version", sa.Integer(), nullable=False),
        sa.Column("document_sha256", sa.String(length=64), nullable=False),
        sa.Column("signer_role", sa.String(length=40), nullable=False),
        sa.Column("signer_user_id", sa.Uuid(), nullable=False),
        sa.Column("printed_name", sa.Text(), nullable=False),
        sa.Column("meaning", sa.String(length=200), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("client_address", sa.Text(), nullable=True),
        sa.Column("user_agent", sa.String(length=500), nullable=True),
        sa.Column("clause_choices", sa.JSON(), nullable=True),
        sa.Column("signature_image", sa.Text(), nullable=True),
        sa.Column("binding", sa.String(length=64), nullable=False),
        sa.CheckConstraint(
            "signer_role IN ('participant', 'legally_authorised_representative', "
            "'impartial_witness', 'investigator')",
            name=op.f("ck_consent_signatures_signer_role"),
        ),
        sa.ForeignKeyConstraint(
            ["consent_id"], ["consents.id"], name=op.f("fk_consent_signatures_consent_id_consents")
        ),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["consent_documents.id"],
            name=op.f("fk_consent_signatures_document_id_consent_documents"),
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_consent_signatures_participant_id_participants"),
        ),
        sa.ForeignKeyConstraint(
            ["signer_user_id"],
            ["users.id"],
            name=op.f("fk_consent_signatures_signer_user_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_signatures")),
        sa.UniqueConstraint(
            "consent_id", "signer_role", name=op.f("uq_consent_signatures_consent_id_signer_role")
        ),
    )
    with op.batch_alter_table("consent_signatures", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_consent_signatures_consent_id"), ["consent_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_consent_signatures_participant_id"), ["participant_id"], unique=False
        )

    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("consent_state", sa.String(length=24), nullable=False, server_default="none")
        )
        batch_op.add_column(
            sa.Column("contact_allowed", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch_op.add_column(sa.Column("baseline_date", sa.Date(), nullable=True))
        batch_op.create_check_constraint(
            "consent_state",
            "consent_state IN ('none', 'pending', 'complete', 'requires_reconsent', 'withdrawn')",
        )
    if op.get_bind().dialect.name == "postgresql":
        # Signatures are never updated or deleted (21 CFR 11.70): the database refuses it.
        op.execute(
            "CREATE TRIGGER consent_signatures_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
            "ON consent_signatures FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS consent_signatures_append_only ON consent_signatures")
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.drop_constraint("consent_state", type_="check")
        batch_op.drop_column("baseline_date")
        batch_op.drop_column("contact_allowed")
        batch_op.drop_column("consent_state")

    with op.batch_alter_table("consent_signatures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_signatures_participant_id"))
        batch_op.drop_index(batch_op.f("ix_consent_signatures_consent_id"))

    op.drop_table("consent_signatures")
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consents_participant_id"))
        batch_op.drop_index(batch_op.f("ix_consents_document_id"))

    op.drop_table("consents")
    with op.batch_alter_table("consent_discussions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_discussions_participant_id"))

    op.drop_table("consent_discussions")
    with op.batch_alter_table("consent_documents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_documents_study_id"))

    op.drop_table("consent_documents")
