"""Together batch lines: what each documented (and tolerated) result line shape becomes."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from batchling.provider import BatchLine, BatchState, Outcome
from batchling.providers.together import check_completion_window
from batchling.providers.together_lines import CorruptResultFileError, decode, encode

COMPLETION = {"id": "c1", "object": "chat.completion", "choices": [], "model": "m"}


def line(**fields: Any) -> bytes:
    return json.dumps({"custom_id": "req-1", **fields}).encode()


def test_an_input_line_carries_the_custom_id_and_the_exact_body_bytes() -> None:
    raw_body = b'{"model":"m","messages":[{"role":"user","content":"hi \\u00e9"}]}'
    request = SimpleNamespace(call=SimpleNamespace(raw_body=raw_body))
    encoded = encode(BatchLine("req-1", request))  # type: ignore[arg-type]
    assert encoded == b'{"custom_id":"req-1","body":' + raw_body + b"}\n"
    assert set(json.loads(encoded)) == {"custom_id", "body"}


def test_a_documented_output_line_is_a_success_with_its_body() -> None:
    result = decode(line(response={"status_code": 200, "body": COMPLETION}), BatchState.COMPLETED)
    assert (result.outcome, result.status_code, result.body) == (
        Outcome.SUCCEEDED,
        200,
        COMPLETION,
    )
    assert result.request_id is None


def test_an_openai_shaped_line_keeps_its_request_id_and_error_status() -> None:
    body = {"error": {"message": "too long", "type": "invalid_request_error"}}
    result = decode(
        line(response={"status_code": 400, "request_id": "req_9", "body": body}, error=None),
        BatchState.COMPLETED,
    )
    assert (result.outcome, result.status_code, result.body) == (Outcome.ERRORED, 400, body)
    assert result.request_id == "req_9"


def test_a_documented_error_line_has_no_status_and_keeps_togethers_message() -> None:
    result = decode(
        line(error={"message": "Invalid model specified", "code": "invalid_model"}),
        BatchState.COMPLETED,
    )
    assert result.outcome is Outcome.ERRORED
    assert result.status_code is None
    assert result.message is not None
    assert "invalid_model: Invalid model specified" in result.message
    assert result.body == {"message": "Invalid model specified", "code": "invalid_model"}


def test_an_error_line_that_names_an_http_status_becomes_that_status() -> None:
    result = decode(line(error={"message": "slow down", "code": 429}), BatchState.COMPLETED)
    assert (result.outcome, result.status_code) == (Outcome.ERRORED, 429)
    assert result.body == {"error": {"message": "slow down", "code": 429}}


def test_a_timeout_error_line_mentions_the_timeout() -> None:
    result = decode(
        line(error={"message": "Request timeout", "code": "timeout"}), BatchState.COMPLETED
    )
    assert result.message is not None
    assert "timeout" in result.message.lower()


@pytest.mark.parametrize(
    ("state", "outcome"),
    [(BatchState.EXPIRED, Outcome.EXPIRED), (BatchState.CANCELLED, Outcome.CANCELLED)],
)
def test_error_lines_of_an_expired_or_cancelled_job_were_never_run(
    state: BatchState, outcome: Outcome
) -> None:
    assert decode(line(error={"message": "not processed"}), state).outcome is outcome
    assert decode(line(error="not processed"), state).outcome is outcome


@pytest.mark.parametrize("state", [BatchState.EXPIRED, BatchState.CANCELLED])
def test_a_request_refused_as_invalid_in_an_expired_or_cancelled_job_is_its_error(
    state: BatchState,
) -> None:
    # Sending it again in a new job would only be refused again.
    result = decode(line(error={"code": "invalid_model", "message": "no such model"}), state)
    assert result.outcome is Outcome.ERRORED
    assert result.message is not None
    assert "invalid_model: no such model" in result.message


def test_an_error_code_naming_expiry_counts_as_expired_in_any_job() -> None:
    result = decode(line(error={"code": "batch_expired", "message": "x"}), BatchState.COMPLETED)
    assert result.outcome is Outcome.EXPIRED


def test_a_bare_completion_in_place_of_the_envelope_is_still_a_success() -> None:
    result = decode(line(response=COMPLETION), BatchState.COMPLETED)
    assert (result.outcome, result.status_code, result.body) == (
        Outcome.SUCCEEDED,
        200,
        COMPLETION,
    )


@pytest.mark.parametrize("raw", [b'{"custom_id": "req-1", "respo', b"[1, 2]", b'{"error": {}}'])
def test_an_unreadable_line_asks_for_the_file_again(raw: bytes) -> None:
    with pytest.raises(CorruptResultFileError):
        decode(raw, BatchState.COMPLETED)


@pytest.mark.parametrize("window", ["24h", "48h", "7d", " 24h "])
def test_windows_of_24_hours_or_more_are_met_by_together(window: str) -> None:
    check_completion_window(window)


@pytest.mark.parametrize(("window", "problem"), [("1h", "shorter"), ("soon", "not a duration")])
def test_other_windows_are_refused_with_what_to_pass_instead(window: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as raised:
        check_completion_window(window)
    assert "completion_window='24h'" in str(raised.value)
