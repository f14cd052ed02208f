"""Component ids of the shell and every page, in one place, prefixed by page."""

from __future__ import annotations

# --- Shell (navbar and the overview strip on every page) -----------------------------------
SHELL_INTERVAL = "shell-interval"
SHELL_STRIP = "shell-strip"
SHELL_WHO = "shell-who"
SHELL_LOGOUT = "shell-logout"
SHELL_PREPARING = "shell-preparing"  # the preparation banner while a fresh store is prepared
SHELL_PREPARING_INTERVAL = "shell-preparing-interval"
SHELL_STRIP_LAST = "shell-strip-last"  # dcc.Store: the last overview read successfully
#: Pattern-matching type of one figure of the strip: {"type": SHELL_METRIC, "metric": name}.
SHELL_METRIC = "shell-metric"

# --- Wall ----------------------------------------------------------------------------------
#: The wall's frame; assets/wall.js builds and updates everything inside it (ids "wall-...").
WALL_ROOT = "wall-root"

# --- Incidents -----------------------------------------------------------------------------
INCIDENTS_INTERVAL = "incidents-interval"
INCIDENTS_URL = "incidents-url"  # dcc.Location: the filters and selection as the query string
INCIDENTS_REGION = "incidents-region"
INCIDENTS_SEGMENT = "incidents-segment"
INCIDENTS_SEVERITY = "incidents-severity"
INCIDENTS_STATE = "incidents-state"
INCIDENTS_OWNER = "incidents-owner"
INCIDENTS_SUMMARY = "incidents-summary"
INCIDENTS_GRID = "incidents-grid"
INCIDENTS_SELECTED = "incidents-selected"  # dcc.Store: the incident shown in the detail panel
INCIDENTS_ACTED = "incidents-acted"  # dcc.Store: bumped after each action, to re-read
INCIDENTS_DETAIL = "incidents-detail"
INCIDENTS_DETAIL_HEADER = "incidents-detail-header"
INCIDENTS_DETAIL_BODY = "incidents-detail-body"
INCIDENTS_CLOSE = "incidents-close"
INCIDENTS_ACK = "incidents-ack"
INCIDENTS_OWNER_INPUT = "incidents-owner-input"
INCIDENTS_ASSIGN = "incidents-assign"
INCIDENTS_NOTE_TEXT = "incidents-note-text"
INCIDENTS_NOTE_ADD = "incidents-note-add"
INCIDENTS_ACTION_RESULT = "incidents-action-result"
INCIDENTS_EXPORT = "incidents-export"
INCIDENTS_DOWNLOAD = "incidents-download"
#: {"type": INCIDENTS_SUBSCRIBERS, "incident": id}: the affected subscribers of one incident,
#: one grid per incident so a new selection starts a fresh server-side row model.
INCIDENTS_SUBSCRIBERS = "incidents-subscribers"
INCIDENTS_SUBSCRIBERS_BOX = "incidents-subscribers-box"

# --- Linkage -------------------------------------------------------------------------------
LINKAGE_URL = "linkage-url"  # dcc.Location: filters and the selected link as the query string
LINKAGE_REGION = "linkage-region"
LINKAGE_SEGMENT = "linkage-segment"
LINKAGE_RANGE = "linkage-range"
LINKAGE_NOTE = "linkage-note"
LINKAGE_CARDS = "linkage-cards"
#: {"type": LINKAGE_CARD, "kpi": name}: one KPI card.
LINKAGE_CARD = "linkage-card"
LINKAGE_TREE = "linkage-tree"
LINKAGE_LINK = "linkage-link"  # the selected link, "driver->target"
LINKAGE_SELECTED = "linkage-selected"  # dcc.Store: {"key": ..., "scope": the links' scope}
LINKAGE_SENTENCE = "linkage-sentence"
LINKAGE_WHATIF = "linkage-whatif"
LINKAGE_WHATIF_OUT = "linkage-whatif-out"
LINKAGE_EVIDENCE = "linkage-evidence"
LINKAGE_LAGS = "linkage-lags"
LINKAGE_RAR_NOW = "linkage-rar-now"
LINKAGE_RAR = "linkage-rar"
LINKAGE_TABLE = "linkage-table"
#: {"type": LINKAGE_ROW, "key": "driver->target"}: a row of the links table (click selects).
LINKAGE_ROW = "linkage-row"
#: {"type": LINKAGE_CSV, "chart": name}: a chart's "CSV" button.
LINKAGE_CSV = "linkage-csv"
LINKAGE_DOWNLOAD = "linkage-download"
LINKAGE_SUMMARY_LINK = "linkage-summary-link"
#: "KPI against its usual band": the KPI, the level (cell or site), the entity, the chart and verdict.
LINKAGE_VS_KPI = "linkage-vs-kpi"
LINKAGE_VS_LEVEL = "linkage-vs-level"
LINKAGE_VS_ENTITY = "linkage-vs-entity"
LINKAGE_VS_GRAPH = "linkage-vs-graph"
LINKAGE_VS_VERDICT = "linkage-vs-verdict"
SUMMARY_PRINT = "summary-print"

# --- Subscribers (search) ------------------------------------------------------------------
SUBSCRIBERS_URL = "subscribers-url"  # dcc.Location: the search, filters and sort as the query string
SUBSCRIBERS_QUERY = "subscribers-query"
SUBSCRIBERS_SEGMENT = "subscribers-segment"
SUBSCRIBERS_REGION = "subscribers-region"
SUBSCRIBERS_PLAN = "subscribers-plan"
SUBSCRIBERS_RISK = "subscribers-risk"
SUBSCRIBERS_SENTIMENT = "subscribers-sentiment"
SUBSCRIBERS_ACCOUNT = "subscribers-account"
SUBSCRIBERS_AFFECTED = "subscribers-affected"
SUBSCRIBERS_SORT = "subscribers-sort"
SUBSCRIBERS_LIST = "subscribers-list"  # holds the count line and the grid of the current search
#: {"type": SUBSCRIBERS_GRID, "search": token}: the list of one search (token: its query string,
#: encoded), one grid per search so a new search starts a fresh server-side row model.
SUBSCRIBERS_GRID = "subscribers-grid"
#: {"type": SUBSCRIBERS_COUNT, "search": token}: how many match, above that search's grid.
SUBSCRIBERS_COUNT = "subscribers-count"
SUBSCRIBERS_EXPORT = "subscribers-export"
SUBSCRIBERS_EXPORT_NOTE = "subscribers-export-note"
SUBSCRIBERS_DOWNLOAD = "subscribers-download"

# --- Sources -------------------------------------------------------------------------------
SOURCES_INTERVAL = "sources-interval"
SOURCES_STATUS_GRID = "sources-status-grid"
SOURCES_STATUS_AS_OF = "sources-status-as-of"
#: {"type": SOURCES_RUNS_GRID, "connector": name}: the recent runs of one connector.
SOURCES_RUNS_GRID = "sources-runs-grid"
SOURCES_Q_CONNECTOR = "sources-q-connector"
SOURCES_Q_KIND = "sources-q-kind"
SOURCES_Q_SEARCH = "sources-q-search"
SOURCES_Q_PAGE = "sources-q-page"
SOURCES_Q_COUNT = "sources-q-count"
SOURCES_Q_GRID = "sources-q-grid"
SOURCES_Q_DETAIL = "sources-q-detail"

# --- Subscriber 360 ------------------------------------------------------------------------
SUBSCRIBER_ID = "subscriber-id"  # dcc.Store: the subscriber the page shows
SUBSCRIBER_TABS = "subscriber-tabs"  # its active tab is the ?tab= of the deep link
SUBSCRIBER_TAB_BODY = "subscriber-tab-body"  # the content of the active tab, built on demand
SUBSCRIBER_TAB_SYNC = "subscriber-tab-sync"  # dcc.Store: output of the clientside URL update
SUBSCRIBER_UNMASK = "subscriber-unmask"
SUBSCRIBER_UNMASK_RESULT = "subscriber-unmask-result"
#: {"type": SUBSCRIBER_PERSONAL, "field": name}: one personal field, masked until unmasked.
SUBSCRIBER_PERSONAL = "subscriber-personal"
SUBSCRIBER_KPI_GRAPH = "subscriber-kpi-graph"
SUBSCRIBER_TIMELINE = "subscriber-timeline"

# --- Actions (the playbooks' outbox) ----------------------------------------------------------
ACTIONS_INTERVAL = "actions-interval"
ACTIONS_ACTED = "actions-acted"  # dcc.Store: bumped after each decision, to re-read
ACTIONS_SUMMARY = "actions-summary"
ACTIONS_PENDING = "actions-pending"
ACTIONS_RESULT = "actions-result"
ACTIONS_STATE = "actions-state"
ACTIONS_PLAYBOOK = "actions-playbook"
ACTIONS_CHANNEL = "actions-channel"
ACTIONS_COUNT = "actions-count"
ACTIONS_TIMELINE = "actions-timeline"
ACTIONS_LOOPBACK = "actions-loopback"
#: {"type": ACTIONS_DECIDE, "verb": approve|reject|cancel|resend, "action": id}: one button of a
#: pending approval or of a timeline row.
ACTIONS_DECIDE = "actions-decide"

# --- Audit ---------------------------------------------------------------------------------
AUDIT_URL = "audit-url"  # dcc.Location: the filters as the query string
AUDIT_ACTOR = "audit-actor"
AUDIT_ACTION = "audit-action"
AUDIT_TARGET = "audit-target"
AUDIT_SINCE = "audit-since"
AUDIT_UNTIL = "audit-until"
AUDIT_COUNT = "audit-count"
AUDIT_GRID = "audit-grid"
AUDIT_NEWER = "audit-newer"
AUDIT_OLDER = "audit-older"
#: dcc.Store: {"pages": [cursor of each page shown so far, the first None], "next": the next cursor}.
AUDIT_PAGING = "audit-paging"
AUDIT_EXPORT = "audit-export"

# --- Access --------------------------------------------------------------------------------
ACCESS_USERS_GRID = "access-users-grid"
ACCESS_DISABLE = "access-disable"
ACCESS_ENABLE = "access-enable"
ACCESS_USERS_RESULT = "access-users-result"
ACCESS_CHANGED = "access-changed"  # dcc.Store: bumped when a user changes, so the tokens re-read
ACCESS_TOKENS_GRID = "access-tokens-grid"
ACCESS_REVOKE = "access-revoke"
ACCESS_TOKENS_RESULT = "access-tokens-result"
ACCESS_TOKEN_NAME = "access-token-name"
ACCESS_TOKEN_OWNER = "access-token-owner"
ACCESS_TOKEN_ROLE = "access-token-role"
ACCESS_TOKEN_DAYS = "access-token-days"
ACCESS_TOKEN_CREATE = "access-token-create"
ACCESS_TOKEN_CREATED = "access-token-created"  # the new token's text, shown once
