"""The fake Z.AI upstream itself: every surface and scenario over real HTTP on loopback.

Payloads are checked with the official openai and anthropic SDKs (proof that they are realistic
enough to parse, streaming included); transport faults with raw sockets, which show exactly
which bytes arrived before the connection broke.
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import json
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools.sdks import anthropic, anthropic_client, openai, openai_client
from tools.fake_zai import FakeZai, ScenarioError, parse
from tools.fake_zai import quota as quota_builders

ROOT = Path(__file__).resolve().parent.parent
CHAT = "/api/paas/v4/chat/completions"
MESSAGES = "/api/anthropic/v1/messages"
BODY = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def fake():
    with FakeZai() as server:
        yield server


@pytest.fixture(autouse=True)
def fresh(fake):
    fake.reset()
    yield


@pytest.fixture
def oai(fake):
    return openai_client(base_url=fake.openai_url, api_key="test-key", max_retries=0)


@pytest.fixture
def claude(fake):
    return anthropic_client(base_url=fake.anthropic_url, api_key="test-key", max_retries=0)


# -- raw HTTP helpers -------------------------------------------------------------------------
def call(fake, method, path, body=None, headers=None, timeout=5.0):
    """One request with http.client: (status, headers, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=timeout)
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    conn.request(method, path, body=data, headers=headers or {})
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response.status, response.headers, payload


def raw(fake, path, body, headers=None, timeout=2.0):
    """POST over a bare socket; read until EOF, reset or timeout.

    Returns (head bytes, body bytes as sent on the wire, how it ended: eof|reset|timeout)."""
    data = json.dumps(body).encode()
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
             f"Content-Length: {len(data)}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    sock = socket.create_connection(("127.0.0.1", fake.port), timeout=timeout)
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
    received, ending = b"", "eof"
    try:
        while True:
            piece = sock.recv(65536)
            if not piece:
                break
            received += piece
    except ConnectionResetError:
        ending = "reset"
    except socket.timeout:
        ending = "timeout"
    finally:
        sock.close()
    head, _, rest = received.partition(b"\r\n\r\n")
    return head, rest, ending


def dechunk(wire: bytes) -> bytes:
    """Decode a chunked body, keeping whatever arrived before it was cut short."""
    out = b""
    while wire:
        size_line, sep, wire = wire.partition(b"\r\n")
        if not sep:
            break
        size = int(size_line, 16)
        if size == 0:
            break
        out += wire[:size]
        wire = wire[size + 2:]
    return out


def events(stream: bytes) -> list[bytes]:
    """Complete SSE events (terminated by a blank line)."""
    return [e for e in stream.split(b"\n\n")[:-1]]


def sse_json(stream: bytes) -> list:
    out = []
    for event in events(stream):
        for line in event.split(b"\n"):
            if line.startswith(b"data: ") and line != b"data: [DONE]":
                out.append(json.loads(line[6:]))
    return out


def scenario(spec):
    return {"X-Fake-Scenario": spec}


# -- OpenAI surface ---------------------------------------------------------------------------
def test_openai_chat_whole_answer_parses_with_exact_usage(fake, oai):
    completion = oai.chat.completions.create(
        model="glm-4.7@ok;chunks=3;chunk_text=ab;prompt_tokens=100;completion_tokens=7;"
              "cached_tokens=40",
        messages=[{"role": "user", "content": "hi"}])
    assert completion.object == "chat.completion"
    assert completion.model == "glm-4.7"  # the scenario suffix is stripped
    assert completion.choices[0].message.content == "ababab"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens == 100
    assert completion.usage.completion_tokens == 7
    assert completion.usage.total_tokens == 107
    assert completion.usage.prompt_tokens_details.cached_tokens == 40
    recorded = fake.requests[-1]
    assert recorded.path == CHAT
    assert recorded.headers["Authorization"] == "Bearer test-key"
    assert recorded.json()["model"].startswith("glm-4.7@ok;")


def test_openai_stream_with_include_usage_ends_with_usage_chunk(oai):
    stream = oai.chat.completions.create(
        model="glm-4.7@chunks=4;prompt_tokens=30;cached_tokens=5",
        messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 4
    assert len(text.split()) == 4
    assert chunks[-2].choices[0].finish_reason == "stop"
    last = chunks[-1]
    assert last.choices == []
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (30, 4)
    assert last.usage.prompt_tokens_details.cached_tokens == 5


def test_openai_stream_without_include_usage_has_no_usage(fake):
    status, headers, payload = call(fake, "POST", CHAT, dict(BODY, stream=True))
    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    assert payload.endswith(b"data: [DONE]\n\n")
    parsed = sse_json(payload)
    assert len(parsed) == 6  # 5 deltas + the finish chunk
    assert all("usage" not in p and p["choices"] for p in parsed)


def test_openai_stream_usage_in_last_and_no_usage(fake):
    body = dict(BODY, stream=True, stream_options={"include_usage": True})
    _, _, payload = call(fake, "POST", CHAT, body, scenario("ok;usage_in_last=1;chunks=2"))
    parsed = sse_json(payload)
    assert len(parsed) == 3
    assert parsed[-1]["choices"][0]["finish_reason"] == "stop"
    assert parsed[-1]["usage"]["completion_tokens"] == 2
    _, _, payload = call(fake, "POST", CHAT, body, scenario("no_usage=1"))
    assert b"usage" not in payload
    _, _, payload = call(fake, "POST", CHAT, BODY, scenario("no_usage=1"))
    assert "usage" not in json.loads(payload)


def test_openai_stream_finish_reason(oai):
    chunks = list(oai.chat.completions.create(
        model="glm-4.7@finish_reason=network_error", messages=[], stream=True))
    assert chunks[-1].choices[0].finish_reason == "network_error"


def test_models_and_embeddings_parse_with_the_sdk(fake, oai):
    ids = [m.id for m in oai.models.list()]
    assert "glm-4.7" in ids and "glm-4.5-air" in ids
    result = oai.embeddings.create(model="embedding-3@dims=4;prompt_tokens=9",
                                   input=["a", "b"])  # the SDK asks for base64 and decodes
    assert [len(d.embedding) for d in result.data] == [4, 4]
    assert result.data[0].embedding != result.data[1].embedding
    assert result.usage.prompt_tokens == 9
    _, _, payload = call(fake, "POST", "/api/paas/v4/embeddings",
                         {"model": "embedding-3", "input": "a", "encoding_format": "base64"})
    vector = json.loads(payload)["data"][0]["embedding"]
    assert len(struct.unpack("<8f", base64.b64decode(vector))) == 8


def test_any_prefix_works_coding_plan_and_bare(fake):
    for prefix in ("/api/coding/paas/v4", "/v1", ""):
        status, _, payload = call(fake, "POST", prefix + "/chat/completions", BODY)
        assert status == 200 and json.loads(payload)["object"] == "chat.completion"


# -- Anthropic surface ------------------------------------------------------------------------
def test_anthropic_message_parses_with_exact_usage(fake, claude):
    message = claude.messages.create(
        model="glm-4.7@chunk_text=x;chunks=3;prompt_tokens=50;completion_tokens=6;"
              "cached_tokens=20;cache_creation_tokens=10",
        max_tokens=100, messages=[{"role": "user", "content": "hi"}])
    assert message.model == "glm-4.7"
    assert message.content[0].text == "xxx"
    assert message.stop_reason == "end_turn"
    usage = message.usage
    assert (usage.input_tokens, usage.output_tokens) == (50, 6)
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (20, 10)
    headers = fake.requests[-1].headers
    # anthropic 2.x sends the key as a Bearer token; older SDKs and Claude Code use x-api-key.
    assert "test-key" in headers.get("x-api-key", headers.get("authorization", ""))
    assert "anthropic-version" in headers


def test_anthropic_stream_event_order_and_final_usage(fake, claude):
    with claude.messages.stream(
            model="glm-4.7@chunks=3;prompt_tokens=70;cached_tokens=8;start_input_tokens=2",
            max_tokens=100, messages=[{"role": "user", "content": "hi"}]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert kinds.count("content_block_delta") == 3
    assert final.usage.input_tokens == 70
    assert final.usage.output_tokens == 3
    assert final.usage.cache_read_input_tokens == 8
    assert len(final.content[0].text.split()) == 3
    # On the wire, message_start carries only the small start count.
    _, _, payload = call(fake, "POST", MESSAGES, dict(BODY, stream=True),
                         scenario("start_input_tokens=2;prompt_tokens=70"))
    names = [e.split(b"\n")[0] for e in events(payload)]
    assert names == [b"event: " + n for n in (
        b"message_start", b"content_block_start", b"ping", b"content_block_delta",
        b"content_block_delta", b"content_block_delta", b"content_block_delta",
        b"content_block_delta", b"content_block_stop", b"message_delta", b"message_stop")]
    start = sse_json(payload)[0]
    assert start["message"]["usage"]["input_tokens"] == 2
    assert sse_json(payload)[-2]["usage"]["input_tokens"] == 70


def test_reasoning_chunks_on_both_surfaces(fake, oai, claude):
    completion = oai.chat.completions.create(model="glm-4.7@reasoning_chunks=2;chunks=1",
                                             messages=[])
    assert len(completion.choices[0].message.reasoning_content.split()) == 2
    assert completion.usage.completion_tokens == 3
    _, _, stream = call(fake, "POST", CHAT, dict(BODY, stream=True),
                        scenario("reasoning_chunks=2;chunks=1"))
    deltas = [p["choices"][0]["delta"] for p in sse_json(stream)]
    assert [sorted(d) for d in deltas[:3]] == [["reasoning_content", "role"]] * 2 + [
        ["content", "role"]]
    with claude.messages.stream(model="glm-4.7@reasoning_chunks=2;chunks=1", max_tokens=9,
                                messages=[{"role": "user", "content": "hi"}]) as events_:
        final = events_.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert len(final.content[0].thinking.split()) == 2 and final.usage.output_tokens == 3
    message = claude.messages.create(model="glm-4.7@reasoning_chunks=1", max_tokens=9,
                                     messages=[{"role": "user", "content": "hi"}])
    assert [b.type for b in message.content] == ["thinking", "text"]


def test_anthropic_stop_reason_mapping(claude):
    message = claude.messages.create(model="glm-4.7@finish_reason=length", max_tokens=5,
                                     messages=[{"role": "user", "content": "hi"}])
    assert message.stop_reason == "max_tokens"


def test_count_tokens_and_anthropic_models(fake, claude):
    counted = claude.messages.count_tokens(model="glm-4.7@prompt_tokens=321",
                                           messages=[{"role": "user", "content": "hi"}])
    assert counted.input_tokens == 321
    page = claude.models.list()
    assert "glm-4.7" in [m.id for m in page.data]


# -- quota, echo, control ---------------------------------------------------------------------
def test_quota_endpoint_default_and_settable(fake):
    status, _, payload = call(fake, "GET", "/api/monitor/usage/quota/limit",
                              headers={"Authorization": "raw-key"})
    limits = json.loads(payload)["data"]["limits"]
    assert status == 200 and [entry["unit"] for entry in limits] == [3, 6]
    assert limits[0]["currentValue"] == 10_000_000 and limits[0]["percentage"] == 25
    fake.set_quota(quota_builders.payload(
        [quota_builders.limit(quota_builders.FIVE_HOUR_UNIT, 100, 100, 1_800_000_000_000)]))
    limits = json.loads(call(fake, "GET", "/api/monitor/usage/quota/limit")[2])["data"]["limits"]
    assert limits == [{"type": "TOKENS_LIMIT", "unit": 3, "number": 5, "usage": 100,
                       "currentValue": 100, "remaining": 0, "percentage": 100,
                       "nextResetTime": 1_800_000_000_000}]
    call(fake, "POST", "/_fake/quota", {"code": 500, "msg": "boom"})
    assert json.loads(call(fake, "GET", "/api/monitor/usage/quota/limit")[2])["code"] == 500
    assert fake.requests[0].headers["Authorization"] == "raw-key"


def test_other_paths_echo_the_request(fake):
    status, _, payload = call(fake, "PUT", "/api/paas/v4/files/abc?purpose=x&y=1", b"12345",
                              headers={"X-Custom": "1"})
    echo = json.loads(payload)
    assert status == 200
    assert (echo["method"], echo["path"], echo["query"]) == ("PUT", "/api/paas/v4/files/abc",
                                                             "purpose=x&y=1")
    assert "x-custom" in echo["headers"] and echo["body_bytes"] == 5


def test_recording_in_process_and_over_http(fake):
    call(fake, "POST", CHAT + "?a=1", b'{"model":"glm-4.7","x":"\xc3\xa9"}',
         headers={"X-Test": "v"})
    recorded = fake.requests[-1]
    assert (recorded.method, recorded.path, recorded.query) == ("POST", CHAT, "a=1")
    assert recorded.body == b'{"model":"glm-4.7","x":"\xc3\xa9"}'
    assert recorded.headers["x-test"] == "v" and recorded.status == 200
    assert recorded.finished >= recorded.time > 0
    listed = json.loads(call(fake, "GET", "/_fake/requests")[2])
    assert len(listed) == 1  # /_fake calls are not recorded
    assert base64.b64decode(listed[0]["body_b64"]) == recorded.body
    assert ["X-Test", "v"] in listed[0]["headers"]
    stats = json.loads(call(fake, "GET", "/_fake/stats")[2])
    assert stats["by_path_status"] == {CHAT: {"200": 1}}
    call(fake, "DELETE", "/_fake/requests")
    assert fake.requests == [] and fake.stats["total"] == 0


def test_recording_is_bounded():
    with FakeZai(record_limit=3) as small:
        for _ in range(5):
            call(small, "GET", "/x")
        assert len(small.requests) == 3
        assert small.stats["total"] == 5 and small.stats["by_path"] == {"/x": 5}


def test_scenario_precedence_header_model_default(fake):
    fake.set_scenario("error;code=1303")
    assert call(fake, "POST", CHAT, BODY)[0] == 429
    body = dict(BODY, model="glm-4.7@status;code=502")
    assert call(fake, "POST", CHAT, body)[0] == 502
    assert call(fake, "POST", CHAT, body, scenario("ok"))[0] == 200
    call(fake, "POST", "/_fake/scenario", b"status;code=500")
    assert call(fake, "POST", CHAT, BODY)[0] == 500
    assert json.loads(call(fake, "GET", "/_fake/scenario")[2])["scenario"] == "status;code=500"
    assert [r.scenario for r in fake.requests] == [
        "error;code=1303", "status;code=502", "ok", "status;code=500"]


def test_path_scoped_default_scenario(fake):
    fake.set_scenario("truncated_json", path_suffix="/quota/limit")
    status, _, payload = call(fake, "GET", "/api/monitor/usage/quota/limit")
    assert status == 200 and payload == fake.state.quota_body[:len(fake.state.quota_body) // 2]
    assert call(fake, "POST", CHAT, BODY)[0] == 200
    call(fake, "POST", "/_fake/scenario?path=/chat/completions", b"status;code=500")
    assert call(fake, "POST", CHAT, BODY)[0] == 500
    assert json.loads(call(fake, "GET", "/_fake/scenario")[2])["paths"] == {
        "/quota/limit": "truncated_json", "/chat/completions": "status;code=500"}
    fake.set_scenario(None, path_suffix="/quota/limit")
    assert json.loads(call(fake, "GET", "/api/monitor/usage/quota/limit")[2])["code"] == 200


def test_bad_specs_are_refused_loudly(fake):
    for spec in ("nope", "ok;chunkz=3", "ok;chunks=many", "fail_first;fail_with=ok"):
        status, headers, payload = call(fake, "POST", CHAT, BODY, scenario(spec))
        assert status == 400 and headers["X-Fake-Error"] == "1", spec
    with pytest.raises(ScenarioError):
        fake.set_scenario("error;status=abc")
    assert parse("finish_reason=length").name == "ok"
    assert parse("error;message=a%3Bb").params["message"] == "a;b"


def test_wrong_method_and_bad_json(fake):
    assert call(fake, "GET", CHAT)[0] == 405
    status, _, payload = call(fake, "POST", CHAT, b"{not json")
    assert status == 400 and json.loads(payload)["error"]["code"] == "1214"
    status, _, payload = call(fake, "POST", MESSAGES, b"[]")
    assert status == 400 and json.loads(payload)["type"] == "error"


def test_extra_headers_and_determinism(fake):
    spec = scenario("ok;h.X-Zai-Thing=7")
    first = call(fake, "POST", CHAT, BODY, spec)
    second = call(fake, "POST", CHAT, BODY, spec)
    assert first[1]["X-Zai-Thing"] == "7"
    assert first[2] == second[2]
    seeded = json.loads(call(fake, "POST", CHAT, BODY, scenario("seed=9"))[2])
    assert seeded["choices"][0]["message"]["content"] != \
        json.loads(first[2])["choices"][0]["message"]["content"]


# -- errors -----------------------------------------------------------------------------------
def test_error_scenario_with_sdk_and_zai_envelope(oai):
    with pytest.raises(openai.RateLimitError) as caught:
        oai.chat.completions.create(model="glm-4.7@error;code=1302", messages=[])
    assert caught.value.status_code == 429
    assert caught.value.body["code"] == "1302"
    assert "concurrency" in caught.value.body["message"]


def test_error_headers_body_fields_and_status_by_code(fake):
    status, headers, payload = call(fake, "POST", CHAT, BODY, scenario(
        "error;code=1308;retry_after=2;body_retry_after=3;reset_time=2026-01-01 18:00:00"))
    error = json.loads(payload)["error"]
    assert status == 429 and headers["Retry-After"] == "2"
    assert error == {"code": "1308", "retry_after": 3, "reset_time": "2026-01-01 18:00:00",
                     "message": "Usage limit reached for 5 hour. Your limit will reset at "
                                "2026-01-01 18:00:00"}
    _, _, payload = call(fake, "POST", CHAT, BODY,
                         scenario("error;code=1310;reset_time=1767261600000;reset_field=0"))
    assert "reset_time" not in json.loads(payload)["error"]
    _, headers, _ = call(fake, "POST", CHAT, BODY,
                         scenario("error;retry_after=120;retry_after_date=1"))
    when = email.utils.parsedate_to_datetime(headers["Retry-After"]).timestamp()
    assert abs(when - (time.time() + 120)) < 5
    assert call(fake, "POST", CHAT, BODY, scenario("error;code=1211"))[0] == 400
    assert call(fake, "POST", CHAT, BODY, scenario("error;code=1001"))[0] == 401
    assert call(fake, "POST", CHAT, BODY, scenario("error;code=1113;status=434"))[0] == 434


def test_error_envelopes(fake):
    _, _, flat = call(fake, "POST", CHAT, BODY, scenario("error;code=1303;envelope=flat"))
    assert json.loads(flat)["code"] == 1303 and json.loads(flat)["success"] is False
    status, headers, payload = call(
        fake, "POST", MESSAGES, BODY,
        {"X-Fake-Scenario": "error;envelope=anthropic", "anthropic-beta": "x"})
    assert json.loads(payload)["error"]["type"] == "rate_limit_error"
    assert headers["anthropic-ratelimit-unified-status"] == "rejected"


def test_status_storms_openai_and_anthropic(fake, claude):
    status, _, payload = call(fake, "POST", CHAT, BODY, scenario("status"))
    assert status == 503 and json.loads(payload)["error"]["code"] == "503"
    with pytest.raises(anthropic.InternalServerError) as caught:
        claude.messages.create(model="glm-4.7@status", max_tokens=5, messages=[])
    assert caught.value.status_code == 529
    assert caught.value.body["error"]["type"] == "overloaded_error"
    assert call(fake, "POST", CHAT, BODY, scenario("status;status=504"))[0] == 504
    status, headers, payload = call(fake, "POST", CHAT, BODY, scenario("status;code=502;body=html"))
    assert status == 502 and b"<html>" in payload and headers["Content-Type"] == "text/html"


def test_fail_first_counts_per_key_and_resets(fake):
    spec = scenario("fail_first;n=2;key=abc;status=429;code=1303")
    assert [call(fake, "POST", CHAT, BODY, spec)[0] for _ in range(4)] == [429, 429, 200, 200]
    other = scenario("fail_first;key=other;fail_with=status;code=500")
    assert [call(fake, "POST", CHAT, BODY, other)[0] for _ in range(2)] == [500, 200]
    assert json.loads(call(fake, "GET", "/_fake/counters")[2]) == {"abc": 4, "other": 2}
    call(fake, "DELETE", "/_fake/counters?key=abc")
    assert call(fake, "POST", CHAT, BODY, spec)[0] == 429
    fake.clear()
    assert call(fake, "POST", CHAT, BODY, spec)[0] == 429


def test_fail_first_with_transport_fault(fake):
    spec = {"X-Fake-Scenario": "fail_first;fail_with=reset_before;key=r"}
    assert raw(fake, CHAT, BODY, spec)[2] == "reset"
    head, _, ending = raw(fake, CHAT, BODY, spec)
    assert head.startswith(b"HTTP/1.1 200") and ending == "eof"


# -- transport faults -------------------------------------------------------------------------
def test_reset_before_sends_nothing(fake):
    head, body, ending = raw(fake, CHAT, BODY, scenario("reset_before"))
    assert (head, body, ending) == (b"", b"", "reset")
    assert fake.requests[-1].status == 0


def test_reset_mid_stream_after_n_events(fake):
    head, wire, ending = raw(fake, CHAT, dict(BODY, stream=True), scenario("reset_mid;after=3"))
    assert head.startswith(b"HTTP/1.1 200") and ending == "reset"
    assert len(events(dechunk(wire))) == 3


def test_reset_mid_body_after_n_bytes(fake):
    full = call(fake, "POST", CHAT, BODY)[2]
    head, body, ending = raw(fake, CHAT, BODY, scenario("reset_mid;after=20"))
    assert ending == "reset" and body == full[:20]
    assert f"Content-Length: {len(full)}".encode() in head


def test_stall_keeps_connection_open_and_sees_client_leave(fake):
    head, wire, ending = raw(fake, CHAT, dict(BODY, stream=True), scenario("stall;after=2"),
                             timeout=0.5)
    assert ending == "timeout" and len(events(dechunk(wire))) == 2
    assert _eventually(lambda: fake.requests[-1].status == 499)  # our close cancelled it


def test_hang_never_answers(fake):
    assert raw(fake, CHAT, BODY, scenario("hang"), timeout=0.3) == (b"", b"", "timeout")


def test_incremental_stream_is_not_finished_when_first_event_arrives(fake):
    sock = socket.create_connection(("127.0.0.1", fake.port), timeout=5)
    data = json.dumps(dict(BODY, stream=True)).encode()
    sock.sendall(b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: x\r\nX-Fake-Scenario: "
                 b"interval_ms=100;chunks=3\r\nContent-Length: " + str(len(data)).encode()
                 + b"\r\n\r\n" + data)
    first = b""
    while b"\n\n" not in first:
        first += sock.recv(65536)
    assert fake.requests[-1].finished is None  # more events are still to come
    sock.close()


def test_first_delay_holds_the_answer_back(fake):
    started = time.monotonic()
    assert call(fake, "POST", CHAT, BODY, scenario("first_delay_ms=150"))[0] == 200
    assert time.monotonic() - started >= 0.15  # a lower bound, not a benchmark


def test_stall_after_zero_sends_headers_only(fake):
    head, body, ending = raw(fake, CHAT, BODY, scenario("stall;after=0"), timeout=0.3)
    assert head.startswith(b"HTTP/1.1 200") and body == b"" and ending == "timeout"


def test_reset_mid_anthropic_stream(fake):
    _, wire, ending = raw(fake, MESSAGES, dict(BODY, stream=True), scenario("reset_mid"))
    assert ending == "reset"
    assert [e.split(b"\n")[0] for e in events(dechunk(wire))] == [
        b"event: message_start", b"event: content_block_start"]


def test_drip_delivers_the_same_bytes_slowly(fake):
    full = call(fake, "POST", CHAT, BODY, scenario("chunks=1"))[2]
    started = time.monotonic()
    status, _, payload = call(fake, "POST", CHAT, BODY,
                              scenario("drip;chunks=1;byte_interval_ms=5;bytes_per_write=20"))
    writes = -(-len(full) // 20)
    assert status == 200 and payload == full
    assert time.monotonic() - started >= (writes - 1) * 0.005  # a lower bound, not a benchmark


def test_truncated_json_body_and_stream(fake):
    full = call(fake, "POST", CHAT, BODY)[2]
    status, headers, payload = call(fake, "POST", CHAT, BODY, scenario("truncated_json"))
    assert status == 200 and payload == full[:len(full) // 2]
    assert int(headers["Content-Length"]) == len(payload)
    with pytest.raises(ValueError):
        json.loads(payload)
    _, _, stream = call(fake, "POST", CHAT, dict(BODY, stream=True), scenario("truncated_json"))
    assert b"[DONE]" not in stream and len(events(stream)) == 3  # 7 events: 3 whole + half one


def test_empty_200_body_and_stream(fake):
    status, headers, payload = call(fake, "POST", CHAT, BODY, scenario("empty_200"))
    assert (status, payload, headers["Content-Length"]) == (200, b"", "0")
    status, headers, payload = call(fake, "POST", MESSAGES, dict(BODY, stream=True),
                                    scenario("empty_200"))
    assert status == 200 and payload == b""
    assert headers["Content-Type"].startswith("text/event-stream")


def test_large_answers(fake):
    _, _, payload = call(fake, "POST", CHAT, BODY, scenario("large;bytes=1000000"))
    assert len(json.loads(payload)["choices"][0]["message"]["content"]) == 1_000_000
    _, _, stream = call(fake, "POST", MESSAGES, dict(BODY, stream=True),
                        scenario("large;bytes=100000;chunk_bytes=30000"))
    deltas = [e["delta"]["text"] for e in sse_json(stream) if e["type"] == "content_block_delta"]
    assert [len(d) for d in deltas] == [30000, 30000, 30000, 10000]


def test_stream_error_events(fake, oai):
    _, _, stream = call(fake, "POST", CHAT, dict(BODY, stream=True), scenario("stream_error"))
    parsed = sse_json(stream)
    assert len(parsed) == 3 and parsed[-1]["error"]["code"] == "1305"
    _, _, stream = call(fake, "POST", MESSAGES, dict(BODY, stream=True),
                        scenario("stream_error;after=4"))
    assert events(stream)[-1].startswith(b"event: error\n")
    assert sse_json(stream)[-1]["error"]["type"] == "overloaded_error"


def test_client_disconnect_mid_stream_is_recorded(fake):
    sock = socket.create_connection(("127.0.0.1", fake.port), timeout=5)
    data = json.dumps(dict(BODY, stream=True)).encode()
    sock.sendall(b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: x\r\nX-Fake-Scenario: "
                 b"interval_ms=200;chunks=50\r\nContent-Length: " + str(len(data)).encode()
                 + b"\r\n\r\n" + data)
    sock.recv(1024)
    sock.close()
    assert _eventually(lambda: fake.requests[-1].disconnected)


# -- standalone CLI ---------------------------------------------------------------------------
def test_cli_serves_with_two_processes_and_stops_on_sigterm(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    port_file = tmp_path / "port"
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.fake_zai", "--port", str(port), "--processes", "2",
         "--scenario", "ok;chunk_text=z;chunks=2", "--port-file", str(port_file)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert "listening on" in process.stdout.readline()
        assert port_file.read_text().strip() == str(port)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        for _ in range(4):
            conn.request("POST", CHAT, body=json.dumps(BODY))
            answer = json.loads(conn.getresponse().read())
            assert answer["choices"][0]["message"]["content"] == "zz"
        conn.close()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def _eventually(check, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return False
