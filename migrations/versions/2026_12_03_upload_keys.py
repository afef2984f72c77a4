"""uploads encrypted with per-object data keys (issue 12, finding 2)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 08:45:00
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401 - used once the upgrade is written
from alembic import op  # noqa: F401

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
