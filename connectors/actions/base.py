"""The contract of outbound actions: a message in, a delivery (or a typed error) out."""

from __future__ import annotations

import builtins
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, StringConstraints

from connectors.base import FatalError, RetriableError

__all__ = [
    "Action",
    "ActionOptions",
    "Delivery",
    "EnvName",
    "FatalError",
    "Message",
    "RetriableError",
]

#: The name of an environment variable that holds a secret (the secret itself is never configured).
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Z_][A-Z0-9_]*$")]

_KEY = re.compile(r"^[0-9a-fA-F]{1,64}$")


class ActionOptions(BaseModel):
    """Base for an action type's options; unknown keys are an error, so typos surface."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Message:
    """One action to deliver, as the outbox hands it over: already rendered, never carrying secrets."""

    #: Idempotency key: hex, at most 64 characters, the same on every retry of the same action.
    key: str
    #: E-mail address, MSISDN or chat channel; None for ticket and alarm actions.
    to: str | None
    subject: str | None
    body: str
    #: Structured fields; each action type documents the ones it reads.
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The key travels in mail and HTTP headers: only hex keeps it from injecting a header.
        if not isinstance(self.key, str) or not _KEY.match(self.key):
            raise ValueError(f"message key must be 1 to 64 hex characters, got {self.key!r}"[:200])


@dataclass(frozen=True)
class Delivery:
    """What the receiver acknowledged: its id for the message (ticket id, gateway id, Message-ID)."""

    reference: str | None
    detail: dict[str, Any] = field(default_factory=dict)


OptionsT = TypeVar("OptionsT", bound=ActionOptions)


class Action(ABC, Generic[OptionsT]):
    """Base class of every action type.

    Subclasses name their options model twice, as ``Options`` and as the type parameter
    (``class SmtpAction(Action[SmtpOptions])``), so ``self.options`` is typed.

    ``send`` raises ``RetriableError`` for what may work later (timeouts, refused connections, 429,
    5xx, SMTP 4xx) and ``FatalError`` for what will not (bad configuration, 4xx, SMTP 5xx, a missing
    secret). Error messages are shown to operators: they name variables, never secret values.
    """

    #: The ``type`` used in configuration to pick this action type.
    type_name: ClassVar[str]
    #: The pydantic model of its ``options`` block.
    Options: ClassVar[builtins.type[ActionOptions]] = ActionOptions
    #: What kind of receiver it reaches: email, sms, ticket, alarm, chat or http.
    channel: ClassVar[str]

    def __init__(self, options: OptionsT, *, name: str, environ: Mapping[str, str] | None = None) -> None:
        if not isinstance(options, self.Options):
            raise TypeError(
                f"{type(self).__name__} takes {self.Options.__name__}, got {type(options).__name__}"
            )
        self.options: OptionsT = options
        self.name = name
        self._environ = environ

    def idempotent(self, message: Message) -> bool:
        """Whether sending ``message`` again after an uncertain outcome cannot act twice at the receiver.

        True only when the receiver dedupes (query-before-create, an honoured Idempotency-Key) or
        the operation is idempotent by nature; the outbox re-sends an unconfirmed action only then.
        """
        return False

    @abstractmethod
    def send(self, message: Message) -> Delivery:
        """Deliver ``message``; raise ``RetriableError`` or ``FatalError`` when it was not delivered."""

    def check(self) -> None:
        """Reach the receiver without delivering anything, raising as ``send`` would; a no-op by default."""

    def close(self) -> None:
        """Release connections held between sends."""

    def __enter__(self) -> Action[OptionsT]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def secret(self, var: str, what: str) -> str:
        """The value of the environment variable ``var``, or a ``FatalError`` naming it (never a value)."""
        env = os.environ if self._environ is None else self._environ
        value = env.get(var)
        if not value:
            raise FatalError(
                f"action {self.name!r}: environment variable {var} ({what}) is not set or is empty"
            )
        return value


def require_to(message: Message, action: Action[Any]) -> str:
    """The message's address, or a ``FatalError``: an address-less message cannot become deliverable."""
    if message.to is None or not message.to.strip():
        raise FatalError(f"action {action.name!r} ({action.type_name}): the message has no address (to)")
    if any(c in message.to for c in "\r\n\x00"):
        raise FatalError(f"action {action.name!r} ({action.type_name}): the address contains a line break")
    return message.to.strip()
