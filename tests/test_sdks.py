"""tools/sdks.py: the lazily imported SDKs and their clients on one shared TLS context."""

from __future__ import annotations

import pytest

from tools.sdks import LazyModule, anthropic, anthropic_client, openai, openai_client


def test_introspection_never_imports_and_a_public_name_does():
    module = LazyModule("zai_no_such_module")
    for name in ("pytestmark", "__wrapped__", "_private"):
        with pytest.raises(AttributeError):
            getattr(module, name)
    with pytest.raises(ModuleNotFoundError):
        module.Client  # noqa: B018 - reading a public name imports the module


def _pool(client):
    return client._client._transport._pool


@pytest.mark.parametrize("make, plain, url", [
    (openai_client, lambda **o: openai.OpenAI(**o), "http://127.0.0.1:9/v1"),
    (anthropic_client, lambda **o: anthropic.Anthropic(**o), "http://127.0.0.1:9"),
])
def test_clients_share_one_tls_context_and_keep_the_sdk_defaults(make, plain, url):
    first, second = make(base_url=url, api_key="k"), make(base_url=url, api_key="k", timeout=3)
    reference = plain(base_url=url, api_key="k")
    assert _pool(first)._ssl_context is _pool(second)._ssl_context
    assert _pool(first)._ssl_context is not _pool(reference)._ssl_context
    assert (first.timeout, first.max_retries) == (reference.timeout, reference.max_retries)
    assert second.timeout == 3
    assert first._client.follow_redirects == reference._client.follow_redirects
    assert (_pool(first)._max_connections, _pool(first)._max_keepalive_connections) == \
        (_pool(reference)._max_connections, _pool(reference)._max_keepalive_connections)
