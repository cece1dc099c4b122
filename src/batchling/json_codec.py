"""JSON where batchling reads and keeps results: one parse per result line, one encoding per
journaled body.

pydantic-core's codec (written in Rust, two to four times faster than the standard library here)
is used when it is installed, which it is with every supported SDK; the standard library
otherwise, and for anything pydantic-core refuses. Both read and write the same JSON values,
including `NaN` and integers of any size.

Request bodies are not encoded here: their canonical encoding gives each request the digest a
re-run recognises it by, so it must not depend on a library's version (see
`batchling.stainless.encode_json`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_ASCII_ENCODER = json.JSONEncoder(separators=(",", ":"))

_from_json: Callable[[bytes | str], Any] | None = None
_to_json: Callable[..., bytes] | None = None
try:
    import pydantic_core

    pydantic_core.to_json(float("nan"), inf_nan_mode="constants")
except (ImportError, TypeError):  # no pydantic-core, or one too old to write NaN
    pass
else:
    _from_json = pydantic_core.from_json
    _to_json = pydantic_core.to_json


def loads(data: bytes | str) -> Any:
    """The JSON value in `data` (`ValueError` if it is not JSON)."""
    if _from_json is not None:
        try:
            return _from_json(data)
        except ValueError:
            pass  # the standard library decides (and says what is wrong)
    return json.loads(data)


def jsonl_lines(data: bytes) -> Iterator[bytes]:
    """The non-blank lines of JSONL `data`, one at a time and without their line break. Unlike
    `data.splitlines()`, no list of every line (a second copy of a file that can be hundreds of
    megabytes) is made before the first one is read."""
    start, end = 0, len(data)
    while start < end:
        stop = data.find(b"\n", start)
        if stop < 0:
            stop = end
        line = data[start:stop]
        start = stop + 1
        if line and not line.isspace():
            yield line


def dumps(value: Any) -> bytes:
    """`value` as compact UTF-8 JSON."""
    if _to_json is not None:
        try:
            return bytes(_to_json(value, inf_nan_mode="constants"))
        except ValueError:
            pass
    try:
        return _ENCODER.encode(value).encode()
    except UnicodeEncodeError:
        # A lone surrogate (JSON can carry one as an escape) has no UTF-8 form: escaped, it
        # reads back as the same string.
        return _ASCII_ENCODER.encode(value).encode()
