"""Unit tests for the fake server's pure helpers: schema instances, multipart, routes, markers."""

from __future__ import annotations

from typing import Any

import pytest

from batchling.testing.faults import find_failure_marker
from batchling.testing.multipart import parse_multipart
from batchling.testing.routing import RouteTemplate
from batchling.testing.schema_instance import minimal_instance


def test_minimal_instance_resolves_refs_enums_and_nullable_options() -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "item": {"$ref": "#/$defs/Item"},
            "maybe": {"anyOf": [{"type": "null"}, {"type": "integer"}]},
            "kind": {"enum": ["b", "a"]},
            "flag": {"type": ["boolean", "null"]},
            "score": {"type": "number"},
            "fixed": {"const": 7},
        },
        "$defs": {
            "Item": {
                "type": "object",
                "properties": {"labels": {"type": "array", "items": {"type": "string"}}},
            }
        },
    }
    assert minimal_instance(schema, "two words") == {
        "item": {"labels": ["two words"]},
        "maybe": 2,
        "kind": "b",
        "flag": True,
        "score": 2.0,
        "fixed": 7,
    }


def test_minimal_instance_terminates_on_recursive_schemas() -> None:
    schema = {
        "$ref": "#/$defs/Node",
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                    "parent": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]},
                },
            }
        },
    }
    assert isinstance(minimal_instance(schema, "x"), dict)


def test_multipart_parser_reads_fields_and_file() -> None:
    body = (
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="purpose"\r\n\r\n'
        b"batch\r\n"
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="file"; filename="a \\"b\\".jsonl"\r\n'
        b"Content-Type: application/jsonl\r\n\r\n"
        b"line1\r\nline2\n\r\n"
        b"--XyZ--\r\n"
    )
    purpose, upload = parse_multipart(body, 'multipart/form-data; boundary="XyZ"')
    assert (purpose.name, purpose.data) == ("purpose", b"batch")
    assert (upload.name, upload.filename, upload.content_type) == (
        "file",
        'a "b".jsonl',
        "application/jsonl",
    )
    assert upload.data == b"line1\r\nline2\n"


@pytest.mark.parametrize(
    ("route", "method", "path", "expected"),
    [
        ("GET /v1/batches/{id}", "GET", "/v1/batches/batch_1", {"id": "batch_1"}),
        ("GET /v1/batches/{id}", "GET", "/v1/batches", None),
        ("GET /v1/batches/{id}", "GET", "/v1/batches/b/cancel", None),
        ("GET /v1/batches/{id}", "POST", "/v1/batches/b", None),
        ("* /v1/files", "DELETE", "/v1/files", {}),
    ],
)
def test_route_templates_match_one_segment_per_placeholder(
    route: str, method: str, path: str, expected: dict[str, str] | None
) -> None:
    assert RouteTemplate(route).match(method, path) == expected


def test_failure_marker_is_found_anywhere_in_the_body() -> None:
    assert find_failure_marker(b'{"content":"x [[fail:503]] y"}') == 503
    assert find_failure_marker(b'{"content":"[[fail:abc]]"}') is None
    assert find_failure_marker(b'{"content":"plain"}') is None
