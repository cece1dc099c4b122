"""Unit tests for the fake server's pure helpers: schema instances, multipart, routes, markers."""

from __future__ import annotations

from typing import Any

import pytest

from batchling.testing.faults import (
    anthropic_error_type,
    find_failure_marker,
    google_status,
    grpc_code,
)
from batchling.testing.http_types import Request, Response
from batchling.testing.multipart import parse_multipart
from batchling.testing.routing import Handler, RouteMatch, Router, RouteTemplate
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


def test_minimal_instance_accepts_gemini_upper_case_types() -> None:
    schema = {
        "type": "OBJECT",
        "properties": {
            "name": {"type": "STRING"},
            "count": {"type": "INTEGER"},
            "tags": {"type": "ARRAY", "items": {"type": "STRING"}},
            "nickname": {"type": "STRING", "nullable": True},
            "kind": {"type": "STRING", "format": "enum", "enum": ["x", "y"]},
        },
        "propertyOrdering": ["name", "count", "tags", "nickname", "kind"],
    }
    assert minimal_instance(schema, "a b") == {
        "name": "a b",
        "count": 2,
        "tags": ["a b"],
        "nickname": "a b",
        "kind": "x",
    }


@pytest.mark.parametrize(
    ("status", "name", "code"),
    [
        (400, "INVALID_ARGUMENT", 3),
        (401, "UNAUTHENTICATED", 16),
        (403, "PERMISSION_DENIED", 7),
        (404, "NOT_FOUND", 5),
        (429, "RESOURCE_EXHAUSTED", 8),
        (500, "INTERNAL", 13),
        (503, "UNAVAILABLE", 14),
        (504, "DEADLINE_EXCEEDED", 4),
        (418, "INVALID_ARGUMENT", 3),
        (599, "INTERNAL", 13),
    ],
)
def test_google_status_and_grpc_code_follow_the_http_status(
    status: int, name: str, code: int
) -> None:
    assert (google_status(status), grpc_code(status)) == (name, code)


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, "invalid_request_error"),
        (413, "request_too_large"),
        (422, "invalid_request_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
        (502, "api_error"),
    ],
)
def test_anthropic_error_type_follows_the_http_status(status: int, error_type: str) -> None:
    assert anthropic_error_type(status) == error_type


def test_guarded_routes_win_over_unguarded_ones_only_when_their_guard_accepts() -> None:
    def answer(name: str) -> Handler:
        return lambda request: Response(200, name.encode())

    def errors(status: int, message: str, code: str | None) -> Response:
        return Response(status)

    router = Router()
    router.add("GET /v1/batches/{id}", answer("plain"), errors)
    router.add("GET /v1/batches/{id}", answer("special"), errors, when=lambda r: "x" in r.headers)

    def request(headers: dict[str, str]) -> Request:
        return Request("GET", "/v1/batches/b1", {}, headers, b"")

    def served(found: RouteMatch | None, req: Request) -> bytes:
        assert found is not None
        answered = found.route.handler(req)
        assert isinstance(answered, Response)
        return answered.body

    special, plain = request({"x": "1"}), request({})
    assert served(router.find("GET", special.path, special), special) == b"special"
    assert served(router.find("GET", plain.path, plain), plain) == b"plain"
    assert served(router.find("GET", plain.path), plain) == b"plain"
