"""The VectorIndex contract and the adapter's definitions against a real OpenSearch cluster.

Skipped unless a person sets OPENSEARCH_URL; nothing here connects anywhere otherwise.
  OPENSEARCH_URL       https://search-....es.amazonaws.com, or http://127.0.0.1:9200 (user:pass@ for basic auth)
  OPENSEARCH_REGION    set it to sign requests with SigV4 (else: no AWS auth)
  OPENSEARCH_SERVICE   es (default) | aoss
  OPENSEARCH_ANALYZER  standard (default) | smartcn | icu — smartcn/icu need the analysis plugin
  OPENSEARCH_ENGINE    lucene (default) | faiss
Each test creates its own index `mmrag-test-<random>` and deletes it afterwards.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmrag.adapters.aws.opensearch_index import OpenSearchVectorIndex

URL = os.environ.get("OPENSEARCH_URL", "")
pytestmark = pytest.mark.skipif(not URL, reason="set OPENSEARCH_URL to run against a real OpenSearch cluster")


def _contract_tests() -> dict:
    """The contract suite's tests, run here with this module's `vector_index` fixture."""
    path = Path(__file__).resolve().parent.parent / "contract" / "test_vector_index.py"
    spec = importlib.util.spec_from_file_location("contract_vector_index_for_real_cluster", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # test_persistent_across_reopen is about the embedded index's files
    return {k: v for k, v in vars(module).items() if k.startswith("test_") and k != "test_persistent_across_reopen"}


globals().update(_contract_tests())


@pytest.fixture(scope="module")
def client():
    from mmrag.adapters.aws.opensearch_client import make_client, make_local_client

    region = os.environ.get("OPENSEARCH_REGION")
    if region:
        return make_client(URL, region, os.environ.get("OPENSEARCH_SERVICE", "es"), timeout=30)
    return make_local_client(URL, timeout=30)


def _adapter(client) -> OpenSearchVectorIndex:
    return OpenSearchVectorIndex(
        client,
        f"mmrag-test-{secrets.token_hex(6)}",
        dims={"text": 3, "clip": 3},
        refresh=True,  # an immediate refresh keeps the 60-write concurrency test quick
        analyzer=os.environ.get("OPENSEARCH_ANALYZER", "standard"),
        engine=os.environ.get("OPENSEARCH_ENGINE", "lucene"),
    )


@pytest.fixture
def vector_index(client) -> Iterator[OpenSearchVectorIndex]:
    from opensearchpy import NotFoundError

    ix = _adapter(client)
    ix.ensure_index()
    yield ix
    with contextlib.suppress(NotFoundError):
        client.indices.delete(index=ix.index)


def test_real_index_has_the_adapters_mapping(client, vector_index):
    mapping = client.indices.get_mapping(index=vector_index.index)[vector_index.index]["mappings"]
    for field in ("vec_text", "vec_clip"):
        assert mapping["properties"][field]["type"] == "knn_vector"
        assert mapping["properties"][field]["method"]["space_type"] == "cosinesimil"
    assert mapping["properties"]["text"]["fields"]["en"]["analyzer"] == "mmrag_english"
    assert vector_index.ensure_index() is False
    assert vector_index.health()["status"] == "ok"


def test_real_search_pipeline_is_accepted(client):
    pipeline_id = f"mmrag-test-{secrets.token_hex(6)}"
    try:
        for technique in ("min_max", "rrf"):
            client.search_pipeline.put(id=pipeline_id, body=OpenSearchVectorIndex.search_pipeline_body(technique))
            assert pipeline_id in client.search_pipeline.get(id=pipeline_id)
    finally:
        client.transport.perform_request("DELETE", f"/_search/pipeline/{pipeline_id}")
