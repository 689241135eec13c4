"""Foundation: lineage, audit, datasets, table versions, profiles, contracts, splits.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "lineage_edges",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("src", sa.String(512), nullable=False),
        sa.Column("dst", sa.String(512), nullable=False),
        sa.Column("relation", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("src", "dst", "relation", name="uq_lineage_edge"),
    )
    op.create_index("ix_lineage_src", "lineage_edges", ["src"])
    op.create_index("ix_lineage_dst", "lineage_edges", ["dst"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(512), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("details", sa.JSON, nullable=False),
    )
    op.create_index("ix_audit_target", "audit_log", ["target"])
    op.create_table(
        "datasets",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("location", sa.String(1024), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("partition_by", sa.JSON, nullable=False),
        sa.Column("time_column", sa.String(128), nullable=True),
        sa.Column("key_columns", sa.JSON, nullable=False),
        sa.Column("next_row_id", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "table_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("table_name", sa.String(128), sa.ForeignKey("datasets.name"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("committed_at", TS, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("operation", sa.String(32), nullable=False),
        sa.Column("row_count", sa.BigInteger, nullable=False),
        sa.Column("rows_added", sa.BigInteger, nullable=False),
        sa.Column("schema", sa.JSON, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("source_name", sa.String(1024), nullable=True),
        sa.Column("source_hash", sa.String(64), nullable=True),
        sa.Column("contract_version", sa.Integer, nullable=True),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("vacuumed_at", TS, nullable=True),
        sa.UniqueConstraint("table_name", "version", name="uq_table_version"),
    )
    op.create_table(
        "profiles",
        sa.Column("table_name", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("computed_at", TS, nullable=False),
        sa.Column("profile", sa.JSON, nullable=False),
    )
    op.create_table(
        "contracts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("table_name", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.UniqueConstraint("table_name", "version", name="uq_contract_version"),
    )
    op.create_table(
        "splits",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("table_name", sa.String(128), nullable=False),
        sa.Column("table_version", sa.Integer, nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("counts", sa.JSON, nullable=False),
        sa.Column("artifact_key", sa.String(1024), nullable=False),
        sa.Column("artifact_hash", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.UniqueConstraint("name", "version", name="uq_split_version"),
    )


def downgrade() -> None:
    for name in ("splits", "contracts", "profiles", "table_versions", "datasets", "audit_log", "lineage_edges"):
        op.drop_table(name)
