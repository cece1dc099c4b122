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
from collections.abc import Callable
from typing import Any

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)

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


def dumps(value: Any) -> bytes:
    """`value` as compact UTF-8 JSON."""
    if _to_json is not None:
        try:
            return bytes(_to_json(value, inf_nan_mode="constants"))
        except ValueError:
            pass
    return _ENCODER.encode(value).encode()
