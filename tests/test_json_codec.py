"""The JSON codec of result lines and journaled bodies (pydantic-core's, or the stdlib's)."""

from __future__ import annotations

import json
import math

import pytest

from batchling import json_codec

LINE = (
    b'{"custom_id":"abc_0","response":{"status_code":200,"body":{"big":123456789012345678901234,'
    b'"nan":NaN,"inf":-Infinity,"text":"caf\\u00e9 \xf0\x9f\x98\x80","list":[1,2.5,null,true]}}}'
)


def _same(left: object, right: object) -> bool:
    return json.dumps(left, sort_keys=True) == json.dumps(right, sort_keys=True)


@pytest.mark.parametrize("fast", [True, False], ids=["pydantic-core", "standard library"])
def test_codec_reads_and_writes_what_the_standard_library_does(
    fast: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not fast:
        monkeypatch.setattr(json_codec, "_from_json", None)
        monkeypatch.setattr(json_codec, "_to_json", None)
    decoded = json_codec.loads(LINE)
    assert _same(decoded, json.loads(LINE))
    body = decoded["response"]["body"]
    assert body["big"] == 123456789012345678901234
    assert math.isnan(body["nan"])
    assert body["text"] == "café 😀"
    assert _same(json.loads(json_codec.dumps(body)), body)
    assert json_codec.loads(json_codec.dumps(body).decode())["text"] == "café 😀"


def test_codec_raises_value_error_on_a_broken_line() -> None:
    with pytest.raises(ValueError, match=r"Expecting|EOF|Unterminated"):
        json_codec.loads(b'{"custom_id": "abc_0", "resp')


@pytest.mark.parametrize(
    ("data", "lines"),
    [
        (b"", []),
        (b"\n\n", []),
        (b'{"a":1}\n{"b":2}\n', [b'{"a":1}', b'{"b":2}']),
        (b'{"a":1}\n  \n{"b":2}', [b'{"a":1}', b'{"b":2}']),  # no final line break
        (b'{"a":1}\r\n{"b":2}\r\n', [b'{"a":1}\r', b'{"b":2}\r']),  # CR is JSON whitespace
    ],
)
def test_jsonl_lines_yields_each_non_blank_line(data: bytes, lines: list[bytes]) -> None:
    assert list(json_codec.jsonl_lines(data)) == lines
    assert [json_codec.loads(line) for line in json_codec.jsonl_lines(data)] == [
        json.loads(line) for line in data.splitlines() if line.strip()
    ]


def test_a_lone_surrogate_is_written_as_an_escape_and_read_back_unchanged() -> None:
    # JSON can carry one ("\ud800"); it has no UTF-8 form.
    value = {"text": "a\ud800b"}
    assert json_codec.loads(json_codec.dumps(value)) == value
