"""Reading scenario YAML strictly and checking it against the JSON schema, with errors
that name the field and say what was expected in words.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from xenmca.testbed.scenario.errors import ScenarioError, field_path

SCHEMA_PATH = Path(__file__).with_name("schema.json")


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys and reads 1e3 as a number (YAML 1.2 style)."""


def _construct_mapping(loader: StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen[key] = loader.construct_object(value_node, deep=True)  # type: ignore[no-untyped-call]
    return seen


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


# -- schema ------------------------------------------------------------------------------


@functools.cache
def schema() -> dict[str, Any]:
    """The scenario JSON Schema (draft 2020-12)."""
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


@functools.cache
def _validator() -> Any:
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(schema())
    return Draft202012Validator(schema())


def check_schema(data: Mapping[str, Any], file: str) -> None:
    from jsonschema.exceptions import best_match

    error = best_match(_validator().iter_errors(data))
    if error is None:
        return
    raise ScenarioError(file, *_describe(error))


TYPE_WORDS = {
    "object": "a mapping",
    "array": "a list",
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "a boolean",
    "null": "null",
}
_FORM_VALIDATORS = frozenset({"type", "enum", "pattern", "const", "anyOf", "oneOf"})


def _describe(error: Any) -> tuple[str, str]:
    """(field, message) of a jsonschema error, in words a scenario author understands."""
    path = list(error.absolute_path)
    # A value of none of an anyOf's forms (not a mistake inside one of them, like an
    # unknown key in a mapping): say what the forms are.
    ancestor = error
    while ancestor is not None and error.validator in _FORM_VALIDATORS:
        if ancestor.validator == "anyOf" and len(error.absolute_path) == len(
            ancestor.absolute_path
        ):
            # The description's first sentence names the forms; the rest explains them.
            what = (ancestor.schema.get("description") or "one of the allowed forms").split(
                ". ", 1
            )[0]
            return field_path(path) or "(top level)", (
                f"{_short(error.instance)} is not valid here; expected {_lower_first(what)}"
            )
        ancestor = ancestor.parent
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        name = missing[0] if missing else "?"
        return field_path([*path, name]), "is required"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed)
        name = str(extra[0]) if extra else "?"
        return field_path([*path, name]), f"unknown field (allowed: {', '.join(allowed)})"
    if error.validator == "type":
        expected = error.validator_value
        kinds: list[str] = expected if isinstance(expected, list) else [expected]
        names = [TYPE_WORDS.get(kind, kind) for kind in kinds]
        return field_path(path) or "(top level)", (
            f"{_short(error.instance)} is {TYPE_WORDS[json_type(error.instance)]}, "
            f"expected {' or '.join(names)}"
        )
    if error.validator == "pattern" and path and path[-1] == "name":
        return "name", (
            f"{_short(error.instance)} must be lower-case letters, digits and dashes "
            "(starting with a letter or digit)"
        )
    return field_path(path) or "(top level)", error.message


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:].rstrip(".")


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, Sequence):
        return "array"
    return "string"
