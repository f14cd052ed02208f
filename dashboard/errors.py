"""The one exception base: every error Vantage raises on purpose derives from :class:`VantageError`.

It is defined with the connector protocol (connectors never import the dashboard) and re-exported
here for the rest of the code. The trees under it: ``ConnectorError`` (retriable or fatal source
failures), ``ConfigError`` (settings and catalogue, with exact paths), ``StoreError``,
``PermissionDenied``, and the bad-input errors of each engine (``SearchError``, ``KpiReadError``,
``ChurnError``, ``ActionError``, ``ExpressionError``...), which are also ``ValueError``.
"""

from connectors.base import VantageError

__all__ = ["VantageError"]
