"""Reception: categories, staff queues, tickets, messages, rate events.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _fk(column: str, table: str, ondelete: str, nullable: bool = True) -> sa.Column:
    return sa.Column(
        column,
        sa.Integer,
        sa.ForeignKey(f"{table}.id", ondelete=ondelete),
        nullable=nullable,
    )


def upgrade() -> None:
    """Create the reception tables."""
    op.create_table(
        "user_departments",
        sa.Column(
            "user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column(
            "department_id",
            sa.Integer,
            sa.ForeignKey("departments.id", ondelete="CASCADE"),
            primary_key=True,
        ),
    )
    op.create_table(
        "categories",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("slug", sa.String(64), nullable=False, unique=True),
        sa.Column("name_de", sa.String(120), nullable=False),
        sa.Column("name_en", sa.String(120), nullable=False),
        _fk("department_id", "departments", "CASCADE", nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
    )
    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("public_id", sa.String(24), nullable=False, unique=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("language", sa.String(5), nullable=False),
        sa.Column("name", sa.String(80), nullable=True),
        sa.Column("description", sa.Text, nullable=True),
        _fk("category_id", "categories", "SET NULL"),
        sa.Column("category_slug", sa.String(64), nullable=False),
        sa.Column("origin_department", sa.String(64), nullable=False),
        _fk("department_id", "departments", "SET NULL"),
        sa.Column(
            "assigned_user_id",
            sa.Integer,
            sa.ForeignKey("users.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("forward_note", sa.Text, nullable=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("arrived_at", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("admitted_at", TS, nullable=True),
        sa.Column("served_at", TS, nullable=True),
        sa.Column("ended_at", TS, nullable=True),
        sa.Column(
            "served_by_id",
            sa.Integer,
            sa.ForeignKey("users.id", ondelete="SET NULL"),
            nullable=True,
        ),
        _fk("room_id", "rooms", "SET NULL"),
        sa.Column("outcome", sa.String(20), nullable=True),
        sa.Column("erased", sa.Boolean, nullable=False),
    )
    op.create_index("ix_tickets_status_arrived", "tickets", ["status", "arrived_at"])
    op.create_table(
        "ticket_messages",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "ticket_id",
            sa.Integer,
            sa.ForeignKey("tickets.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("at", TS, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
    )
    op.create_table(
        "rate_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("at", TS, nullable=False),
    )
    op.create_index("ix_rate_events_kind_key_at", "rate_events", ["kind", "key", "at"])


def downgrade() -> None:
    """Drop the reception tables."""
    for table in ("rate_events", "ticket_messages", "tickets", "categories", "user_departments"):
        op.drop_table(table)
