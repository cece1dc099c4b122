"""The public `batchify()` contract: arguments, errors and what is not available yet."""

from __future__ import annotations

import pytest

import batchling
from batchling import batchify


@pytest.mark.parametrize(
    "kwargs",
    [
        {"batch_size": 0},
        {"batch_size": 2.5},
        {"batch_window_seconds": -1},
        {"poll_interval_seconds": 0},
        {"completion_window": "soon"},
    ],
)
def test_bad_arguments_raise_a_clear_value_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        batchify(**kwargs)  # type: ignore[arg-type]


def test_default_cache_setting_does_not_stop_anything() -> None:
    assert isinstance(batchify(), batchling.Batchify)
    assert isinstance(batchify(cache=False), batchling.Batchify)


async def test_one_context_object_cannot_be_entered_twice_at_once() -> None:
    ctx = batchify()
    async with ctx:
        with pytest.raises(RuntimeError, match="already active"):
            await ctx.__aenter__()


def test_every_error_derives_from_batchling_error() -> None:
    for name in batchling.__all__:
        value = getattr(batchling, name)
        if isinstance(value, type) and issubclass(value, Exception) and name.endswith("Error"):
            assert issubclass(value, batchling.BatchlingError), name
