"""Pipelines (versions, runs, step runs), triggers (fires with idempotency keys, cursors), the scheduler's lease,
retraining policies and retrains.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "pipeline_versions",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("applied_at", TS, nullable=False),
        sa.Column("applied_by", sa.String(128), nullable=False),
    )
    op.create_table(
        "pipeline_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("pipeline", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("trigger", sa.JSON, nullable=False),
        sa.Column("force", sa.Boolean, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("ended_at", TS, nullable=True),
        sa.Column("claimed_by", sa.String(256), nullable=True),
        sa.Column("heartbeat_at", TS, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_pipeline_runs_pipeline", "pipeline_runs", ["pipeline", "id"])
    op.create_index("ix_pipeline_runs_status", "pipeline_runs", ["status"])
    op.create_table(
        "pipeline_step_runs",
        sa.Column("run", sa.Integer, sa.ForeignKey("pipeline_runs.id"), primary_key=True),
        sa.Column("step", sa.String(128), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("cache_key", sa.String(64), nullable=True),
        sa.Column("cached_from", sa.Integer, nullable=True),
        sa.Column("inputs", sa.JSON, nullable=True),
        sa.Column("output", sa.JSON, nullable=True),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("ended_at", TS, nullable=True),
        sa.Column("logs", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_pipeline_step_runs_cache", "pipeline_step_runs", ["step", "cache_key"])
    op.create_table(
        "trigger_fires",
        sa.Column("key", sa.String(512), primary_key=True),
        sa.Column("subject", sa.String(160), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("what", sa.Text, nullable=False),
        sa.Column("fired_at", TS, nullable=False),
        sa.Column("run", sa.Integer, nullable=True),
    )
    op.create_index("ix_trigger_fires_subject", "trigger_fires", ["subject", "fired_at"])
    op.create_table(
        "trigger_cursors",
        sa.Column("subject", sa.String(160), primary_key=True),
        sa.Column("trigger", sa.String(64), primary_key=True),
        sa.Column("cursor", sa.JSON, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "scheduler_leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(256), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("acquired_at", TS, nullable=False),
    )
    op.create_table(
        "retrain_policies",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("deployment", sa.String(128), nullable=False),
        sa.Column("pipeline", sa.String(128), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "retrains",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("policy", sa.String(128), nullable=False),
        sa.Column("deployment", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("trigger", sa.JSON, nullable=False),
        sa.Column("window", sa.JSON, nullable=True),
        sa.Column("how", sa.JSON, nullable=True),
        sa.Column("pipeline_run", sa.Integer, nullable=True),
        sa.Column("candidate", sa.String(256), nullable=True),
        sa.Column("gate_report", sa.String(256), nullable=True),
        sa.Column("evidence", sa.JSON, nullable=True),
        sa.Column("decision", sa.JSON, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_retrains_policy", "retrains", ["policy", "id"])


def downgrade() -> None:
    op.drop_index("ix_retrains_policy", "retrains")
    op.drop_table("retrains")
    op.drop_table("retrain_policies")
    op.drop_table("scheduler_leases")
    op.drop_table("trigger_cursors")
    op.drop_index("ix_trigger_fires_subject", "trigger_fires")
    op.drop_table("trigger_fires")
    op.drop_index("ix_pipeline_step_runs_cache", "pipeline_step_runs")
    op.drop_table("pipeline_step_runs")
    op.drop_index("ix_pipeline_runs_pipeline", "pipeline_runs")
    op.drop_index("ix_pipeline_runs_status", "pipeline_runs")
    op.drop_table("pipeline_runs")
    op.drop_table("pipeline_versions")
