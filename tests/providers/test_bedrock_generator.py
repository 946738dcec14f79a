"""BedrockGenerator on a real bedrock-runtime client: Stubber for Converse, a local event-stream server for streams."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber
from provider_fakes import JPEG, PNG, PROXY_VARS, FakeServer, Reply, bedrock_event, bedrock_exception, refused_url

from mmrag.adapters.generators.bedrock_converse import DEFAULT_MODELS, BedrockGenerator
from mmrag.core.generation import GenImage, GenMessage, GenRequest, GenResult, ProviderUnavailable

MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
EVENTSTREAM = {"Content-Type": "application/vnd.amazon.eventstream"}


def client(endpoint_url: str | None = None):
    config = Config(
        proxies={},  # never the environment's proxy: tests talk to 127.0.0.1 only
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=2,
        read_timeout=5,
    )
    return boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        endpoint_url=endpoint_url,
        config=config,
    )


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in PROXY_VARS:
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    # botocore would otherwise ask the EC2 metadata service (169.254.169.254) for a region or credentials
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    with FakeServer() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeServer) -> FakeServer:
    server.reset()
    return server


def request(**overrides) -> GenRequest:
    values = {
        "system": "Answer from the context only.",
        "messages": [GenMessage("user", "What is in the picture?", [GenImage(PNG, "image/png")])],
        "model": MODEL,
        "temperature": 0.3,
        "max_tokens": 321,
    }
    return GenRequest(**{**values, **overrides})


EXPECTED_PARAMS = {
    "modelId": MODEL,
    "system": [{"text": "Answer from the context only."}],
    "messages": [
        {
            "role": "user",
            "content": [
                {"image": {"format": "png", "source": {"bytes": PNG}}},
                {"text": "What is in the picture?"},
            ],
        }
    ],
    "inferenceConfig": {"maxTokens": 321, "temperature": 0.3},
}


def test_converse_request_and_answer():
    runtime = client()
    answer = {
        "output": {"message": {"role": "assistant", "content": [{"text": "A red "}, {"text": "square."}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 42, "outputTokens": 7, "totalTokens": 49},
        "metrics": {"latencyMs": 321},
    }
    with Stubber(runtime) as stubber:
        stubber.add_response("converse", answer, EXPECTED_PARAMS)

        result = BedrockGenerator(client=runtime).generate(request())

        stubber.assert_no_pending_responses()
    assert result == GenResult("A red square.", MODEL, input_tokens=42, output_tokens=7, stop_reason="end_turn")


def test_converse_blocks_follow_the_image_bytes_and_skip_blank_text():
    runtime = client()
    messages = [GenMessage("user", "", [GenImage(JPEG, "image/png")]), GenMessage("assistant", "ok")]
    expected = {
        "modelId": "amazon.nova-lite-v1:0",
        "messages": [
            {"role": "user", "content": [{"image": {"format": "jpeg", "source": {"bytes": JPEG}}}]},
            {"role": "assistant", "content": [{"text": "ok"}]},
        ],
        "inferenceConfig": {"maxTokens": 321, "temperature": 0.3},
    }
    answer = {"output": {"message": {"role": "assistant", "content": [{"text": "x"}]}}, "stopReason": "max_tokens"}
    answer |= {"usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}, "metrics": {"latencyMs": 1}}
    with Stubber(runtime) as stubber:
        stubber.add_response("converse", answer, expected)

        result = BedrockGenerator(client=runtime).generate(
            request(model="amazon.nova-lite-v1:0", system="", messages=messages)
        )

    assert result.stop_reason == "max_tokens"


CLIENT_ERRORS = [
    ("AccessDeniedException", 403, "You don't have access to the model with the specified model ID.", "denied access"),
    ("UnrecognizedClientException", 403, "The security token included in the request is invalid.", "denied access"),
    ("ThrottlingException", 429, "Too many requests, please wait before trying again.", "rate limit"),
    ("ServiceQuotaExceededException", 400, "Your request exceeds the service quota.", "rate limit"),
    ("ModelNotReadyException", 429, "Model is not ready to serve inference requests.", "not ready"),
    ("ServiceUnavailableException", 503, "Service is unavailable.", "unavailable"),
    ("InternalServerException", 500, "Internal server error.", "unavailable"),
    ("ModelTimeoutException", 408, "Model has timed out in processing the request.", "unavailable"),
    ("ValidationException", 400, "The provided model identifier is invalid.", "rejected the request"),
    ("ResourceNotFoundException", 404, "Model not found.", "rejected the request"),
]


@pytest.mark.parametrize(("code", "status", "text", "expected"), CLIENT_ERRORS)
def test_client_errors_become_provider_unavailable(code, status, text, expected):
    runtime = client()
    with Stubber(runtime) as stubber:
        stubber.add_client_error("converse", service_error_code=code, service_message=text, http_status_code=status)

        with pytest.raises(ProviderUnavailable) as caught:
            BedrockGenerator(client=runtime).generate(request())

    message = caught.value.message
    assert message.startswith("Bedrock") and expected in message
    assert code in message and text in message and MODEL in message
    assert caught.value.status == 503


def stream_events(deltas: list[str]) -> list[bytes]:
    events = [bedrock_event("messageStart", {"p": "abcd", "role": "assistant"})]
    events += [bedrock_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": d}}) for d in deltas]
    return events + [
        bedrock_event("contentBlockStop", {"contentBlockIndex": 0}),
        bedrock_event("messageStop", {"stopReason": "end_turn"}),
        bedrock_event(
            "metadata",
            {"usage": {"inputTokens": 30, "outputTokens": 4, "totalTokens": 34}, "metrics": {"latencyMs": 120}},
        ),
    ]


def test_converse_stream_over_the_real_event_stream_wire_format(fake):
    fake.respond = lambda _: Reply(200, stream_events(["A red", " square", "."]), EVENTSTREAM)

    items = list(BedrockGenerator(client=client(fake.url)).stream(request()))

    assert items[:-1] == ["A red", " square", "."]
    assert items[-1] == GenResult("A red square.", MODEL, input_tokens=30, output_tokens=4, stop_reason="end_turn")
    recorded = fake.last
    assert recorded.path == "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream"
    assert recorded.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=x/")
    assert "/us-east-1/bedrock/aws4_request" in recorded.headers["authorization"]
    body = recorded.json
    assert body["system"] == [{"text": "Answer from the context only."}]
    assert body["inferenceConfig"] == {"maxTokens": 321, "temperature": 0.3}
    image, text = body["messages"][0]["content"]
    assert image == {"image": {"format": "png", "source": {"bytes": base64.b64encode(PNG).decode()}}}
    assert text == {"text": "What is in the picture?"}


def test_an_exception_event_mid_stream_becomes_provider_unavailable(fake):
    events = stream_events(["partial"])[:2] + [bedrock_exception("throttlingException", "Too many tokens, slow down.")]
    fake.respond = lambda _: Reply(200, events, EVENTSTREAM)

    received: list[object] = []
    with pytest.raises(ProviderUnavailable) as caught:
        for item in BedrockGenerator(client=client(fake.url)).stream(request()):
            received.append(item)

    assert received == ["partial"]
    assert "rate limit" in caught.value.message and "Too many tokens, slow down." in caught.value.message


def test_an_http_error_on_the_stream_call(fake):
    headers = {
        "Content-Type": "application/json",
        "x-amzn-ErrorType": "AccessDeniedException:http://internal.amazon.com/",
    }
    fake.respond = lambda _: Reply.json({"message": "You don't have access to the model."}, 403, headers)

    with pytest.raises(ProviderUnavailable) as caught:
        list(BedrockGenerator(client=client(fake.url)).stream(request()))

    assert "denied access" in caught.value.message and "AccessDeniedException, HTTP 403" in caught.value.message


def test_refused_connection():
    gen = BedrockGenerator(client=client(refused_url()))

    for call in (lambda: gen.generate(request()), lambda: list(gen.stream(request()))):
        with pytest.raises(ProviderUnavailable, match="cannot reach Bedrock"):
            call()


def test_no_region_is_reported_on_first_use(monkeypatch, tmp_path):
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    gen = BedrockGenerator()

    with pytest.raises(ProviderUnavailable, match="no AWS region"):
        gen.generate(request())


def test_models_and_image_support():
    gen = BedrockGenerator(client=object())

    assert gen.provider == "bedrock"
    assert gen.models() == DEFAULT_MODELS
    assert BedrockGenerator(client=object(), models=["amazon.nova-micro-v1:0"]).models() == ["amazon.nova-micro-v1:0"]
    for model in DEFAULT_MODELS:
        assert gen.supports_images(model), model
    assert not gen.supports_images("amazon.nova-micro-v1:0")
