"""Outbound action types, the one way back out: e-mail, SMS, chat, tickets, alarm tasks and HTTP calls."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.actions.base import Action, ActionOptions, Delivery, FatalError, Message, RetriableError
from connectors.actions.email import SmtpAction
from connectors.actions.http_actions import HttpEndpointAction, SmsHttpAction, WebhookAction
from connectors.actions.tmf import Tmf621TicketAction, Tmf642AlarmAction
from connectors.base import VantageError

__all__ = [
    "ACTION_TYPES",
    "Action",
    "ActionOptions",
    "Delivery",
    "FatalError",
    "Message",
    "RetriableError",
    "UnknownActionType",
    "build_action",
    "get_action_class",
]

#: Every action type by the ``type`` configuration names it with.
ACTION_TYPES: dict[str, type[Action[Any]]] = {
    cls.type_name: cls
    for cls in (
        SmtpAction,
        SmsHttpAction,
        WebhookAction,
        HttpEndpointAction,
        Tmf621TicketAction,
        Tmf642AlarmAction,
    )
}


class UnknownActionType(VantageError, KeyError):
    """Configuration names an action type that does not exist; the message lists those that do."""

    def __str__(self) -> str:
        # KeyError would show the message quoted, as if it were the key.
        return str(self.args[0]) if self.args else ""


def get_action_class(type_name: str) -> type[Action[Any]]:
    """The action class registered as ``type_name``; ``UnknownActionType`` (a KeyError) otherwise."""
    try:
        return ACTION_TYPES[type_name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(ACTION_TYPES))
        raise UnknownActionType(f"unknown action type {type_name!r} (known: {known})") from None


def build_action(
    type_name: str, options: Mapping[str, Any], *, name: str, environ: Mapping[str, str] | None = None
) -> Action[Any]:
    """An action of ``type_name`` with ``options`` validated by its ``Options`` model.

    Raises ``UnknownActionType`` for a type nobody registered and pydantic's ``ValidationError`` (a
    ValueError) for options the model refuses, as connector options do.
    """
    cls = get_action_class(type_name)
    return cls(cls.Options.model_validate(dict(options)), name=name, environ=environ)
