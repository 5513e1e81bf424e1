"""Devices: enrollment codes, broker logins, last state.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the devices table."""
    op.create_table(
        "devices",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("public_id", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("location", sa.String(200), nullable=False),
        sa.Column("rooms_json", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=True, unique=True),
        sa.Column("code_expires", TS, nullable=True),
        sa.Column("code_spent", sa.Boolean, nullable=False),
        sa.Column("enrolled_at", TS, nullable=True),
        sa.Column("broker_username", sa.String(150), nullable=True),
        sa.Column("revoked", sa.Boolean, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("online", sa.Boolean, nullable=False),
        sa.Column("last_seen", TS, nullable=True),
        sa.Column("version", sa.String(64), nullable=True),
        sa.Column("telemetry_json", sa.Text, nullable=False),
    )


def downgrade() -> None:
    """Drop the devices table."""
    op.drop_table("devices")
