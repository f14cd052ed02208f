"""Query-string parameters of the JSON API: one parser per shape, one error naming what was expected.

Every parser takes the request's arguments (any mapping of str to str), returns a typed value and
raises :class:`BadParameter` for a value it cannot use; the API answers that with 400 and a JSON
body naming the parameter, what was expected and what was given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dashboard.errors import VantageError

Args = Mapping[str, str]
#: How much of a bad value an error message repeats.
_ECHO = 40
_TRUE = ("1", "true", "yes")
_FALSE = ("0", "false", "no")


class BadParameter(VantageError, ValueError):
    """A query parameter that cannot be used: which one, what was expected, what was given."""

    def __init__(self, name: str, expected: str, got: object = None) -> None:
        self.name = name
        self.expected = expected
        self.got = got
        shown = f", got {_echo(got)}" if got is not None else ""
        super().__init__(f"{name}: expected {expected}{shown}")


def _echo(value: object) -> str:
    if not isinstance(value, str):
        return repr(value)
    return repr(value[:_ECHO] + ("…" if len(value) > _ECHO else ""))


def _raw(args: Args, name: str) -> str | None:
    value = args.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def bounded_int(args: Args, name: str, *, default: int, lo: int, hi: int) -> int:
    """An integer from ``lo`` to ``hi`` (``default`` when absent)."""
    raw = _raw(args, name)
    if raw is None:
        return default
    expected = f"an integer from {lo} to {hi}"
    # Digits only, and few of them: int() of a huge string is slow and such a value is out of range.
    if len(raw) > 19 or not raw.lstrip("-").isdigit():
        raise BadParameter(name, expected, raw)
    value = int(raw)
    if not lo <= value <= hi:
        raise BadParameter(name, expected, value)
    return value


def one_of(args: Args, name: str, choices: Sequence[str], *, default: str | None = None) -> str | None:
    """One of ``choices`` (compared in lower case), ``default`` when absent."""
    raw = _raw(args, name)
    if raw is None:
        return default
    value = raw.lower()
    if value not in choices:
        raise BadParameter(name, f"one of {', '.join(choices)}", raw)
    return value


def many_of(args: Args, name: str, choices: Sequence[str]) -> list[str] | None:
    """A comma-separated list of ``choices`` (None when absent)."""
    raw = _raw(args, name)
    if raw is None:
        return None
    values = [v.strip().lower() for v in raw.split(",") if v.strip()]
    for value in values:
        if value not in choices:
            raise BadParameter(name, f"one or more of {', '.join(choices)} (comma-separated)", value)
    return values or None


def flag(args: Args, name: str, *, default: bool = False) -> bool:
    """A boolean: 1/true/yes or 0/false/no."""
    raw = _raw(args, name)
    if raw is None:
        return default
    value = raw.lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise BadParameter(name, "true or false (1 or 0)", raw)


def text(args: Args, name: str, *, max_length: int = 128) -> str | None:
    """Free text of at most ``max_length`` characters (None when absent)."""
    raw = _raw(args, name)
    if raw is not None and len(raw) > max_length:
        raise BadParameter(name, f"at most {max_length} characters", raw)
    return raw


def cursor(args: Args, name: str = "cursor", *, max_length: int = 512) -> str | None:
    """An opaque paging cursor as the previous page returned it (None when absent)."""
    raw = _raw(args, name)
    if raw is not None and len(raw) > max_length:
        raise BadParameter(name, "a cursor returned by the previous page", raw)
    return raw
