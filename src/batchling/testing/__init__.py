"""Offline fake provider server for batchling's tests and demos.

It plays OpenAI, Anthropic, Gemini and Mistral, the OpenAI-compatible hosts Groq, xAI and Azure
OpenAI (``server.groq_base_url``, ``server.xai_base_url``, ``server.azure_endpoint``), and
Together AI with its own upload flow and Batch API (``server.together_base_url``).

>>> from batchling.testing import FakeProviderServer
>>> with FakeProviderServer() as server:  # doctest: +SKIP
...     client = AsyncOpenAI(base_url=server.openai_base_url, api_key="anything")
...     claude = AsyncAnthropic(base_url=server.anthropic_base_url, api_key="anything")
"""

from __future__ import annotations

from batchling.testing.anthropic_batches import AnthropicBatchRecord
from batchling.testing.faults import BatchOutcome, BatchOutcomeName, FaultPlan, InjectedFault
from batchling.testing.gemini_batches import GeminiBatchRecord
from batchling.testing.openai_batches import BatchRecord
from batchling.testing.openai_hosts import OpenAIHostName
from batchling.testing.server import AnyBatchRecord, FakeProviderServer
from batchling.testing.stats import FakeServerStats, ProviderName, ProviderStats
from batchling.testing.together_batches import TogetherBatchRecord

__all__ = [
    "AnthropicBatchRecord",
    "AnyBatchRecord",
    "BatchOutcome",
    "BatchOutcomeName",
    "BatchRecord",
    "FakeProviderServer",
    "FakeServerStats",
    "FaultPlan",
    "GeminiBatchRecord",
    "InjectedFault",
    "OpenAIHostName",
    "ProviderName",
    "ProviderStats",
    "TogetherBatchRecord",
]
