"""Component ids of the shell and every page, in one place, prefixed by page."""

from __future__ import annotations

# --- Shell (navbar and the overview strip on every page) -----------------------------------
SHELL_INTERVAL = "shell-interval"
SHELL_STRIP = "shell-strip"
SHELL_STRIP_LAST = "shell-strip-last"  # dcc.Store: the last overview read successfully
#: Pattern-matching type of one figure of the strip: {"type": SHELL_METRIC, "metric": name}.
SHELL_METRIC = "shell-metric"

# --- Wall ----------------------------------------------------------------------------------
WALL_INTERVAL = "wall-interval"
WALL_TILES = "wall-tiles"
#: {"type": WALL_TILE, "metric": name}: one large tile.
WALL_TILE = "wall-tile"

# --- Incidents -----------------------------------------------------------------------------
INCIDENTS_SEVERITY = "incidents-severity"
INCIDENTS_GRID = "incidents-grid"
INCIDENTS_COUNT = "incidents-count"

# --- Linkage -------------------------------------------------------------------------------
LINKAGE_KPI = "linkage-kpi"
LINKAGE_GRAPH = "linkage-graph"

# --- Subscribers ---------------------------------------------------------------------------
SUBSCRIBERS_QUERY = "subscribers-query"
SUBSCRIBERS_RESULT = "subscribers-result"

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
