"""The shipped price table, user overrides, and input cost estimates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchling import pricing
from batchling.pricing import Price, PriceTableError


@pytest.fixture(autouse=True)
def no_user_prices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(pricing.PRICES_ENV, raising=False)
    monkeypatch.setattr(pricing, "_registered", {})


def test_the_shipped_table_has_a_date_a_source_and_the_common_models() -> None:
    table = pricing.shipped_table()
    assert table.as_of == pricing.prices_as_of()
    assert len(table.as_of) == 10
    assert "estimate" in table.source.lower()
    for provider, model in [
        ("openai", "gpt-4o"),
        ("openai", "gpt-4o-mini"),
        ("openai", "gpt-4.1-nano"),
        ("openai", "gpt-5-mini"),
        ("openai", "o4-mini"),
        ("openai", "text-embedding-3-large"),
        ("anthropic", "claude-sonnet-4-5"),
        ("anthropic", "claude-haiku-4-5"),
        ("anthropic", "claude-opus-4-1"),
        ("gemini", "gemini-2.5-pro"),
        ("gemini", "gemini-2.5-flash-lite"),
    ]:
        price = pricing.price_for(provider, model)
        assert price is not None, model
        assert price.batch_discount == 0.5


def test_exact_and_snapshot_names() -> None:
    mini = Price(0.15, 0.6, 0.5)
    assert pricing.price_for("openai", "gpt-4o-mini") == mini
    assert pricing.price_for("openai", "gpt-4o-mini-2024-07-18") == mini
    assert pricing.price_for("openai", "gpt-4o-2024-08-06") == Price(2.5, 10.0, 0.5)
    assert pricing.price_for("anthropic", "claude-sonnet-4-20250514") == Price(3.0, 15.0, 0.5)
    assert pricing.price_for("anthropic", "claude-opus-4-5-20251101") == Price(5.0, 25.0, 0.5)
    assert pricing.price_for("gemini", "models/gemini-2.5-flash") == Price(0.3, 2.5, 0.5)
    assert pricing.price_for("gemini", "gemini-2.5-flash-lite-preview-06-17") == Price(
        0.1, 0.4, 0.5
    )


def test_unknown_models_are_not_guessed() -> None:
    assert pricing.price_for("openai", "my-fine-tune") is None
    assert pricing.price_for("openai", "") is None
    assert pricing.price_for("anthropic", "gpt-4o") is None  # another provider's model
    # A longer name is another model unless it is a snapshot of a known one.
    assert pricing.price_for("gemini", "gemini-2.5-flash-image") is None
    assert pricing.price_for("anthropic", "claude-opus-4-7") is None
    unknown = pricing.estimate_input_cost("openai", "my-fine-tune", 1000)
    assert (unknown.realtime_usd, unknown.batch_usd, unknown.saving_usd) == (None, None, None)


def test_input_cost_estimate() -> None:
    estimate = pricing.estimate_input_cost("openai", "gpt-4o-mini", 100_000)
    assert estimate.realtime_usd == pytest.approx(0.015)
    assert estimate.batch_usd == pytest.approx(0.0075)
    assert estimate.saving_usd == pytest.approx(0.0075)
    opus = pricing.estimate_input_cost("anthropic", "claude-opus-4-1", 2_000_000)
    assert (opus.realtime_usd, opus.batch_usd, opus.saving_usd) == (30.0, 15.0, 15.0)


def test_register_price_overrides_and_covers_snapshots() -> None:
    pricing.register_price("openai", "gpt-4o-mini", Price(1.0, 2.0, 0.25))
    pricing.register_price("acme", "rocket-1", Price(4.0, 8.0))
    assert pricing.price_for("openai", "gpt-4o-mini-2024-07-18") == Price(1.0, 2.0, 0.25)
    estimate = pricing.estimate_input_cost("acme", "rocket-1", 1_000_000)
    assert (estimate.realtime_usd, estimate.batch_usd) == (4.0, 2.0)
    with pytest.raises(TypeError):
        pricing.register_price("openai", "x", (1.0, 2.0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_discount"):
        Price(1.0, 1.0, batch_discount=50)


def test_a_prices_file_adds_and_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {
                "as_of": "2030-01-01",
                "batch_discount": {"acme": 0.4},
                "models": {
                    "openai": {"gpt-4o": {"input": 3.0, "output": 12.0}},
                    "acme": {"rocket-1": {"input": 10.0, "output": 20.0}},
                },
            }
        )
    )
    monkeypatch.setenv(pricing.PRICES_ENV, str(path))
    assert pricing.price_for("openai", "gpt-4o") == Price(3.0, 12.0, 0.5)
    assert pricing.price_for("acme", "rocket-1") == Price(10.0, 20.0, 0.4)
    assert pricing.price_for("openai", "gpt-4o-mini") == Price(0.15, 0.6, 0.5)
    # register_price() wins over the file.
    pricing.register_price("openai", "gpt-4o", Price(9.0, 9.0))
    assert pricing.price_for("openai", "gpt-4o") == Price(9.0, 9.0)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not a readable JSON file"),
        ('{"openai": {}}', "no 'models' object"),
        ('{"models": {"openai": {"gpt-4o": {"output": 1}}}}', "has no 'input' price"),
        ('{"models": {"openai": {"gpt-4o": {"input": "cheap"}}}}', "models.openai.gpt-4o"),
        ('{"models": {"x": {}}, "batch_discount": {"x": 2}}', "batch_discount.x"),
    ],
)
def test_a_broken_prices_file_says_what_is_wrong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, message: str
) -> None:
    path = tmp_path / "prices.json"
    path.write_text(content)
    monkeypatch.setenv(pricing.PRICES_ENV, str(path))
    with pytest.raises(PriceTableError, match=message) as caught:
        pricing.price_for("openai", "gpt-4o")
    assert pricing.PRICES_ENV in str(caught.value)


def test_a_missing_prices_file_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(pricing.PRICES_ENV, str(tmp_path / "missing.json"))
    with pytest.raises(PriceTableError, match="cannot read it"):
        pricing.price_for("openai", "gpt-4o")
