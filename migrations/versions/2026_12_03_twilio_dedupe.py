"""inbound SMS and status callbacks deduplicated by Twilio SID (issue 12, finding 7)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 08:45:00
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401 - used once the upgrade is written
from alembic import op  # noqa: F401

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
