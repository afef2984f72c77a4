"""free text and the signed PDF encrypted at rest (issue 12, findings 1 and 3)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 08:45:00
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401 - used once the upgrade is written
from alembic import op  # noqa: F401

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
