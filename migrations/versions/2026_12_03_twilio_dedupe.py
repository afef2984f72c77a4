"""inbound SMS and status callbacks deduplicated by Twilio SID (issue 12, finding 7)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 08:45:00

`sms_events.dedupe_key`, unique: `inbound:<MessageSid>` or
`status:<MessageSid>:<MessageStatus>`. Events received before stay without one
(null, which a unique constraint does not compare): the log keeps every request as it
came, replays included, and is never rewritten.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sms_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dedupe_key", sa.String(length=100), nullable=True))
        batch_op.create_unique_constraint(op.f("uq_sms_events_dedupe_key"), ["dedupe_key"])


def downgrade() -> None:
    with op.batch_alter_table("sms_events", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("uq_sms_events_dedupe_key"), type_="unique")
        batch_op.drop_column("dedupe_key")
