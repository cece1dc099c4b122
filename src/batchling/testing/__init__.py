"""Offline fake provider server for batchling's tests and demos.

>>> from batchling.testing import FakeProviderServer
>>> with FakeProviderServer() as server:  # doctest: +SKIP
...     client = AsyncOpenAI(base_url=server.openai_base_url, api_key="anything")
"""

from __future__ import annotations

from batchling.testing.faults import BatchOutcome, BatchOutcomeName, FaultPlan, InjectedFault
from batchling.testing.openai_batches import BatchRecord
from batchling.testing.server import FakeProviderServer
from batchling.testing.stats import FakeServerStats

__all__ = [
    "BatchOutcome",
    "BatchOutcomeName",
    "BatchRecord",
    "FakeProviderServer",
    "FakeServerStats",
    "FaultPlan",
    "InjectedFault",
]
