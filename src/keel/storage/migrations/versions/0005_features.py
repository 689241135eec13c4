"""The feature store: entities, versioned feature views, training sets, materialisations.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "feature_entities",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("join_keys", sa.JSON, nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
    )
    op.create_table(
        "feature_views",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("latest_version", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("removed_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
    )
    op.create_table(
        "feature_view_versions",
        sa.Column("view", sa.String(128), sa.ForeignKey("feature_views.name"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
    )
    op.create_table(
        "training_sets",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("table_name", sa.String(128), nullable=False),
        sa.Column("features", sa.JSON, nullable=False),
        sa.Column("label", sa.String(256), nullable=True),
        sa.Column("timestamp_column", sa.String(256), nullable=False),
        sa.Column("entity_source", sa.String(512), nullable=False),
        sa.Column("view_versions", sa.JSON, nullable=False),
        sa.Column("source_versions", sa.JSON, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
    )
    op.create_table(
        "feature_materializations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("view", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("start_ts", TS, nullable=True),
        sa.Column("end_ts", TS, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("incremental", sa.Boolean, nullable=False),
        sa.Column("source_versions", sa.JSON, nullable=False),
        sa.Column("store", sa.String(512), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("by", sa.String(128), nullable=False),
    )
    op.create_index("ix_feature_materializations_view", "feature_materializations", ["view", "version"])


def downgrade() -> None:
    op.drop_table("feature_materializations")
    op.drop_table("training_sets")
    op.drop_table("feature_view_versions")
    op.drop_table("feature_views")
    op.drop_table("feature_entities")
