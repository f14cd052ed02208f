"""Option building blocks shared by connectors: durations and name -> entity rules."""

from __future__ import annotations

import re
from re import Pattern
from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr, model_validator

from connectors.canonical import check_entity_type

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"1h"``, ``"1d"`` or ``"500ms"``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 15m or 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    else:
        raise ValueError(f"expected a duration such as 30s, 15m or 1h, got {value!r}")
    if seconds <= 0:
        raise ValueError(f"expected a positive duration, got {value!r}")
    return seconds


class EntityRule(BaseModel):
    """A source's object name -> an entity: a regex whose named group ``id`` is the entity id."""

    model_config = ConfigDict(extra="forbid")

    pattern: str
    entity_type: str = "cell"

    _regex: Pattern[str] = PrivateAttr()

    @model_validator(mode="after")
    def _compile(self) -> EntityRule:
        try:
            self._regex = re.compile(self.pattern)
        except re.error as err:
            raise ValueError(f"pattern {self.pattern!r} is not a valid regex: {err}") from None
        if "id" not in self._regex.groupindex:
            raise ValueError(f"pattern {self.pattern!r} needs a named group (?P<id>...)")
        check_entity_type(self.entity_type)
        return self

    def match(self, name: str) -> str | None:
        m = self._regex.search(name)
        return m.group("id") if m else None
