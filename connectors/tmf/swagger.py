"""TMF payloads checked against the API's own swagger (v4, Swagger 2.0) or OpenAPI (v5) document.

A TMF connector with ``swagger_path`` validates every listed item and every notification's resource
against the resource's definition (``Alarm``, ``TroubleTicket``, ``Customer`` ...) with jsonschema
before mapping it. The check is for shape: an object where the definition says text, text where it
says a number, a list where it says an object. It is lenient where real servers and the published
documents disagree, as every TMF implementation has to be:

- identifiers typed ``integer`` (v4's ``Alarm.id``) accept text: every real payload sends text;
- enumerations are not enforced (``UNacknowledged``, ``Pending``): the mappers compare them
  case-insensitively and keep the raw value;
- ``format`` is not enforced: the mappers parse times themselves and say what they could not read;
- ``required`` is not enforced: notifications carry partial resources, and what a record cannot do
  without (its id, its times) is refused by the mapping with its own reason;
- ``null`` stands for an absent value; OpenAPI's ``oneOf`` is read as ``anyOf`` (v5's polymorphic
  references match several branches).

What happens to an item that breaks the shape depends on where. A value the definition declares as
text, a number or a boolean must be one, wherever it sits: that is what the mappers store, and an
object there is refused (quarantined with the path). A container of another shape (an object where
the definition declares a list, as the published TMF642 example's ``parentAlarm``, or a number where
it declares an object, as TMF678's ``billDocument.size``) is noted and the item kept: the mappers
read containers leniently, and a record must not be lost over a structure they do not store.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft4Validator

from connectors.base import read_json_document
from connectors.jsonschemas import Problem, SchemaValidator

#: Keywords dropped from the definitions: documentation, and the rules listed above.
_DROPPED = frozenset({"enum", "format", "required", "discriminator", "example", "readOnly", "nullable"})
_SCALARS = frozenset({"string", "number", "integer", "boolean"})


@dataclass
class ShapeCheck:
    """What the swagger says of one item: a reason to refuse it, or notes on a kept one."""

    refused: str | None = None
    notes: list[str] = field(default_factory=list)


class SwaggerSchema:
    """One resource definition of a TMF API document as a lenient JSON Schema validator."""

    def __init__(self, document: dict[str, Any], definition: str, source: str) -> None:
        definitions = document.get("definitions")
        components = (document.get("components") or {}).get("schemas")
        if isinstance(definitions, dict) and definition in definitions:
            ref = f"#/definitions/{definition}"
        elif isinstance(components, dict) and definition in components:
            ref = f"#/components/schemas/{definition}"
        else:
            raise ValueError(
                f"{source}: defines no {definition!r} (expected a TMF swagger or OpenAPI document)"
            )
        root: dict[str, Any] = {"allOf": [{"$ref": ref}]}
        if isinstance(definitions, dict):
            root["definitions"] = lenient(definitions)
        if isinstance(components, dict):
            root["components"] = {"schemas": lenient(components)}
        self.validator = SchemaValidator(root, source, default=Draft4Validator)
        self.definition = definition
        self.source = source

    @classmethod
    def load(cls, path: str, definition: str) -> SwaggerSchema:
        return cls(read_json_document(path), definition, path)

    def check(self, item: Any) -> ShapeCheck:
        """Refuse ``item`` when a value declared scalar is not one (or it is not an object at all);
        note, and keep it, when a container has another shape."""
        out = ShapeCheck()
        for problem in self.validator.problems(item):
            text = self._describe(problem)
            if _refuses(problem):
                out.refused = text
                return out
            out.notes.append(text)
        return out

    def _describe(self, problem: Problem) -> str:
        where = ".".join(str(p) for p in problem.path) or "(the item)"
        message = problem.message if len(problem.message) <= 200 else problem.message[:200] + "…"
        return f"{where}: {message} ({self.definition} in the API's swagger)"


def _refuses(problem: Problem) -> bool:
    if not problem.path:
        return True  # the item itself is not an object
    if problem.keyword != "type":
        return False
    declared = problem.expected
    if declared is None:
        return True  # refused by the compiled validator alone (a NaN or an infinity for a number)
    types = {declared} if isinstance(declared, str) else set(declared)
    return bool(types - {"null"}) and types - {"null"} <= _SCALARS


def lenient(node: Any, key: str | None = None) -> Any:
    """A copy of a swagger schema node with the leniencies in the module's docstring applied."""
    if isinstance(node, list):
        return [lenient(v) for v in node]
    if not isinstance(node, dict):
        return copy.deepcopy(node)
    out: dict[str, Any] = {}
    for k, v in node.items():
        if k in _DROPPED or k.startswith("x-"):
            continue
        if k == "properties" and isinstance(v, dict):
            out[k] = {name: lenient(prop, name) for name, prop in v.items()}
        elif k == "oneOf":
            out["anyOf"] = lenient(v)
        elif k == "type":
            out[k] = _type(v, key)
        else:
            out[k] = lenient(v)
    return out


def _type(declared: Any, key: str | None) -> Any:
    types = [declared] if isinstance(declared, str) else list(declared) if isinstance(declared, list) else []
    if not types:
        return declared
    if "integer" in types and key is not None and (key == "id" or key.endswith("Id")):
        types.append("string")
    types.append("null")
    return sorted(set(types))
