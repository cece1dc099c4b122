"""Install and uninstall the wrapt wrappers on every provider target, and the ContextVar gate.

Wrappers are installed once per process, on the first `batchify()`, and stay installed: outside a
`batchify()` block a wrapped method costs one `ContextVar.get()` and then calls the original.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import wrapt

from batchling.provider import PatchTarget, Provider

log = logging.getLogger(__name__)


class CallRouter(Protocol):
    """Receives every intercepted call made while it is the active router."""

    def route(
        self,
        provider: Provider,
        target: PatchTarget,
        wrapped: Callable[..., Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Handle one call; return what the wrapped method would return (e.g. a coroutine)."""
        ...


class _Suspended:
    """Marks a context where calls must not be batched (batchling's own calls)."""

    def route(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a suspended context routes nothing")


SUSPENDED = _Suspended()

_active_router: contextvars.ContextVar[CallRouter | None] = contextvars.ContextVar(
    "batchling_active_router", default=None
)
# Routers of plain `with batchify()` blocks: they apply to every thread of the process whose
# context has no router of its own (thread pools do not inherit the context), innermost last.
_process_routers: list[CallRouter] = []
_process_lock = threading.Lock()


class UnroutedObserver(Protocol):
    """An `async with batchify()` block, told of calls made in threads its context did not
    reach while it is active (`loop.run_in_executor`, a plain `threading.Thread`)."""

    def unrouted_call(self, provider: Provider) -> None:
        """Report one such call (it goes out in real time)."""
        ...


_async_blocks: list[UnroutedObserver] = []
"""Active `async with batchify()` blocks of the process, innermost last."""


def _push(stack: list[Any], item: Any) -> None:
    with _process_lock:
        stack.append(item)


def _drop(stack: list[Any], item: Any) -> None:
    with _process_lock:
        if item in stack:
            stack.remove(item)


def watch_unrouted(block: UnroutedObserver) -> None:
    """Tell `block` of calls made outside any block's context while it is active."""
    _push(_async_blocks, block)


def unwatch_unrouted(block: UnroutedObserver) -> None:
    """Undo the matching `watch_unrouted`."""
    _drop(_async_blocks, block)


def current_router() -> CallRouter | None:
    """The router that receives calls made here now (None outside any block)."""
    router = _active_router.get()
    if router is None and _process_routers:
        router = _process_routers[-1]
    return None if router is SUSPENDED else router


def activate(router: CallRouter | None) -> contextvars.Token[CallRouter | None]:
    """Make `router` receive intercepted calls in the current context."""
    return _active_router.set(router)


def deactivate(token: contextvars.Token[CallRouter | None]) -> None:
    """Undo the matching `activate`."""
    _active_router.reset(token)


def activate_for_process(router: CallRouter) -> None:
    """Make `router` receive calls from every thread that has no router of its own."""
    _push(_process_routers, router)


def deactivate_for_process(router: CallRouter) -> None:
    """Undo the matching `activate_for_process`."""
    _drop(_process_routers, router)


@contextlib.contextmanager
def suspended() -> Iterator[None]:
    """Let calls through unbatched, e.g. batchling's own calls to the Batch API."""
    token = _active_router.set(SUSPENDED)
    try:
        yield
    finally:
        _active_router.reset(token)


@dataclass(frozen=True, slots=True)
class _Patch:
    parent: Any
    attribute: str
    original: Any
    owned: bool
    """Whether `parent` defined the attribute itself (restore it) or inherited it (delete ours)."""


_lock = threading.RLock()
_patches: dict[PatchTarget, _Patch] = {}
# Which provider handles each target; replacing a provider does not need a re-wrap.
_handlers: dict[PatchTarget, Provider] = {}


def _make_wrapper(target: PatchTarget) -> Callable[..., Any]:
    def batchling_wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        router = _active_router.get()
        if router is None:
            if not _process_routers:
                if _async_blocks and not target.hook and not _in_unrouted_call.get():
                    return _unrouted(target, wrapped, args, kwargs)
                return wrapped(*args, **kwargs)
            router = _process_routers[-1]
        if router is SUSPENDED:
            return wrapped(*args, **kwargs)
        return router.route(_handlers[target], target, wrapped, instance, args, kwargs)

    return batchling_wrapper


_in_unrouted_call: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "batchling_in_unrouted_call", default=False
)
"""Set while an unrouted call runs: the SDK method it calls (a create method calls the
client's `request`, also wrapped) is the same call, reported once."""


def _unrouted(
    target: PatchTarget, wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """A call made while an `async with batchify()` block is active, in a thread its context
    did not reach: reported to the block, then sent as usual."""
    _async_blocks[-1].unrouted_call(_handlers[target])
    token = _in_unrouted_call.set(True)
    try:
        result = wrapped(*args, **kwargs)
    finally:
        _in_unrouted_call.reset(token)
    if inspect.isawaitable(result):
        return _awaited_as_one_call(result)
    return result


async def _awaited_as_one_call(call: Awaitable[Any]) -> Any:
    token = _in_unrouted_call.set(True)
    try:
        return await call
    finally:
        _in_unrouted_call.reset(token)


def install(providers: Iterable[Provider]) -> None:
    """Wrap every target of `providers`; targets already wrapped are left as they are."""
    with _lock:
        for provider in providers:
            for target in provider.targets:
                _handlers[target] = provider
                if target in _patches:
                    continue
                try:
                    module = importlib.import_module(target.module)
                    parent, attribute, original = wrapt.resolve_path(module, target.qualname)
                except (ImportError, AttributeError):
                    # Another SDK version may not have this method: nothing to intercept there.
                    log.debug("%s: %s.%s not found", provider.name, target.module, target.qualname)
                    continue
                owned = attribute in vars(parent)
                setattr(parent, attribute, wrapt.FunctionWrapper(original, _make_wrapper(target)))
                _patches[target] = _Patch(parent, attribute, original, owned)


def uninstall() -> None:
    """Restore every wrapped method exactly as it was before `install`."""
    with _lock:
        for patch in _patches.values():
            if patch.owned:
                setattr(patch.parent, patch.attribute, patch.original)
            else:
                delattr(patch.parent, patch.attribute)
        _patches.clear()
        _handlers.clear()


def installed_targets() -> frozenset[PatchTarget]:
    """The targets currently wrapped."""
    with _lock:
        return frozenset(_patches)
