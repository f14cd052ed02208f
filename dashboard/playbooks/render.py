"""Messages from templates: Jinja2 in its sandbox, with the customer's own context.

The sandbox refuses attribute tricks (``__class__``, ``mro``), undefined names fail loudly at
render time (a template that names a field the context lacks is a bug to see, not a blank), and
the environment is built once per process.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined
from jinja2.nativetypes import NativeCodeGenerator, NativeTemplate, native_concat
from jinja2.sandbox import ImmutableSandboxedEnvironment


def _money(value: Any, currency: str = "") -> str:
    if value is None:
        return "-"
    text = f"{float(value):,.2f}"
    return f"{text} {currency}".strip()


def _when(value: Any, fmt: str = "%d %b %H:%M UTC") -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return str(value.strftime(fmt))


def _minutes(value: Any) -> str:
    if value is None:
        return "-"
    m = round(float(value))
    if abs(m) < 90:
        return f"{m} min"
    return f"{m // 60} h {m % 60:02d} min"


@lru_cache(maxsize=1)
def template_environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, trim_blocks=True)
    env.filters["money"] = _money
    env.filters["when"] = _when
    env.filters["minutes"] = _minutes
    return env


class _NativeSandbox(ImmutableSandboxedEnvironment):
    """The sandbox, rendering a lone expression to its Python value (a list of alarm ids, a number)
    rather than its text: for the structured fields an action type reads."""

    code_generator_class = NativeCodeGenerator
    concat = staticmethod(native_concat)  # type: ignore[assignment]
    template_class = NativeTemplate


@lru_cache(maxsize=1)
def _native_environment() -> _NativeSandbox:
    env = _NativeSandbox(undefined=StrictUndefined, autoescape=False)
    env.filters.update(template_environment().filters)
    return env


@lru_cache(maxsize=512)
def _compiled(text: str) -> Any:
    return template_environment().from_string(text)


@lru_cache(maxsize=512)
def _compiled_native(text: str) -> Any:
    return _native_environment().from_string(text)


def render_data(data: Any, context: dict[str, Any]) -> Any:
    """Structured fields rendered for one target: each string a template giving a value."""
    if isinstance(data, str):
        return _compiled_native(data).render(**context)
    if isinstance(data, dict):
        return {k: render_data(v, context) for k, v in data.items()}
    if isinstance(data, list):
        return [render_data(v, context) for v in data]
    return data


def render(text: str | None, context: dict[str, Any]) -> str | None:
    """``text`` rendered with ``context``; None stays None."""
    if text is None:
        return None
    return str(_compiled(text).render(**context)).strip()
