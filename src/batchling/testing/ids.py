"""Unique, cheap identifiers for objects created by the fake provider server."""

from __future__ import annotations

import itertools
import os


class IdGenerator:
    """Makes ids like ``batch_3f2a9c1e000000000000002a``.

    A random per-server prefix keeps ids from two servers apart; a counter keeps
    them unique and cheap (100,000-line batches need one id per line).
    ``next()`` on ``itertools.count`` is atomic under the GIL, so this is thread-safe.
    """

    def __init__(self) -> None:
        self._prefix = os.urandom(4).hex()
        self._counter = itertools.count(1)

    def new(self, kind: str) -> str:
        return f"{kind}{self._prefix}{next(self._counter):016x}"
