"""Calls: sessions, participants, chat, documents, invites.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _session_fk() -> sa.Column:
    return sa.Column(
        "session_id",
        sa.Integer,
        sa.ForeignKey("call_sessions.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )


def upgrade() -> None:
    """Create the call tables."""
    op.create_table(
        "call_sessions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("public_id", sa.String(24), nullable=False, unique=True),
        sa.Column(
            "room_id",
            sa.Integer,
            sa.ForeignKey("rooms.id", ondelete="SET NULL"),
            nullable=True,
            index=True,
        ),
        sa.Column(
            "ticket_id",
            sa.Integer,
            sa.ForeignKey("tickets.id", ondelete="SET NULL"),
            nullable=True,
            index=True,
        ),
        sa.Column("private", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("ended_at", TS, nullable=True),
    )
    op.create_table(
        "participants",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("public_id", sa.String(24), nullable=False, unique=True),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        _session_fk(),
        sa.Column("role", sa.String(10), nullable=False),
        sa.Column("display_name", sa.String(80), nullable=False),
        sa.Column(
            "user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True
        ),
        sa.Column(
            "ticket_id", sa.Integer, sa.ForeignKey("tickets.id", ondelete="SET NULL"), nullable=True
        ),
        sa.Column("connected", sa.Boolean, nullable=False),
        sa.Column("channel", sa.String(24), nullable=True),
        sa.Column("last_seen", TS, nullable=True),
        sa.Column("left_at", TS, nullable=True),
        sa.Column("admitted", sa.Boolean, nullable=False),
    )
    op.create_table(
        "chat_messages",
        sa.Column("id", sa.Integer, primary_key=True),
        _session_fk(),
        sa.Column("author", sa.String(80), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
    )
    op.create_table(
        "documents",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("public_id", sa.String(24), nullable=False, unique=True),
        _session_fk(),
        sa.Column("filename", sa.String(120), nullable=False),
        sa.Column("mime", sa.String(40), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("uploaded_by", sa.String(80), nullable=False),
        sa.Column("at", TS, nullable=False),
    )
    op.create_table(
        "invites",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        _session_fk(),
        sa.Column("label", sa.String(80), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False),
        sa.Column(
            "created_by", sa.Integer, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True
        ),
    )


def downgrade() -> None:
    """Drop the call tables."""
    for table in ("invites", "documents", "chat_messages", "participants", "call_sessions"):
        op.drop_table(table)
