"""Queue positions: an index that answers "how many wait ahead of me" on its own.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Index tickets by queue (status, colleague, department) and arrival."""
    op.create_index(
        "ix_tickets_queue",
        "tickets",
        ["status", "assigned_user_id", "department_id", "arrived_at"],
    )


def downgrade() -> None:
    """Drop the queue index."""
    op.drop_index("ix_tickets_queue", table_name="tickets")
