"""Build a small JSON document that is valid for a JSON schema (for structured-output replies)."""

from __future__ import annotations

from typing import Any

_MAX_DEPTH = 8


def minimal_instance(schema: Any, text: str) -> Any:
    """A deterministic instance of ``schema``.

    Strings become ``text``, integers its word count, numbers that count as a float,
    booleans ``true``, arrays one item (or ``minItems`` items), objects all their
    properties; ``enum``/``const`` give their first value, ``anyOf``/``oneOf`` the first
    non-null option; ``$ref`` is resolved against the root (``#/$defs/...``). Type names
    are case-insensitive, so Gemini's ``{"type": "OBJECT"}`` schemas work too.
    """
    return _Builder(schema, text).build(schema, 0)


class _Builder:
    def __init__(self, root: Any, text: str) -> None:
        self._root = root
        self._text = text
        self._words = len(text.split())

    def build(self, schema: Any, depth: int) -> Any:
        if not isinstance(schema, dict):
            return self._text  # `true` / `{}`-like schema: anything goes
        if "$ref" in schema:
            return self.build(self._resolve(str(schema["$ref"])), depth + 1)
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return enum[0]
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                return self.build(self._pick_option(options, depth), depth + 1)
        all_of = schema.get("allOf")
        if isinstance(all_of, list) and all_of:
            return self._build_all_of(schema, all_of, depth)
        return self._build_typed(schema, _schema_type(schema), depth)

    def _build_typed(self, schema: dict[str, Any], kind: str | None, depth: int) -> Any:
        if kind == "object":
            return self._build_object(schema, depth)
        if kind == "array":
            return self._build_array(schema, depth)
        if kind == "integer":
            return max(self._words, _int_minimum(schema))
        if kind == "number":
            return float(max(self._words, _int_minimum(schema)))
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return self._text

    def _build_object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            return {}
        return {name: self.build(sub, depth + 1) for name, sub in properties.items()}

    def _build_array(self, schema: dict[str, Any], depth: int) -> list[Any]:
        items = schema.get("items", {})
        minimum = schema.get("minItems")
        count = minimum if isinstance(minimum, int) and minimum > 1 else 1
        if depth >= _MAX_DEPTH and not (isinstance(minimum, int) and minimum > 0):
            return []
        return [self.build(items, depth + 1) for _ in range(count)]

    def _build_all_of(self, schema: dict[str, Any], parts: list[Any], depth: int) -> Any:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in parts:
            resolved = (
                self._resolve(str(part["$ref"]))
                if isinstance(part, dict) and "$ref" in part
                else part
            )
            if isinstance(resolved, dict):
                for key, value in resolved.items():
                    if key == "properties" and isinstance(value, dict):
                        merged.setdefault("properties", {}).update(value)
                    else:
                        merged.setdefault(key, value)
        return self.build(merged, depth + 1)

    def _pick_option(self, options: list[Any], depth: int) -> Any:
        non_null = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
        if depth >= _MAX_DEPTH and len(non_null) < len(options):
            return {"type": "null"}  # stop recursive structures
        return non_null[0] if non_null else options[0]

    def _resolve(self, ref: str) -> Any:
        if not ref.startswith("#"):
            raise ValueError(f"only local $ref values are supported, got {ref!r}")
        node: Any = self._root
        for token in ref[1:].split("/"):
            if not token:
                continue
            token = token.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and token in node:
                node = node[token]
            else:
                raise ValueError(f"unresolvable $ref {ref!r}")
        return node


def _schema_type(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        non_null = [str(k).lower() for k in kind if str(k).lower() != "null"]
        return non_null[0] if non_null else "null"
    if isinstance(kind, str):
        return kind.lower()  # Gemini's OpenAPI-style schemas spell types "OBJECT", "STRING", ...
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return None


def _int_minimum(schema: dict[str, Any]) -> int:
    minimum = schema.get("minimum")
    if isinstance(minimum, (int, float)) and not isinstance(minimum, bool):
        return int(minimum) if float(minimum).is_integer() else int(minimum) + 1
    exclusive = schema.get("exclusiveMinimum")
    if isinstance(exclusive, (int, float)) and not isinstance(exclusive, bool):
        return int(exclusive) + 1
    return 0
