"""The one look of Vantage: the plotly template, the data-grid theme and the severity colours.

They match ``assets/00-bootstrap-darkly.min.css`` (Bootswatch Darkly) and ``assets/10-vantage.css``.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

BACKGROUND = "#222222"
SURFACE = "#303030"
TEXT = "#ffffff"
MUTED = "#adb5bd"
GRID = "#444444"
ACCENT = "#00bc8c"
FONT_FAMILY = '-apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif'

#: Severity colours, most severe first; ``cleared`` is calm.
SEVERITY_COLOURS: dict[str, str] = {
    "critical": "#e74c3c",
    "major": "#fd7e14",
    "minor": "#f39c12",
    "warning": "#3498db",
    "indeterminate": "#888888",
    "cleared": "#00bc8c",
}

SERIES = [ACCENT, "#3498db", "#f39c12", "#e74c3c", "#6f42c1", "#20c997", "#e83e8c", "#adb5bd"]

TEMPLATE = go.layout.Template(
    layout=go.Layout(
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        font={"family": FONT_FAMILY, "color": TEXT, "size": 15},
        title={"font": {"size": 18}, "x": 0.0, "xanchor": "left"},
        colorway=SERIES,
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        xaxis={"gridcolor": GRID, "linecolor": GRID, "zerolinecolor": GRID, "tickfont": {"color": MUTED}},
        yaxis={"gridcolor": GRID, "linecolor": GRID, "zerolinecolor": GRID, "tickfont": {"color": MUTED}},
        legend={"bgcolor": "rgba(0,0,0,0)", "font": {"color": TEXT}},
        hoverlabel={"bgcolor": SURFACE, "font": {"color": TEXT, "family": FONT_FAMILY}},
    )
)

#: ``dashGridOptions`` entry giving every AG Grid the dark look (AG Grid theming API).
GRID_THEME: dict[str, Any] = {
    "function": (
        "themeQuartz.withParams({"
        f"backgroundColor: '{BACKGROUND}', foregroundColor: '{TEXT}', "
        f"headerBackgroundColor: '{SURFACE}', accentColor: '{ACCENT}', "
        f"borderColor: '{GRID}', fontFamily: 'inherit', fontSize: 15, headerFontSize: 15, "
        "oddRowBackgroundColor: '#282828'"
        "})"
    )
}


def grid_options(**extra: Any) -> dict[str, Any]:
    """``dashGridOptions`` with the Vantage theme plus ``extra`` grid options."""
    return {"theme": GRID_THEME, **extra}
