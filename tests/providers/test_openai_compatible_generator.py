"""OpenAICompatibleGenerator against a local fake of POST /chat/completions: JSON and SSE, several dialects."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import replace

import pytest
from provider_fakes import JPEG, PNG, PROXY_VARS, FakeServer, Recorded, Reply, refused_url, sse

from mmrag.adapters.generators.openai_compatible import OpenAICompatibleGenerator
from mmrag.core.generation import GenImage, GenMessage, GenRequest, GenResult, ProviderUnavailable

KEY = "zhipu-test-key.abc123"
MODEL = "glm-4v-flash"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    with FakeServer() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    for var in PROXY_VARS:
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    server.reset()
    return server


def make(fake: FakeServer, **kwargs) -> OpenAICompatibleGenerator:
    values = {"base_url": fake.url + "/api/paas/v4/", "api_key": KEY, "models": [MODEL, "glm-4-flash"], "timeout": 5}
    return OpenAICompatibleGenerator(**{**values, **kwargs})


@pytest.fixture
def gen(fake: FakeServer) -> Iterator[OpenAICompatibleGenerator]:
    generator = make(fake, provider="zhipu")
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


def completion(text: str = "A red square.") -> dict:
    return {
        "id": "chatcmpl-20250101",
        "object": "chat.completion",
        "created": 1735689600,
        "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49},
    }


def chunk(content: str | None = None, finish: str | None = None, usage: dict | None = None, choices=True) -> dict:
    body: dict = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1735689600, "model": MODEL}
    delta = {"role": "assistant", "content": content} if content is not None else {}
    body["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else []
    if usage is not None:
        body["usage"] = usage
    return body


USAGE = {"prompt_tokens": 30, "completion_tokens": 4, "total_tokens": 34}


def sse_reply(events: list[bytes]) -> Reply:
    return Reply(200, events, {"Content-Type": "text/event-stream"})


def openai_stream(deltas: list[str]) -> list[bytes]:
    events = [sse(chunk(""))] + [sse(chunk(d)) for d in deltas] + [sse(chunk(finish="stop"))]
    return events + [sse(chunk(usage=USAGE, choices=False)), sse("[DONE]")]


def assert_chat_request(recorded: Recorded, *, stream: bool) -> None:
    assert recorded.path == "/api/paas/v4/chat/completions"
    assert recorded.headers["authorization"] == f"Bearer {KEY}"
    body = recorded.json
    assert body["model"] == MODEL
    assert body["temperature"] == 0.3
    assert body["max_tokens"] == 321
    assert body["stream"] is stream
    assert body["messages"] == [
        {"role": "system", "content": "Answer from the context only."},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()}},
                {"type": "text", "text": "What is in the picture?"},
            ],
        },
    ]


def test_generate_sends_chat_completions_and_parses_the_answer(fake, gen):
    fake.respond = lambda _: Reply.json(completion())

    result = gen.generate(request())

    assert_chat_request(fake.last, stream=False)
    assert "stream_options" not in fake.last.json
    assert result == GenResult("A red square.", MODEL, input_tokens=42, output_tokens=7, stop_reason="stop")


def test_text_only_turns_are_plain_strings_and_no_key_means_no_authorization(fake):
    fake.respond = lambda _: Reply.json(completion())
    gen = make(fake, api_key=None, provider="ollama")
    messages = [GenMessage("user", "hi"), GenMessage("assistant", "hello"), GenMessage("user", "", [GenImage(JPEG)])]

    gen.generate(request(messages=messages, system=""))

    assert "authorization" not in fake.last.headers
    assert fake.last.json["messages"] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(JPEG).decode()}}
            ],
        },
    ]


def test_bare_base64_images_for_servers_that_want_them(fake):
    fake.respond = lambda _: Reply.json(completion())

    make(fake, bare_base64_images=True).generate(request())

    assert fake.last.json["messages"][1]["content"][0]["image_url"]["url"] == base64.b64encode(PNG).decode()


def test_stream_with_a_usage_chunk_and_done(fake, gen):
    fake.respond = lambda _: sse_reply(openai_stream(["A red", " square", "."]))

    items = list(gen.stream(request()))

    assert_chat_request(fake.last, stream=True)
    assert fake.last.json["stream_options"] == {"include_usage": True}
    assert items[:-1] == ["A red", " square", "."]
    assert items[-1] == GenResult("A red square.", MODEL, input_tokens=30, output_tokens=4, stop_reason="stop")


def test_stream_with_usage_on_the_final_chunk_and_keepalive_comments(fake, gen):
    # Zhipu's shape: usage rides on the chunk that carries finish_reason; no separate usage chunk
    events = [b": keep-alive\n\n", sse(chunk("Hel")), b"data:" + sse(chunk("lo"))[6:]]
    events += [sse(chunk("", finish="stop", usage=USAGE)), sse("[DONE]")]
    fake.respond = lambda _: sse_reply(events)

    items = list(gen.stream(request()))

    assert items == ["Hel", "lo", GenResult("Hello", MODEL, input_tokens=30, output_tokens=4, stop_reason="stop")]


def test_stream_without_usage_reports_none(fake, gen):
    fake.respond = lambda _: sse_reply([sse(chunk("ok")), sse(chunk(finish="length")), sse("[DONE]")])

    result = list(gen.stream(request()))[-1]

    assert result == GenResult("ok", MODEL, input_tokens=None, output_tokens=None, stop_reason="length")


def test_a_server_that_rejects_stream_options_is_asked_again_without_it(fake, gen):
    def respond(recorded: Recorded) -> Reply:
        if "stream_options" in recorded.json:
            error = {"error": {"message": "Unrecognized request argument supplied: stream_options", "type": "invalid"}}
            return Reply.json(error, 400)
        return sse_reply(openai_stream(["fine"]))

    fake.respond = respond

    assert list(gen.stream(request()))[-1].text == "fine"
    assert list(gen.stream(request()))[-1].text == "fine"
    assert ["stream_options" in r.json for r in fake.requests] == [True, False, False]


def test_stream_usage_can_be_switched_off(fake):
    fake.respond = lambda _: sse_reply(openai_stream(["x"]))

    list(make(fake, stream_usage=False).stream(request()))

    assert "stream_options" not in fake.last.json


def test_an_error_chunk_mid_stream_becomes_provider_unavailable(fake, gen):
    error = {"object": "error", "message": "CUDA out of memory", "type": "InternalServerError", "code": 500}
    fake.respond = lambda _: sse_reply([sse(chunk("par")), sse(error)])

    received: list[object] = []
    with pytest.raises(ProviderUnavailable) as caught:
        for item in gen.stream(request()):
            received.append(item)

    assert received == ["par"]
    assert "CUDA out of memory" in caught.value.message and "zhipu" in caught.value.message


def test_a_stream_cut_short_becomes_provider_unavailable(fake, gen):
    fake.respond = lambda _: sse_reply([sse(chunk("par"))])

    with pytest.raises(ProviderUnavailable) as caught:
        list(gen.stream(request()))

    assert "before it finished" in caught.value.message


ERRORS = [
    (401, {"error": {"code": "1001", "message": "Authorization Token invalid"}}, "rejected the API key"),
    (403, {"error": {"message": "Access denied", "type": "Arrearage", "code": "Arrearage"}}, "denied access"),
    (404, {"error": {"message": 'model "glm-4v-flash" not found, try pulling it first'}}, "does not know this model"),
    (429, {"error": {"code": "1302", "message": "您当前使用该API的并发数过高"}}, "rate limit"),
    (500, {"error": {"message": "Internal error", "type": "server_error"}}, "server error"),
    (400, {"object": "error", "message": "max_tokens is too large", "type": "BadRequestError"}, "rejected"),
]


@pytest.mark.parametrize("mode", ["generate", "stream"])
@pytest.mark.parametrize(("status", "body", "expected"), ERRORS)
def test_http_errors_become_provider_unavailable(fake, gen, mode, status, body, expected):
    fake.respond = lambda _: Reply.json(body, status)

    with pytest.raises(ProviderUnavailable) as caught:
        gen.generate(request()) if mode == "generate" else list(gen.stream(request()))

    message = caught.value.message
    assert message.startswith(f"zhipu at {fake.url}/api/paas/v4/chat/completions")
    assert expected in message and f"HTTP {status}" in message
    detail = body["error"]["message"] if "error" in body else body["message"]
    assert detail in message
    assert KEY not in message


def test_a_key_echoed_by_the_server_is_masked(fake, gen):
    fake.respond = lambda _: Reply.json({"error": {"message": f"bad key {KEY}"}}, 401)

    with pytest.raises(ProviderUnavailable) as caught:
        gen.generate(request())

    assert KEY not in caught.value.message and "***" in caught.value.message


def test_a_non_json_answer(fake, gen):
    fake.respond = lambda _: Reply(200, b"<html>gateway</html>", {"Content-Type": "text/html"})

    with pytest.raises(ProviderUnavailable, match="unexpected answer"):
        gen.generate(request())


def test_refused_connection(fake):
    gen = OpenAICompatibleGenerator(refused_url() + "/v1", KEY, [MODEL], timeout=2)

    for call in (lambda: gen.generate(request()), lambda: list(gen.stream(request()))):
        with pytest.raises(ProviderUnavailable, match="cannot be reached: ConnectError"):
            call()


def test_timeout(fake):
    fake.respond = lambda _: replace(Reply.json(completion()), delay=1.0)

    with pytest.raises(ProviderUnavailable, match="timed out"):
        make(fake, timeout=0.3).generate(request())


VISION_NAMES = ["glm-4v-flash", "glm-4.5v", "qwen-vl-plus", "qwen2.5vl:7b", "llava:13b", "llama3.2-vision", "minicpm-v"]
TEXT_NAMES = ["glm-4-flash", "qwen-plus", "llama3.1:8b", "deepseek-v3", "mistral"]


def test_models_and_image_support(fake):
    configured = make(fake, models=["qwen-vl-max", "qwen-plus"], vision_models=["qwen-vl-max"], provider="dashscope")
    guessed = make(fake, models=["x"])

    assert configured.provider == "dashscope"
    assert configured.models() == ["qwen-vl-max", "qwen-plus"]
    assert configured.supports_images("qwen-vl-max")
    assert not configured.supports_images("qwen-plus")
    for model in VISION_NAMES:
        assert guessed.supports_images(model), model
    for model in TEXT_NAMES:
        assert not guessed.supports_images(model), model
    with pytest.raises(ValueError):
        OpenAICompatibleGenerator(fake.url, None, [])
