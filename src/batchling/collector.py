"""Pausing Python's cyclic garbage collector while batchling builds many long-lived objects.

CPython runs a full collection each time the objects that survived earlier passes grow by a
quarter. Handing 50,000 answers to their callers grows the heap by about a million tracked
objects (each answer is a tree of SDK models), all of which stay alive, so a collector left on
walks the whole growing heap several times over and frees nothing. Paused for the duration of
one synchronous loop, the same growth costs one pass afterwards. No other code of the event
loop's thread runs inside the loop. The switch is process-wide: other threads keep running
(the loop releases the GIL now and then) and their cycles are freed a little later; a thread
that turns the collector off itself meanwhile finds it on again when the loop ends.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Turn the collector off for the block if it is on; leave it as it was afterwards.

    Only for synchronous code that does not await or call user code: the pause is process-wide.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
