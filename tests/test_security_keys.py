"""Client keys and the admin token: compared in constant time, and required.

Constant time is proven structurally rather than by timing (timings are noise on a shared CI
machine): `hmac.compare_digest` is wrapped to record its calls, then keys of every length from
empty to longer than the longest configured key, sharing a prefix with a real key or not, are
presented in both header forms. Every attempt must cost exactly one compare_digest per configured
key, over the presented bytes and that key, whichever key is closest and whether it matches: a
short-circuit (`==`, `in`, stopping at the first match, a length check first) changes the count
or the arguments and fails the test.
"""

from __future__ import annotations

import hmac

import pytest
import requests

KEYS = ("k-alpha-0123456789", "k-beta-short", "k-gamma-a-much-longer-client-key-0042")
ADMIN = "admin-token-5b7c1e"
CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
CHAT_BODY = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES_BODY = {"model": "glm-4.7", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def compares(monkeypatch):
    """Every hmac.compare_digest call made while the test runs, as (a, b) pairs."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def recording(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording)
    return calls


@pytest.fixture
def keyed(start_proxy):
    return start_proxy(PROXY_API_KEYS=",".join(KEYS), ADMIN_TOKEN=ADMIN,
                           RATE_LIMIT_ENABLED="true")


def _headers(key: str, form: str) -> dict:
    return {"Authorization": f"Bearer {key}"} if form == "bearer" else {"x-api-key": key}


def _wrong_keys() -> list[str]:
    longest = max(len(k) for k in KEYS)
    wrong = ["x" * n for n in range(1, longest + 3)]                 # every length
    wrong += [key[:n] for key in KEYS for n in range(1, len(key))]   # every prefix of a real key
    wrong += [key + "0" for key in KEYS] + [key[:-1] + "#" for key in KEYS]
    wrong += [key.upper() for key in KEYS]
    return wrong


@pytest.mark.parametrize("form", ["bearer", "x-api-key"])
def test_every_configured_key_is_compared_for_every_wrong_key(keyed, compares, fake_zai, form):
    wrong = _wrong_keys()
    with requests.Session() as session:
        for key in wrong:
            compares.clear()
            response = session.post(keyed.url + CHAT, json=CHAT_BODY, headers=_headers(key, form))
            assert response.status_code == 401, key
            assert compares == [(key.encode(), k.encode()) for k in KEYS], key
    assert fake_zai.requests == []


@pytest.mark.parametrize("form", ["bearer", "x-api-key"])
def test_a_right_key_still_costs_one_compare_per_configured_key(keyed, compares, fake_zai, form):
    """Matching the first key must not stop the loop: otherwise the time tells which key it was."""
    with requests.Session() as session:
        for key in KEYS:
            compares.clear()
            response = session.post(keyed.url + CHAT, json=CHAT_BODY, headers=_headers(key, form))
            assert response.status_code == 200, key
            auth_calls = [call for call in compares if call[1] in {k.encode() for k in KEYS}]
            assert auth_calls == [(key.encode(), k.encode()) for k in KEYS]
    assert len(fake_zai.requests) == len(KEYS)


def test_a_missing_key_is_compared_too(keyed, compares):
    """No header at all goes through the same loop (an empty presented key), not an early exit."""
    response = requests.post(keyed.url + CHAT, json=CHAT_BODY)
    assert response.status_code == 401
    assert compares == [(b"", k.encode()) for k in KEYS]


def test_the_admin_token_is_compared_in_constant_time(keyed, compares):
    wrong = ["", *("y" * n for n in range(1, len(ADMIN) + 3)),
             *(ADMIN[:n] for n in range(1, len(ADMIN))), ADMIN + "x", ADMIN.upper(), *KEYS]
    with requests.Session() as session:
        for token in wrong:
            compares.clear()
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            response = session.post(keyed.url + "/admin/reset-rate-limit", headers=headers)
            assert response.status_code == 401, token
            assert compares == [(token.encode(), ADMIN.encode())], token
        compares.clear()
        response = session.post(keyed.url + "/admin/reset-rate-limit",
                                headers={"Authorization": f"Bearer {ADMIN}"})
        assert response.status_code == 200
        assert compares == [(ADMIN.encode(), ADMIN.encode())]


# -- behaviour: wrong, missing and right keys in both header forms -------------------------------
def _openai_401(response):
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json() == {"error": {
        "message": "Missing or invalid proxy API key: send it as 'Authorization: Bearer <key>' "
                   "or 'x-api-key: <key>'.",
        "type": "authentication_error", "code": "invalid_api_key"}}


def _anthropic_401(response):
    assert response.status_code == 401
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"


WRONG_OR_MISSING = [
    {},
    {"Authorization": ""},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer "},
    {"Authorization": "Bearer wrong"},
    {"Authorization": f"Basic {KEYS[0]}"},           # another scheme is not a bearer token
    {"Authorization": KEYS[0]},                      # a bare key without the scheme
    {"x-api-key": ""},
    {"x-api-key": "wrong"},
    {"x-api-key": KEYS[0] + " extra"},
    {"api-key": KEYS[0]},                            # Azure's header is not one of ours
    {"x-api-key": "wrong", "Authorization": f"Bearer {KEYS[0]}"},   # x-api-key wins when sent
    {"Authorization": f"Bearer {ADMIN}"},            # the admin token is not a client key
]
RIGHT = [
    {"Authorization": f"Bearer {KEYS[0]}"},
    {"Authorization": f"bearer {KEYS[1]}"},          # the scheme is case-insensitive (RFC 9110)
    {"Authorization": f"BEARER   {KEYS[2]}  "},
    {"x-api-key": KEYS[1]},
    {"X-API-KEY": KEYS[2]},
    {"x-api-key": KEYS[0], "Authorization": "Bearer wrong"},   # x-api-key is the one used
]


def test_wrong_or_missing_keys_are_401_in_the_family_format(keyed, fake_zai):
    for headers in WRONG_OR_MISSING:
        _openai_401(requests.post(keyed.url + CHAT, json=CHAT_BODY, headers=headers))
        _anthropic_401(requests.post(keyed.url + MESSAGES, json=MESSAGES_BODY, headers=headers))
    assert fake_zai.requests == []


def test_right_keys_pass_in_both_header_forms(keyed, fake_zai):
    for headers in RIGHT:
        assert requests.post(keyed.url + CHAT, json=CHAT_BODY,
                             headers=headers).status_code == 200, headers
        assert requests.post(keyed.url + MESSAGES, json=MESSAGES_BODY,
                             headers=headers).status_code == 200, headers
    sent = fake_zai.requests
    assert len(sent) == 2 * len(RIGHT)
    for record in sent:   # the upstream sees the proxy's Z.AI key only
        values = b" ".join(v for _, v in record.raw_headers).decode("latin-1")
        assert not any(key in values for key in KEYS)


def test_service_endpoints_need_no_client_key(keyed):
    """Probes and Prometheus carry no key; these paths never reach the upstream."""
    for path in ("/health", "/livez", "/readyz", "/metrics"):
        assert requests.get(keyed.url + path).status_code == 200, path


def test_the_admin_endpoint_requires_its_token_in_the_bearer_form(keyed):
    url = keyed.url + "/admin/reset-rate-limit"
    for headers in ({}, {"x-api-key": ADMIN}, {"Authorization": ADMIN},
                    {"Authorization": f"Bearer {ADMIN}x"}, {"Authorization": f"Bearer {KEYS[0]}"}):
        response = requests.post(url, headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["error"]["code"] == "invalid_admin_token"
    response = requests.post(url, headers={"Authorization": f"bearer {ADMIN}"})
    assert response.status_code == 200
    assert response.json()["status"] == "reset"
    assert requests.get(url, headers={"Authorization": f"Bearer {ADMIN}"}).status_code in (404, 405)


def test_the_admin_endpoint_is_off_without_a_token(start_proxy, compares):
    proxy = start_proxy(RATE_LIMIT_ENABLED="true")
    response = requests.post(proxy.url + "/admin/reset-rate-limit",
                             headers={"Authorization": "Bearer anything"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "admin_disabled"
    assert compares == []   # nothing to compare against: no empty-token match is possible
