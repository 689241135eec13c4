"""Monitoring: monitors, their numbered drift reports, the stored reference sketches they compare with, and
alert events.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "monitors",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("deployment", sa.String(128), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("latest_report", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("deleted_at", TS, nullable=True),
    )
    op.create_table(
        "monitor_reports",
        sa.Column("monitor", sa.String(128), sa.ForeignKey("monitors.name"), primary_key=True),
        sa.Column("number", sa.Integer, primary_key=True),
        sa.Column("window_start", TS, nullable=False),
        sa.Column("window_end", TS, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("drifted", sa.Boolean, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("model", sa.String(160), nullable=True),
        sa.Column("deployment_version", sa.Integer, nullable=True),
        sa.Column("log_version", sa.Integer, nullable=True),
        sa.Column("baseline", sa.String(64), nullable=False),
        sa.Column("results", sa.JSON, nullable=False),
        sa.Column("duration_s", sa.Float, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
    )
    op.create_index("ix_monitor_reports_window", "monitor_reports", ["monitor", "window_end"])
    op.create_table(
        "monitor_references",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("source", sa.String(512), nullable=False),
        sa.Column("model", sa.String(160), nullable=True),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("artifact", sa.String(512), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "monitor_alerts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("monitor", sa.String(128), sa.ForeignKey("monitors.name"), nullable=False),
        sa.Column("report", sa.Integer, nullable=False),
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("webhook", sa.Text, nullable=True),
        sa.Column("at", TS, nullable=False),
    )
    op.create_index("ix_monitor_alerts_at", "monitor_alerts", ["monitor", "at"])


def downgrade() -> None:
    op.drop_index("ix_monitor_alerts_at", "monitor_alerts")
    op.drop_table("monitor_alerts")
    op.drop_table("monitor_references")
    op.drop_index("ix_monitor_reports_window", "monitor_reports")
    op.drop_table("monitor_reports")
    op.drop_table("monitors")
