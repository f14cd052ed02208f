"""The canonical model as SQLAlchemy tables: what every connector maps into and every page reads.

Conventions (see docs/data-model.md):
- Entity tables are keyed by (id, source): ``id`` is the record's id in its source system and
  ``source`` names the connector that produced it. Ingest upserts on that key, so a replayed batch
  changes nothing. References between entities (``cell_id``, ``account_id``...) hold the referenced
  record's ``id``; the ``id`` column is indexed first so joins on it use the primary key.
- Times are naive UTC ``DateTime`` on both SQLite and PostgreSQL.
- ``info`` on a column carries what ingest validates beyond its SQL type: ``enum`` (allowed values,
  compared case-insensitively, stored lower case), ``lenient`` (an unknown enum value is kept as
  given instead of quarantined: real systems drift), ``min``/``max`` for numbers.
- ``info`` on a table may name a ``version_column``: an upsert never replaces a row with an older
  version, so an out-of-order or duplicated event cannot roll a record back.
- Tables in ``CANONICAL_KINDS`` are what connectors may write; the rest are operational.
"""

from __future__ import annotations

from sqlalchemy import (
    DDL,
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
)

from connectors.canonical import (
    ALARM_STATES,
    ENTITY_TYPES,
    INCIDENT_STATES,
    KINDS,
    SEGMENTS,
    SEVERITIES,
    TECHNOLOGIES,
)
from dashboard.store.partitions import KPI_SAMPLES, default_ddl

#: What opened an incident: alarms, or KPI anomalies that no alarm explains (dashboard/incidents/detect.py).
INCIDENT_KINDS = ["alarm", "detected"]
#: A KPI series against its seasonal baseline (dashboard/kpi_eval/anomaly.py).
ANOMALY_STATES = ["learning", "normal", "anomalous", "no_data"]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _key() -> list[Column[str]]:
    return [
        Column("id", String(128), nullable=False),
        Column("source", String(64), nullable=False),
    ]


def _ingested() -> Column[object]:
    # Set by ingest when a row is inserted or actually changed; never by connectors.
    return Column("ingested_at", DateTime, nullable=True, info={"managed": True})


# --- Topology -------------------------------------------------------------------------------

regions = Table(
    "regions",
    metadata,
    *_key(),
    Column("name", String(128), nullable=False),
    _ingested(),
    PrimaryKeyConstraint("id", "source"),
)

sites = Table(
    "sites",
    metadata,
    *_key(),
    Column("region_id", String(128), nullable=True, index=True),
    Column("name", String(128), nullable=False),
    Column("lat", Float, nullable=True, info={"min": -90.0, "max": 90.0}),
    Column("lon", Float, nullable=True, info={"min": -180.0, "max": 180.0}),
    _ingested(),
    PrimaryKeyConstraint("id", "source"),
)

cells = Table(
    "cells",
    metadata,
    *_key(),
    Column("site_id", String(128), nullable=True, index=True),
    Column("name", String(128), nullable=False),
    Column("technology", String(8), nullable=True, info={"enum": TECHNOLOGIES, "lenient": True}),
    Column("band", String(32), nullable=True),
    _ingested(),
    PrimaryKeyConstraint("id", "source"),
)

resources = Table(
    "resources",
    metadata,
    *_key(),
    Column("site_id", String(128), nullable=True, index=True),
    Column("name", String(128), nullable=False),
    # router, ran_node, power, transport, core... kept as the source calls it.
    Column("kind", String(64), nullable=True),
    Column("vendor", String(64), nullable=True),
    _ingested(),
    PrimaryKeyConstraint("id", "source"),
)

# Directed edges of the impact graph: resource -> resource, resource -> cell, cell -> service.
topology_edges = Table(
    "topology_edges",
    metadata,
    Column("source", String(64), nullable=False),
    Column("parent_type", String(16), nullable=False, info={"enum": ["resource", "cell", "site"]}),
    Column("parent_id", String(128), nullable=False),
    Column("child_type", String(16), nullable=False, info={"enum": ["resource", "cell", "service"]}),
    Column("child_id", String(128), nullable=False),
    _ingested(),
    PrimaryKeyConstraint("parent_id", "child_id", "parent_type", "child_type", "source"),
    Index("ix_topology_edges_child", "child_id", "child_type"),
    Index("ix_topology_edges_ingested_at", "ingested_at"),
)

# --- Customers ------------------------------------------------------------------------------

accounts = Table(
    "accounts",
    metadata,
    *_key(),
    Column("name", String(256), nullable=False),
    Column("segment", String(16), nullable=False, info={"enum": SEGMENTS}),
    Column("vip", Boolean, nullable=False, default=False),
    Column("account_manager", String(128), nullable=True),
    # Contract: restore target for service-affecting incidents and the penalty once it is missed.
    Column("sla_restore_minutes", Integer, nullable=True, info={"min": 0}),
    Column("penalty_per_hour", Float, nullable=True, info={"min": 0.0}),
    Column("contract_end", Date, nullable=True),
    # Personal data, stored for masking by role.
    Column("contact_name", String(256), nullable=True, info={"personal": True}),
    Column("contact_email", String(256), nullable=True, info={"personal": True}),
    Column("contact_phone", String(64), nullable=True, info={"personal": True}),
    Column("contact_address", String(512), nullable=True, info={"personal": True}),
    # Search key derived on ingest (dashboard.ingest.derive): the name lower-cased.
    Column("name_key", String(256), nullable=True, info={"managed": True}),
    _ingested(),
    PrimaryKeyConstraint("id", "source"),
    Index("ix_accounts_ingested_at", "ingested_at"),
    Index("ix_accounts_name_key", "name_key", postgresql_ops={"name_key": "text_pattern_ops"}),
    Index("ix_accounts_segment_vip", "segment", "vip"),
)

subscribers = Table(
    "subscribers",
    metadata,
    *_key(),
    Column("account_id", String(128), nullable=True, index=True),
    Column("msisdn", String(32), nullable=True, info={"personal": True}),
    # Search keys derived on ingest (dashboard.ingest.derive): the MSISDN's digits, and reversed,
    # so "ends with" searches (a number typed without its country code) use an index too.
    Column("msisdn_digits", String(32), nullable=True, info={"managed": True}),
    Column("msisdn_rev", String(32), nullable=True, info={"managed": True}),
    Column("plan", String(64), nullable=True),
    Column("arpu", Float, nullable=True, info={"min": 0.0}),
    Column("activated_at", DateTime, nullable=True),
    Column(
        "status",
        String(16),
        nullable=False,
        default="active",
        info={"enum": ["active", "suspended", "churned"], "lenient": True},
    ),
    Column("home_cell_id", String(128), nullable=True, index=True),
    _ingested(),
    PrimaryKeyConstraint("id", "source"),
    Index("ix_subscribers_ingested_at", "ingested_at"),
    # Prefix searches: text_pattern_ops lets PostgreSQL use them for LIKE 'x%' in any collation.
    Index(
        "ix_subscribers_msisdn_digits", "msisdn_digits", postgresql_ops={"msisdn_digits": "text_pattern_ops"}
    ),
    Index("ix_subscribers_msisdn_rev", "msisdn_rev", postgresql_ops={"msisdn_rev": "text_pattern_ops"}),
)

# The cells that serve a subscriber, with the share of their traffic on each.
subscriber_cells = Table(
    "subscriber_cells",
    metadata,
    Column("source", String(64), nullable=False),
    Column("subscriber_id", String(128), nullable=False),
    Column("cell_id", String(128), nullable=False),
    Column("share", Float, nullable=False, info={"min": 0.0, "max": 1.0}),
    _ingested(),
    PrimaryKeyConstraint("subscriber_id", "cell_id", "source"),
    # Covering: the lines of given cells without touching the table (impact, "affected" filters).
    Index("ix_subscriber_cells_cell", "cell_id", "subscriber_id"),
    Index("ix_subscriber_cells_ingested_at", "ingested_at"),
)

services = Table(
    "services",
    metadata,
    *_key(),
    Column("subscriber_id", String(128), nullable=True, index=True),
    Column("account_id", String(128), nullable=True, index=True),
    Column("name", String(256), nullable=False),
    Column("kind", String(64), nullable=True),
    Column(
        "status",
        String(32),
        nullable=True,
        info={"enum": ["active", "inactive", "terminated"], "lenient": True},
    ),
    _ingested(),
    PrimaryKeyConstraint("id", "source"),
    Index("ix_services_ingested_at", "ingested_at"),
)

# --- Events ---------------------------------------------------------------------------------

alarms = Table(
    "alarms",
    metadata,
    *_key(),
    Column("resource_id", String(128), nullable=True, index=True),
    Column("alarmed_object", String(256), nullable=True),
    Column("alarmed_object_type", String(64), nullable=True),
    Column("severity", String(16), nullable=False, info={"enum": SEVERITIES}),
    Column("state", String(16), nullable=False, info={"enum": ALARM_STATES, "lenient": True}),
    Column(
        "ack_state",
        String(32),
        nullable=True,
        info={"enum": ["acknowledged", "unacknowledged"], "lenient": True},
    ),
    Column("alarm_type", String(64), nullable=True),
    Column("probable_cause", String(128), nullable=True),
    Column("specific_problem", String(256), nullable=True),
    Column("service_affecting", Boolean, nullable=True),
    Column("raised_at", DateTime, nullable=False),
    Column("changed_at", DateTime, nullable=False),
    Column("cleared_at", DateTime, nullable=True),
    _ingested(),
    PrimaryKeyConstraint("id", "source"),
    Index("ix_alarms_state_raised", "state", "raised_at"),
    Index("ix_alarms_ingested_at", "ingested_at"),
    # A record whose times run backwards is refused (dashboard.ingest.validate).
    info={
        "version_column": "changed_at",
        "order": [("raised_at", "changed_at"), ("raised_at", "cleared_at")],
    },
)

incidents = Table(
    "incidents",
    metadata,
    *_key(),
    Column("title", String(256), nullable=False),
    Column("root_resource_id", String(128), nullable=True, index=True),
    Column("severity", String(16), nullable=False, info={"enum": SEVERITIES}),
    Column(
        "state",
        String(16),
        nullable=False,
        info={"enum": INCIDENT_STATES, "lenient": True},
    ),
    Column("probable_cause", String(128), nullable=True),
    Column("owner", String(128), nullable=True),
    Column("opened_at", DateTime, nullable=False),
    Column("acked_at", DateTime, nullable=True),
    Column("resolved_at", DateTime, nullable=True),
    Column("changed_at", DateTime, nullable=False),
    # Kept by the correlation engine (dashboard.incidents) on the incidents it builds.
    Column("root_alarm_id", String(128), nullable=True),
    Column("region_id", String(128), nullable=True),
    Column("flaps", Integer, nullable=True),
    Column("merged_into", String(128), nullable=True),
    # "alarm" (opened by alarms) or "detected" (opened by KPI anomalies no alarm explains).
    Column("kind", String(16), nullable=True, info={"enum": INCIDENT_KINDS, "lenient": True}),
    # The trouble ticket a playbook opened for it upstream (TMF621 id), written when it was created.
    Column("ticket_id", String(128), nullable=True),
    _ingested(),
    PrimaryKeyConstraint("id", "source"),
    Index("ix_incidents_state_opened", "state", "opened_at"),
    info={"version_column": "changed_at", "order": [("opened_at", "resolved_at")]},
)

incident_alarms = Table(
    "incident_alarms",
    metadata,
    Column("source", String(64), nullable=False),
    Column("incident_id", String(128), nullable=False),
    Column("alarm_id", String(128), nullable=False),
    _ingested(),
    PrimaryKeyConstraint("incident_id", "alarm_id", "source"),
    Index("ix_incident_alarms_alarm", "alarm_id"),
)

tickets = Table(
    "tickets",
    metadata,
    *_key(),
    Column("account_id", String(128), nullable=True, index=True),
    Column("subscriber_id", String(128), nullable=True, index=True),
    Column("incident_id", String(128), nullable=True, index=True),
    Column(
        "status",
        String(32),
        nullable=False,
        info={
            "enum": [
                "acknowledged",
                "inprogress",
                "pending",
                "held",
                "resolved",
                "closed",
                "cancelled",
                "rejected",
                "submitted",
                "new",
            ],
            "lenient": True,
        },
    ),
    Column(
        "channel",
        String(32),
        nullable=True,
        info={"enum": ["phone", "email", "chat", "app", "social", "store", "web"], "lenient": True},
    ),
    Column("category", String(64), nullable=True),
    Column("priority", String(16), nullable=True),
    Column("subject", String(256), nullable=True),
    Column("description", Text, nullable=True),
    # Filled by the sentiment scorer on ingest (-1 negative .. +1 positive).
    Column("sentiment", Float, nullable=True, info={"min": -1.0, "max": 1.0}),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("resolved_at", DateTime, nullable=True),
    _ingested(),
    PrimaryKeyConstraint("id", "source"),
    Index("ix_tickets_created", "created_at"),
    info={
        "version_column": "updated_at",
        "order": [("created_at", "resolved_at")],
    },
)

ticket_notes = Table(
    "ticket_notes",
    metadata,
    *_key(),
    Column("ticket_id", String(128), nullable=False, index=True),
    Column("author", String(128), nullable=True),
    Column("text", Text, nullable=False),
    Column("sentiment", Float, nullable=True, info={"min": -1.0, "max": 1.0}),
    Column("created_at", DateTime, nullable=False),
    _ingested(),
    PrimaryKeyConstraint("id", "source"),
)

ticket_status_changes = Table(
    "ticket_status_changes",
    metadata,
    Column("source", String(64), nullable=False),
    Column("ticket_id", String(128), nullable=False),
    Column("changed_at", DateTime, nullable=False),
    Column("status", String(32), nullable=False),
    _ingested(),
    PrimaryKeyConstraint("ticket_id", "changed_at", "status", "source"),
)

churn_events = Table(
    "churn_events",
    metadata,
    *_key(),
    Column("subscriber_id", String(128), nullable=False, index=True),
    Column("account_id", String(128), nullable=True),
    Column("occurred_at", DateTime, nullable=False, index=True),
    Column("reason", String(128), nullable=True),
    _ingested(),
    PrimaryKeyConstraint("id", "source"),
)

offer_events = Table(
    "offer_events",
    metadata,
    *_key(),
    Column("subscriber_id", String(128), nullable=True, index=True),
    Column("account_id", String(128), nullable=True),
    Column("offer", String(128), nullable=False),
    Column(
        "outcome",
        String(16),
        nullable=False,
        info={"enum": ["offered", "accepted", "declined"], "lenient": True},
    ),
    Column("occurred_at", DateTime, nullable=False),
    _ingested(),
    PrimaryKeyConstraint("id", "source"),
)

# --- Measurements ---------------------------------------------------------------------------

kpi_samples = Table(
    "kpi_samples",
    metadata,
    Column("source", String(64), nullable=False),
    Column("entity_type", String(16), nullable=False, info={"enum": ENTITY_TYPES}),
    Column("entity_id", String(128), nullable=False),
    Column("kpi", String(64), nullable=False),
    Column("period_start", DateTime, nullable=False),
    Column("value", Float, nullable=False),
    # The key holds the partition column (period_start) and the distribution column (entity_id), as
    # PostgreSQL's partitioning and Citus's sharding by cell require of every unique key.
    PrimaryKeyConstraint("entity_id", "kpi", "period_start", "entity_type", "source"),
    Index("ix_kpi_samples_kpi_period", "kpi", "period_start"),
    # On PostgreSQL, daily partitions and a DEFAULT one (dashboard/store/partitions.py; migration 0011).
    postgresql_partition_by=f"RANGE ({KPI_SAMPLES.column})",
)
# A store made from this metadata (not the migrations) gets the DEFAULT partition too: no row refused.
_default_partition = DDL(default_ddl(KPI_SAMPLES))  # type: ignore[no-untyped-call]
event.listen(kpi_samples, "after_create", _default_partition.execute_if(dialect="postgresql"))

#: The hours the ingest path wrote samples into, not yet rolled up: the roll-up pass takes them
#: (dashboard/store/sample_marks.py), so a late sample for any hour is rolled up by the next pass.
kpi_sample_hours = Table(
    "kpi_sample_hours",
    metadata,
    Column("hour", DateTime, nullable=False),
    Column("ingested_at", DateTime, nullable=False),
    # The earliest sample period written into the hour since the mark was taken (NULL: not known).
    Column("first_period", DateTime),
    PrimaryKeyConstraint("hour"),
)

bills = Table(
    "bills",
    metadata,
    *_key(),
    Column("account_id", String(128), nullable=False, index=True),
    Column("period_start", Date, nullable=False),
    Column("period_end", Date, nullable=False),
    Column("amount", Float, nullable=False),
    Column("currency", String(3), nullable=True),
    Column("state", String(32), nullable=True),
    Column("issued_at", DateTime, nullable=True),
    _ingested(),
    PrimaryKeyConstraint("id", "source"),
    Index("ix_bills_period", "period_start"),
)

usage = Table(
    "usage",
    metadata,
    *_key(),
    Column("subscriber_id", String(128), nullable=True, index=True),
    Column("account_id", String(128), nullable=True, index=True),
    Column("period_start", Date, nullable=False),
    Column("usage_type", String(32), nullable=False),
    Column("quantity", Float, nullable=False),
    Column("unit", String(16), nullable=True),
    Column("amount", Float, nullable=True),
    Column("currency", String(3), nullable=True),
    _ingested(),
    PrimaryKeyConstraint("id", "source"),
)

# --- Operations -----------------------------------------------------------------------------

connector_state = Table(
    "connector_state",
    metadata,
    Column("connector", String(64), nullable=False),
    Column("stream", String(64), nullable=False),
    Column("state", JSON, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    PrimaryKeyConstraint("connector", "stream"),
)

connector_runs = Table(
    "connector_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("connector", String(64), nullable=False),
    Column("started_at", DateTime, nullable=False),
    Column("finished_at", DateTime, nullable=True),
    # running, success, partial (some records quarantined), failed
    Column("status", String(16), nullable=False),
    Column("records_in", Integer, nullable=False, default=0),
    Column("upserted", Integer, nullable=False, default=0),
    Column("quarantined", Integer, nullable=False, default=0),
    Column("error", Text, nullable=True),
    # Whether the error is transient (timeout, 429, 5xx) and when the scheduler tries again.
    Column("retriable", Boolean, nullable=True),
    Column("next_attempt_at", DateTime, nullable=True),
    # Per stream: {"stream": {"records_in": n, "upserted": n, "quarantined": n}}
    Column("streams", JSON, nullable=True),
    Index("ix_connector_runs_connector_started", "connector", "started_at"),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("connector_runs.id", ondelete="SET NULL"), nullable=True),
    Column("connector", String(64), nullable=False),
    Column("stream", String(64), nullable=True),
    Column("kind", String(64), nullable=True),
    Column("record_id", String(256), nullable=True),
    Column("reason", Text, nullable=False),
    # A readable preview of the record (NULs shown as \u0000, cut at QUARANTINE_PREVIEW characters)
    # and the whole payload as gzip-compressed UTF-8 JSON text; a digest of the rejection keeps a
    # rerun that refuses the same record again from adding a second row.
    Column("raw", Text, nullable=False),
    Column("payload", LargeBinary, nullable=True),
    Column("digest", String(64), nullable=True),
    Column("received_at", DateTime, nullable=False),
    Index("ix_quarantine_connector_received", "connector", "received_at"),
    Index("ux_quarantine_digest", "connector", "digest", unique=True),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target_type", String(64), nullable=True),
    Column("target_id", String(128), nullable=True),
    Column("detail", JSON, nullable=True),
    Index("ix_audit_at", "at"),
    Index("ix_audit_target", "target_type", "target_id"),
)

# --- who may use Vantage (dashboard/auth) ------------------------------------------------------

#: Local and single-sign-on users. ``password_hash`` is an argon2id hash (NULL for users who only
#: sign on through OIDC); ``session_epoch`` grows when a password changes or the user is disabled,
#: which ends every session issued before. ``failed_logins``/``locked_until`` lock an account out
#: after repeated wrong passwords.
users = Table(
    "users",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", String(256), nullable=True),
    Column("source", String(16), nullable=False, default="local"),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("session_epoch", Integer, nullable=False, default=0),
    Column("failed_logins", Integer, nullable=False, default=0),
    Column("locked_until", DateTime, nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("password_changed_at", DateTime, nullable=True),
    Column("last_login_at", DateTime, nullable=True),
)

#: API tokens for people and services, sent as ``Authorization: Bearer``. Only a SHA-256 digest of
#: each token is kept; ``prefix`` (its first characters) lets people tell tokens apart.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("owner", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("digest", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("expires_at", DateTime, nullable=False),
    Column("revoked_at", DateTime, nullable=True),
    Column("last_used_at", DateTime, nullable=True),
)

#: Secrets Vantage generates for itself when none is given by environment variable (the session
#: signing key): kept in the store, never in files or logs.
app_secrets = Table(
    "app_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
    Column("created_at", DateTime, nullable=False),
)

# Canonical record kinds that connectors may emit (connectors.canonical.KINDS), mapped to their table.
CANONICAL_KINDS: dict[str, Table] = {kind: metadata.tables[kind] for kind in KINDS}


# --- Analytics ------------------------------------------------------------------------------
# Written by dashboard.analytics (churn models and the signals on customer records); not canonical
# kinds, so no connector writes them. Drivers are JSON text, not JSON columns, so bulk upserts can
# compare them on PostgreSQL (json has no equality operator).

churn_models = Table(
    "churn_models",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=True),
    Column("trained_at", DateTime, nullable=False),
    # "store" (subscriber history, time split) or the file a table model was trained from.
    Column("trained_on", String(256), nullable=False),
    Column("label", String(128), nullable=False),
    Column("cutoff", DateTime, nullable=True),
    Column("metrics", JSON, nullable=False),
    Column("features", JSON, nullable=False),
    Column("model", LargeBinary, nullable=False),
    Index("ix_churn_models_trained_at", "trained_at"),
)

subscriber_signals = Table(
    "subscriber_signals",
    metadata,
    Column("subscriber_id", String(128), nullable=False),
    Column("source", String(64), nullable=False),
    Column("account_id", String(128), nullable=True, index=True),
    Column("churn_risk", Float, nullable=True),
    # [{"feature": ..., "value": ..., "impact": risk points}, ...] highest first.
    Column("churn_drivers", Text, nullable=True),
    Column("model_version", Integer, nullable=True),
    Column("sentiment_30d", Float, nullable=True),
    Column("tickets_30d", Integer, nullable=False, default=0),
    Column("negative_tickets_30d", Integer, nullable=False, default=0),
    Column("scored_at", DateTime, nullable=False),
    PrimaryKeyConstraint("subscriber_id", "source"),
    Index("ix_subscriber_signals_churn_risk", "churn_risk"),
    Index("ix_subscriber_signals_scored_at", "scored_at"),
)

account_signals = Table(
    "account_signals",
    metadata,
    Column("account_id", String(128), nullable=False),
    Column("source", String(64), nullable=False),
    Column("subscribers", Integer, nullable=False, default=0),
    Column("churn_risk_mean", Float, nullable=True),
    Column("churn_risk_max", Float, nullable=True),
    # Sum of the subscribers' risks, and of their ARPU weighted by risk (money per month).
    Column("expected_churners", Float, nullable=True),
    Column("arpu_at_risk", Float, nullable=True),
    Column("high_risk_subscribers", Integer, nullable=True),
    Column("model_version", Integer, nullable=True),
    Column("sentiment_30d", Float, nullable=True),
    Column("tickets_30d", Integer, nullable=False, default=0),
    Column("negative_tickets_30d", Integer, nullable=False, default=0),
    Column("scored_at", DateTime, nullable=False),
    PrimaryKeyConstraint("account_id", "source"),
)


# --- Incident queue -------------------------------------------------------------------------
# Written by dashboard.incidents: value aggregates per cell (maintained as the customer base
# changes, so ranking costs O(affected cells), not O(subscribers)), the cells each incident
# affects with how degraded they are, the ranked queue, and what operators did.

# Lines served by a cell per (segment, VIP), each weighted by the share of its traffic on the cell.
cell_value = Table(
    "cell_value",
    metadata,
    Column("cell_id", String(128), nullable=False),
    Column("segment", String(16), nullable=False),
    Column("vip", Boolean, nullable=False),
    Column("lines", Float, nullable=False),
    Column("arpu", Float, nullable=False),  # sum of share x ARPU: revenue per month
    Column("risk", Float, nullable=False),  # sum of share x churn risk, over scored lines
    Column("risk_arpu", Float, nullable=False),  # sum of share x churn risk x ARPU
    Column("risk_lines", Float, nullable=False),
    Column("sentiment", Float, nullable=False),  # sum of share x 30-day sentiment, over lines with tickets
    Column("sentiment_lines", Float, nullable=False),
    Column("negative_tickets", Float, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    PrimaryKeyConstraint("cell_id", "segment", "vip"),
)

# Business, VIP and SLA accounts per cell: their lines and account services there.
cell_account_value = Table(
    "cell_account_value",
    metadata,
    Column("cell_id", String(128), nullable=False),
    Column("account_id", String(128), nullable=False),
    Column("lines", Float, nullable=False),
    Column("arpu", Float, nullable=False),
    Column("services", Integer, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    PrimaryKeyConstraint("cell_id", "account_id"),
    Index("ix_cell_account_value_account", "account_id"),
)

# Every line's value class (its account's segment and VIP flag, as the value rule reads them) and
# ARPU: within one class, value order is ARPU order whatever the multipliers, so the lines sorted by
# value are a merge of one index walk per class (dashboard.store.line_values).
line_values = Table(
    "line_values",
    metadata,
    Column("subscriber_id", String(128), nullable=False),
    Column("source", String(64), nullable=False),
    Column("segment", String(16), nullable=False),
    Column("vip", Boolean, nullable=False),
    Column("arpu", Float, nullable=False),  # 0 when unknown, as the value rule counts it
    PrimaryKeyConstraint("subscriber_id", "source"),
)
Index(
    "ix_line_values_rank",
    line_values.c.segment,
    line_values.c.vip,
    line_values.c.arpu.desc(),
    line_values.c.subscriber_id,
    line_values.c.source,
)

# The cells an incident affects and the share of each cell's service degraded (1.0 = down).
incident_cells = Table(
    "incident_cells",
    metadata,
    Column("incident_id", String(128), nullable=False),
    Column("cell_id", String(128), nullable=False),
    Column("degraded_share", Float, nullable=False),
    # "kpi" when measured from the cell's KPIs, "assumed" before any sample arrived.
    Column("basis", String(16), nullable=False),
    Column("baseline_throughput", Float, nullable=True),
    Column("measured_period", DateTime, nullable=True),
    PrimaryKeyConstraint("incident_id", "cell_id"),
    Index("ix_incident_cells_cell", "cell_id"),
)

# How many subscribers (not churned) the cells an incident degrades serve, counted by the queue
# refresh (dashboard.incidents.reach) for the set of cells named by cells_key, so the incident's
# detail reads one row instead of counting its lines.
incident_reach = Table(
    "incident_reach",
    metadata,
    Column("incident_id", String(128), primary_key=True),
    Column("subscribers", Integer, nullable=False),
    Column("cells_key", String(64), nullable=False),  # digest of the degraded cells' ids
    Column("computed_at", DateTime, nullable=False),
)

# What an incident's detail shows of the accounts it affects, measured by the queue refresh
# (dashboard.incidents.summary) for the inputs named by inputs_key: one row per incident with the
# totals, and its accounts by value (position 0 first). Names are stored as they are shown
# (dashboard.privacy.account_name: a consumer's, its holder's, masked), as every role reads them.
incident_detail_summary = Table(
    "incident_detail_summary",
    metadata,
    Column("incident_id", String(128), primary_key=True),
    Column("inputs_key", String(64), nullable=False),  # digest of opened_at, cells, shares, rules
    Column("accounts", Integer, nullable=False),
    Column("lines", Float, nullable=False),
    Column("computed_at", DateTime, nullable=False),
)

incident_detail_accounts = Table(
    "incident_detail_accounts",
    metadata,
    Column("incident_id", String(128), nullable=False),
    Column("position", Integer, nullable=False),
    Column("account_id", String(128), nullable=False),
    Column("name", String(256), nullable=True),  # as shown: a consumer's masked
    Column("segment", String(16), nullable=False),
    Column("vip", Boolean, nullable=False),
    Column("lines", Float, nullable=False),
    Column("services", Integer, nullable=False),
    Column("arpu", Float, nullable=False),
    Column("degraded_share", Float, nullable=False),
    Column("restore_minutes", Float, nullable=True),
    Column("deadline", DateTime, nullable=True),
    Column("running", Boolean, nullable=False),
    Column("penalty_per_hour", Float, nullable=False),
    Column("account_manager", String(128), nullable=True),
    Column("value", Float, nullable=False),
    PrimaryKeyConstraint("incident_id", "position"),
    Index("ix_incident_detail_accounts_account", "account_id"),
)

# The rest of what an incident's detail reads that grows with its cells, kept by the queue refresh
# (dashboard.incidents.kept): per incident and part ("cells", "kpis"), a digest of the inputs the
# part was measured from; its cells as the detail lists them (position 0 first, the most degraded);
# and the mean of each impact KPI over its cells per period (by period, then KPI).
incident_detail_keys = Table(
    "incident_detail_keys",
    metadata,
    Column("incident_id", String(128), nullable=False),
    Column("part", String(16), nullable=False, info={"enum": ["cells", "kpis"]}),
    Column("inputs_key", String(64), nullable=False),
    Column("computed_at", DateTime, nullable=False),
    PrimaryKeyConstraint("incident_id", "part"),
)

incident_detail_cells = Table(
    "incident_detail_cells",
    metadata,
    Column("incident_id", String(128), nullable=False),
    Column("position", Integer, nullable=False),
    Column("cell_id", String(128), nullable=False),
    Column("name", String(128), nullable=True),
    Column("technology", String(8), nullable=True),
    Column("site_id", String(128), nullable=True),
    Column("site", String(128), nullable=True),
    Column("lat", Float, nullable=True),
    Column("lon", Float, nullable=True),
    Column("degraded_share", Float, nullable=False),
    Column("basis", String(16), nullable=False),
    Column("measured_period", DateTime, nullable=True),
    Column("lines", Float, nullable=False),
    PrimaryKeyConstraint("incident_id", "position"),
)

incident_detail_kpis = Table(
    "incident_detail_kpis",
    metadata,
    Column("incident_id", String(128), nullable=False),
    Column("position", Integer, nullable=False),
    Column("period_start", DateTime, nullable=False),
    Column("kpi", String(64), nullable=False),
    Column("value", Float, nullable=False),
    PrimaryKeyConstraint("incident_id", "position"),
)

# The ranked queue as of computed_at: one row per open, acknowledged or recently resolved incident.
incident_queue = Table(
    "incident_queue",
    metadata,
    Column("incident_id", String(128), primary_key=True),
    Column("rank", Integer, nullable=True),  # None once resolved
    Column("score", Float, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("title", String(256), nullable=False),
    Column("region_id", String(128), nullable=True),
    Column("owner", String(128), nullable=True),
    Column("opened_at", DateTime, nullable=False),
    Column("resolved_at", DateTime, nullable=True),
    Column("kind", String(16), nullable=True),  # alarm or detected (incidents.kind)
    Column("cells", Integer, nullable=False),
    Column("lines", Float, nullable=False),
    Column("consumer_lines", Float, nullable=False),
    Column("smb_lines", Float, nullable=False),
    Column("enterprise_lines", Float, nullable=False),
    Column("vip_lines", Float, nullable=False),
    Column("accounts", Integer, nullable=False),  # business accounts affected
    Column("value", Float, nullable=False),
    Column("revenue_at_risk_per_hour", Float, nullable=False),
    Column("penalty_per_hour", Float, nullable=False),
    Column("sla_accounts", Integer, nullable=False),
    Column("sla_breached", Integer, nullable=False),
    Column("sla_deadline", DateTime, nullable=True),  # the earliest running SLA clock
    Column("sla_account_id", String(128), nullable=True),
    Column("sentiment", Float, nullable=True),
    Column("churn_risk", Float, nullable=True),
    Column("breakdown", Text, nullable=False),  # JSON: factors, weights, contributions
    Column("reason", Text, nullable=False),
    Column("computed_at", DateTime, nullable=False),
    Index("ix_incident_queue_rank", "rank"),
)

incident_notes = Table(
    "incident_notes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", String(128), nullable=False, index=True),
    Column("author", String(128), nullable=False),
    Column("text", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
)


# --- KPI evaluation and linkage ----------------------------------------------------------------
# Written by dashboard.kpi_eval and dashboard.linkage. Measures are additive, so a roll-up row holds
# sums (and the weight they were summed with); a KPI's value at any level and period is computed
# from them by its formula, and coarser periods or levels add rows up before dividing.

KPI_LEVELS = ["cell", "site", "region", "segment", "network"]

# One series (a sampled KPI or a measure) per level, entity and period of a grain.
kpi_rollups = Table(
    "kpi_rollups",
    metadata,
    Column("series", String(64), nullable=False),  # a KPI name (samples) or a measure name
    Column("level", String(16), nullable=False, info={"enum": KPI_LEVELS}),
    Column("entity_id", String(128), nullable=False),  # "all" at network level
    Column("grain_s", Integer, nullable=False),
    Column("period_start", DateTime, nullable=False),
    Column("total", Float, nullable=False),  # sum of values (x weight for traffic_weighted)
    Column("weight", Float, nullable=False),  # sum of weights: samples, traffic, or 1 per period
    Column("low", Float, nullable=True),
    Column("high", Float, nullable=True),
    Column("computed_at", DateTime, nullable=False),
    PrimaryKeyConstraint("series", "level", "entity_id", "grain_s", "period_start"),
    # Reads and replacements are per series, level, grain and period range (migration 0006).
    Index("ix_kpi_rollups_series_period", "series", "level", "grain_s", "period_start"),
)

# The current status of a KPI per level and entity against its thresholds, honouring `for`.
kpi_status = Table(
    "kpi_status",
    metadata,
    Column("kpi", String(64), nullable=False),
    Column("level", String(16), nullable=False, info={"enum": KPI_LEVELS}),
    Column("entity_id", String(128), nullable=False),
    Column("status", String(16), nullable=False),  # ok, warning, critical, no_data
    Column("value", Float, nullable=True),
    Column("period_start", DateTime, nullable=True),  # the period the value belongs to
    Column("since", DateTime, nullable=True),  # when the current status began
    Column("evaluated_at", DateTime, nullable=False),
    PrimaryKeyConstraint("kpi", "level", "entity_id"),
    Index("ix_kpi_status_level_status", "level", "status"),
)

# The seasonal baseline of a KPI series (one KPI of one cell, site or region): per slot (quarter hour
# of a weekday 0-95, of a weekend day 96-191) its robust level and scale and how many values taught
# it (dashboard/kpi_eval/baseline.py; migration 0009).
kpi_baselines = Table(
    "kpi_baselines",
    metadata,
    Column("kpi", String(64), nullable=False),
    Column("level", String(16), nullable=False, info={"enum": KPI_LEVELS}),
    Column("entity_id", String(128), nullable=False),
    Column("slot", SmallInteger, nullable=False),
    Column("mean", Float, nullable=False),
    Column("scale", Float, nullable=False),
    Column("n", Integer, nullable=False),
    # A pass reads and rewrites the slots of the periods it learns from, for every series at once.
    PrimaryKeyConstraint("slot", "kpi", "level", "entity_id"),
    Index("ix_kpi_baselines_series", "kpi", "level", "entity_id"),
)

# The latest verdict of each KPI series against its baseline: learning, normal or anomalous, with
# the period it was read at, the usual value and scale there, and how long the state has held.
kpi_anomalies = Table(
    "kpi_anomalies",
    metadata,
    Column("kpi", String(64), nullable=False),
    Column("level", String(16), nullable=False, info={"enum": KPI_LEVELS}),
    Column("entity_id", String(128), nullable=False),
    Column("state", String(16), nullable=False, info={"enum": ANOMALY_STATES}),
    Column("period_start", DateTime, nullable=True),
    Column("value", Float, nullable=True),
    Column("expected", Float, nullable=True),
    Column("scale", Float, nullable=True),
    Column("z", Float, nullable=True),
    Column("deviation", Float, nullable=True),  # (value - expected) / |expected|
    Column("run", Integer, nullable=False),  # consecutive out-of-band periods
    Column("calm", Integer, nullable=False),  # consecutive in-band periods
    Column("since", DateTime, nullable=True),  # when the current state began
    Column("worst_deviation", Float, nullable=True),  # of the current anomaly
    Column("evaluated_at", DateTime, nullable=False),
    PrimaryKeyConstraint("kpi", "level", "entity_id"),
    Index("ix_kpi_anomalies_state", "state"),
)

# A measured link from a driver KPI to a target KPI, in a scope ("all", "region:<id>",
# "segment:<name>"), with its effect per `step` of the driver and the evidence behind it.
kpi_links = Table(
    "kpi_links",
    metadata,
    Column("driver", String(64), nullable=False),
    Column("target", String(64), nullable=False),
    Column("scope", String(160), nullable=False),
    Column("declared", Boolean, nullable=False),  # in the catalogue's drives, or discovered
    Column("expected", String(8), nullable=True),  # positive / negative for declared links
    Column("level", String(16), nullable=False),  # the entities the panel was built over
    Column("grain_s", Integer, nullable=False),
    Column("step", Float, nullable=False),
    Column("effect", Float, nullable=True),  # change of the target per step of the driver
    Column("ci_low", Float, nullable=True),
    Column("ci_high", Float, nullable=True),
    Column("lag_s", Integer, nullable=True),
    Column("n", Integer, nullable=False),
    Column("p_value", Float, nullable=True),
    Column("strength", String(16), nullable=False),  # strong, moderate, weak, contradicted, no_data
    Column("sentence", Text, nullable=False),
    Column("evidence", JSON, nullable=True),  # lag profile, binned scatter, fit
    Column("since", DateTime, nullable=True),
    Column("until", DateTime, nullable=True),
    Column("computed_at", DateTime, nullable=False),
    PrimaryKeyConstraint("driver", "target", "scope"),
)

# --- Playbooks: the outbox and what it needs -----------------------------------------------
# Written by dashboard.playbooks. Every action a playbook decides is one row of ``actions``,
# inserted in the transaction that decided it and keyed by (playbook, step, subject, target), so a
# re-evaluation, a restart or a second scheduler can never queue it twice.

#: queued -> sending -> sent | failed; awaiting_approval -> queued | rejected; queued or
#: awaiting_approval -> cancelled; suppressed (the contact policy), dry_run (decided, never sent),
#: held_out (a retention offer's randomised hold-out), uncertain (a process died while sending on a
#: channel that cannot tell a repeat: never sent again unless a person says so).
ACTION_STATES = [
    "queued",
    "sending",
    "sent",
    "failed",
    "awaiting_approval",
    "rejected",
    "cancelled",
    "suppressed",
    "dry_run",
    "held_out",
    "uncertain",
]

actions = Table(
    "actions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # sha256 of (playbook, step, subject, target), hex: the outbox's uniqueness and the idempotency
    # key every delivery carries.
    Column("key", String(64), nullable=False),
    Column("playbook", String(64), nullable=False),
    Column("step", String(64), nullable=False),
    Column("trigger", String(32), nullable=False),
    Column("action", String(64), nullable=False),  # the configured action (settings: actions[].name)
    Column("action_type", String(32), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("incident_id", String(128), nullable=True),
    Column("account_id", String(128), nullable=True),
    Column("subscriber_id", String(128), nullable=True),
    # Whom the key names (incident:<id>, account:<id>, line:<id>, manager:<name>) and, for a
    # customer, the party the contact policy counts against (account:<id> or line:<id>).
    Column("target", String(192), nullable=False),
    Column("party", String(160), nullable=True),
    Column("dedupe_group", String(64), nullable=True),
    Column("address", String(256), nullable=True, info={"personal": True}),
    Column("subject", String(256), nullable=True),
    Column("body", Text, nullable=True),
    Column("payload", JSON, nullable=True),  # structured fields for the action type
    Column("state", String(24), nullable=False, info={"enum": ACTION_STATES}),
    Column("reason", Text, nullable=True),
    # Money: what the action costs the operator and what it promises the customer (a credit, an offer).
    Column("cost", Float, nullable=True),
    Column("promised", Float, nullable=True),
    Column("offer", String(64), nullable=True),
    Column("expected_value", Float, nullable=True),
    Column("not_before", DateTime, nullable=True),  # quiet hours: not delivered before this
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime, nullable=True),
    Column("claimed_by", String(64), nullable=True),
    Column("claimed_at", DateTime, nullable=True),
    Column("reference", String(256), nullable=True),  # the receiver's id: ticket, message
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("sent_at", DateTime, nullable=True),
    Column("decided_by", String(128), nullable=True),  # who approved, rejected, cancelled or resent
    Column("decided_at", DateTime, nullable=True),
    UniqueConstraint("key"),
    Index("ix_actions_state_due", "state", "next_attempt_at"),
    Index("ix_actions_incident_id", "incident_id"),
    Index("ix_actions_subscriber_id", "subscriber_id"),
    Index("ix_actions_account_id", "account_id"),
    Index("ix_actions_party", "party", "created_at"),
    Index("ix_actions_created_at", "created_at"),
)

# Customers who asked not to be contacted, per channel ("*": on every channel).
contact_optouts = Table(
    "contact_optouts",
    metadata,
    Column("party", String(160), nullable=False),  # account:<id> or line:<id>
    Column("channel", String(16), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("source", String(64), nullable=False),  # who recorded it: a user, the opt-out link
    PrimaryKeyConstraint("party", "channel"),
)

# Lines an incident hit, with their churn risk when it first hit them: a retention playbook
# fires when a line's risk later crosses its band.
line_exposures = Table(
    "line_exposures",
    metadata,
    Column("subscriber_id", String(128), nullable=False),
    Column("incident_id", String(128), nullable=False),
    Column("account_id", String(128), nullable=True),
    Column("risk_at_hit", Float, nullable=True),
    Column("hit_at", DateTime, nullable=False),
    PrimaryKeyConstraint("subscriber_id", "incident_id"),
    Index("ix_line_exposures_hit_at", "hit_at"),
    Index("ix_line_exposures_incident_id", "incident_id"),
)

# What the built-in loopback sinks received (the demo's SMTP server, SMS gateway and ticket system).
loopback_messages = Table(
    "loopback_messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("channel", String(16), nullable=False),
    Column("received_at", DateTime, nullable=False),
    Column("to", String(256), nullable=True, info={"personal": True}),
    Column("subject", String(256), nullable=True),
    Column("body", Text, nullable=True),
    Column("reference", String(256), nullable=True),
    Column("key", String(64), nullable=True),
    Index("ix_loopback_messages_received_at", "received_at"),
)

# Which scheduler leads each job family (dashboard.leader): written by the leader as it takes over,
# steps down and beats; /healthz reads it. The lock itself is held elsewhere (an advisory lock).
scheduler_leaders = Table(
    "scheduler_leaders",
    metadata,
    Column("family", String(32), primary_key=True),
    # host:pid of the leading process; NULL once it stepped down or stopped.
    Column("holder", String(128), nullable=True),
    Column("since", DateTime, nullable=True),
    Column("seen_at", DateTime, nullable=False),
    Column("runs", Integer, nullable=False, default=0),
    Column("last_job", String(64), nullable=True),
    Column("last_run_at", DateTime, nullable=True),
)

# The KPI roll-up pass finds the tickets and churn events ingested since its watermark (migration 0006).
Index("ix_tickets_ingested_at", tickets.c.ingested_at)
Index("ix_churn_events_ingested_at", churn_events.c.ingested_at)
