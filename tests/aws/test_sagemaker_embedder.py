"""SageMakerEmbedder against sagemaker-runtime: moto's InvokeEndpoint answers with canned bodies queued through moto's
results API (/moto-api/static/sagemaker/endpoint-results, served in-process), and the request bodies are checked
against the JSON contract. Error answers moto cannot produce (ModelError, throttling, missing endpoint) come from
botocore's Stubber on a real client. Any socket that is not 127.0.0.1 fails the test."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.aws.offline import loopback_only, offline_aws_env

pytest.importorskip("moto")
import boto3  # noqa: E402
import requests  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.exceptions import EndpointConnectionError  # noqa: E402
from botocore.stub import Stubber  # noqa: E402
from moto import mock_aws  # noqa: E402

from mmrag.adapters.aws.sagemaker_embedder import MAX_TEXT_CHARS, SageMakerEmbedder  # noqa: E402
from mmrag.errors import ServiceUnavailable  # noqa: E402

REGION = "us-east-1"
ENDPOINT = "mmrag-models"
RESULTS_API = "http://motoapi.amazonaws.com/moto-api/static/sagemaker/endpoint-results"


@pytest.fixture(autouse=True)
def offline_aws(monkeypatch) -> Iterator[None]:
    offline_aws_env(monkeypatch)
    loopback_only(monkeypatch)
    with mock_aws():  # a fresh moto state (and results queue) per test
        yield


@pytest.fixture(scope="module")
def clients() -> Iterator[dict[str, Any]]:
    """Clients are made once per module (making one costs ~0.1 s); moto intercepts them whenever a mock is active."""
    with pytest.MonkeyPatch.context() as mp:
        offline_aws_env(mp)
        yield {
            "moto": boto3.client("sagemaker-runtime", region_name=REGION),
            # for Stubber: no retries, botocore would back off and retry throttling and 503s before giving up
            "stub": boto3.client(
                "sagemaker-runtime", region_name=REGION, config=Config(retries={"total_max_attempts": 1})
            ),
        }


@pytest.fixture
def client(clients) -> Any:
    return clients["moto"]


@pytest.fixture
def sent(client) -> Iterator[Sent]:
    recorder = Sent(client)
    yield recorder
    recorder.close()


def queue(*answers: dict[str, Any]) -> None:
    """Queue InvokeEndpoint answers in moto: each new request body takes the next one."""
    results = [{"Body": json.dumps(a), "ContentType": "application/json"} for a in answers]
    resp = requests.post(RESULTS_API, json={"region": REGION, "results": results}, timeout=5)
    assert resp.status_code == 201


class Sent:
    """The InvokeEndpoint requests a real client sent (body and headers), from botocore's before-call hook."""

    EVENT = "before-call.sagemaker-runtime.InvokeEndpoint"

    def __init__(self, client: Any):
        self.requests: list[dict[str, Any]] = []
        self._client = client
        client.meta.events.register(self.EVENT, self._record)

    def close(self) -> None:
        self._client.meta.events.unregister(self.EVENT, self._record)

    def _record(self, params: dict[str, Any], **_: Any) -> None:
        self.requests.append({"body": json.loads(params["body"]), "headers": dict(params["headers"])})

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [r["body"] for r in self.requests]


def vectors(rows: list[list[float]], model: str = "text-model") -> dict[str, Any]:
    return {"vectors": rows, "dim": len(rows[0]) if rows else 2, "model": model}


# ---------------------------------------------------------------------------------------------- the happy paths
def test_text_embeddings_are_batched_normalised_and_follow_the_contract(client, sent) -> None:
    queue(vectors([[3, 4], [0, 2]]), vectors([[1, 0], [0, -5]]), vectors([[1, 1]]))
    embedder = SageMakerEmbedder(ENDPOINT, client=client, batch_size=2)
    texts = ["one", "two", "three", "四", "five"]

    out = embedder.text.embed_texts(texts)

    assert out.dtype == np.float32 and out.shape == (5, 2)
    np.testing.assert_allclose(out[0], [0.6, 0.8], atol=1e-6)
    np.testing.assert_allclose(out[3], [0.0, -1.0], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    assert sent.bodies == [
        {"task": "embed_text", "inputs": ["one", "two"]},
        {"task": "embed_text", "inputs": ["three", "四"]},
        {"task": "embed_text", "inputs": ["five"]},
    ]
    for request in sent.requests:
        assert request["headers"]["Content-Type"] == "application/json"
        assert request["headers"]["Accept"] == "application/json"
    # name and dimension come from the answers: no extra probe call
    assert embedder.text.name == "text-model" and embedder.text.dim == 2 and len(sent.requests) == 3
    assert embedder.text.health() == {"endpoint": ENDPOINT, "model": "text-model", "state": "loaded"}


def test_query_embedding_is_one_normalised_vector(client, sent) -> None:
    queue(vectors([[0, 3, 4]]))
    embedder = SageMakerEmbedder(ENDPOINT, client=client)

    q = embedder.text.embed_query("how hot is the coolant?")

    assert q.shape == (3,)
    np.testing.assert_allclose(q, [0, 0.6, 0.8], atol=1e-6)
    assert sent.bodies == [{"task": "embed_query", "inputs": ["how hot is the coolant?"]}]


def test_clip_texts_and_images(client, sent) -> None:
    clip = "clip-image + clip-text"
    queue(
        vectors([[2, 0], [0, 2], [1, 1]], clip),
        vectors([[5, 0], [0, 5]], clip),
        vectors([[1, 0]], clip),
    )
    embedder = SageMakerEmbedder(ENDPOINT, client=client, image_batch_size=2)

    texts = embedder.clip.embed_texts(["a red car", "a cat", "x" * (MAX_TEXT_CHARS + 10)])
    images = [
        Image.new("RGB", (1000, 500), "red"),
        Image.new("RGBA", (50, 80), (0, 0, 255, 128)),
        Image.new("L", (224, 300), 90),
    ]
    pictures = embedder.clip.embed_images(images)

    assert texts.shape == (3, 2) and pictures.shape == (3, 2)
    np.testing.assert_allclose(pictures[:2], [[1, 0], [0, 1]], atol=1e-6)
    first = sent.bodies[0]
    assert first["task"] == "embed_clip_text" and len(first["inputs"][2]) == MAX_TEXT_CHARS
    assert [b["task"] for b in sent.bodies[1:]] == ["embed_image", "embed_image"]
    assert [len(b["inputs"]) for b in sent.bodies[1:]] == [2, 1]
    decoded = [Image.open(io.BytesIO(base64.b64decode(s))) for b in sent.bodies[1:] for s in b["inputs"]]
    assert [im.format for im in decoded] == ["PNG", "PNG", "PNG"]
    assert [im.mode for im in decoded] == ["RGB", "RGB", "RGB"]
    # the shorter side shrunk to 224 like CLIP's own preprocessing; small pictures are sent as they are
    assert [im.size for im in decoded] == [(448, 224), (50, 80), (224, 300)]
    assert embedder.clip.name == clip and embedder.clip.dim == 2


def test_rerank_sends_the_query_with_every_batch(client, sent) -> None:
    queue({"scores": [1.5, -2.0], "model": "reranker"}, {"scores": [0.25], "model": "reranker"})
    embedder = SageMakerEmbedder(ENDPOINT, client=client, batch_size=2)

    scores = embedder.reranker.score("coolant", ["radiator", "lunch", "engine"])

    assert scores == [1.5, -2.0, 0.25]
    assert sent.bodies == [
        {"task": "rerank", "inputs": ["radiator", "lunch"], "query": "coolant"},
        {"task": "rerank", "inputs": ["engine"], "query": "coolant"},
    ]
    assert embedder.reranker.name == "reranker"
    assert embedder.reranker.score("coolant", []) == [] and len(sent.requests) == 2


def test_batches_also_respect_the_payload_limit(client, sent) -> None:
    queue(vectors([[1, 0], [1, 0]]), vectors([[0, 1], [0, 1]]))
    embedder = SageMakerEmbedder(ENDPOINT, client=client, batch_size=32, max_payload_bytes=130)
    texts = ["a" * 40, "b" * 40, "c" * 40, "d" * 40]

    embedder.text.embed_texts(texts)

    assert [b["inputs"] for b in sent.bodies] == [texts[:2], texts[2:]]
    assert all(len(json.dumps(b, separators=(",", ":"))) <= 130 for b in sent.bodies)


def test_empty_inputs_make_no_call_and_name_dim_probe_once(client, sent) -> None:
    queue(vectors([[1, 2, 2]], "probe-model"))
    embedder = SageMakerEmbedder(ENDPOINT, client=client)

    assert embedder.text.embed_texts([]).shape == (0, 0)
    assert embedder.clip.embed_images([]).shape == (0, 0)
    assert sent.requests == []
    assert embedder.text.state == "not loaded"

    assert embedder.text.dim == 3  # a probe call
    assert embedder.text.name == "probe-model"
    assert sent.bodies == [{"task": "embed_text", "inputs": ["dimension probe"]}]
    assert embedder.text.embed_texts([]).shape == (0, 3)


def test_load_wakes_every_space(client, sent) -> None:
    queue(vectors([[1, 0]], "t"), vectors([[0, 1]], "c"), {"scores": [0.0], "model": "r"})
    embedder = SageMakerEmbedder(ENDPOINT, client=client)

    embedder.load()
    embedder.reranker.load()

    assert [b["task"] for b in sent.bodies] == ["embed_text", "embed_clip_text", "rerank"]
    assert sent.bodies[2] == {"task": "rerank", "inputs": ["probe"], "query": "probe"}
    health = embedder.health()
    assert health["text"]["state"] == health["clip"]["image_state"] == health["rerank"]["state"] == "loaded"
    assert (health["text"]["model"], health["clip"]["model"], health["rerank"]["model"]) == ("t", "c", "r")


# ---------------------------------------------------------------------------------------------- bad answers
def test_an_answer_outside_the_contract_is_service_unavailable(client) -> None:
    embedder = SageMakerEmbedder(ENDPOINT, client=client)
    # nothing queued: moto answers its static placeholder body
    with pytest.raises(ServiceUnavailable, match="unexpected response") as info:
        embedder.text.embed_texts(["x"])
    assert ENDPOINT in info.value.message
    assert embedder.text.health()["state"] == "error"


@pytest.mark.parametrize(
    "answer",
    [
        vectors([[1, 0]]),  # one vector for two inputs
        {"vectors": [[1, 0], [1, 0, 0]], "dim": 2},  # ragged
        {"vectors": [[1, 0, 0], [1, 0, 0]], "dim": 2},  # dim disagrees
        {"scores": [1.0, 2.0]},  # the wrong kind of answer
    ],
)
def test_wrong_vectors_are_service_unavailable(client, answer) -> None:
    queue(answer)
    embedder = SageMakerEmbedder(ENDPOINT, client=client)
    with pytest.raises(ServiceUnavailable, match="unexpected response"):
        embedder.text.embed_texts(["x", "y"])


def test_wrong_scores_are_service_unavailable(client) -> None:
    queue({"scores": [1.0]}, {"scores": ["high", "low"]})
    embedder = SageMakerEmbedder(ENDPOINT, client=client)
    with pytest.raises(ServiceUnavailable, match="expected 2 scores"):
        embedder.reranker.score("q", ["a", "b"])
    with pytest.raises(ServiceUnavailable, match="not numbers"):
        embedder.reranker.score("q", ["c", "d"])


# ---------------------------------------------------------------------------------------------- errors (Stubber)
@pytest.mark.parametrize(
    ("code", "status", "fields", "words"),
    [
        (
            "ModelError",
            424,
            {"OriginalStatusCode": 400, "OriginalMessage": "inputs must be a JSON array", "LogStreamArn": "arn:x"},
            "the model container failed (HTTP 400): inputs must be a JSON array",
        ),
        ("ThrottlingException", 400, {}, "throttling requests"),
        ("ValidationError", 400, {}, "does not exist in this account and region"),
        ("ModelNotReadyException", 429, {}, "not ready yet"),
        ("ServiceUnavailable", 503, {}, "SageMaker Runtime is unavailable"),
        ("AccessDeniedException", 403, {}, "AccessDeniedException"),
    ],
)
def test_endpoint_errors_become_service_unavailable(clients, code, status, fields, words) -> None:
    client = clients["stub"]
    message = f"Endpoint {ENDPOINT} of account 123456789012 not found." if code == "ValidationError" else "no"
    with Stubber(client) as stub:
        stub.add_client_error(
            "invoke_endpoint",
            service_error_code=code,
            service_message=message,
            http_status_code=status,
            modeled_fields=fields or None,
        )
        embedder = SageMakerEmbedder(ENDPOINT, client=client)
        with pytest.raises(ServiceUnavailable) as info:
            embedder.clip.embed_texts(["a cat"])
        stub.assert_no_pending_responses()
    assert info.value.status == 503
    assert info.value.message.startswith(f"SageMaker endpoint {ENDPOINT!r}: ")
    assert words in info.value.message
    assert code in info.value.detail
    assert embedder.clip.health()["text_state"] == "error"


def test_network_failure_becomes_service_unavailable() -> None:
    class Unreachable:
        def invoke_endpoint(self, **_: Any) -> dict[str, Any]:
            raise EndpointConnectionError(endpoint_url="https://runtime.sagemaker.us-east-1.amazonaws.com")

    embedder = SageMakerEmbedder(ENDPOINT, client=Unreachable())
    with pytest.raises(ServiceUnavailable, match="cannot reach the endpoint"):
        embedder.reranker.score("q", ["d"])
    assert embedder.reranker.health()["state"] == "error"


def test_default_client_comes_from_the_environment() -> None:
    embedder = SageMakerEmbedder(ENDPOINT)
    assert embedder.client.meta.service_model.service_name == "sagemaker-runtime"
    assert embedder.client.meta.region_name == REGION
    with pytest.raises(ValueError):
        SageMakerEmbedder(ENDPOINT, batch_size=0)
