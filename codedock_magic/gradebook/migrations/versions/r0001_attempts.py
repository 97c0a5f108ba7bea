"""The attempts table."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the attempts table and its lookup index."""
    op.create_table(
        "gradebook_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("assignment", sa.String(255), nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("code", sa.Text, nullable=False),
        sa.Column("code_sha256", sa.String(64), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("max_score", sa.Float, nullable=False),
        sa.Column("verdicts", sa.Text, nullable=False),
        sa.Column("late", sa.Boolean, nullable=False),
    )
    op.create_index(
        "ix_gradebook_attempts_user_assignment_at",
        "gradebook_attempts",
        ["user", "assignment", "at"],
    )


def downgrade() -> None:
    """Drop the attempts table."""
    op.drop_index("ix_gradebook_attempts_user_assignment_at", "gradebook_attempts")
    op.drop_table("gradebook_attempts")
