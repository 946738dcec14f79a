"""BedrockReranker against the real Bedrock Rerank API.

Skipped unless a person sets MMRAG_TEST_BEDROCK_RERANK_REGION; nothing here connects anywhere otherwise.
  MMRAG_TEST_BEDROCK_RERANK_REGION  a region that offers the models, e.g. us-west-2 (credentials: boto3's usual chain)
  MMRAG_TEST_BEDROCK_RERANK_MODELS  comma-separated (default amazon.rerank-v1:0); the account needs access to each
Each test call is one billed query (a call of up to 100 documents); the module makes six per model.
"""

from __future__ import annotations

import os

import pytest

from mmrag.adapters.aws.bedrock_rerank import BedrockReranker
from mmrag.core.search import _sigmoid

REGION = os.environ.get("MMRAG_TEST_BEDROCK_RERANK_REGION", "")
MODELS = [m.strip() for m in os.environ.get("MMRAG_TEST_BEDROCK_RERANK_MODELS", "amazon.rerank-v1:0").split(",")]
pytestmark = pytest.mark.skipif(not REGION, reason="set MMRAG_TEST_BEDROCK_RERANK_REGION to call the real Bedrock")

QUERY = "How often must the relief valve be inspected?"
DOCS = [
    "The cafeteria serves lunch from noon to two.",
    "The relief valve must be inspected every six months by a certified technician.",
    "",
    "安全阀每六个月检查一次。",
    "Pressure gauges are calibrated once a year.",
]


@pytest.fixture(params=MODELS)
def reranker(request) -> BedrockReranker:
    return BedrockReranker(request.param, region=REGION)


def test_scores_come_back_in_order_and_rank_the_answer_first(reranker):
    relevance = reranker.relevance(QUERY, DOCS)
    assert len(relevance) == len(DOCS) and all(0.0 <= p <= 1.0 for p in relevance)
    assert relevance[2] == 0.0  # blank: not sent
    assert max(range(len(DOCS)), key=relevance.__getitem__) == 1
    assert relevance[1] > relevance[0] and relevance[1] > relevance[4]
    assert reranker.health()["state"] == "loaded" and reranker.health()["region"] == REGION


def test_logits_give_bedrocks_scores_back_through_the_core_sigmoid(reranker):
    relevance = reranker.relevance(QUERY, DOCS[:2])
    logits = reranker.score(QUERY, DOCS[:2])
    # two calls of the same request: a model may vary in the last digits
    assert [_sigmoid(x) for x in logits] == pytest.approx(relevance, abs=1e-3)


def test_batches_give_the_same_scores_as_one_call(reranker):
    whole = reranker.relevance(QUERY, DOCS)
    batched = BedrockReranker(reranker.name, region=REGION, batch_size=2).relevance(QUERY, DOCS)  # two calls
    assert batched == pytest.approx(whole, abs=1e-3)
