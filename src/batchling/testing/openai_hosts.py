"""The hosts that speak the OpenAI Files + Batches protocol, and how their wire formats differ.

One ``OpenAIProtocol`` serves each host under its own path prefix on the same fake server:

=========  =====================================  ==========================================
host       real base URL                          fake prefix (what the SDK sends)
=========  =====================================  ==========================================
openai     ``https://api.openai.com/v1``          ``/v1/...``
groq       ``https://api.groq.com/openai/v1``     ``/openai/v1/...``
xai        ``https://api.x.ai/v1``                ``/xai/v1/...`` (to tell it from OpenAI)
azure      ``https://RESOURCE.openai.azure.com``  ``/openai/...?api-version=...``
=========  =====================================  ==========================================

Azure differs most: key auth is an ``api-key`` header, every request needs an ``api-version``
query parameter, real-time inference goes to ``/openai/deployments/{deployment}/...`` (the
``openai`` SDK puts the request's ``model`` there), and batch endpoints / line urls carry no
``/v1`` (``"/chat/completions"``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from batchling.testing.replies import REALTIME_ENDPOINTS

OpenAIHostName = Literal["openai", "groq", "xai", "azure"]
"""``BatchRecord.provider`` values: the hosts served by the OpenAI protocol emulation."""

Auth = Literal["bearer", "api-key"]

DAY_SECONDS = 24 * 3600


@dataclass(frozen=True)
class RealtimeRoute:
    """A real-time route: ``path`` under the host (may hold ``{deployment}``) and the OpenAI
    endpoint (``/v1/...``) whose reply it answers with."""

    path: str
    reply_endpoint: str


@dataclass(frozen=True)
class OpenAIHost:
    """How one OpenAI-compatible host differs on the wire."""

    name: OpenAIHostName
    prefix: str
    """Route prefix of Files and Batches: ``{prefix}/files``, ``{prefix}/batches``."""
    realtime: tuple[RealtimeRoute, ...]
    batch_endpoints: frozenset[str]
    """``endpoint`` values ``batches.create`` accepts (each line's ``url`` must equal it)."""
    completion_window_seconds: Callable[[object], int | None]
    """Seconds of a ``completion_window`` value, or None if the host rejects it."""
    auth: Auth = "bearer"
    requires_api_version: bool = False
    file_id_prefix: str = "file-"

    def reply_endpoint(self, batch_endpoint: str) -> str:
        """The OpenAI endpoint (``/v1/...``) whose replies answer lines of ``batch_endpoint``."""
        return batch_endpoint if batch_endpoint.startswith("/v1/") else "/v1" + batch_endpoint


def only_24h(window: object) -> int | None:
    return DAY_SECONDS if window == "24h" else None


_WINDOW = re.compile(r"([1-9][0-9]{0,3})([hd])\Z")


def groq_window_seconds(window: object) -> int | None:
    """Groq accepts ``"24h"`` up to ``"7d"`` in hours or days (``"48h"``, ``"3d"``, ``"7d"``)."""
    if not isinstance(window, str):
        return None
    found = _WINDOW.match(window)
    if found is None:
        return None
    hours = int(found.group(1)) * (24 if found.group(2) == "d" else 1)
    return hours * 3600 if 24 <= hours <= 7 * 24 else None


def _under(prefix: str, endpoints: tuple[str, ...]) -> tuple[RealtimeRoute, ...]:
    """Real-time routes for ``/v1/...`` endpoints served under ``prefix`` instead of ``/v1``."""
    return tuple(RealtimeRoute(prefix + e.removeprefix("/v1"), e) for e in endpoints)


OPENAI_BATCH_ENDPOINTS: frozenset[str] = frozenset(
    {*REALTIME_ENDPOINTS, "/v1/images/generations", "/v1/images/edits", "/v1/videos"}
)

OPENAI = OpenAIHost(
    name="openai",
    prefix="/v1",
    realtime=_under("/v1", REALTIME_ENDPOINTS),
    batch_endpoints=OPENAI_BATCH_ENDPOINTS,
    completion_window_seconds=only_24h,
)

GROQ = OpenAIHost(
    name="groq",
    prefix="/openai/v1",
    realtime=_under("/openai/v1", ("/v1/chat/completions", "/v1/responses")),
    batch_endpoints=frozenset({"/v1/chat/completions"}),
    completion_window_seconds=groq_window_seconds,
    file_id_prefix="file_",
)

XAI = OpenAIHost(
    name="xai",
    prefix="/xai/v1",
    realtime=_under("/xai/v1", ("/v1/chat/completions", "/v1/responses", "/v1/embeddings")),
    batch_endpoints=frozenset({"/v1/chat/completions", "/v1/responses"}),
    completion_window_seconds=only_24h,
)

_AZURE_DEPLOYMENT = "/openai/deployments/{deployment}"

AZURE = OpenAIHost(
    name="azure",
    prefix="/openai",
    realtime=(
        RealtimeRoute(f"{_AZURE_DEPLOYMENT}/chat/completions", "/v1/chat/completions"),
        RealtimeRoute(f"{_AZURE_DEPLOYMENT}/completions", "/v1/completions"),
        RealtimeRoute(f"{_AZURE_DEPLOYMENT}/embeddings", "/v1/embeddings"),
        RealtimeRoute("/openai/responses", "/v1/responses"),
    ),
    batch_endpoints=frozenset({"/chat/completions", "/embeddings"}),
    completion_window_seconds=only_24h,
    auth="api-key",
    requires_api_version=True,
)

HOSTS: tuple[OpenAIHost, ...] = (OPENAI, GROQ, XAI, AZURE)
