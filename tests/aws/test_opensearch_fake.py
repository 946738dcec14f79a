"""The fake OpenSearch rejects what the real engine rejects (so it keeps the adapter honest), and the adapter's own
behaviour beyond the VectorIndex contract: request shapes, tenant filtering, refresh, dates, index and pipeline
definitions, SigV4 client construction. Everything talks to servers on 127.0.0.1 started here."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlencode, urlsplit

import numpy as np
import opensearch_fake as fake_mod  # tests/aws is on sys.path: pytest imports this module from its directory
import pytest

from mmrag.adapters.aws import opensearch_index as osi
from mmrag.adapters.aws.opensearch_client import make_client, make_local_client
from mmrag.adapters.aws.opensearch_index import OpenSearchVectorIndex, date_bounds, stored_date
from mmrag.core.models import DocFilterMeta, IndexItem, SearchFilters
from mmrag.errors import InvalidParameter

DIMS = {"text": 3, "clip": 3}


@pytest.fixture(scope="module")
def fake() -> fake_mod.FakeOpenSearch:
    return fake_mod.shared_server()


@pytest.fixture(scope="module")
def plugin_fake():
    with fake_mod.FakeOpenSearch(plugins=("analysis-smartcn", "analysis-icu")) as server:
        yield server


@pytest.fixture
def client(fake):
    return make_local_client(fake.url)


@pytest.fixture
def index_name(fake, client):
    name = fake_mod.fresh_index_name()
    yield name
    if client.indices.exists(index=name):
        client.indices.delete(index=name)


@pytest.fixture
def adapter(client, index_name) -> OpenSearchVectorIndex:
    ix = OpenSearchVectorIndex(client, index_name, dims=DIMS, analyzer="standard")
    assert ix.ensure_index() is True
    return ix


def call(server, method: str, path: str, body: Any = None, params: dict | None = None, ctype: str | None = None):
    """One raw request: (status, parsed JSON or None). str bodies go as they are (NDJSON)."""
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    data = None if body is None else (body if isinstance(body, str) else json.dumps(body)).encode()
    headers = {"Content-Type": ctype or "application/json"} if data is not None else {}
    conn.request(method, path + ("?" + urlencode(params) if params else ""), body=data, headers=headers)
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    return resp.status, (json.loads(raw) if raw else None)


def error_type(payload: dict) -> str:
    assert set(payload) == {"error", "status"} and payload["error"]["root_cause"], payload
    return payload["error"]["type"]


def unit(*xs: float) -> list[float]:
    v = np.array(xs, dtype=np.float32)
    return (v / np.linalg.norm(v)).tolist()


def meta(doc_id: str, **kw) -> DocFilterMeta:
    return DocFilterMeta(
        doc_id, kw.get("document_type", "text"), kw.get("category"), kw.get("tags", []), kw.get("date", "2024-06-01")
    )


def chunk(item_id: str, doc_id: str, text: str, vec: list[float]) -> IndexItem:
    return IndexItem(item_id, doc_id, "chunk", text, {"text": np.array(vec, dtype=np.float32)}, page_number=1)


def plain_index(server, name: str, properties: dict, **settings) -> tuple[int, Any]:
    body = {
        "settings": {"index": {"knn": True, **settings}},
        "mappings": {"dynamic": "strict", "properties": properties},
    }
    return call(server, "PUT", f"/{name}", body)


VEC = {
    "type": "knn_vector",
    "dimension": 3,
    "method": {"name": "hnsw", "engine": "lucene", "space_type": "cosinesimil"},
}


# ====================================================================== the fake rejects malformed requests
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"settings": {}, "mapping": {}}, "parse_exception"),  # unknown top-level key
        ({"mappings": {"properties": {"v": {"type": "knn_vector"}}}}, "mapper_parsing_exception"),  # no dimension
        (
            {
                "settings": {"index.knn": True},
                "mappings": {"properties": {"v": {"type": "knn_vector", "dimension": 3}}},
            },
            "fake_policy_exception",
        ),
        ({"mappings": {"properties": {"v": VEC}}}, "mapper_parsing_exception"),  # method needs index.knn: true
        (
            {
                "settings": {"index.knn": True},
                "mappings": {"properties": {"v": {**VEC, "method": {**VEC["method"], "engine": "annoy"}}}},
            },
            "mapper_parsing_exception",
        ),
        (
            {
                "settings": {"index.knn": True},
                "mappings": {"properties": {"v": {**VEC, "method": {**VEC["method"], "space_type": "hamming"}}}},
            },
            "mapper_parsing_exception",
        ),
        (
            {
                "settings": {"index.knn": True},
                "mappings": {"properties": {"v": {**VEC, "method": {**VEC["method"], "parameters": {"ef_search": 9}}}}},
            },
            "mapper_parsing_exception",
        ),
        (
            {"settings": {"index.knn": True}, "mappings": {"properties": {"v": {**VEC, "dimension": 16001}}}},
            "mapper_parsing_exception",
        ),
        ({"mappings": {"properties": {"t": {"type": "txt"}}}}, "mapper_parsing_exception"),
        ({"mappings": {"properties": {"t": {"type": "keyword", "analyzer": "standard"}}}}, "mapper_parsing_exception"),
        ({"mappings": {"properties": {"t": {"type": "text", "analyzer": "smartcn"}}}}, "mapper_parsing_exception"),
        ({"mappings": {"propertys": {}}}, "mapper_parsing_exception"),
        ({"settings": {"index": {"knnn": True}}}, "illegal_argument_exception"),
        (
            {"settings": {"analysis": {"analyzer": {"a": {"tokenizer": "standard", "filter": ["nope"]}}}}},
            "illegal_argument_exception",
        ),
        (
            {"settings": {"analysis": {"analyzer": {"a": {"tokenizer": "smartcn_tokenizer"}}}}},
            "illegal_argument_exception",
        ),
    ],
)
def test_create_index_rejects_what_opensearch_rejects(fake, body, expected):
    status, payload = call(fake, "PUT", f"/{fake_mod.fresh_index_name()}", body)
    assert status == 400 and error_type(payload) == expected, payload


def test_index_names_and_duplicates(fake, index_name):
    assert error_type(call(fake, "PUT", "/Upper", {})[1]) == "invalid_index_name_exception"
    assert call(fake, "PUT", f"/{index_name}", {})[0] == 200
    status, payload = call(fake, "PUT", f"/{index_name}", {})
    assert status == 400 and error_type(payload) == "resource_already_exists_exception"
    assert call(fake, "HEAD", f"/{index_name}")[0] == 200 and call(fake, "HEAD", "/missing-index")[0] == 404


def test_bulk_rejects_malformed_ndjson_and_bad_documents(fake, index_name):
    assert plain_index(fake, index_name, {"v": VEC, "k": {"type": "keyword"}})[0] == 200
    line = json.dumps({"index": {"_index": index_name, "_id": "1"}})
    nd = "application/x-ndjson"
    status, payload = call(fake, "POST", "/_bulk", line + "\n" + json.dumps({"k": "a"}), ctype=nd)  # no final newline
    assert status == 400 and "terminated by a newline" in payload["error"]["reason"]
    status, payload = call(fake, "POST", "/_bulk", json.dumps({"upsert": {"_index": index_name}}) + "\n{}\n", ctype=nd)
    assert status == 400 and "Malformed action/metadata" in payload["error"]["reason"]
    status, payload = call(
        fake, "POST", "/_bulk", json.dumps({"index": {"_index": index_name, "refresh": True}}) + "\n{}\n", ctype=nd
    )
    assert status == 400 and "unknown parameter [refresh]" in payload["error"]["reason"]
    docs = [
        {"v": [1.0, 0.0]},  # wrong dimension
        {"v": [0.0, 0.0, 0.0]},  # zero vector under cosinesimil
        {"k": "a", "extra": 1},  # strict mapping
        {"k": {"nested": 1}},  # object in a keyword
        {"k": "fine", "v": unit(1, 2, 3)},
    ]
    body = "".join(
        json.dumps({"index": {"_index": index_name, "_id": str(i)}}) + "\n" + json.dumps(d) + "\n"
        for i, d in enumerate(docs)
    )
    status, payload = call(fake, "POST", "/_bulk", body, params={"refresh": "wait_for"}, ctype=nd)
    assert status == 200 and payload["errors"] is True
    kinds = [item["index"].get("error", {}).get("type") for item in payload["items"]]
    assert kinds == [
        "mapper_parsing_exception",
        "mapper_parsing_exception",
        "strict_dynamic_mapping_exception",
        "mapper_parsing_exception",
        None,
    ]
    assert "Expected: 3, Given: 2" in payload["items"][0]["index"]["error"]["reason"]
    missing = json.dumps({"index": {"_index": "no-such-index"}}) + "\n{}\n"
    item = call(fake, "POST", "/_bulk", missing, ctype=nd)[1]["items"][0]["index"]
    assert item["status"] == 404 and item["error"]["type"] == "index_not_found_exception"
    status, payload = call(fake, "POST", "/_bulk", body, params={"refresh": "soon"}, ctype=nd)
    assert status == 400


@pytest.mark.parametrize(
    ("body", "expected", "fragment"),
    [
        ({"query": {"fuzzy_match": {"k": "a"}}}, "parsing_exception", "unknown query [fuzzy_match]"),
        ({"query": {"knn": {"v": {"vector": [1, 0, 0]}}}}, "illegal_argument_exception", "exactly one of k"),
        ({"query": {"knn": {"v": {"vector": [1, 0, 0], "k": 0}}}}, "illegal_argument_exception", "range (0, 10000]"),
        ({"query": {"knn": {"v": {"vector": [1, 0], "k": 3}}}}, "query_shard_exception", "Dimension should be: 3"),
        ({"query": {"knn": {"v": {"vector": [0, 0, 0], "k": 3}}}}, "illegal_argument_exception", "zero vector"),
        ({"query": {"knn": {"k": {"vector": [1, 0, 0], "k": 3}}}}, "query_shard_exception", "not knn_vector type"),
        # the filter belongs inside the field's knn object, not beside it, not at the top of the body
        (
            {"query": {"knn": {"v": {"vector": [1, 0, 0], "k": 3}, "filter": {"term": {"k": "a"}}}}},
            "parsing_exception",
            "multiple fields",
        ),
        (
            {"query": {"knn": {"v": {"vector": [1, 0, 0], "k": 3}}}, "filter": {"term": {"k": "a"}}},
            "parsing_exception",
            "Unknown key for a START_OBJECT in [filter]",
        ),
        ({"knn": {"field": "v", "query_vector": [1, 0, 0], "k": 3}}, "parsing_exception", "Unknown key"),
        (
            {"query": {"knn": {"v": {"vector": [1, 0, 0], "k": 3, "filters": {}}}}},
            "parsing_exception",
            "[knn] unknown token",
        ),
        (
            {"query": {"bool": {"filter": [{"term": {"k": "a"}}], "must_nots": []}}},
            "parsing_exception",
            "[bool] query does not support [must_nots]",
        ),
        ({"query": {"term": {"k": "a", "j": "b"}}}, "parsing_exception", "multiple fields"),
        ({"query": {"terms": {"k": "a"}}}, "parsing_exception", "[terms] query does not support [k]"),
        ({"query": {"range": {"d": {"gte": "yesterday"}}}}, "parse_exception", "failed to parse date field"),
        ({"query": {"match_all": {}, "term": {"k": "a"}}}, "parsing_exception", "malformed query"),
        (
            {"query": {"match_all": {}}, "size": 10_000, "from": 1},
            "illegal_argument_exception",
            "Result window is too large",
        ),
        (
            {"query": {"match_all": {}}, "sort": [{"t": "asc"}]},
            "illegal_argument_exception",
            "Text fields are not optimised",
        ),
        ({"query": {"match_all": {}}, "search_after": ["a"]}, "illegal_argument_exception", "requires a sort"),
    ],
)
def test_search_rejects_what_opensearch_rejects(fake, index_name, body, expected, fragment):
    props = {"v": VEC, "k": {"type": "keyword"}, "d": {"type": "date"}, "t": {"type": "text"}}
    assert plain_index(fake, index_name, props)[0] == 200
    status, payload = call(fake, "POST", f"/{index_name}/_search", body)
    assert status == 400 and error_type(payload) == expected and fragment in payload["error"]["reason"], payload


def test_by_query_count_and_scripts_are_checked(fake, index_name):
    assert plain_index(fake, index_name, {"k": {"type": "keyword"}, "c": {"type": "keyword"}})[0] == 200
    q = {"query": {"term": {"k": "a"}}}
    # _delete_by_query / _update_by_query take refresh=true|false only (wait_for is for writes)
    status, payload = call(fake, "POST", f"/{index_name}/_delete_by_query", q, params={"refresh": "wait_for"})
    assert status == 400 and "only [true] or [false]" in payload["error"]["reason"]
    assert call(fake, "POST", f"/{index_name}/_delete_by_query", {})[1]["error"]["reason"].endswith("query is missing;")
    assert call(fake, "POST", f"/{index_name}/_delete_by_query", q, params={"conflicts": "ignore"})[0] == 400
    assert call(fake, "POST", f"/{index_name}/_count", {**q, "size": 0})[0] == 400
    assert call(fake, "POST", f"/{index_name}/_search", q, params={"refresh": "true"})[0] == 400  # unknown parameter

    def ubq(script: Any) -> tuple[int, Any]:
        return call(
            fake, "POST", f"/{index_name}/_update_by_query", {**q, "script": script}, params={"refresh": "true"}
        )

    assert ubq({"source": "ctx._source.c = params.c", "params": {"c": "x"}})[0] == 200
    assert error_type(ubq({"source": "ctx._source.c = 'x'"})[1]) == "fake_policy_exception"  # literal, not params
    assert error_type(ubq("ctx._source.c = params.c")[1]) == "fake_policy_exception"  # inline string form
    assert error_type(ubq({"source": "ctx._source.c = params.c", "params": {}})[1]) == "fake_policy_exception"
    assert error_type(ubq({"source": "ctx.op = 'delete'", "params": {}})[1]) == "script_exception"
    assert (
        error_type(ubq({"source": "ctx._source.new = params.n", "params": {"n": 1}})[1])
        == "strict_dynamic_mapping_exception"
    )
    assert (
        error_type(ubq({"source": "ctx._source.c = params.c", "params": {"c": "x"}, "lang": "groovy"})[1])
        == "illegal_argument_exception"
    )


def test_transport_level_errors(fake, index_name):
    assert call(fake, "POST", f"/{index_name}/_search", {}, ctype="text/plain")[0] == 406
    assert call(fake, "GET", "/_nothing_here")[0] == 400
    assert call(fake, "DELETE", f"/{index_name}/_search")[0] == 405
    status, payload = call(fake, "POST", "/missing-index/_search", {})
    assert status == 404 and error_type(payload) == "index_not_found_exception"


def test_search_pipelines_are_validated(fake):
    body = OpenSearchVectorIndex.search_pipeline_body()
    assert call(fake, "PUT", "/_search/pipeline/p-minmax", body)[0] == 200
    assert call(fake, "PUT", "/_search/pipeline/p-rrf", OpenSearchVectorIndex.search_pipeline_body("rrf"))[0] == 200
    assert call(fake, "GET", "/_search/pipeline/p-minmax")[1] == {"p-minmax": body}
    weights = body["phase_results_processors"][0]["normalization-processor"]["combination"]["parameters"]["weights"]
    assert weights == [0.5, 0.5]  # the service's own LEXICAL_WEIGHT
    broken = json.loads(json.dumps(body))
    broken["phase_results_processors"][0]["normalization-processor"]["combination"]["parameters"]["weights"] = [
        0.5,
        0.6,
    ]
    assert "sum of weights" in call(fake, "PUT", "/_search/pipeline/p-bad", broken)[1]["error"]["reason"]
    assert call(fake, "PUT", "/_search/pipeline/p-bad", {"phase_results_processors": [{"rank-fusion": {}}]})[0] == 400
    assert OpenSearchVectorIndex.search_pipeline_body(weights=(1, 2))["phase_results_processors"][0][
        "normalization-processor"
    ]["combination"]["parameters"]["weights"] == [0.333333, 0.666667]


# ====================================================================== the fake's semantics
def test_writes_are_searchable_only_after_a_refresh(fake, index_name):
    assert plain_index(fake, index_name, {"k": {"type": "keyword"}}, refresh_interval="-1")[0] == 200
    nd = json.dumps({"index": {"_index": index_name, "_id": "1"}}) + "\n" + json.dumps({"k": "a"}) + "\n"
    assert call(fake, "POST", "/_bulk", nd, ctype="application/x-ndjson")[0] == 200
    assert call(fake, "POST", f"/{index_name}/_count", {})[1]["count"] == 0
    assert call(fake, "GET", f"/{index_name}/_doc/1")[1]["_source"] == {"k": "a"}  # GET is real-time
    assert call(fake, "POST", f"/{index_name}/_refresh")[0] == 200
    assert call(fake, "POST", f"/{index_name}/_count", {})[1]["count"] == 1


def test_bm25_and_knn_scores(fake, index_name):
    props = {"t": {"type": "text", "analyzer": "english"}, "v": VEC}
    assert plain_index(fake, index_name, props)[0] == 200
    docs = [{"t": "pump pump valve", "v": unit(1, 0, 0)}, {"t": "pump valve valve", "v": unit(1, 1, 0)}, {"t": "hose"}]
    nd = "".join(
        json.dumps({"index": {"_index": index_name, "_id": str(i)}}) + "\n" + json.dumps(d) + "\n"
        for i, d in enumerate(docs)
    )
    call(fake, "POST", "/_bulk", nd, params={"refresh": "true"}, ctype="application/x-ndjson")
    hits = call(fake, "POST", f"/{index_name}/_search", {"query": {"match": {"t": "pumping"}}})[1]["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["0", "1"] and hits[0]["_score"] > hits[1]["_score"] > 0
    # idf = ln(1 + (N - n + 0.5) / (n + 0.5)) with N = 3 docs, n = 2; tf part with k1 = 1.2, b = 0.75, legacy (k1 + 1)
    idf = np.log(1 + (3 - 2 + 0.5) / (2 + 0.5))
    avgdl = (3 + 3 + 1) / 3
    expected = idf * 2 * 2.2 / (2 + 1.2 * (1 - 0.75 + 0.75 * 3 / avgdl))
    assert abs(hits[0]["_score"] - expected) < 1e-6
    knn = {"query": {"knn": {"v": {"vector": unit(1, 0, 0), "k": 5}}}}
    hits = call(fake, "POST", f"/{index_name}/_search", knn)[1]["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["0", "1"]
    assert abs(hits[0]["_score"] - 1.0) < 1e-6 and abs(hits[1]["_score"] - (1 + 0.70710678) / 2) < 1e-6
    # default size is 10 and size caps k
    knn["size"] = 1
    assert len(call(fake, "POST", f"/{index_name}/_search", knn)[1]["hits"]["hits"]) == 1


def test_adapter_index_definition_per_analyzer(fake, plugin_fake):
    for server, analyzers, ok in (
        (fake, ("standard",), True),
        (fake, ("smartcn", "icu"), False),
        (plugin_fake, ("smartcn", "icu", "standard"), True),
    ):
        for analyzer in analyzers:
            for engine in ("lucene", "faiss"):
                ix = OpenSearchVectorIndex(
                    make_local_client(server.url), fake_mod.fresh_index_name(), analyzer=analyzer, engine=engine
                )
                status, payload = call(server, "PUT", f"/{ix.index}", ix.index_body())
                assert (status == 200) is ok, (analyzer, engine, payload)
                if ok:
                    call(server, "DELETE", f"/{ix.index}")
    with pytest.raises(ValueError):
        OpenSearchVectorIndex(make_local_client(fake.url), analyzer="ik")


@pytest.mark.parametrize("analyzer", ["smartcn", "icu", "standard"])
def test_adapter_searches_chinese_and_english_with_each_analyzer(plugin_fake, analyzer):
    client = make_local_client(plugin_fake.url)
    ix = OpenSearchVectorIndex(client, fake_mod.fresh_index_name(), dims=DIMS, analyzer=analyzer)
    ix.ensure_index()
    try:
        ix.upsert_document(
            "t1",
            meta("d1"),
            [
                chunk("c1", "d1", "散热器的冷却液必须检查", unit(1, 0, 0)),
                chunk("c2", "d1", "液压泵 hydraulic pumps", unit(0, 1, 0)),
            ],
        )
        assert [h.item_id for h in ix.search_lexical("t1", "冷却液", SearchFilters(), 5)] == ["c1"]
        assert [h.item_id for h in ix.search_lexical("t1", "pumping", SearchFilters(), 5)] == ["c2"]
        assert ix.search_lexical("t1", "the of", SearchFilters(), 5) == []
    finally:
        client.indices.delete(index=ix.index)


# ====================================================================== the adapter against the fake
def test_every_request_is_tenant_filtered_and_knn_filters_inside_the_index(fake, adapter):
    adapter.upsert_document("t1", meta("d1", category="a"), [chunk("c1", "d1", "pump", unit(1, 0, 0))])
    adapter.search_lexical("t1", "pump", SearchFilters(category="a"), 5)
    adapter.search_vector("t1", "text", np.array(unit(1, 0, 0)), SearchFilters(category="a", exclude_item_ids=["x"]), 5)
    adapter.get_vectors("t1", "text", ["c1"])
    adapter.item_ids("t1", "d1")
    adapter.count("t1")
    adapter.update_document_meta("t1", meta("d1", category="b"))
    adapter.delete_document("t1", "d1")
    reads = [r for r in fake.requests if r.path.startswith(f"/{adapter.index}/_") and not r.path.endswith("_bulk")]
    assert {r.path.rsplit("/", 1)[1] for r in reads} == {"_search", "_count", "_delete_by_query", "_update_by_query"}
    for r in reads:
        assert '{"term": {"tenant": "t1"}}' in json.dumps(r.json), r
    knn = next(r.json for r in reads if "knn" in json.dumps(r.json))
    clause = knn["query"]["knn"]["vec_text"]
    assert set(knn) == {"size", "_source", "query"} and clause["k"] == 5 and "filter" in clause
    assert {"term": {"tenant": "t1"}} in clause["filter"]["bool"]["filter"]
    assert clause["filter"]["bool"]["must_not"] == [{"terms": {"item_id": ["x"]}}]
    bulk = [r for r in fake.requests if r.path == "/_bulk"][-1]
    assert bulk.params == {"refresh": "wait_for"}


def test_cosine_is_converted_back_from_the_opensearch_score(fake, adapter):
    adapter.upsert_document("t1", meta("d1"), [chunk("c1", "d1", "", unit(1, 2, 2))])
    q = np.array(unit(2, 1, 2), dtype=np.float32)
    (hit,) = adapter.search_vector("t1", "text", q, SearchFilters(), 3)
    raw = fake.requests[-1]
    assert raw.path.endswith("/_search")
    cos = float(np.dot(np.array(unit(1, 2, 2)), q))
    assert abs(hit.score - cos) < 1e-6 and abs(cos - 8 / 9) < 1e-6


def test_writes_need_the_index_and_ensure_index_is_idempotent(fake, client, index_name):
    ix = OpenSearchVectorIndex(client, index_name, dims=DIMS, analyzer="standard")
    with pytest.raises(RuntimeError, match="does not exist"):
        ix.upsert_document("t1", meta("d1"), [chunk("c1", "d1", "pump", unit(1, 0, 0))])
    assert not client.indices.exists(index=index_name)  # no auto-created index with dynamic mappings
    assert ix.health()["status"] == "error"
    assert ix.ensure_index() is True and ix.ensure_index() is False
    health = ix.health()
    assert health["status"] == "ok" and health["cluster_status"] == "green" and health["index_exists"]


def test_a_second_instance_sees_the_first_ones_writes(client, adapter):
    adapter.upsert_document("t1", meta("d1"), [chunk("c1", "d1", "pump", unit(1, 0, 0))])
    other = OpenSearchVectorIndex(client, adapter.index, dims=DIMS, analyzer="standard")
    assert [h.item_id for h in other.search_lexical("t1", "pump", SearchFilters(), 5)] == ["c1"]
    other.delete_document("t1", "d1")
    assert adapter.search_vector("t1", "text", np.array(unit(1, 0, 0)), SearchFilters(), 5) == []


def test_without_refresh_writes_are_not_seen_at_once(client, adapter):
    lazy = OpenSearchVectorIndex(client, adapter.index, dims=DIMS, analyzer="standard", refresh=False)
    lazy.upsert_document("t1", meta("d1"), [chunk("c1", "d1", "pump", unit(1, 0, 0))])
    assert lazy.count("t1") == 0  # what a real cluster does within its refresh interval


def test_upsert_replaces_rows_and_counts_vectors(adapter):
    items = [
        chunk("c1", "d1", "one", unit(1, 0, 0)),
        IndexItem("i1", "d1", "image", "caption", {"text": np.array(unit(0, 1, 0)), "clip": np.array(unit(0, 0, 1))}),
        IndexItem("c0", "d1", "chunk", "no vectors"),
    ]
    assert adapter.upsert_document("t1", meta("d1"), items) == 3
    assert adapter.item_ids("t1", "d1") == ["c1", "i1", "c0"]
    assert adapter.upsert_document("t1", meta("d1"), items[1:]) == 2
    assert adapter.item_ids("t1", "d1") == ["i1", "c0"] and adapter.count("t1") == 2
    assert adapter.delete_document("t1", "d1") == 2 and adapter.count("t1") == 0


def test_item_ids_pages_with_search_after(adapter, monkeypatch):
    monkeypatch.setattr(osi, "_PAGE", 2)
    items = [chunk(f"c{i}", "d1", "x", unit(1, i, 0)) for i in range(5)]
    adapter.upsert_document("t1", meta("d1"), items)
    assert adapter.item_ids("t1", "d1") == [f"c{i}" for i in range(5)]
    assert list(adapter.get_vectors("t1", "text", ["c4", "c0", "c2", "zz"])) == ["c4", "c0", "c2"]


def test_date_filters_follow_the_embedded_index(adapter):
    adapter.upsert_document(
        "t1", meta("d1", date="2024-01-31T23:30:00+05:00"), [chunk("c1", "d1", "pump", unit(1, 0, 0))]
    )
    adapter.upsert_document(
        "t1", meta("d2", date="2024-02-01T00:00:00.123456Z"), [chunk("c2", "d2", "pump", unit(1, 0, 0))]
    )

    def found(**kw) -> list[str]:
        return sorted(h.item_id for h in adapter.search_lexical("t1", "pump", SearchFilters(**kw), 5))

    assert found(date_end="2024-01") == ["c1"]  # the whole month, wall-clock time as written
    assert found(date_end="2024-01-31") == ["c1"]
    assert found(date_start="2024-02-01") == ["c2"]
    assert found(date_start="2024", date_end="2024") == ["c1", "c2"]
    assert found(date_end="2024-01-31T23:29") == []
    with pytest.raises(InvalidParameter):
        found(date_start="last tuesday")
    adapter.update_document_meta("t1", meta("d2", date="2023-12-01", tags=["t"]))
    assert found(date_end="2024-01-01") == ["c2"] and found(tags=["t"]) == ["c2"]


def test_date_helpers():
    assert stored_date("2024-01-10") == "2024-01-10T00:00:00.000"
    assert stored_date("2024-01-10T10:11:12.987654Z") == "2024-01-10T10:11:12.987"
    assert stored_date("not a date") is None
    assert date_bounds("2024-02", "2024-02") == {"gte": "2024-02-01T00:00:00.000", "lte": "2024-02-29T23:59:59.999"}
    assert date_bounds(None, "2024-12-31T10:00") == {"lte": "2024-12-31T10:00:59.999"}


def test_make_client_signs_with_opensearch_py_sigv4():
    from botocore.credentials import Credentials
    from opensearchpy import Urllib3AWSV4SignerAuth

    client = make_client(
        "search-x.eu-west-1.es.amazonaws.com", "eu-west-1", "aoss", Credentials("AKIDEXAMPLE", "secret")
    )
    conn = client.transport.connection_pool.connections[0]
    assert (
        isinstance(conn.http_auth, Urllib3AWSV4SignerAuth)
        and conn.host == "https://search-x.eu-west-1.es.amazonaws.com:443"
    )
    headers = conn.http_auth("GET", "https://search-x.eu-west-1.es.amazonaws.com/_cluster/health", None)
    assert "/eu-west-1/aoss/aws4_request" in headers["Authorization"] and "X-Amz-Content-SHA256" in headers
    with pytest.raises(ValueError):
        make_client("http://127.0.0.1:9200", "eu-west-1")
    with pytest.raises(ValueError):
        make_client("https://x", "eu-west-1", "lambda")
