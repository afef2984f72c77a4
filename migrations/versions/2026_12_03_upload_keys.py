"""uploads encrypted with per-object data keys (issue 12, finding 2)

Key ids (`upload_wrapping_keys`, the first one made here), each stored object's wrapped
data key (`upload_keys`), and a transfer in progress's (on `tus_transfers`). Transfers
begun before this revision staged their bytes in clear and cannot continue sealed:
they are expired, so clients start again and the expiry job drops their bytes. Files
stored before it have no data key and are read as they were (in clear).

A downgrade drops the keys: files sealed meanwhile can no longer be read.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 08:45:00
"""

from __future__ import annotations

import datetime as dt
import secrets

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    wrapping_keys = op.create_table(
        "upload_wrapping_keys",
        sa.Column("generation", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("generation", name=op.f("pk_upload_wrapping_keys")),
        sa.UniqueConstraint("key_id", name=op.f("uq_upload_wrapping_keys_key_id")),
    )
    now = dt.datetime.now(dt.UTC)
    if op.get_bind().dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # as the models' UtcDateTime stores it there
    op.bulk_insert(
        wrapping_keys, [{"generation": 1, "key_id": secrets.token_hex(8), "created_at": now}]
    )
    op.create_table(
        "upload_keys",
        sa.Column("storage_key", sa.String(length=128), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["upload_wrapping_keys.key_id"],
            name=op.f("fk_upload_keys_key_id_upload_wrapping_keys"),
        ),
        sa.PrimaryKeyConstraint("storage_key", name=op.f("pk_upload_keys")),
    )
    with op.batch_alter_table("upload_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_upload_keys_key_id"), ["key_id"], unique=False)

    with op.batch_alter_table("tus_transfers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("wrapped_key", sa.LargeBinary(), nullable=True))
        batch_op.create_index(batch_op.f("ix_tus_transfers_key_id"), ["key_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_tus_transfers_key_id_upload_wrapping_keys"),
            "upload_wrapping_keys",
            ["key_id"],
            ["key_id"],
        )

    transfers = sa.table(
        "tus_transfers",
        sa.column("upload_id", sa.Uuid()),
        sa.column("expires_at", sa.DateTime(timezone=True)),
    )
    op.execute(
        transfers.update()
        .where(transfers.c.upload_id.is_(None), transfers.c.expires_at > now)
        .values(expires_at=now)
    )


def downgrade() -> None:
    with op.batch_alter_table("tus_transfers", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_tus_transfers_key_id_upload_wrapping_keys"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_tus_transfers_key_id"))
        batch_op.drop_column("wrapped_key")
        batch_op.drop_column("key_id")

    with op.batch_alter_table("upload_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_upload_keys_key_id"))

    op.drop_table("upload_keys")
    op.drop_table("upload_wrapping_keys")
