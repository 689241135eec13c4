"""Every metadata table in one file: the data model at a glance.

Migrations (``storage/migrations``) create these tables; this module is what the code queries.
Bytes never live here: table data is in Delta, artifacts in the artifact store.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa


class UTCDateTime(sa.TypeDecorator):
    """Timezone-aware UTC in and out, on every dialect (SQLite stores no zone of its own)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the metadata store; keel stores UTC-aware times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


TS = UTCDateTime()
metadata = sa.MetaData()

# -- generic: every capability writes these -------------------------------------------------------

lineage_edges = sa.Table(
    "lineage_edges",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("src", sa.String(512), nullable=False),
    sa.Column("dst", sa.String(512), nullable=False),
    sa.Column("relation", sa.String(64), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.UniqueConstraint("src", "dst", "relation", name="uq_lineage_edge"),
    sa.Index("ix_lineage_src", "src"),
    sa.Index("ix_lineage_dst", "dst"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", TS, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(512), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Index("ix_audit_target", "target"),
)

# -- data ------------------------------------------------------------------------------------------

datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("location", sa.String(1024), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("partition_by", sa.JSON, nullable=False),
    sa.Column("time_column", sa.String(128), nullable=True),
    sa.Column("key_columns", sa.JSON, nullable=False),
    sa.Column("next_row_id", sa.BigInteger, nullable=False),
)

table_versions = sa.Table(
    "table_versions",
    metadata,
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

profiles = sa.Table(
    "profiles",
    metadata,
    sa.Column("table_name", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("computed_at", TS, nullable=False),
    sa.Column("profile", sa.JSON, nullable=False),
)

contracts = sa.Table(
    "contracts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("table_name", sa.String(128), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("spec", sa.JSON, nullable=False),
    sa.Column("spec_hash", sa.String(64), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.UniqueConstraint("table_name", "version", name="uq_contract_version"),
)

splits = sa.Table(
    "splits",
    metadata,
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

# -- tracking --------------------------------------------------------------------------------------

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("experiment", sa.String(128), nullable=False),
    sa.Column("name", sa.String(256), nullable=True),
    sa.Column("parent_id", sa.String(32), sa.ForeignKey("runs.id"), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("started_at", TS, nullable=False),
    sa.Column("ended_at", TS, nullable=True),
    sa.Column("environment", sa.JSON, nullable=False),
    sa.Index("ix_runs_experiment", "experiment", "started_at"),
)

def _run_key_values(name: str) -> sa.Table:
    """params and tags: one text value per (run, key)."""
    return sa.Table(
        name,
        metadata,
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


run_params = _run_key_values("run_params")
run_tags = _run_key_values("run_tags")

run_metrics = sa.Table(
    "run_metrics",
    metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True),  # order of logging within the run and key
    sa.Column("step", sa.BigInteger, nullable=True),
    sa.Column("value", sa.Float, nullable=True),  # null only for an explicitly recorded NaN
    sa.Column("logged_at", TS, nullable=False),
)

run_latest_metrics = sa.Table(
    "run_latest_metrics",
    metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("step", sa.BigInteger, nullable=True),
    sa.Column("value", sa.Float, nullable=True),
    sa.Index("ix_latest_metrics_key_value", "key", "value"),
)

run_artifacts = sa.Table(
    "run_artifacts",
    metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("name", sa.String(512), primary_key=True),
    sa.Column("artifact_key", sa.String(1024), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("created_at", TS, nullable=False),
)

# -- people ----------------------------------------------------------------------------------------

users = sa.Table(
    "users",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("role", sa.String(32), nullable=False),  # viewer | developer | approver | admin
    sa.Column("created_at", TS, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
)

# -- models ----------------------------------------------------------------------------------------

registered_models = sa.Table(
    "registered_models",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("latest_version", sa.Integer, nullable=False),  # the version counter: +1 under a row lock
    sa.Column("created_at", TS, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("model", sa.String(128), sa.ForeignKey("registered_models.name"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), nullable=True),
    sa.Column("flavor", sa.String(32), nullable=False),
    sa.Column("model_class", sa.String(256), nullable=False),
    sa.Column("package_key", sa.String(1024), nullable=False),  # artifact folder of the package
    sa.Column("manifest_sha256", sa.String(64), nullable=False),  # pins every file through the manifest
    sa.Column("signature", sa.JSON, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Index("ix_model_versions_run", "run_id"),
)

model_aliases = sa.Table(
    "model_aliases",
    metadata,
    sa.Column("model", sa.String(128), sa.ForeignKey("registered_models.name"), primary_key=True),
    sa.Column("alias", sa.String(64), primary_key=True),  # champion, ... and the environments staging, production
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("updated_by", sa.String(128), nullable=False),
)

model_alias_history = sa.Table(
    "model_alias_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("alias", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=True),  # null: the alias was removed
    sa.Column("previous_version", sa.Integer, nullable=True),
    sa.Column("at", TS, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Index("ix_model_alias_history_model", "model", "alias"),
)

model_approvals = sa.Table(
    "model_approvals",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("environment", sa.String(64), nullable=False),
    sa.Column("approved_by", sa.String(128), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),  # the approver's role when they approved
    sa.Column("at", TS, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Index("ix_model_approvals_version", "model", "version"),
)

model_cards = sa.Table(
    "model_cards",
    metadata,
    sa.Column("model", sa.String(128), sa.ForeignKey("registered_models.name"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),  # the card's own version, not the model's
    sa.Column("card", sa.JSON, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),  # public part of the token: keel_<id>_<secret>
    sa.Column("user_name", sa.String(128), sa.ForeignKey("users.name"), nullable=False),
    sa.Column("secret_sha256", sa.String(64), nullable=False),  # the secret itself is never stored
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("expires_at", TS, nullable=True),
    sa.Column("revoked_at", TS, nullable=True),
    sa.Column("last_used_at", TS, nullable=True),
    sa.Index("ix_api_tokens_user", "user_name"),
)

# -- features --------------------------------------------------------------------------------------

feature_entities = sa.Table(
    "feature_entities",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("join_keys", sa.JSON, nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("updated_by", sa.String(128), nullable=False),
)

feature_views = sa.Table(
    "feature_views",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("latest_version", sa.Integer, nullable=False),  # the version counter, like registered_models
    sa.Column("kind", sa.String(16), nullable=False),  # batch | on_demand
    sa.Column("removed_at", TS, nullable=True),  # removed by an apply; its versions stay for lineage
    sa.Column("created_at", TS, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
)

feature_view_versions = sa.Table(
    "feature_view_versions",
    metadata,
    sa.Column("view", sa.String(128), sa.ForeignKey("feature_views.name"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("definition", sa.JSON, nullable=False),  # the validated definition, as JSON (features/definitions.py)
    sa.Column("fingerprint", sa.String(64), nullable=False),  # sha256 of it: an unchanged view is not re-versioned
    sa.Column("created_at", TS, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
)

training_sets = sa.Table(
    "training_sets",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),  # = the version of its Delta table
    sa.Column("table_name", sa.String(128), nullable=False),
    sa.Column("features", sa.JSON, nullable=False),
    sa.Column("label", sa.String(256), nullable=True),
    sa.Column("timestamp_column", sa.String(256), nullable=False),
    sa.Column("entity_source", sa.String(512), nullable=False),
    sa.Column("view_versions", sa.JSON, nullable=False),  # view -> version used
    sa.Column("source_versions", sa.JSON, nullable=False),  # source table -> Delta version read
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
)

feature_materializations = sa.Table(
    "feature_materializations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("view", sa.String(128), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("start_ts", TS, nullable=True),
    sa.Column("end_ts", TS, nullable=False),  # --incremental starts here next time
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("incremental", sa.Boolean, nullable=False),
    sa.Column("source_versions", sa.JSON, nullable=False),
    sa.Column("store", sa.String(512), nullable=False),  # the online store's URL, without credentials
    sa.Column("at", TS, nullable=False),
    sa.Column("by", sa.String(128), nullable=False),
    sa.Index("ix_feature_materializations_view", "view", "version"),
)

# -- release gates --------------------------------------------------------------------------------

gate_checklists = sa.Table(
    "gate_checklists",
    metadata,
    sa.Column("model", sa.String(128), sa.ForeignKey("registered_models.name"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),  # the checklist's own version
    sa.Column("spec", sa.JSON, nullable=False),  # canonical JSON (custom functions by module, name, sha256)
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
)

gate_reports = sa.Table(
    "gate_reports",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("checklist_version", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # passed | failed
    sa.Column("against", sa.String(64), nullable=True),
    sa.Column("against_version", sa.Integer, nullable=True),
    sa.Column("data", sa.String(512), nullable=True),
    sa.Column("results", sa.JSON, nullable=False),
    sa.Column("duration_s", sa.Float, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("override", sa.JSON, nullable=True),  # {by, role, reason, at}
    sa.Index("ix_gate_reports_version", "model", "version", "checklist_version"),
)

# -- deployments ------------------------------------------------------------------------------------

deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("production", sa.Boolean, nullable=False),  # a production endpoint serves approved versions only
    sa.Column("seed", sa.String(64), nullable=False),  # the routing hash's seed: splits are independent per endpoint
    sa.Column("latest_version", sa.Integer, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("deleted_at", TS, nullable=True),
)

deployment_versions = sa.Table(
    "deployment_versions",
    metadata,
    sa.Column("deployment", sa.String(128), sa.ForeignKey("deployments.name"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),  # every change of policy or state is a new version
    sa.Column("policy", sa.JSON, nullable=False),  # {kind, arms, step, shadows, sample, fallbacks, sticky_key, ...}
    sa.Column("state", sa.String(16), nullable=False),  # active | paused | deleted
    sa.Column("action", sa.String(32), nullable=False),  # create, shadow, ab, canary, promote, rollback, ...
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("at", TS, nullable=False),
    sa.Column("by", sa.String(128), nullable=False),
)

# -- monitoring ---------------------------------------------------------------------------------------

monitors = sa.Table(
    "monitors",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("deployment", sa.String(128), nullable=False),
    sa.Column("spec", sa.JSON, nullable=False),  # {baseline, window, slices, methods, thresholds, share}
    sa.Column("latest_report", sa.Integer, nullable=False),  # reports are numbered per monitor: 1, 2, ...
    sa.Column("created_at", TS, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("deleted_at", TS, nullable=True),
)

monitor_reports = sa.Table(
    "monitor_reports",
    metadata,
    sa.Column("monitor", sa.String(128), sa.ForeignKey("monitors.name"), primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True),
    sa.Column("window_start", TS, nullable=False),
    sa.Column("window_end", TS, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # ok | no_data
    sa.Column("drifted", sa.Boolean, nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("model", sa.String(160), nullable=True),  # the version the window was compared for
    sa.Column("deployment_version", sa.Integer, nullable=True),
    sa.Column("log_version", sa.Integer, nullable=True),  # the predictions table version read
    sa.Column("baseline", sa.String(64), nullable=False),  # monitor_references.key
    sa.Column("results", sa.JSON, nullable=False),
    sa.Column("duration_s", sa.Float, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Index("ix_monitor_reports_window", "monitor", "window_end"),
)

monitor_references = sa.Table(
    "monitor_references",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),  # a hash of what it was computed from: reused while equal
    sa.Column("source", sa.String(512), nullable=False),  # the data ref (split part, table version or log window)
    sa.Column("model", sa.String(160), nullable=True),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("artifact", sa.String(512), nullable=False),  # the sketch (gzipped JSON) in the artifact store
    sa.Column("created_at", TS, nullable=False),
)

monitor_alerts = sa.Table(
    "monitor_alerts",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("monitor", sa.String(128), sa.ForeignKey("monitors.name"), nullable=False),
    sa.Column("report", sa.Integer, nullable=False),  # the report whose run changed the rule's state
    sa.Column("rule", sa.Text, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # firing | resolved
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("webhook", sa.Text, nullable=True),  # sent | failed: ... | refused: ... | None (no webhook)
    sa.Column("at", TS, nullable=False),
    sa.Index("ix_monitor_alerts_at", "monitor", "at"),
)

# -- incidents ----------------------------------------------------------------------------------------

incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),  # incident:1, incident:2, ...
    sa.Column("title", sa.String(512), nullable=False),
    sa.Column("deployment", sa.String(128), nullable=False),
    sa.Column("window_start", TS, nullable=False),
    sa.Column("window_end", TS, nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),  # low | medium | high
    sa.Column("timeline", sa.JSON, nullable=False),  # the timeline as it was read when the incident was recorded
    sa.Column("created_at", TS, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Index("ix_incidents_deployment", "deployment", "window_start"),
)

incident_notes = sa.Table(
    "incident_notes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),  # appended, never edited: no lost update
    sa.Column("incident", sa.Integer, sa.ForeignKey("incidents.id"), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("at", TS, nullable=False),
    sa.Column("by", sa.String(128), nullable=False),
    sa.Index("ix_incident_notes_incident", "incident"),
)

# -- pipelines, triggers and the scheduler --------------------------------------------------------------

pipeline_versions = sa.Table(
    "pipeline_versions",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),  # a new version only when the definition changed
    sa.Column("definition", sa.JSON, nullable=False),  # steps (function, inputs, params, types), triggers
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("applied_at", TS, nullable=False),
    sa.Column("applied_by", sa.String(128), nullable=False),
)

pipeline_runs = sa.Table(
    "pipeline_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),  # pipeline_run:1, ...
    sa.Column("pipeline", sa.String(128), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # queued | running | succeeded | failed
    sa.Column("params", sa.JSON, nullable=False),  # as given, and the refs resolved to versions at creation
    sa.Column("trigger", sa.JSON, nullable=False),  # {kind, key, what, by}
    sa.Column("force", sa.Boolean, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),  # 1, then +1 per retry or resume
    sa.Column("created_at", TS, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("started_at", TS, nullable=True),
    sa.Column("ended_at", TS, nullable=True),
    sa.Column("claimed_by", sa.String(256), nullable=True),  # the process running it
    sa.Column("heartbeat_at", TS, nullable=True),  # a running run whose heartbeat stopped is resumed
    sa.Column("error", sa.Text, nullable=True),
    sa.Index("ix_pipeline_runs_pipeline", "pipeline", "id"),
    sa.Index("ix_pipeline_runs_status", "status"),
)

pipeline_step_runs = sa.Table(
    "pipeline_step_runs",
    metadata,
    sa.Column("run", sa.Integer, sa.ForeignKey("pipeline_runs.id"), primary_key=True),
    sa.Column("step", sa.String(128), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),  # pending | running | succeeded | cached | failed | skipped
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("cache_key", sa.String(64), nullable=True),
    sa.Column("cached_from", sa.Integer, nullable=True),  # the run whose output a cached step reused
    sa.Column("inputs", sa.JSON, nullable=True),
    sa.Column("output", sa.JSON, nullable=True),  # {"value": ...}
    sa.Column("started_at", TS, nullable=True),
    sa.Column("ended_at", TS, nullable=True),
    sa.Column("logs", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Index("ix_pipeline_step_runs_cache", "step", "cache_key"),
)

trigger_fires = sa.Table(
    "trigger_fires",
    metadata,
    sa.Column("key", sa.String(512), primary_key=True),  # the idempotency key: an event fires once, ever
    sa.Column("subject", sa.String(160), nullable=False),  # pipeline:NAME or retrain_policy:NAME
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("what", sa.Text, nullable=False),
    sa.Column("fired_at", TS, nullable=False),
    sa.Column("run", sa.Integer, nullable=True),  # the pipeline run it started
    sa.Index("ix_trigger_fires_subject", "subject", "fired_at"),
)

trigger_cursors = sa.Table(
    "trigger_cursors",
    metadata,
    sa.Column("subject", sa.String(160), primary_key=True),
    sa.Column("trigger", sa.String(64), primary_key=True),
    sa.Column("cursor", sa.JSON, nullable=False),  # what the trigger saw last: a time, a version, a commit
    sa.Column("updated_at", TS, nullable=False),
)

scheduler_leases = sa.Table(
    "scheduler_leases",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(256), nullable=False),
    sa.Column("expires_at", TS, nullable=False),
    sa.Column("acquired_at", TS, nullable=False),
)

# -- retraining ---------------------------------------------------------------------------------------------

retrain_policies = sa.Table(
    "retrain_policies",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("deployment", sa.String(128), nullable=False),
    sa.Column("pipeline", sa.String(128), nullable=False),
    sa.Column("spec", sa.JSON, nullable=False),  # when, data, how, approval, canary, guard
    sa.Column("created_at", TS, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)

retrains = sa.Table(
    "retrains",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),  # retrain:1, ...
    sa.Column("policy", sa.String(128), nullable=False),
    sa.Column("deployment", sa.String(128), nullable=False),
    # running | no_new_data | refused | failed | pending_review | approved | rejected
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("trigger", sa.JSON, nullable=False),  # why: the condition, its evidence, the idempotency key
    sa.Column("window", sa.JSON, nullable=True),  # the data window: kind, bounds, rows, influenced share
    sa.Column("how", sa.JSON, nullable=True),  # from_scratch | warm_start, and why that was used
    sa.Column("pipeline_run", sa.Integer, nullable=True),
    sa.Column("candidate", sa.String(256), nullable=True),  # model:NAME/N
    sa.Column("gate_report", sa.String(256), nullable=True),
    sa.Column("evidence", sa.JSON, nullable=True),  # the gate summary and the comparison with the current model
    sa.Column("decision", sa.JSON, nullable=True),  # by, at, reason, override, canary
    sa.Column("created_at", TS, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Index("ix_retrains_policy", "policy", "id"),
)
