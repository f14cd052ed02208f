"""Entry point: `python app.py` serves the dashboard; `gunicorn app:server` serves it in production.

Building the app reads the settings file and nothing else; the store is first queried when a page
is visited. Connector jobs are not started here: `vantage run` embeds them, `vantage scheduler`
runs them in their own process.
"""

from __future__ import annotations

import sys

from dashboard.app import create_app
from dashboard.config import load_settings

app = create_app(load_settings())
server = app.server

if __name__ == "__main__":
    from dashboard.cli import main

    sys.exit(main(["run", *sys.argv[1:]]))
