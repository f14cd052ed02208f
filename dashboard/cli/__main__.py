"""``python -m dashboard.cli``: the ``vantage`` command."""

import sys

from dashboard.cli import main

sys.exit(main())
