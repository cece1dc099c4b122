"""A small multipart/form-data parser working on bytes (linear time, no ``cgi``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

_PARAM = re.compile(r';\s*([A-Za-z0-9_.*-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


class MultipartError(ValueError):
    pass


@dataclass(frozen=True)
class FormPart:
    name: str
    data: bytes
    filename: str | None = None
    content_type: str | None = None


def header_params(value: str) -> tuple[str, dict[str, str]]:
    """Split ``form-data; name="file"; filename="a.jsonl"`` into its value and parameters."""
    main, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for match in _PARAM.finditer(";" + rest):
        key = match.group(1).lower()
        raw = match.group(2).strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        if key.endswith("*"):  # RFC 5987: charset'lang'percent-encoded
            charset, _, encoded = raw.partition("'")
            _, _, encoded = encoded.partition("'")
            params[key[:-1]] = unquote(encoded, encoding=charset or "utf-8")
        else:
            params.setdefault(key, raw)
    return main.strip().lower(), params


def parse_multipart(body: bytes, content_type: str) -> list[FormPart]:
    kind, params = header_params(content_type)
    boundary = params.get("boundary")
    if kind != "multipart/form-data" or not boundary:
        raise MultipartError("expected multipart/form-data with a boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    start = body.find(delimiter)
    if start < 0:
        raise MultipartError("multipart boundary not found")
    parts: list[FormPart] = []
    position = start + len(delimiter)
    while True:
        if body.startswith(b"--", position):
            return parts  # closing delimiter
        if body.startswith(b"\r\n", position):
            position += 2
        header_end = body.find(b"\r\n\r\n", position)
        if header_end < 0:
            raise MultipartError("multipart part without a header block end")
        headers = _parse_part_headers(body[position:header_end])
        data_start = header_end + 4
        next_delimiter = body.find(b"\r\n" + delimiter, data_start)
        if next_delimiter < 0:
            raise MultipartError("multipart body is not terminated")
        disposition, disposition_params = header_params(headers.get("content-disposition", ""))
        if disposition != "form-data" or "name" not in disposition_params:
            raise MultipartError("multipart part without form-data name")
        parts.append(
            FormPart(
                name=disposition_params["name"],
                data=body[data_start:next_delimiter],
                filename=disposition_params.get("filename"),
                content_type=headers.get("content-type"),
            )
        )
        position = next_delimiter + 2 + len(delimiter)


def _parse_part_headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.decode("utf-8", "replace").split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers
