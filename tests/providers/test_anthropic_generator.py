"""AnthropicGenerator against a local fake of POST /v1/messages speaking Anthropic's JSON and SSE wire format."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import replace

import pytest
from provider_fakes import JPEG, PNG, PROXY_VARS, FakeServer, Recorded, Reply, refused_url, sse

from mmrag.adapters.generators.anthropic_claude import DEFAULT_MODELS, AnthropicGenerator
from mmrag.core.generation import GenImage, GenMessage, GenRequest, GenResult, ProviderUnavailable

KEY = "sk-ant-test-key-123"
MODEL = "claude-haiku-4-5"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    with FakeServer() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    # a proxy that does not exist, and env settings the SDK would otherwise pick up
    for var in PROXY_VARS:
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "env-key-must-not-be-used")
    server.reset()
    return server


@pytest.fixture
def gen(fake: FakeServer) -> Iterator[AnthropicGenerator]:
    generator = AnthropicGenerator(api_key=KEY, base_url=fake.url, timeout=5, max_retries=0)
    yield generator
    generator.close()


def request(**overrides) -> GenRequest:
    values = {
        "system": "Answer from the context only.",
        "messages": [GenMessage("user", "What is in the picture?", [GenImage(PNG, "image/png")])],
        "model": MODEL,
        "temperature": 0.3,
        "max_tokens": 321,
    }
    return GenRequest(**{**values, **overrides})


def message_json(text: str = "A red square.") -> dict:
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5-20251001",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 42, "output_tokens": 7},
    }


def error_reply(status: int, kind: str, message: str) -> Reply:
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"}
    return Reply.json(body, status, {"request-id": "req_011CSHoEeqs5C35K2UUqR7Fy"})


def event(data: dict) -> bytes:
    # Anthropic names each SSE event after its data's "type"
    return sse(data, data["type"])


def stream_events(deltas: list[str], tail: list[bytes] | None = None) -> list[bytes]:
    start = message_json("")
    start.update(content=[], stop_reason=None, usage={"input_tokens": 25, "output_tokens": 1})
    events = [
        event({"type": "message_start", "message": start}),
        event({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        event({"type": "ping"}),
    ]
    events += [
        event({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": d}}) for d in deltas
    ]
    if tail is not None:
        return events + tail
    return events + [
        event({"type": "content_block_stop", "index": 0}),
        event(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 15},
            }
        ),
        event({"type": "message_stop"}),
    ]


def sse_reply(events: list[bytes]) -> Reply:
    return Reply(200, events, {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})


def api_key_sent(recorded: Recorded) -> str | None:
    # SDK 1.x sends the key as x-api-key, 2.x as "Authorization: Bearer"; the API takes both
    if "x-api-key" in recorded.headers:
        return recorded.headers["x-api-key"]
    return recorded.headers.get("authorization", "").removeprefix("Bearer ") or None


def assert_messages_request(recorded: Recorded, *, stream: bool) -> None:
    assert recorded.path == "/v1/messages"
    assert api_key_sent(recorded) == KEY
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", recorded.headers["anthropic-version"])
    assert recorded.headers["content-type"] == "application/json"
    body = recorded.json
    assert body["model"] == MODEL
    assert body["system"] == "Answer from the context only."
    assert body["max_tokens"] == 321
    assert body["temperature"] == 0.3
    assert bool(body.get("stream")) is stream
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()},
                },
                {"type": "text", "text": "What is in the picture?"},
            ],
        }
    ]


def test_generate_sends_a_messages_request_and_parses_the_answer(fake, gen):
    fake.respond = lambda _: Reply.json(message_json())

    result = gen.generate(request())

    assert len(fake.requests) == 1
    assert_messages_request(fake.last, stream=False)
    assert result == GenResult(
        text="A red square.",
        model="claude-haiku-4-5-20251001",
        input_tokens=42,
        output_tokens=7,
        stop_reason="end_turn",
    )


def test_image_media_type_follows_the_bytes_and_text_only_turns_stay_plain(fake, gen):
    fake.respond = lambda _: Reply.json(message_json())
    messages = [
        GenMessage("user", "first", [GenImage(JPEG, "image/png")]),
        GenMessage("assistant", "noted"),
        GenMessage("user", "", [GenImage(PNG, "image/png")]),
    ]

    gen.generate(request(messages=messages, system=""))

    body = fake.last.json
    assert "system" not in body
    first, second, third = body["messages"]
    assert first["content"][0]["source"]["media_type"] == "image/jpeg"
    assert second == {"role": "assistant", "content": "noted"}
    assert [block["type"] for block in third["content"]] == ["image"]


def test_stream_yields_text_deltas_then_one_result(fake, gen):
    fake.respond = lambda _: sse_reply(stream_events(["A red", " square", "."]))

    items = list(gen.stream(request()))

    assert_messages_request(fake.last, stream=True)
    assert items[:-1] == ["A red", " square", "."]
    assert items[-1] == GenResult(
        text="A red square.",
        model="claude-haiku-4-5-20251001",
        input_tokens=25,
        output_tokens=15,
        stop_reason="end_turn",
    )


def test_an_error_event_mid_stream_becomes_provider_unavailable(fake, gen):
    error = event({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    fake.respond = lambda _: sse_reply(stream_events(["partial"], tail=[error]))

    received: list[object] = []
    with pytest.raises(ProviderUnavailable) as caught:
        for item in gen.stream(request()):
            received.append(item)

    assert received == ["partial"]
    assert "overloaded" in caught.value.message.lower()


ERRORS = [
    (401, "authentication_error", "invalid x-api-key", "rejected the API key"),
    (403, "permission_error", "Your API key does not have permission to use the specified resource.", "denied access"),
    (429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit", "rate limit"),
    (529, "overloaded_error", "Overloaded", "overloaded"),
    (500, "api_error", "Internal server error", "server error"),
    (404, "not_found_error", "model: claude-nope", "rejected the request"),
    (400, "invalid_request_error", "max_tokens: Field required", "rejected the request"),
]


@pytest.mark.parametrize("mode", ["generate", "stream"])
@pytest.mark.parametrize(("status", "kind", "api_message", "expected"), ERRORS)
def test_api_errors_become_provider_unavailable(fake, gen, mode, status, kind, api_message, expected):
    fake.respond = lambda _: error_reply(status, kind, f"{api_message} ({KEY})")

    with pytest.raises(ProviderUnavailable) as caught:
        gen.generate(request()) if mode == "generate" else list(gen.stream(request()))

    message = caught.value.message
    assert len(fake.requests) == 1, "max_retries=0 must not retry"
    assert "Anthropic" in message
    assert expected in message
    assert api_message in message
    assert f"HTTP {status}" in message and kind in message
    assert KEY not in message and KEY not in caught.value.detail
    assert caught.value.status == 503


@pytest.mark.parametrize("mode", ["generate", "stream"])
def test_a_model_that_rejects_temperature_is_asked_again_without_it(fake, gen, mode):
    def respond(recorded: Recorded) -> Reply:
        if "temperature" in recorded.json:
            return error_reply(400, "invalid_request_error", "temperature: not supported for this model")
        if recorded.json.get("stream"):
            return sse_reply(stream_events(["fine"]))
        return Reply.json(message_json("fine"))

    fake.respond = respond
    call = (lambda: gen.generate(request())) if mode == "generate" else (lambda: list(gen.stream(request()))[-1])

    assert call().text == "fine"
    assert ["temperature" in r.json for r in fake.requests] == [True, False]
    # remembered for this model: the next call goes out once, without temperature
    assert call().text == "fine"
    assert ["temperature" in r.json for r in fake.requests] == [True, False, False]


def test_refused_connection(fake):
    gen = AnthropicGenerator(api_key=KEY, base_url=refused_url(), timeout=2, max_retries=0)

    with pytest.raises(ProviderUnavailable) as caught:
        gen.generate(request())

    assert "cannot reach the Anthropic API" in caught.value.message
    assert KEY not in caught.value.message


def test_timeout(fake):
    fake.respond = lambda _: replace(Reply.json(message_json()), delay=1.0)
    gen = AnthropicGenerator(api_key=KEY, base_url=fake.url, timeout=0.3, max_retries=0)

    with pytest.raises(ProviderUnavailable) as caught:
        gen.generate(request())

    assert "timed out" in caught.value.message


def test_models_and_image_support():
    gen = AnthropicGenerator(api_key=KEY, models=["claude-opus-4-8", "claude-haiku-4-5"], base_url="http://127.0.0.1:9")

    assert gen.provider == "anthropic"
    assert gen.models() == ["claude-opus-4-8", "claude-haiku-4-5", "claude-sonnet-5-5", "claude-haiku-5-5",
                            "claude-opus-5-5", "claude-sonnet-4-6"]
    assert AnthropicGenerator(api_key=KEY, base_url="http://127.0.0.1:9").models() == DEFAULT_MODELS
    assert gen.supports_images("claude-haiku-4-5")
    assert not gen.supports_images("gpt-4o")
