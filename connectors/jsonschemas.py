"""JSON Schema validation for the connectors: jsonschema-rs decides, jsonschema explains.

Every pushed event and pulled item goes through a schema, so the common case (a valid payload) must
cost microseconds: jsonschema-rs (a compiled validator) answers valid / invalid. Only for an invalid
payload does the jsonschema library walk it again, for the most relevant error and its path, which
become the quarantine reason. Where the two disagree (jsonschema-rs refuses NaN and infinities as
numbers; the Python library takes them), the compiled validator's verdict stands, with its message.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import jsonschema_rs
from jsonschema import Draft4Validator, validators
from jsonschema.exceptions import SchemaError, ValidationError, best_match, relevance

#: Errors looked at per payload when explaining (the most relevant first).
MAX_ERRORS = 20


@dataclass(frozen=True)
class Problem:
    """One way a payload breaks its schema."""

    path: tuple[str | int, ...]
    message: str
    #: The schema keyword that failed (``type``, ``enum``, ``required`` ...) and its value.
    keyword: str
    expected: Any
    #: The failing subschema's ``description``, when it has one.
    description: str | None = None


class SchemaValidator:
    """A JSON schema ready to check payloads, with the draft its ``$schema`` names (else ``default``)."""

    def __init__(self, schema: dict[str, Any], source: str, default: type = Draft4Validator) -> None:
        validator_class = validators.validator_for(schema, default=default)
        try:
            validator_class.check_schema(schema)
        except SchemaError as err:
            raise ValueError(f"{source}: not a valid JSON schema: {err.message}") from None
        self.explainer = validator_class(schema)
        draft = _DRAFTS.get(validator_class.META_SCHEMA.get("$schema", "").rstrip("#"))
        try:
            self.fast = jsonschema_rs.validator_for(schema) if draft is None else draft(schema)
        except (ValueError, jsonschema_rs.ValidationError) as err:
            raise ValueError(f"{source}: cannot be compiled: {err}") from None

    def problems(self, payload: Any) -> list[Problem]:
        """How ``payload`` breaks the schema, most relevant first; empty when it does not."""
        try:
            if self.fast.is_valid(payload):
                return []
        except ValueError:
            pass  # not representable as JSON for the compiled validator: the library decides
        found = list(itertools.islice(self.explainer.iter_errors(payload), MAX_ERRORS))
        if found:
            best = best_match(found)
            ranked = sorted((e for e in found if e is not best), key=relevance, reverse=True)
            return [_problem(e) for e in ([best] if best is not None else []) + ranked]
        try:
            first = next(iter(self.fast.iter_errors(payload)), None)
        except ValueError:
            return []
        if first is None:
            return []
        return [Problem(tuple(first.instance_path), first.message, "type", None)]


def _problem(error: ValidationError) -> Problem:
    schema = error.schema if isinstance(error.schema, dict) else {}
    description = schema.get("description")
    return Problem(
        tuple(error.absolute_path),
        error.message,
        str(error.validator),
        error.validator_value,
        description if isinstance(description, str) else None,
    )


_DRAFTS: dict[str, Any] = {
    "http://json-schema.org/draft-04/schema": jsonschema_rs.Draft4Validator,
    "http://json-schema.org/draft-06/schema": jsonschema_rs.Draft6Validator,
    "http://json-schema.org/draft-07/schema": jsonschema_rs.Draft7Validator,
    "https://json-schema.org/draft/2019-09/schema": jsonschema_rs.Draft201909Validator,
    "https://json-schema.org/draft/2020-12/schema": jsonschema_rs.Draft202012Validator,
}
