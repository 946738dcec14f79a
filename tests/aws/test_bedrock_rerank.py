"""Bedrock's Rerank API as the AWS reranker, tested at the boto boundary: real bedrock-agent-runtime clients whose
requests botocore validates against its service model, answered by botocore's Stubber (exact request, canned answer
or error) or by a stand-in that scores in-process (dynamic answers, for the Lambda functions). The served names and
the degrade path run through the real search service inside the SearchFunction / QaFunction handlers of
mmrag_dev's sandbox (moto, the fake OpenSearch, the SageMaker stand-in). Any socket that is not 127.0.0.1 fails
the test; nothing here reaches AWS (tests/aws/test_bedrock_rerank_real.py does, when asked to)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.stub import Stubber

from mmrag.adapters.aws.bedrock_rerank import (
    MAX_SOURCES,
    MAX_TEXT_CHARS,
    BedrockReranker,
    LazyClient,
    aws_rerankers,
    cut,
    relevance_to_logit,
)
from mmrag.core.search import _sigmoid  # the core's own sigmoid: the mapping is checked against it
from mmrag.errors import ServiceUnavailable
from tests.aws.offline import loopback_only, offline_aws_env

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-west-2"
AMAZON, COHERE = "amazon.rerank-v1:0", "cohere.rerank-v3-5:0"
SAGEMAKER = "Xenova/ms-marco-MiniLM-L-6-v2"


@pytest.fixture(autouse=True)
def offline(monkeypatch) -> None:
    offline_aws_env(monkeypatch)
    loopback_only(monkeypatch)


def make_client(region: str = REGION, endpoint_url: str | None = None) -> Any:
    # no retries: botocore would back off and retry throttling and 5xx before giving up
    config = Config(retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=2)
    return boto3.client("bedrock-agent-runtime", region_name=region, endpoint_url=endpoint_url, config=config)


def arn(model: str, region: str = REGION) -> str:
    return f"arn:aws:bedrock:{region}::foundation-model/{model}"


def expected(query: str, docs: list[str], model: str = AMAZON, region: str = REGION) -> dict[str, Any]:
    """The request, spelled out as the API reference and botocore's service model have it."""
    return {
        "queries": [{"type": "TEXT", "textQuery": {"text": query}}],
        "sources": [
            {"type": "INLINE", "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": d}}} for d in docs
        ],
        "rerankingConfiguration": {
            "type": "BEDROCK_RERANKING_MODEL",
            "bedrockRerankingConfiguration": {
                "numberOfResults": len(docs),
                "modelConfiguration": {"modelArn": arn(model, region)},
            },
        },
    }


def answer(scores: dict[int, float], **extra: Any) -> dict[str, Any]:
    """Bedrock's answer: best first, as the service sorts it."""
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    return {"results": [{"index": i, "relevanceScore": s} for i, s in ranked], **extra}


# ---------------------------------------------------------------------------------------------------- the adapter
@pytest.mark.parametrize("model", [AMAZON, COHERE])
def test_request_shape_and_scores_back_in_the_texts_order(model):
    client = make_client()
    docs = ["coolant leaks from the radiator", "lunch menu", "check the radiator cap when cold"]
    relevance = {0: 0.82, 1: 0.0031, 2: 0.47}
    with Stubber(client) as stub:
        stub.add_response("rerank", answer(relevance), expected("radiator coolant", docs, model))
        logits = BedrockReranker(model, client=client).score("radiator coolant", docs)
        stub.assert_no_pending_responses()

    # the search core's sigmoid turns each logit back into Bedrock's relevance score, in the order of the texts
    assert [_sigmoid(x) for x in logits] == pytest.approx([0.82, 0.0031, 0.47], rel=1e-12, abs=1e-15)
    assert logits[0] > logits[2] > logits[1]


def test_relevance_maps_to_its_logit_across_the_range():
    for p in [1e-12, 1e-6, 0.001, 0.1, 0.25, 0.5, 0.75, 0.9, 0.999, 1 - 1e-9]:
        assert _sigmoid(relevance_to_logit(p)) == pytest.approx(p, rel=1e-9, abs=1e-15), p
    assert relevance_to_logit(0.5) == 0.0
    assert relevance_to_logit(0.0) == relevance_to_logit(-0.3) == -50.0  # the core's sigmoid clamps at +-50
    assert relevance_to_logit(1.0) == relevance_to_logit(1.7) == 50.0
    assert _sigmoid(relevance_to_logit(1.0)) == 1.0 and _sigmoid(relevance_to_logit(0.0)) < 1e-21
    # the API rounds scores to 6 decimals; the round trip is far below that
    assert max(abs(_sigmoid(relevance_to_logit(k / 1000)) - k / 1000) for k in range(1001)) < 1e-15


def test_blank_texts_are_not_sent_and_score_zero():
    client = make_client()
    docs = ["", "radiator", "   ", "coolant"]
    with Stubber(client) as stub:
        stub.add_response("rerank", answer({0: 0.9, 1: 0.2}), expected("radiator", ["radiator", "coolant"]))
        logits = BedrockReranker(AMAZON, client=client).score("radiator", docs)
    assert [round(_sigmoid(x), 12) for x in logits] == [0.0, 0.9, 0.0, 0.2]

    with Stubber(client) as stub:  # nothing to score: no call (and no bill)
        assert BedrockReranker(AMAZON, client=client).score("radiator", ["", " "]) == [-50.0, -50.0]
        assert BedrockReranker(AMAZON, client=client).score("radiator", []) == []


def test_texts_over_the_api_limit_are_cut():
    client = make_client()
    long_doc, long_query = "a" * (MAX_TEXT_CHARS + 5000), "q" * (MAX_TEXT_CHARS + 1)
    with Stubber(client) as stub:
        stub.add_response("rerank", answer({0: 0.5}), expected("q" * MAX_TEXT_CHARS, ["a" * MAX_TEXT_CHARS]))
        BedrockReranker(AMAZON, client=client).score(long_query, [long_doc])
        stub.assert_no_pending_responses()
    # the limit counts UTF-16 code units; an astral character is two and is never split
    astral = "\U0001f600" * 20_000
    assert len(cut(astral)) == 16_000 and cut("ab" + astral)[-1] == "\U0001f600"
    assert len(cut("x" + astral).encode("utf-16-le")) // 2 == 31_999


def test_more_texts_than_one_call_takes_go_in_batches():
    client = make_client()
    docs = [f"doc {i}" for i in range(MAX_SOURCES + 1)]
    first = {i: (i % 100) / 100 for i in range(MAX_SOURCES)}
    with Stubber(client) as stub:  # Stubber refuses a request over the service model's 1000 sources
        stub.add_response("rerank", answer(first), expected("q", docs[:MAX_SOURCES]))
        stub.add_response("rerank", answer({0: 0.875}), expected("q", docs[MAX_SOURCES:]))
        logits = BedrockReranker(AMAZON, client=client).score("q", docs)
        stub.assert_no_pending_responses()
    assert len(logits) == MAX_SOURCES + 1
    assert _sigmoid(logits[MAX_SOURCES]) == pytest.approx(0.875)
    assert _sigmoid(logits[123]) == pytest.approx(0.23)

    with Stubber(client) as stub:
        for part in (["a", "b"], ["c", "d"], ["e"]):
            stub.add_response("rerank", answer({i: 0.1 * (i + 1) for i in range(len(part))}), expected("q", part))
        logits = BedrockReranker(AMAZON, client=client, batch_size=2).score("q", ["a", "b", "c", "d", "e"])
        stub.assert_no_pending_responses()
    assert [round(_sigmoid(x), 9) for x in logits] == [0.1, 0.2, 0.1, 0.2, 0.1]


def test_a_paged_answer_is_followed():
    client = make_client()
    docs = ["a", "b", "c"]
    with Stubber(client) as stub:
        stub.add_response("rerank", answer({2: 0.7}, nextToken="page-2"), expected("q", docs))
        stub.add_response("rerank", answer({0: 0.4, 1: 0.1}), {**expected("q", docs), "nextToken": "page-2"})
        logits = BedrockReranker(AMAZON, client=client).score("q", docs)
        stub.assert_no_pending_responses()
    assert [round(_sigmoid(x), 9) for x in logits] == [0.4, 0.1, 0.7]


@pytest.mark.parametrize(
    ("results", "why"),
    [
        ([{"index": 0, "relevanceScore": 0.5}], "1 results for 2 documents"),
        ([{"index": 0, "relevanceScore": 0.5}, {"index": 0, "relevanceScore": 0.4}], "repeated"),
        ([{"index": 0, "relevanceScore": 0.5}, {"index": 7, "relevanceScore": 0.4}], "out of range"),
        ([{"index": 0, "relevanceScore": 0.5}, {"index": 1, "relevanceScore": float("nan")}], "relevanceScore nan"),
    ],
)
def test_an_answer_that_does_not_cover_every_text_is_an_error(results, why):
    client = make_client()
    reranker = BedrockReranker(AMAZON, client=client)
    with Stubber(client) as stub:
        stub.add_response("rerank", {"results": results}, expected("q", ["a", "b"]))
        with pytest.raises(ServiceUnavailable, match=why):
            reranker.score("q", ["a", "b"])
    assert reranker.health()["state"] == "error"


CLIENT_ERRORS = [
    ("ThrottlingException", 429, "Too many requests, please wait before trying again.", "throttling"),
    ("ServiceQuotaExceededException", 400, "Your request exceeds the service quota.", "throttling"),
    ("AccessDeniedException", 403, "You don't have access to the model with the specified model ID.", "denied"),
    ("InternalServerException", 500, "Internal server error.", "unavailable"),
    ("BadGatewayException", 502, "Bad gateway.", "unavailable"),
    ("DependencyFailedException", 424, "The dependency failed.", "unavailable"),
    ("ValidationException", 400, "The provided model identifier is invalid.", "refused"),
    ("ResourceNotFoundException", 404, "Model not found.", "refused"),
    ("ConflictException", 409, "Conflict.", "failed"),
]


@pytest.mark.parametrize(("code", "status", "text", "expected_word"), CLIENT_ERRORS)
def test_service_errors_become_service_unavailable(code, status, text, expected_word):
    client = make_client()
    reranker = BedrockReranker(COHERE, client=client)
    with Stubber(client) as stub:
        stub.add_client_error("rerank", service_error_code=code, service_message=text, http_status_code=status)
        with pytest.raises(ServiceUnavailable) as caught:
            reranker.score("q", ["a"])
    message = caught.value.message
    assert expected_word in message and code in message and text in message
    assert COHERE in message and REGION in message
    assert caught.value.status == 503 and caught.value.detail == f"{code}: {text}"
    health = reranker.health()
    assert health["state"] == "error" and health["error"] == message


def test_a_refusal_in_a_region_without_the_model_names_the_regions_that_have_it():
    client = make_client("us-east-1")
    with Stubber(client) as stub:
        stub.add_client_error("rerank", "ValidationException", "The provided model identifier is invalid.", 400)
        with pytest.raises(
            ServiceUnavailable, match="offered in ap-northeast-1, ca-central-1, eu-central-1, us-west-2"
        ):
            BedrockReranker(AMAZON, client=client).score("q", ["a"])


def test_an_unreachable_endpoint_is_service_unavailable():
    client = make_client(endpoint_url="http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(ServiceUnavailable, match="cannot reach Bedrock rerank"):
        BedrockReranker(AMAZON, client=client).score("q", ["a"])


def test_a_query_without_text_cannot_be_reranked():
    with pytest.raises(ValueError, match="needs query text"):
        BedrockReranker(AMAZON, client=make_client()).score("  ", ["a"])


def test_the_client_is_made_on_first_use_in_the_rerank_region_with_short_timeouts():
    reranker = BedrockReranker(COHERE, region="eu-central-1")
    assert reranker.health() == {"service": "bedrock", "model": COHERE, "region": "eu-central-1", "state": "not loaded"}
    reranker.load()  # no probe: it would be billed
    runtime = reranker.runtime()  # making a client sends nothing
    assert (
        runtime.meta.region_name == "eu-central-1"
        and runtime.meta.service_model.service_name == "bedrock-agent-runtime"
    )
    assert runtime.meta.config.read_timeout <= 10 and runtime.meta.config.connect_timeout <= 5


# ---------------------------------------------------------------------------------------------------- names on AWS
def test_served_names_and_the_contract_aliases():
    class EndpointReranker:  # the SageMaker cross-encoder's interface
        name = SAGEMAKER

        def load(self) -> None:
            pass

        def score(self, query: str, texts: list[str]) -> list[float]:
            return [1.0] * len(texts)

    from mmrag.errors import InvalidParameter

    rerankers = aws_rerankers(AMAZON, [AMAZON, COHERE], SAGEMAKER, EndpointReranker(), make_client())
    assert rerankers.default == AMAZON and rerankers.known == {AMAZON, COHERE, SAGEMAKER}
    assert rerankers.resolve(None) == AMAZON and rerankers.resolve(COHERE) == COHERE
    assert rerankers.resolve("ms-marco-minilm") == SAGEMAKER  # the contract's short name of the cross-encoder
    for name in ("bge-reranker-v2", "BAAI/bge-reranker-v2-m3", "bge-reranker-base", "rerank-english-v3.0", "x"):
        with pytest.raises(InvalidParameter, match="amazon.rerank-v1:0, cohere.rerank-v3-5:0"):
            rerankers.resolve(name)
    assert rerankers.score(SAGEMAKER, "q", ["a", "b"], 5) == [1.0, 1.0]

    shared = LazyClient("ca-central-1")
    no_endpoint = aws_rerankers(COHERE, [AMAZON, COHERE], SAGEMAKER, None, shared)
    assert no_endpoint.known == {AMAZON, COHERE}
    amazon, cohere = no_endpoint.factory(AMAZON), no_endpoint.factory(COHERE)
    assert amazon.health()["region"] == "ca-central-1" and amazon.health()["state"] == "not loaded"
    assert amazon.runtime() is cohere.runtime() is shared()  # one client for every model, made on first use
    unserved = aws_rerankers(SAGEMAKER, [AMAZON], SAGEMAKER, None, make_client())  # the default is not served
    with pytest.raises(RuntimeError, match="not served on AWS; served: amazon.rerank-v1:0"):
        unserved.score(SAGEMAKER, "q", ["a"], 5)


@pytest.fixture
def clean_env(monkeypatch):
    for name in (
        "MMRAG_RERANK_MODEL",
        "MMRAG_BEDROCK_RERANK_MODELS",
        "MMRAG_BEDROCK_RERANK_REGION",
        "MMRAG_SAGEMAKER_RERANK_MODEL",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_aws_config_names_the_default_reranker_and_its_region(clean_env):
    from mmrag.composition.aws_config import AwsConfig
    from mmrag.settings import Settings

    env = {"AWS_REGION": "eu-west-1"}
    cfg = AwsConfig.from_settings(Settings(), env)
    assert cfg.rerank_model == AMAZON  # not set: the first Bedrock model, not the local CPU default
    assert cfg.bedrock_rerank_models == (AMAZON, COHERE) and cfg.sagemaker_rerank_model == SAGEMAKER
    assert cfg.bedrock_rerank_region == "eu-west-1"  # empty: the function's region

    clean_env.setenv("MMRAG_RERANK_MODEL", COHERE)
    clean_env.setenv("MMRAG_BEDROCK_RERANK_REGION", "eu-central-1")
    cfg = AwsConfig.from_settings(Settings(), env)
    assert (cfg.rerank_model, cfg.bedrock_rerank_region) == (COHERE, "eu-central-1")

    clean_env.delenv("MMRAG_RERANK_MODEL")
    clean_env.setenv("MMRAG_BEDROCK_RERANK_MODELS", "")  # Bedrock reranking off: the endpoint's cross-encoder
    assert AwsConfig.from_settings(Settings(), env).rerank_model == SAGEMAKER

    clean_env.setenv("MMRAG_BEDROCK_RERANK_MODELS", "amazon.rerank-v1:0,Not A Model")
    with pytest.raises(ValueError, match="MMRAG_BEDROCK_RERANK_MODELS"):
        AwsConfig.from_settings(Settings(), env)


# ---------------------------------------------------------------------------------------------------- in the functions
class StandInRerank:
    """Bedrock's Rerank API answered in-process, after botocore validated the request: relevance = the share of the
    query's words a document contains. Records every request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    @staticmethod
    def words(text: str) -> set[str]:
        return set(re.findall(r"\w+", text.lower()))

    def relevance(self, query: str, doc: str) -> float:
        q = self.words(query)
        return round(len(q & self.words(doc)) / max(len(q), 1), 4)

    def client(self, region: str = "us-east-1") -> Any:
        client = make_client(region)

        def rerank(params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
            body = json.loads(params["body"])
            self.requests.append(body)
            query = body["queries"][0]["textQuery"]["text"]
            docs = [s["inlineDocumentSource"]["textDocument"]["text"] for s in body["sources"]]
            parsed = answer({i: self.relevance(query, d) for i, d in enumerate(docs)})
            parsed["ResponseMetadata"] = {"HTTPStatusCode": 200, "HTTPHeaders": {}}
            return AWSResponse("https://bedrock-agent-runtime.stand-in/rerank", 200, {}, None), parsed

        client.meta.events.register("before-call.bedrock-agent-runtime.Rerank", rerank)
        return client


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Any]:
    pytest.importorskip("moto")
    pytest.importorskip("mangum")
    from mmrag_dev.sandbox import Sandbox
    from mmrag_dev.seed import seed_documents

    with pytest.MonkeyPatch.context() as mp:
        loopback_only(mp)
        with Sandbox() as sb:
            seed_documents(sb)
            yield sb


@pytest.fixture
def bedrock(sandbox, monkeypatch) -> Iterator[dict[str, Any]]:
    """The functions' container gets this test's bedrock-agent-runtime client (the stand-in unless replaced)."""
    state: dict[str, Any] = {"stand_in": StandInRerank()}
    state["client"] = state["stand_in"].client()

    def factory() -> Any:
        def build() -> Any:
            from mmrag.composition.aws import AwsContainer
            from mmrag.settings import Settings

            clients = {"sagemaker-runtime": sandbox.encoders.client(), "bedrock-agent-runtime": state["client"]}
            return AwsContainer(Settings(), index=sandbox.index, clients=clients)

        return build

    monkeypatch.setattr(sandbox, "container_factory", factory)
    yield state


QUERY = "how often is the relief valve inspected?"


def search(sandbox, **options: Any) -> tuple[int, Any]:
    from mmrag_dev.events import json_body  # dev extra (PyYAML): imported only where the sandbox runs

    ev = json.loads((ROOT / "events" / "search_text.json").read_text(encoding="utf-8"))
    ev = copy.deepcopy(ev)
    ev["body"] = json.dumps({"query": QUERY, "top_k": 5, "search_options": {"rerank": True, **options}})
    response = sandbox.invoke("SearchFunction", ev)
    return response["statusCode"], json_body(response)


def test_search_reranks_with_bedrock_by_default(sandbox, bedrock):
    status, body = search(sandbox)
    assert status == 200, body
    data = body["data"]
    assert "rerank_error" not in data
    (request,) = bedrock["stand_in"].requests
    # the template's RerankModel default, in the function's region (RerankRegion empty)
    assert request["rerankingConfiguration"]["bedrockRerankingConfiguration"]["modelConfiguration"] == {
        "modelArn": arn(AMAZON, "us-east-1")
    }
    assert request["queries"] == [{"type": "TEXT", "textQuery": {"text": QUERY}}]
    sent = [s["inlineDocumentSource"]["textDocument"]["text"] for s in request["sources"]]
    results = data["results"]
    assert 0 < len(results) <= len(sent)
    # a client sees Bedrock's own relevance scores as rerank_score, best first (the texts sent may be the core's
    # passage of each chunk, so the scores are compared as the ranked list of what was sent)
    relevance = sorted((bedrock["stand_in"].relevance(QUERY, t) for t in sent), reverse=True)
    assert [r["rerank_score"] for r in results] == pytest.approx(relevance[: len(results)], abs=1e-6)
    assert all(r["scores"]["rerank"] == r["rerank_score"] for r in results)
    assert "every six months" in results[0]["content"]
    assert "rerank" in data["timings"]


def test_search_with_cohere_by_name(sandbox, bedrock):
    status, body = search(sandbox, rerank_model=COHERE)
    assert status == 200 and "rerank_error" not in body["data"], body
    (request,) = bedrock["stand_in"].requests
    model = request["rerankingConfiguration"]["bedrockRerankingConfiguration"]["modelConfiguration"]
    assert model["modelArn"] == arn(COHERE, "us-east-1")


@pytest.mark.parametrize("name", [SAGEMAKER, "ms-marco-minilm"])
def test_the_sagemaker_cross_encoder_stays_available_by_name(sandbox, bedrock, name):
    before = sandbox.encoders.calls.count("rerank")
    status, body = search(sandbox, rerank_model=name)
    assert status == 200 and "rerank_error" not in body["data"], body
    assert all("rerank_score" in r for r in body["data"]["results"])
    assert sandbox.encoders.calls.count("rerank") > before and not bedrock["stand_in"].requests


@pytest.mark.parametrize("name", ["bge-reranker-v2", "BAAI/bge-reranker-v2-m3", "rerank-v3.5", "nope"])
def test_a_name_no_aws_service_here_serves_is_400(sandbox, bedrock, name):
    status, body = search(sandbox, rerank_model=name)
    assert status == 400, body
    assert body["error"]["error_code"] == "INVALID_PARAMETER"
    assert f"known: {SAGEMAKER}, {AMAZON}, {COHERE}" in body["message"] + body["error"]["error_detail"]
    assert not bedrock["stand_in"].requests


def test_throttling_degrades_or_fails_as_the_request_asks(sandbox, bedrock):
    client = make_client("us-east-1")
    bedrock["client"] = client
    with Stubber(client) as stub:
        stub.add_client_error("rerank", "ThrottlingException", "Too many requests, please wait.", 429)
        status, body = search(sandbox)
        assert status == 200, body
        data = body["data"]
        assert "throttling" in data["rerank_error"] and AMAZON in data["rerank_error"]
        assert data["results"] and all("rerank_score" not in r for r in data["results"])  # the fused order

        stub.add_client_error("rerank", "ThrottlingException", "Too many requests, please wait.", 429)
        status, body = search(sandbox, fail_strategy="error")
        assert status == 503 and body["error"]["error_code"] == "SERVICE_UNAVAILABLE", body
        assert "ThrottlingException" in body["error"]["error_detail"]
        stub.assert_no_pending_responses()


def test_qa_reranks_through_bedrock_too(sandbox, bedrock):
    from mmrag_dev.events import json_body  # dev extra (PyYAML): imported only where the sandbox runs

    ev = json.loads((ROOT / "events" / "qa_ask.json").read_text(encoding="utf-8"))
    body = json.loads(ev["body"])
    body["retrieval_config"]["enable_rerank"] = True
    body.pop("filters", None)
    ev["body"] = json.dumps(body)
    response = sandbox.invoke("QaFunction", ev)
    assert response["statusCode"] == 200, response
    assert "rerank_error" not in json_body(response)["data"]
    assert len(bedrock["stand_in"].requests) == 1


def test_health_lists_the_served_rerankers(sandbox, bedrock):
    from mmrag_dev.events import json_body  # dev extra (PyYAML): imported only where the sandbox runs

    ev = json.loads((ROOT / "events" / "health.json").read_text(encoding="utf-8"))
    data = json_body(sandbox.invoke("DocumentsFunction", ev))["data"]
    assert data["components"]["models"]["rerank"] == {"default": AMAZON, "served": [SAGEMAKER, AMAZON, COHERE]}
    assert not bedrock["stand_in"].requests  # health costs nothing
