"""Wall (/wall; / redirects here): the NOC wall screen, read from across the room, left on for weeks.

The page is a static frame; assets/wall.js fills it from ``GET /api/v1/wall`` (dashboard/wall.py),
asking only for the panels that changed, one request at a time, none while the tab is hidden, and
reloads itself once a day. It rotates through the configured playlist (``wall`` in vantage.yaml),
jumps to the incidents view for a new critical or VIP/enterprise incident, and says DATA STALE when
a source is late or the server cannot be reached. ``?kiosk=1`` hides the navigation and the cursor.
"""

from __future__ import annotations

import json
from typing import Any

import dash
from dash import html

from dashboard import ids
from dashboard.context import current_settings
from dashboard.wall import PANELS

dash.register_page(__name__, access="read", path="/wall", name="Wall", title="Vantage · Wall", order=0)

VIEW_LABELS = {"overview": "Overview", "incidents": "Incidents", "map": "Network map", "kpis": "KPIs"}


def wall_config(kiosk: bool) -> dict[str, Any]:
    """What the screen needs to know before its first request (rendered into the page)."""
    wall = current_settings().wall
    return {
        "api": "/api/v1/wall",
        "refreshMs": int(wall.refresh_s * 1000),
        "reloadAfterMs": int(wall.reload_after_s * 1000),
        "jumpHoldMs": int(wall.jump_hold_s * 1000),
        "top": wall.top,
        "playlist": [
            {"view": v.view, "label": VIEW_LABELS[v.view], "ms": int(v.seconds * 1000)} for v in wall.playlist
        ],
        "kiosk": kiosk,
        "panels": list(PANELS),
        "currency": current_settings().currency,
    }


def layout(kiosk: str = "", **_query: str) -> html.Div:
    on = kiosk.lower() in ("1", "true", "yes")
    data: dict[str, Any] = {"data-config": json.dumps(wall_config(on))}
    return html.Div(
        html.Div(
            html.Noscript("The wall needs JavaScript."),
            id=ids.WALL_ROOT,
            className="vt-wall-root" + (" vt-kiosk" if on else ""),
            **data,
        ),
        className="vt-wall-page",
    )


def register_callbacks(app: dash.Dash) -> None:
    """None: assets/wall.js drives the wall (no Dash callback runs on it)."""
