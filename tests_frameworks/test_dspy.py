"""DSPy inside `batchify()`.

DSPy 3.x picks an engine for each `dspy.LM`. With `engine="litellm"` its requests for
`openai/...` models go through LiteLLM and the `AsyncOpenAI` client, so `acall` on a module is
batched. Its default engine (`"auto"`) sends OpenAI-compatible requests with DSPy's own HTTP
client instead of the SDK: batchling never sees them, so they go out in real time, unreported
even under `strict=True` (documented below).
"""

from __future__ import annotations

import asyncio

import pytest

from batchling.testing import FakeProviderServer
from tests_frameworks.conftest import (
    CONCURRENCY,
    LITELLM_READONLY_TYPEDDICT_WARNINGS,
    ROUND_WINDOW_SECONDS,
    assert_batched,
    fast_batchify,
)

dspy = pytest.importorskip("dspy")

pytestmark = LITELLM_READONLY_TYPEDDICT_WARNINGS

QUESTIONS = [f"which product is number {i}" for i in range(CONCURRENCY)]


class Describe(dspy.Signature):
    """Describe the product the question is about."""

    question: str = dspy.InputField()
    description: str = dspy.OutputField()
    words: int = dspy.OutputField()


def language_model(server: FakeProviderServer, **kwargs: object) -> object:
    return dspy.LM(
        "openai/gpt-4o-mini",
        api_base=server.openai_base_url,
        api_key="sk-test",
        cache=False,  # DSPy's own response cache would answer repeated runs without a request
        **kwargs,
    )


async def test_predict_acall_with_the_litellm_engine_is_one_batch(
    fake_server: FakeProviderServer,
) -> None:
    predict = dspy.Predict(Describe)
    # JSONAdapter asks for a JSON-schema response format, which the fake server fills in;
    # the default ChatAdapter would first ask for `[[ ## field ## ]]` text and fall back to
    # JSONAdapter on the echo reply (a second batched round).
    with dspy.context(lm=language_model(fake_server, engine="litellm"), adapter=dspy.JSONAdapter()):
        async with fast_batchify() as ctx:
            predictions = await asyncio.gather(
                *(predict.acall(question=question) for question in QUESTIONS)
            )

    assert_batched(fake_server, openai=[CONCURRENCY])
    assert ctx.report.batched == CONCURRENCY
    for question, prediction in zip(QUESTIONS, predictions, strict=True):
        assert isinstance(prediction, dspy.Prediction)
        # The fake server fills strings with the last user message (DSPy's formatted prompt,
        # which contains the question) and integers with its word count.
        assert question in prediction.description
        assert isinstance(prediction.words, int)
        assert prediction.words > len(question.split())
    body = fake_server.batches[0].lines[0]["body"]
    assert body["response_format"]["type"] == "json_schema"


async def test_chain_of_thought_with_the_default_adapter_is_batched_round_by_round(
    fake_server: FakeProviderServer,
) -> None:
    program = dspy.ChainOfThought(Describe)
    with dspy.context(lm=language_model(fake_server, engine="litellm")):
        async with fast_batchify(batch_window_seconds=ROUND_WINDOW_SECONDS):
            predictions = await asyncio.gather(
                *(program.acall(question=question) for question in QUESTIONS)
            )

    # ChatAdapter cannot parse the fake server's echo, so DSPy retries every call with
    # JSONAdapter: one batch job per round, nothing in real time.
    assert_batched(fake_server, openai=[CONCURRENCY, CONCURRENCY])
    for question, prediction in zip(QUESTIONS, predictions, strict=True):
        assert question in prediction.description
        assert isinstance(prediction.reasoning, str)


async def test_default_engine_bypasses_the_sdk_so_it_is_not_batched(
    fake_server: FakeProviderServer,
) -> None:
    """DSPy's default engine speaks HTTP itself for OpenAI models: batchling cannot see it.

    The calls are sent in real time at full price, without a `NotBatchedWarning`, and
    `strict=True` cannot refuse them. Pass `engine="litellm"` to `dspy.LM` to have them batched.
    """
    predict = dspy.Predict(Describe)
    with dspy.context(lm=language_model(fake_server), adapter=dspy.JSONAdapter()):
        async with fast_batchify(strict=True) as ctx:
            predictions = await asyncio.gather(
                *(predict.acall(question=question) for question in QUESTIONS[:3])
            )

    for question, prediction in zip(QUESTIONS[:3], predictions, strict=True):
        assert question in prediction.description
    assert fake_server.stats.realtime_calls == 3
    assert fake_server.stats.batches_created == 0
    assert ctx.report.batched == 0
    assert ctx.report.passed_through_total == 0  # unseen, so not even reported
