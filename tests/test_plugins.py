"""Loading providers through pluggy: built-ins, entry points, and failures."""

from __future__ import annotations

import importlib.metadata
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

import batchling
from batchling import plugins
from batchling.providers.openai import OpenAIProvider


@pytest.fixture(autouse=True)
def fresh_plugins() -> Iterator[None]:
    plugins.reset_plugins()
    yield
    plugins.reset_plugins()


def _fake_entry_points(monkeypatch: pytest.MonkeyPatch, **modules: types.ModuleType) -> None:
    entry_points = []
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, module.__name__, module)
        entry_points.append(
            importlib.metadata.EntryPoint(name=name, value=module.__name__, group="batchling")
        )

    def select(**params: Any) -> list[importlib.metadata.EntryPoint]:
        assert params == {"group": "batchling"}
        return entry_points

    monkeypatch.setattr(plugins.importlib.metadata, "entry_points", select)


def test_builtin_openai_provider_is_registered() -> None:
    providers = plugins.get_providers()
    assert isinstance(providers["openai"], OpenAIProvider)


def test_builtin_whose_sdk_is_missing_is_skipped_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = set(plugins.get_providers())
    plugins.reset_plugins()
    monkeypatch.setattr(
        plugins,
        "BUILTIN_PLUGINS",
        (
            *plugins.BUILTIN_PLUGINS,
            ("missing", "batchling_tests_missing.provider", "batchling_tests_missing"),
        ),
    )
    assert set(plugins.get_providers()) == expected


def test_third_party_plugin_can_add_and_override_a_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Replacement(OpenAIProvider):
        pass

    class Extra(OpenAIProvider):
        name = "extra"

    module = types.ModuleType("batchling_tests_plugin")

    @batchling.hookimpl
    def batchling_register_providers(register: Any) -> None:
        register(Replacement())
        register(Extra())

    module.batchling_register_providers = batchling_register_providers  # type: ignore[attr-defined]
    _fake_entry_points(monkeypatch, tests_plugin=module)
    providers = plugins.get_providers()
    assert type(providers["openai"]) is Replacement
    assert type(providers["extra"]) is Extra


def test_broken_third_party_plugin_fails_loudly_with_its_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = types.ModuleType("batchling_tests_broken")

    @batchling.hookimpl
    def batchling_register_providers(register: Any) -> None:
        raise RuntimeError("plugin bug")

    module.batchling_register_providers = batchling_register_providers  # type: ignore[attr-defined]
    _fake_entry_points(monkeypatch, broken_one=module)
    with pytest.raises(batchling.PluginError, match=r"broken_one.*plugin bug"):
        plugins.get_providers()


def test_plugin_registering_a_non_provider_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = types.ModuleType("batchling_tests_wrong")

    @batchling.hookimpl
    def batchling_register_providers(register: Any) -> None:
        register(object())

    module.batchling_register_providers = batchling_register_providers  # type: ignore[attr-defined]
    _fake_entry_points(monkeypatch, wrong_one=module)
    with pytest.raises(batchling.PluginError, match=r"wrong_one.*does not implement"):
        plugins.get_providers()


def test_misspelled_hook_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("batchling_tests_typo")

    @batchling.hookimpl
    def batchling_register_provider(register: Any) -> None:  # missing "s"
        pass

    module.batchling_register_provider = batchling_register_provider  # type: ignore[attr-defined]
    _fake_entry_points(monkeypatch, typo_one=module)
    with pytest.raises(batchling.PluginError, match="does not define"):
        plugins.get_providers()


def test_plugin_that_fails_to_import_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    entry_point = importlib.metadata.EntryPoint(
        name="unimportable", value="batchling_tests_no_such_module", group="batchling"
    )
    monkeypatch.setattr(plugins.importlib.metadata, "entry_points", lambda **params: [entry_point])
    with pytest.raises(batchling.PluginError, match="unimportable"):
        plugins.get_providers()


def test_disabled_builtin_is_not_loaded_and_is_reported_as_blocked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(plugins.DISABLE_ENV, "mistral, batchling.providers.anthropic")
    providers = plugins.get_providers()
    assert "openai" in providers
    assert "mistral" not in providers
    assert "anthropic" not in providers
    infos, blocked = plugins.plugin_report()
    assert blocked == ["anthropic", "mistral"]
    assert {info.name for info in infos} >= {"openai", "gemini"}
    openai_info = next(info for info in infos if info.name == "openai")
    assert openai_info.source == plugins.BUILT_IN
    assert openai_info.providers == ("openai",)


def test_disabled_plugin_that_would_fail_to_load_is_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = types.ModuleType("batchling_tests_broken")

    @batchling.hookimpl
    def batchling_register_providers(register: Any) -> None:
        raise RuntimeError("boom")

    module.batchling_register_providers = batchling_register_providers  # type: ignore[attr-defined]
    _fake_entry_points(monkeypatch, broken=module)
    monkeypatch.setenv(plugins.DISABLE_ENV, "broken")
    assert "openai" in plugins.get_providers()
    assert plugins.plugin_report()[1] == ["broken"]


def test_disabling_a_name_no_plugin_has_is_warned_about(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(plugins.DISABLE_ENV, "opneai")
    assert "openai" in plugins.get_providers()
    assert "BATCHLING_DISABLE_PLUGINS names opneai, which is no installed batchling plugin" in (
        caplog.text
    )
