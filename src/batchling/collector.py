"""Keeping Python's cyclic garbage collector off the heap that batchling's callers keep alive.

CPython runs a full collection each time the objects that survived earlier passes grow by a
quarter. A block of many calls grows a heap that stays alive by construction: each waiting call
holds its task, coroutine, request and future until its job's results arrive, and handing a
job's answers to their callers adds a tree of SDK models per call. A collector left alone walks
that whole growing heap again and again and frees nothing: at 100,000 calls, a third of the
client's CPU time.

Three measures, all process-wide:

- `paused`: while a job's answers are built (one synchronous loop that runs no other code of
  the event loop's thread), the collector is off; a job's growth then costs at most one pass.
- `hold`, as the first active block starts: what the program had built before it (its imports
  and data) is moved out of the collector's reach (`gc.freeze()`, after a collection of the
  young generations), so that passes during the block scan what the block adds.
- `hold`, while active blocks have at least `HOLD_THRESHOLD` calls waiting for batch results
  (or callbacks about to run on their loops: a `gather` of many calls schedules every task
  before the first one reaches batchling): what survives a full collection is frozen too, and
  so are the answers a paused loop just built. At the first full collection that finds fewer
  calls waiting, everything is given back (`gc.unfreeze()`).

Everything frozen is given back when the last block ends. Until then, cyclic garbage among the
frozen objects waits to be freed (objects freed by reference counting go at once, as always);
what was garbage when they were frozen had just been collected, except in the oldest
generation as the first block starts, which then waits for the block's end as well.

A process whose collector is off, or that froze objects itself (`gc.freeze()` before the first
block), is left alone: batchling neither freezes nor unfreezes anything in it. Objects a program
freezes while a block is active are given back with batchling's. A process forked meanwhile
keeps what was frozen, as after the usual `gc.freeze()` before a fork. Python 3.14's
incremental collector and free-threaded builds are left alone too (`paused` still applies).
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import sysconfig
import threading
from collections.abc import Callable, Iterator
from typing import Any

HOLD_THRESHOLD = 5_000
"""Calls waiting for batch results from which the survivors of full collections are frozen.
Below it the passes are short and freezing saves little."""

_OLDEST = len(gc.get_threshold()) - 1
"""The generation a full collection reports."""

_GENERATIONAL = sys.version_info < (3, 14) and not sysconfig.get_config_var("Py_GIL_DISABLED")
"""Whether the collector is the generational one `hold` is made for (full collections reported
as the oldest generation, after a quarter's growth). Python 3.14's incremental collector and
free-threaded builds collect, and report, otherwise: `hold` freezes nothing there."""

_lock = threading.RLock()
"""Guards the state below. The collector's callback only tries it: a collection can start in
a thread that holds it. Re-entrant: a collection inside `hold` or `release` can finalize a
generator whose block then ends in the same thread."""


class _Hold:
    """What the active blocks have asked for, and whether batchling froze anything."""

    def __init__(self) -> None:
        self.waiting: dict[object, Callable[[], int]] = {}
        """Each active block's count of calls waiting for batch results."""
        self.managed = False
        """Whether this process's collector is batchling's to freeze while blocks are active."""
        self.frozen = False
        """Whether objects batchling froze are still frozen."""
        self.holding = False
        """Whether survivors of full collections are being frozen (many calls wait)."""
        self.callback_installed = False


_hold = _Hold()


def hold(waiting: Callable[[], int]) -> Callable[[], None]:
    """Count a block's waiting calls (`waiting` is read during full collections, in whatever
    thread runs them, and must not raise); returns the function that ends the block's part.

    When the last block ends, everything batchling froze is given back.
    """
    token = object()
    with _lock:
        if not _hold.waiting:
            _hold.managed = _GENERATIONAL and gc.isenabled() and gc.get_freeze_count() == 0
            if _hold.managed:
                gc.collect(1)
                gc.freeze()
                _hold.frozen = True
        _hold.waiting[token] = waiting
        if not _hold.callback_installed:
            gc.callbacks.append(_after_collection)
            _hold.callback_installed = True

    def release() -> None:
        with _lock:
            if _hold.waiting.pop(token, None) is None or _hold.waiting:
                return
            _unfreeze()

    return release


def _unfreeze() -> None:
    """Give back what batchling froze (the caller holds `_lock`)."""
    _hold.holding = False
    if _hold.frozen:
        _hold.frozen = False
        gc.unfreeze()


def _waiting_calls() -> int:
    total = 0
    for waiting in list(_hold.waiting.values()):
        total += waiting()
    return total


def _after_collection(phase: str, info: dict[str, Any]) -> None:
    """After a full collection: freeze its survivors while many calls wait, else give back."""
    if phase != "stop" or info.get("generation") != _OLDEST or not _lock.acquire(blocking=False):
        return
    try:
        if not _hold.managed or not _hold.waiting:
            return
        if _waiting_calls() >= HOLD_THRESHOLD:
            gc.freeze()
            _hold.frozen = _hold.holding = True
        elif _hold.holding:
            _unfreeze()
    except Exception:  # a collector callback must never raise; the pass is done
        pass
    finally:
        _lock.release()


def _forget_in_child() -> None:
    """A forked child has none of the parent's blocks. What was frozen stays frozen (as after
    the usual `gc.freeze()` before a fork: passes in the child do not rewrite the pages it
    shares with its parent); batchling freezes nothing more in it."""
    global _lock
    _lock = threading.RLock()
    _hold.waiting.clear()
    _hold.managed = _hold.frozen = _hold.holding = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Turn the collector off for the block if it is on; leave it as it was afterwards. While
    many calls wait (`hold`), what the block built is frozen.

    Only for synchronous code that does not await or call user code: the pause is process-wide.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        _freeze_if_holding()
        gc.enable()


def _freeze_if_holding() -> None:
    if not _lock.acquire(blocking=False):
        return
    try:
        # Only while holding: right after a routing pass, the wakeups of the callers it answered
        # fill the loop's ready queue, which counts as waiting calls.
        if _hold.managed and _hold.waiting and _hold.holding:
            gc.freeze()
            _hold.frozen = True
    except Exception:  # only a saving is lost
        pass
    finally:
        _lock.release()
