"""Google partial-response ``fields`` masks, validated against the real Drive v3 schema.

The schema comes from the discovery document bundled with google-api-python-client, so
any field Drive knows is accepted (and simply absent when the fake has no value for it),
and any field Drive does not know gives ``400 invalidParameter``, as on the wire.

Syntax: ``a,b/c,d(e,f/g),*``; whitespace around names is ignored.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
from typing import Any

__all__ = ["FieldsError", "Mask", "apply_mask", "parse_fields", "validate_mask"]

# A mask maps a field name to a sub-mask; None means "the whole value".
type Mask = dict[str, Mask | None]

_NAME_RE = re.compile(r"\s*([A-Za-z0-9_*]+)\s*")
_MAP = "map"  # schema node for objects with additionalProperties (keys are data)


class FieldsError(ValueError):
    """The ``fields`` parameter is malformed or names an unknown field."""


def parse_fields(text: str) -> Mask:
    mask, pos = _parse_list(text, 0)
    if pos != len(text):
        raise FieldsError(f"Invalid field selection {text[pos:].strip() or text}")
    return mask


def _parse_list(text: str, pos: int) -> tuple[Mask, int]:
    mask: Mask = {}
    while True:
        path: list[str] = []
        while True:
            m = _NAME_RE.match(text, pos)
            if not m:
                raise FieldsError(f"Invalid field selection {text[pos:].strip() or text}")
            path.append(m.group(1))
            pos = m.end()
            if pos < len(text) and text[pos] == "/":
                pos += 1
                continue
            break
        sub: Mask | None = None
        if pos < len(text) and text[pos] == "(":
            sub, pos = _parse_list(text, pos + 1)
            if pos >= len(text) or text[pos] != ")":
                raise FieldsError(f"Invalid field selection {text}")
            pos += 1
            while pos < len(text) and text[pos].isspace():
                pos += 1
        for name in reversed(path[1:]):
            sub = {name: sub}
        _merge(mask, path[0], sub)
        if pos < len(text) and text[pos] == ",":
            pos += 1
            continue
        return mask, pos


def _merge(mask: Mask, name: str, sub: Mask | None) -> None:
    if name not in mask:
        mask[name] = sub
        return
    existing = mask[name]
    if existing is None or sub is None:
        mask[name] = None
        return
    for key, value in sub.items():
        _merge(existing, key, value)


# --- schema ----------------------------------------------------------------------------


@functools.cache
def _discovery() -> dict[str, Any]:
    doc = importlib.resources.files("googleapiclient") / "discovery_cache/documents/drive.v3.json"
    return json.loads(doc.read_text(encoding="utf-8"))


def _node(prop: dict[str, Any]) -> dict[str, Any] | str | None:
    """Schema node: dict of properties, _MAP, or None for scalars/arrays of scalars."""
    if "$ref" in prop:
        return _discovery()["schemas"][prop["$ref"]]["properties"]
    if prop.get("type") == "array":
        return _node(prop["items"])
    if "properties" in prop:
        return prop["properties"]
    if "additionalProperties" in prop:
        return _MAP
    return None


def validate_mask(mask: Mask, schema: str) -> None:
    """Raise FieldsError unless every selected field exists in discovery schema ``schema``."""
    _validate(mask, _discovery()["schemas"][schema]["properties"])


def _validate(mask: Mask, props: dict[str, Any] | str | None) -> None:
    for name, sub in mask.items():
        if name == "*" or props == _MAP:
            continue
        if not isinstance(props, dict) or name not in props:
            raise FieldsError(f"Invalid field selection {name}")
        if sub is not None:
            _validate(sub, _node(props[name]))


def apply_mask(value: Any, mask: Mask | None) -> Any:
    """Project a JSON value onto a mask (lists are projected element-wise)."""
    if mask is None or "*" in mask:
        return value
    if isinstance(value, list):
        return [apply_mask(v, mask) for v in value]
    if isinstance(value, dict):
        return {k: apply_mask(value[k], sub) for k, sub in mask.items() if k in value}
    return value
