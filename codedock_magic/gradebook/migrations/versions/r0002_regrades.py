"""Each case's points, teachers' attempts, the digests graded against, and regrades."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the attempts' new columns (old rows keep theirs empty) and the regrade tables."""
    with op.batch_alter_table("gradebook_attempts") as table:
        table.add_column(sa.Column("cases", sa.Text, nullable=True))
        table.add_column(sa.Column("teacher", sa.Boolean, nullable=False, server_default="0"))
        table.add_column(sa.Column("cases_sha256", sa.String(64), nullable=True))
        table.add_column(sa.Column("checkers_sha256", sa.String(64), nullable=True))
    op.create_table(
        "gradebook_regrades",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("assignment", sa.String(255), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("policy", sa.String(16), nullable=False),
        sa.Column("cases_sha256", sa.String(64), nullable=False),
        sa.Column("checkers_sha256", sa.String(64), nullable=False),
        sa.Column("compared_with", sa.Integer, nullable=True),
        sa.UniqueConstraint("assignment", "number", name="uq_gradebook_regrades_number"),
    )
    op.create_table(
        "gradebook_regrade_results",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "regrade_id",
            sa.Integer,
            sa.ForeignKey("gradebook_regrades.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("attempt_id", sa.Integer, nullable=False),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("max_score", sa.Float, nullable=False),
        sa.Column("verdicts", sa.Text, nullable=False),
        sa.Column("cases", sa.Text, nullable=False),
        sa.Column("old_score", sa.Float, nullable=True),
        sa.Column("old_max_score", sa.Float, nullable=True),
        sa.Column("flipped", sa.Text, nullable=False),
        sa.Column("why", sa.Text, nullable=False),
    )
    op.create_index(
        "ix_gradebook_regrade_results_regrade", "gradebook_regrade_results", ["regrade_id"]
    )


def downgrade() -> None:
    """Drop the regrade tables and the attempts' new columns."""
    op.drop_index("ix_gradebook_regrade_results_regrade", "gradebook_regrade_results")
    op.drop_table("gradebook_regrade_results")
    op.drop_table("gradebook_regrades")
    with op.batch_alter_table("gradebook_attempts") as table:
        for name in ("checkers_sha256", "cases_sha256", "teacher", "cases"):
            table.drop_column(name)
