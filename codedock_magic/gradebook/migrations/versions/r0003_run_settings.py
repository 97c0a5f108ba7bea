"""The limits and image each attempt ran with, so that a regrade runs it as the service did."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the attempts' run settings (older rows keep them empty: a regrade then uses the
    service's base defaults)."""
    with op.batch_alter_table("gradebook_attempts") as table:
        table.add_column(sa.Column("defaults", sa.Text, nullable=True))
        table.add_column(sa.Column("image", sa.String(255), nullable=True))


def downgrade() -> None:
    """Drop the attempts' run settings."""
    with op.batch_alter_table("gradebook_attempts") as table:
        table.drop_column("image")
        table.drop_column("defaults")
