"""Installing and removing the SDK wrappers."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import openai._base_client
import pytest
import wrapt

from batchling import patching
from batchling.plugins import get_providers
from batchling.testing import FakeProviderServer


@pytest.fixture
def clean_patches() -> Iterator[None]:
    patching.uninstall()
    yield
    patching.uninstall()


def test_install_twice_is_the_same_as_once(clean_patches: None) -> None:
    providers = list(get_providers().values())
    patching.install(providers)
    first = vars(openai._base_client.AsyncAPIClient)["request"]
    patching.install(providers)
    second = vars(openai._base_client.AsyncAPIClient)["request"]
    assert isinstance(first, wrapt.FunctionWrapper)
    assert second is first
    assert not isinstance(first.__wrapped__, wrapt.FunctionWrapper)


def test_uninstall_restores_the_original_method_exactly(clean_patches: None) -> None:
    original = vars(openai._base_client.AsyncAPIClient)["request"]
    patching.install(get_providers().values())
    assert vars(openai._base_client.AsyncAPIClient)["request"] is not original
    patching.uninstall()
    assert vars(openai._base_client.AsyncAPIClient)["request"] is original
    assert patching.installed_targets() == frozenset()


async def test_wrapped_call_outside_batchify_behaves_as_unwrapped(
    clean_patches: None, fake_server: FakeProviderServer
) -> None:
    patching.install(get_providers().values())
    async with openai.AsyncOpenAI(base_url=fake_server.openai_base_url, api_key="k") as client:
        reply = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "plain"}]
        )
    assert reply.choices[0].message.content == "echo: plain"
    assert fake_server.stats.realtime_calls == 1
    assert fake_server.stats.batches_created == 0


def test_install_from_many_threads_wraps_once(clean_patches: None) -> None:
    import threading

    providers = list(get_providers().values())
    barrier = threading.Barrier(8)

    def install() -> None:
        barrier.wait()
        patching.install(providers)

    threads = [threading.Thread(target=install) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wrapper = vars(openai._base_client.AsyncAPIClient)["request"]
    assert isinstance(wrapper, wrapt.FunctionWrapper)
    assert not isinstance(wrapper.__wrapped__, wrapt.FunctionWrapper)
