"""Together batch lines: writing input lines and reading output and error lines.

Input lines are `{"custom_id", "body"}` (docs.together.ai, batch tutorial: `method` is only for
audio batches, and no `url` is given: the job's `endpoint` names it). Output lines are documented
as `{"custom_id", "response": {"status_code", "body"}}` and error-file lines as
`{"custom_id", "error": {"message", "code"}}` (Together's batch-inference API reference in
github.com/togethercomputer/skills). The reader also takes OpenAI's shapes (`request_id`,
`error: null`, an error object carrying an HTTP status), since Together's files are otherwise
modelled on OpenAI's [UNVERIFIED which optional fields Together fills].
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from batchling import json_codec
from batchling.provider import BatchLine, BatchState, LineResult, Outcome


class CorruptResultFileError(Exception):
    """A result file line did not parse (a truncated download): the file is fetched again."""


def encode(line: BatchLine) -> bytes:
    """One input line; the body is spliced in as the SDK serialized it."""
    head = json.dumps({"custom_id": line.custom_id}, separators=(",", ":"))
    raw_body: bytes = line.request.call.raw_body
    return head[:-1].encode() + b',"body":' + raw_body + b"}\n"


def decode(raw: bytes, job_state: BatchState) -> LineResult:
    """The result one output or error line gives, read in the light of the job's end state."""
    try:
        line = json_codec.loads(raw)
        custom_id = str(line["custom_id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptResultFileError(f"unreadable result line: {raw[:200]!r}") from exc
    response = line.get("response")
    if isinstance(response, Mapping) and response:
        status_code = _status_of(response.get("status_code"))
        if status_code is not None:
            return LineResult(
                custom_id=custom_id,
                outcome=Outcome.SUCCEEDED if 200 <= status_code < 300 else Outcome.ERRORED,
                status_code=status_code,
                body=response.get("body"),
                request_id=_str_or_none(response.get("request_id")),
            )
        if "choices" in response or "object" in response:
            # A bare completion where a `{"status_code", "body"}` envelope was expected.
            return LineResult(
                custom_id=custom_id,
                outcome=Outcome.SUCCEEDED,
                status_code=200,
                body=dict(response),
            )
    return _error_result(custom_id, line.get("error"), job_state)


def _error_result(custom_id: str, error: Any, job_state: BatchState) -> LineResult:
    if isinstance(error, Mapping):
        message = str(error.get("message") or "")
        code = error.get("code")
        status_code = _status_of(error.get("status_code", error.get("status", code)))
        body: Any = dict(error)
    else:
        message, code, status_code, body = str(error or ""), None, None, error
    if status_code is not None and status_code >= 400:
        return LineResult(
            custom_id=custom_id,
            outcome=Outcome.ERRORED,
            status_code=status_code,
            body={"error": body} if isinstance(body, dict) and "error" not in body else body,
        )
    code_text = str(code or "").lower()
    # Whether Together lists the lines an expired or cancelled job never ran in its error file,
    # and with which code, is not documented [UNVERIFIED]: a status-less error line of such a
    # job is read as never run (an expired one is sent again in a new job), unless its code
    # says the request itself was refused (`invalid_model`, `invalid_request_error`...), which
    # sending it again would not change.
    if "invalid" in code_text:
        outcome = Outcome.ERRORED
    elif "expired" in code_text or job_state is BatchState.EXPIRED:
        outcome = Outcome.EXPIRED
    elif "cancel" in code_text or job_state is BatchState.CANCELLED:
        outcome = Outcome.CANCELLED
    else:
        outcome = Outcome.ERRORED
    described = f"{code}: {message}" if code and message else str(code or message or "")
    return LineResult(
        custom_id=custom_id,
        outcome=outcome,
        body=body or None,
        message=f"Together reported an error for this batch request: {described}"
        if described
        else "Together reported an error for this batch request without a message.",
    )


def _status_of(value: Any) -> int | None:
    """An HTTP status from an int or a digit string, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        status = value
    elif isinstance(value, str) and value.isdigit():
        status = int(value)
    else:
        return None
    return status if 100 <= status <= 599 else None


def _str_or_none(value: Any) -> str | None:
    return str(value) if value else None
