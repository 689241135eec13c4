"""Incidents: a deployment's timeline over a range, recorded with a title, a severity and appended notes.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("title", sa.String(512), nullable=False),
        sa.Column("deployment", sa.String(128), nullable=False),
        sa.Column("window_start", TS, nullable=False),
        sa.Column("window_end", TS, nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("timeline", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
    )
    op.create_index("ix_incidents_deployment", "incidents", ["deployment", "window_start"])
    op.create_table(
        "incident_notes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("incident", sa.Integer, sa.ForeignKey("incidents.id"), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("by", sa.String(128), nullable=False),
    )
    op.create_index("ix_incident_notes_incident", "incident_notes", ["incident"])


def downgrade() -> None:
    op.drop_index("ix_incident_notes_incident", "incident_notes")
    op.drop_table("incident_notes")
    op.drop_index("ix_incidents_deployment", "incidents")
    op.drop_table("incidents")
