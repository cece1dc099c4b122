"""The clients a batch job is created, followed and read with: its callers' own.

The lines of one job share a client identity (key, base URL, organization, headers that
matter), so any of their callers' clients may speak for the job. The first one still open is
used each time: a caller that gives up early and closes its own client (`async with
AsyncOpenAI() as client:` around one call) does not strand the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from batchling.errors import ClientClosedError


def is_closed_client_error(error: BaseException) -> bool:
    """Whether `error` is an HTTP client refusing to send because it was closed meanwhile (the
    SDKs let it through unwrapped): the next attempt picks a client still open."""
    return isinstance(error, RuntimeError) and "client has been closed" in str(error)


class JobClients:
    """The distinct clients of a job's callers, in the order their calls came."""

    __slots__ = ("_clients", "_is_closed")

    def __init__(self, clients: Iterable[Any], is_closed: Callable[[Any], bool]) -> None:
        self._clients = list({id(client): client for client in clients}.values())
        self._is_closed = is_closed

    def current(self) -> Any:
        """The first client still open; a closed one is dropped (it stays closed)."""
        while self._clients:
            client = self._clients[0]
            if not self._is_closed(client):
                return client
            del self._clients[0]
        raise ClientClosedError(
            "Every client the callers of this batch job made their calls with has been closed, "
            "so batchling has none left to follow the job with. The job keeps running at the "
            "provider; with the journal on (the default), run the program again, keeping a "
            "client open until its calls return, to collect the results without paying again."
        )
