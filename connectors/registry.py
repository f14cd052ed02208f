"""The connector registry: every connector, built-in or not, is found through one entry-point group."""

from __future__ import annotations

import logging
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from connectors.base import Connector, VantageError

ENTRY_POINT_GROUP = "vantage.connectors"


log = logging.getLogger(__name__)


class UnknownConnectorType(VantageError, KeyError):
    """Raised when configuration names a connector type nobody registered."""


class ConnectorLoadError(VantageError, ImportError):
    """A registered connector type whose code cannot be imported."""


_extra: dict[str, type[Connector[Any]]] = {}


def register(cls: type[Connector[Any]]) -> type[Connector[Any]]:
    """Register a connector class in-process (tests, notebooks); packages use the entry point."""
    _extra[cls.type] = cls
    return cls


def _load(ep: EntryPoint) -> type[Connector[Any]]:
    try:
        cls = ep.load()
    except Exception as err:
        raise ConnectorLoadError(f"connector type {ep.name!r} ({ep.value}) failed to load: {err}") from err
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise ConnectorLoadError(
            f"entry point {ep.name!r} in {ENTRY_POINT_GROUP} is not a Connector: {cls!r}"
        )
    return cls


def names() -> list[str]:
    """Every registered connector type, loaded or not."""
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)} | set(_extra))


def available() -> dict[str, type[Connector[Any]]]:
    """All connector classes by type: the entry-point group, then in-process registrations.

    A plugin that fails to import is logged and left out, so one broken package does not stop
    the others; asking for it by name with ``get`` raises its error.
    """
    found: dict[str, type[Connector[Any]]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            found[ep.name] = _load(ep)
        except ConnectorLoadError as err:
            log.warning("%s", err)
    found.update(_extra)
    return found


def get(type_name: str) -> type[Connector[Any]]:
    if type_name in _extra:
        return _extra[type_name]
    for ep in entry_points(group=ENTRY_POINT_GROUP, name=type_name):
        return _load(ep)
    known = ", ".join(names()) or "none"
    raise UnknownConnectorType(f"unknown connector type {type_name!r} (known: {known})")
