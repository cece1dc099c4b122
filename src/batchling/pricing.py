"""What model calls cost: a shipped list-price table, user overrides, and cost estimates.

Prices are USD per million tokens at real-time rates, plus the discount each provider gives
batch jobs. The shipped table (`batchling/data/prices.json`) is an estimate of public list
prices on its `as_of` date. A JSON file of the same shape named by `$BATCHLING_PRICES` adds or
replaces entries, and `register_price()` overrides both.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import threading
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

PRICES_ENV = "BATCHLING_PRICES"
DEFAULT_BATCH_DISCOUNT = 0.5
"""OpenAI, Anthropic and Gemini all bill batch jobs at half the real-time price."""

# What may follow a table key for a model name to share its price: a dated or numbered snapshot
# (`gpt-4o-mini-2024-07-18`, `claude-sonnet-4-20250514`, `gemini-2.0-flash-001`), an alias
# (`-latest`, `claude-opus-4-0`) or a preview tag. Anything else (`o3-mini` against `o3`) is a
# different model: unknown rather than guessed.
_SNAPSHOT_SUFFIX = re.compile(
    r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|\d{4}|\d{3}|0|latest|(?:preview|exp)(?:-[0-9-]+)?)"
)
_SHAPE = (
    '{"models": {"openai": {"gpt-4o": {"input": 2.5, "output": 10.0}}}, '
    '"batch_discount": {"openai": 0.5}} (USD per 1M tokens; batch_discount optional)'
)


class PriceTableError(ValueError):
    """A price table that cannot be used; the message names the file and the problem."""


@dataclasses.dataclass(frozen=True, slots=True)
class Price:
    """List prices of one model.

    Args:
        input_per_million: USD per million input tokens at the real-time price.
        output_per_million: USD per million output tokens at the real-time price.
        batch_discount: Fraction taken off for batch jobs (`0.5`: batch costs half).
    """

    input_per_million: float
    output_per_million: float
    batch_discount: float = DEFAULT_BATCH_DISCOUNT

    def __post_init__(self) -> None:
        if self.input_per_million < 0 or self.output_per_million < 0:
            raise ValueError(f"prices must be >= 0, got {self!r}")
        if not 0 <= self.batch_discount <= 1:
            raise ValueError(
                f"batch_discount is the fraction taken off (0.5 = half price), got "
                f"{self.batch_discount!r}"
            )


@dataclasses.dataclass(frozen=True, slots=True)
class CostEstimate:
    """The estimated input cost of some tokens of one model; `None` amounts: price unknown."""

    provider: str
    model: str
    input_tokens: int
    price: Price | None
    realtime_usd: float | None
    batch_usd: float | None
    saving_usd: float | None


@dataclasses.dataclass(frozen=True, slots=True)
class PriceTable:
    """Prices by (provider, model), with where they come from."""

    as_of: str
    source: str
    prices: Mapping[tuple[str, str], Price]
    batch_discounts: Mapping[str, float]
    """Each provider's batch discount, for entries that do not give their own."""


_lock = threading.Lock()
_registered: dict[tuple[str, str], Price] = {}
_env_cache: tuple[str, float, PriceTable] | None = None


def register_price(provider: str, model: str, price: Price) -> None:
    """Use `price` for `model` of `provider` (e.g. `"openai"`, `"gpt-4o"`) from now on.

    It overrides the shipped table and `$BATCHLING_PRICES`, and, like their entries, also
    prices the model's dated snapshots (`gpt-4o-2024-08-06`) unless they have their own entry.
    """
    if not isinstance(price, Price):
        raise TypeError(f"price must be a batchling.pricing.Price, got {price!r}")
    with _lock:
        _registered[(provider, _normalise(model))] = price


def price_for(provider: str, model: str) -> Price | None:
    """The price of `model`, or `None` when no table knows it.

    An exact entry wins; otherwise the longest entry that `model` extends with a snapshot
    suffix (`gpt-4o-mini-2024-07-18` is priced as `gpt-4o-mini`).
    """
    name = _normalise(model)
    if not name:
        return None
    prices = _merged_prices()
    exact = prices.get((provider, name))
    if exact is not None:
        return exact
    best: tuple[int, Price] | None = None
    for (table_provider, key), price in prices.items():
        if table_provider != provider or not name.startswith(key):
            continue
        if _SNAPSHOT_SUFFIX.fullmatch(name[len(key) :]) and (best is None or len(key) > best[0]):
            best = (len(key), price)
    return best[1] if best is not None else None


def estimate_input_cost(provider: str, model: str, input_tokens: int) -> CostEstimate:
    """What `input_tokens` input tokens of `model` cost in real time, in a batch job, and the
    difference; amounts are `None` when the price is unknown."""
    price = price_for(provider, model)
    if price is None:
        return CostEstimate(provider, model, input_tokens, None, None, None, None)
    realtime = input_tokens * price.input_per_million / 1_000_000
    batch = realtime * (1 - price.batch_discount)
    return CostEstimate(provider, model, input_tokens, price, realtime, batch, realtime - batch)


def prices_as_of() -> str:
    """The date of the shipped table's prices (`YYYY-MM-DD`)."""
    return shipped_table().as_of


@functools.cache
def shipped_table() -> PriceTable:
    """The price table shipped with batchling."""
    resource = resources.files("batchling").joinpath("data/prices.json")
    return parse_table(json.loads(resource.read_text(encoding="utf-8")), origin=str(resource))


def parse_table(
    data: object, *, origin: str, fallback_discounts: Mapping[str, float] | None = None
) -> PriceTable:
    """Read a price table in the `prices.json` shape; `origin` names it in errors.

    A provider without a `batch_discount` gets its discount from `fallback_discounts`, else
    `DEFAULT_BATCH_DISCOUNT`.
    """
    if not isinstance(data, Mapping) or not isinstance(data.get("models"), Mapping):
        raise PriceTableError(f"{origin}: no 'models' object. Expected {_SHAPE}.")
    discounts = data.get("batch_discount", {})
    if not isinstance(discounts, Mapping):
        raise PriceTableError(f"{origin}: 'batch_discount' must map providers to a fraction.")
    fallback = fallback_discounts or {}
    resolved: dict[str, float] = {}
    prices: dict[tuple[str, str], Price] = {}
    for provider, models in data["models"].items():
        if not isinstance(models, Mapping):
            raise PriceTableError(f"{origin}: models.{provider} must be an object of models.")
        discount = _parse_discount(
            discounts.get(provider, fallback.get(provider, DEFAULT_BATCH_DISCOUNT)),
            where=f"{origin}: batch_discount.{provider}",
        )
        resolved[str(provider)] = discount
        for model, entry in models.items():
            prices[(str(provider), _normalise(str(model)))] = _parse_price(
                entry, discount, where=f"{origin}: models.{provider}.{model}"
            )
    return PriceTable(
        as_of=str(data.get("as_of", "")),
        source=str(data.get("source", "")),
        prices=prices,
        batch_discounts=resolved,
    )


def _parse_discount(value: object, *, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise PriceTableError(
            f"{where} must be the fraction batch jobs take off (0.5 = half price), got {value!r}."
        )
    return float(value)


def _parse_price(entry: object, default_discount: float, *, where: str) -> Price:
    if not isinstance(entry, Mapping):
        raise PriceTableError(f"{where} must be an object like {{'input': 2.5, 'output': 10.0}}.")
    try:
        return Price(
            input_per_million=float(entry["input"]),
            output_per_million=float(entry.get("output", 0.0)),
            batch_discount=float(entry.get("batch_discount", default_discount)),
        )
    except KeyError:
        raise PriceTableError(f"{where} has no 'input' price (USD per 1M tokens).") from None
    except (TypeError, ValueError) as exc:
        raise PriceTableError(f"{where}: {exc}") from None


def env_table() -> PriceTable | None:
    """The table `$BATCHLING_PRICES` names, if set (re-read when the file changes)."""
    global _env_cache
    path = os.environ.get(PRICES_ENV)
    if not path:
        return None
    try:
        mtime = Path(path).stat().st_mtime
    except OSError as exc:
        raise PriceTableError(
            f"{PRICES_ENV}={path}: cannot read it ({exc.strerror}). Point it at a JSON price "
            f"table or unset it."
        ) from None
    with _lock:
        cached = _env_cache
    if cached is not None and cached[0] == path and cached[1] == mtime:
        return cached[2]
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PriceTableError(f"{PRICES_ENV}={path}: not a readable JSON file ({exc}).") from None
    table = parse_table(
        data,
        origin=f"{PRICES_ENV}={path}",
        fallback_discounts=shipped_table().batch_discounts,
    )
    with _lock:
        _env_cache = (path, mtime, table)
    return table


def _merged_prices() -> dict[tuple[str, str], Price]:
    prices = dict(shipped_table().prices)
    overrides = env_table()
    if overrides is not None:
        prices.update(overrides.prices)
    with _lock:
        prices.update(_registered)
    return prices


def _normalise(model: str) -> str:
    name = model.strip().lower()
    return name.removeprefix("models/")
