"""The limits and image each attempt ran with, so that a regrade runs it as the service did;
and whether a regrade could judge each attempt."""

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
    with op.batch_alter_table("gradebook_regrade_results") as table:
        table.add_column(sa.Column("judged", sa.Boolean, nullable=False, server_default="1"))


def downgrade() -> None:
    """Drop the attempts' run settings and the regrade results' judged."""
    with op.batch_alter_table("gradebook_regrade_results") as table:
        table.drop_column("judged")
    with op.batch_alter_table("gradebook_attempts") as table:
        table.drop_column("image")
        table.drop_column("defaults")
