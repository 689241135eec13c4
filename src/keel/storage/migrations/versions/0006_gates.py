"""Release gates: versioned checklists per registered model, and stored gate reports.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "gate_checklists",
        sa.Column("model", sa.String(128), sa.ForeignKey("registered_models.name"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
    )
    op.create_table(
        "gate_reports",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("checklist_version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("against", sa.String(64), nullable=True),
        sa.Column("against_version", sa.Integer, nullable=True),
        sa.Column("data", sa.String(512), nullable=True),
        sa.Column("results", sa.JSON, nullable=False),
        sa.Column("duration_s", sa.Float, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("override", sa.JSON, nullable=True),
    )
    op.create_index("ix_gate_reports_version", "gate_reports", ["model", "version", "checklist_version"])


def downgrade() -> None:
    op.drop_table("gate_reports")
    op.drop_table("gate_checklists")
