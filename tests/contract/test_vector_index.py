"""VectorIndex contract: lexical + dense retrieval, filters inside the index, deletes, tenants, persistence."""

from __future__ import annotations

import numpy as np

from mmrag.core.models import DocFilterMeta, IndexItem, SearchFilters


def unit(*xs: float) -> np.ndarray:
    v = np.array(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


def meta(doc_id: str, **kw) -> DocFilterMeta:
    return DocFilterMeta(
        doc_id,
        kw.get("document_type", "text"),
        kw.get("category"),
        kw.get("tags", []),
        kw.get("date", "2024-06-01T00:00:00Z"),
    )


def chunk(item_id: str, doc_id: str, text: str, vec: np.ndarray) -> IndexItem:
    return IndexItem(item_id, doc_id, "chunk", text, {"text": vec}, page_number=1)


def seed(index, tenant="t1"):
    index.upsert_document(
        tenant,
        meta("doc_a", category="pumps", tags=["x"], date="2024-01-10"),
        [
            chunk("c_a1", "doc_a", "The hydraulic pump needs oil.", unit(1, 0, 0)),
            chunk("c_a2", "doc_a", "散热器的冷却液必须检查", unit(0, 1, 0)),
        ],
    )
    index.upsert_document(
        tenant,
        meta("doc_b", document_type="pdf", category="valves", tags=["y"], date="2024-05-01"),
        [chunk("c_b1", "doc_b", "Valves and pumps are inspected yearly.", unit(1, 1, 0))],
    )
    index.upsert_document(
        tenant,
        meta("doc_c", document_type="image"),
        [IndexItem("img_c", "doc_c", "image", "", {"clip": unit(0, 0, 1)})],
    )


def ids(hits):
    return [h.item_id for h in hits]


def test_lexical_ranks_and_stems(vector_index):
    seed(vector_index)
    hits = vector_index.search_lexical("t1", "pumping", SearchFilters(), 10)
    assert set(ids(hits)) == {"c_a1", "c_b1"} and all(h.score > 0 for h in hits)
    assert ids(vector_index.search_lexical("t1", "冷却液", SearchFilters(), 10)) == ["c_a2"]
    assert vector_index.search_lexical("t1", "the and of", SearchFilters(), 10) == []


def test_dense_is_exact_cosine(vector_index):
    seed(vector_index)
    hits = vector_index.search_vector("t1", "text", unit(1, 0, 0), SearchFilters(), 2)
    assert ids(hits) == ["c_a1", "c_b1"]
    assert abs(hits[0].score - 1.0) < 1e-5 and abs(hits[1].score - 0.70710677) < 1e-5
    assert ids(vector_index.search_vector("t1", "clip", unit(0, 0, 1), SearchFilters(), 5)) == ["img_c"]


def test_filters_apply_inside_the_index(vector_index):
    seed(vector_index)
    q = unit(1, 0, 0)
    cases = [
        (SearchFilters(category="valves"), ["c_b1"]),
        (SearchFilters(document_types=["pdf"]), ["c_b1"]),
        (SearchFilters(tags=["x"]), ["c_a1", "c_a2"]),
        (SearchFilters(document_ids=["doc_a"]), ["c_a1", "c_a2"]),
        (SearchFilters(document_ids=[]), []),
        (SearchFilters(date_start="2024-02-01", date_end="2024-12-31"), ["c_b1"]),
        (SearchFilters(exclude_item_ids=["c_a1"]), ["c_b1", "c_a2"]),
    ]
    for f, expected in cases:
        assert ids(vector_index.search_vector("t1", "text", q, f, 10)) == expected, f
    assert ids(vector_index.search_lexical("t1", "pumps", SearchFilters(category="valves"), 10)) == ["c_b1"]
    assert ids(vector_index.search_lexical("t1", "pumps", SearchFilters(kinds=["image"]), 10)) == []
    # top-k is taken after filtering, not before
    assert ids(vector_index.search_vector("t1", "text", q, SearchFilters(category="valves"), 1)) == ["c_b1"]


def test_tenants_never_mix(vector_index):
    seed(vector_index, "t1")
    assert vector_index.search_lexical("t2", "pumps", SearchFilters(), 10) == []
    assert vector_index.search_vector("t2", "text", unit(1, 0, 0), SearchFilters(), 10) == []
    assert vector_index.count("t2") == 0 and vector_index.count("t1") == 4


def test_delete_and_reupsert_are_seen_at_once(vector_index):
    seed(vector_index)
    assert vector_index.delete_document("t1", "doc_a") == 2
    assert "c_a1" not in ids(vector_index.search_vector("t1", "text", unit(1, 0, 0), SearchFilters(), 10))
    assert vector_index.search_lexical("t1", "hydraulic", SearchFilters(), 10) == []
    assert vector_index.item_ids("t1", "doc_a") == []
    vector_index.upsert_document(
        "t1", meta("doc_b", category="new"), [chunk("c_b9", "doc_b", "replaced text", unit(0, 1, 0))]
    )
    assert vector_index.item_ids("t1", "doc_b") == ["c_b9"]
    assert ids(vector_index.search_vector("t1", "text", unit(1, 1, 0), SearchFilters(), 10)) == ["c_b9"]


def test_metadata_updates_reach_filters(vector_index):
    seed(vector_index)
    vector_index.update_document_meta("t1", meta("doc_a", category="moved"))
    assert ids(vector_index.search_lexical("t1", "hydraulic", SearchFilters(category="moved"), 10)) == ["c_a1"]
    assert vector_index.search_lexical("t1", "hydraulic", SearchFilters(category="pumps"), 10) == []


def test_vectors_lookup(vector_index):
    seed(vector_index)
    got = vector_index.get_vectors("t1", "text", ["c_a1", "missing"])
    assert list(got) == ["c_a1"] and np.allclose(got["c_a1"], unit(1, 0, 0))


def test_persistent_across_reopen(tmp_path):
    from mmrag.adapters.local.vector_index import EmbeddedVectorIndex

    first = EmbeddedVectorIndex(tmp_path / "ix")
    seed(first)
    first.delete_document("t1", "doc_c")
    second = EmbeddedVectorIndex(tmp_path / "ix")
    assert ids(second.search_vector("t1", "text", unit(1, 0, 0), SearchFilters(category="valves"), 5)) == ["c_b1"]
    assert second.search_vector("t1", "clip", unit(0, 0, 1), SearchFilters(), 5) == []
    # a write by another process (another instance on the same files) is seen by the first one
    second.delete_document("t1", "doc_b")
    assert "c_b1" not in ids(first.search_vector("t1", "text", unit(1, 0, 0), SearchFilters(), 5))


def test_concurrent_writes_and_searches(vector_index):
    import threading

    errors = []

    def writer(n):
        try:
            for i in range(20):
                vector_index.upsert_document(
                    "t1", meta(f"d{n}_{i}"), [chunk(f"c{n}_{i}", f"d{n}_{i}", "pump text", unit(1, n + 1, i + 1))]
                )
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader():
        try:
            for _ in range(50):
                for h in vector_index.search_vector("t1", "text", unit(1, 1, 1), SearchFilters(), 5):
                    assert h.item_id.startswith("c")
                vector_index.search_lexical("t1", "pump", SearchFilters(), 5)
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)] + [threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert vector_index.count("t1") == 60
    assert len(vector_index.search_vector("t1", "text", unit(1, 1, 1), SearchFilters(), 100)) == 60


def test_dense_top_k_is_the_exact_order_among_many_rows(vector_index):
    """Hundreds of rows, scores close together: the top k (with and without filters) are exactly the k best cosines in
    order, however an adapter scans (the embedded index prefilters with int8 codes, then re-scores in float32)."""
    rng = np.random.default_rng(3)
    centre = unit(1, 1, 1)
    rows: dict[str, tuple[str, np.ndarray]] = {}
    for d in range(8):
        vecs = centre + 0.35 * rng.standard_normal((40, 3)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        items = [chunk(f"c{d}_{i}", f"d{d}", f"row {i}", v) for i, v in enumerate(vecs)]
        vector_index.upsert_document("t1", meta(f"d{d}", category="even" if d % 2 == 0 else "odd"), items)
        rows.update({it.item_id: (f"d{d}", it.vectors["text"]) for it in items})
    for trial in range(5):
        q = centre + 0.3 * rng.standard_normal(3).astype(np.float32)
        q /= np.linalg.norm(q)
        for f, allowed in [
            (SearchFilters(), lambda doc: True),
            (SearchFilters(category="odd"), lambda doc: int(doc[1:]) % 2 == 1),
            (SearchFilters(document_ids=["d3", "d4"]), lambda doc: doc in ("d3", "d4")),
        ]:
            exact = sorted(((float(v @ q), i) for i, (doc, v) in rows.items() if allowed(doc)), reverse=True)[:12]
            hits = vector_index.search_vector("t1", "text", q, f, 12)
            assert ids(hits) == [i for _, i in exact], (trial, f)
            assert np.allclose([h.score for h in hits], [s for s, _ in exact], atol=1e-4)


# ------------------------------------------------------------------ the embedded index's int8 scan (local only)
def _clustered(rng, n: int, dim: int, clusters: int = 12) -> np.ndarray:
    """Rows bunched around a few centres (scores crowd together near the top, as with real embeddings)."""
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    rows = centres[rng.integers(clusters, size=n)] + 0.45 * rng.standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _pair(tmp_path):
    from mmrag.adapters.local.vector_index import EmbeddedVectorIndex, int8_product

    if int8_product() is None:
        import pytest

        pytest.skip("onnxruntime is not installed")
    quantized = EmbeddedVectorIndex(tmp_path / "ix", quantized_min_rows=0)
    exact = EmbeddedVectorIndex(tmp_path / "ix", quantized=False)
    return quantized, exact


def test_int8_scan_returns_exactly_the_float32_results(tmp_path, monkeypatch):
    from mmrag.adapters.local import vector_index as vi

    quantized, exact = _pair(tmp_path)
    rng = np.random.default_rng(5)
    rows = _clustered(rng, 3000, 96)
    for d in range(30):  # 30 documents of 100 chunks, every third one a picture document
        items = [chunk(f"c{d}_{i}", f"d{d}", "", rows[d * 100 + i]) for i in range(100)]
        quantized.upsert_document("t1", meta(f"d{d}", category=f"cat{d % 3}"), items)
    quantized.delete_document("t1", "d7")
    exact._tenants = quantized._tenants  # the same loaded index, scanned both ways
    rescored = []
    real = vi.EmbeddedVectorIndex._rows_to_rescore

    def spy(*args):
        out = real(*args)
        rescored.append(None if out is None else out.size)
        return out

    monkeypatch.setattr(vi.EmbeddedVectorIndex, "_rows_to_rescore", staticmethod(spy))
    filters = [
        SearchFilters(),
        SearchFilters(category="cat1"),  # a third of the rows: the codes of the candidates only
        SearchFilters(document_ids=["d2", "d9"]),
        SearchFilters(exclude_item_ids=["c0_0", "c1_1"]),
    ]
    for trial in range(20):
        q = rows[rng.integers(len(rows))] + 0.2 * rng.standard_normal(96).astype(np.float32)
        for f in filters:
            for k in (1, 10, 50):
                got = quantized.search_vector("t1", "text", q, f, k)
                want = exact.search_vector("t1", "text", q, f, k)
                assert ids(got) == ids(want), (trial, f, k)
                assert np.allclose([h.score for h in got], [h.score for h in want], atol=1e-5)
    assert "c7_0" not in {h.item_id for h in quantized.search_vector("t1", "text", rows[700], SearchFilters(), 50)}
    # the int8 scan did the work: most rows were ruled out without a float32 score
    pruned = [r for r in rescored if r is not None]
    assert len(pruned) == len(rescored) and max(pruned) < 1000


def test_int8_error_bound_holds(tmp_path):
    from mmrag.adapters.local.vector_index import quantize_rows

    rng = np.random.default_rng(9)
    for dim in (3, 64, 384):
        rows = rng.standard_normal((500, dim)).astype(np.float32) * rng.uniform(0.01, 10, (500, 1)).astype(np.float32)
        rows[0] = 0.0  # a zero row quantizes to zeros
        codes, inv_scale, residual, code_norm = quantize_rows(rows)
        decoded = (codes.astype(np.float32) - 128) * inv_scale[:, None]
        assert codes.dtype == np.uint8 and codes.min() >= 1 and np.all(codes[0] == 128)
        assert np.allclose(np.linalg.norm(rows - decoded, axis=1), residual, rtol=1e-4, atol=1e-6)
        assert np.allclose(np.linalg.norm(decoded, axis=1), code_norm, rtol=1e-4)
        # each component is off by at most half a step
        assert np.all(np.abs(rows - decoded) <= 0.5 * inv_scale[:, None] * (1 + 1e-5))


def test_int8_scan_without_onnxruntime_is_the_float32_scan(tmp_path, monkeypatch):
    from mmrag.adapters.local import vector_index as vi

    quantized, exact = _pair(tmp_path)
    rows = _clustered(np.random.default_rng(2), 200, 16)
    quantized.upsert_document("t1", meta("d"), [chunk(f"c{i}", "d", "", v) for i, v in enumerate(rows)])
    exact._tenants = quantized._tenants
    monkeypatch.setattr(vi, "int8_product", lambda: None)
    assert ids(quantized.search_vector("t1", "text", rows[3], SearchFilters(), 7)) == ids(
        exact.search_vector("t1", "text", rows[3], SearchFilters(), 7)
    )


def test_int8_scan_model_is_valid_onnx():
    import pytest

    onnx = pytest.importorskip("onnx")
    from mmrag.adapters.local.vector_index import int8_product, int8_scan_model

    model = onnx.load_from_string(int8_scan_model())
    onnx.checker.check_model(model, full_check=True)
    assert [n.op_type for n in model.graph.node] == ["MatMulInteger"]
    product = int8_product()
    if product is not None:
        rng = np.random.default_rng(0)
        a = rng.integers(0, 256, (33, 7)).astype(np.uint8)
        b = rng.integers(-127, 128, 7).astype(np.int8)
        assert np.array_equal(product(a, b), (a.astype(np.int64) - 128) @ b.astype(np.int64))


def test_lexical_top_k_after_kinds_and_exclusions(vector_index):
    """The best BM25 rows are pictures' text or excluded: the top k chunks are still found, in BM25 order."""
    pictures = [
        IndexItem(f"img_{i}", "doc_p", "image", "pump pump pump valve", {"clip": unit(1, 0, i + 1)}) for i in range(30)
    ]
    vector_index.upsert_document("t1", meta("doc_p", document_type="image"), pictures)
    texts = ["pump pump valve", "pump valve", "pump and many other words here", "pump", "pump " + "filler " * 30]
    chunks = [chunk(f"c_{i}", "doc_t", t, unit(1, 0, 0)) for i, t in enumerate(texts)]
    vector_index.upsert_document("t1", meta("doc_t"), chunks)
    hits = vector_index.search_lexical("t1", "pump", SearchFilters(kinds=["chunk"]), 3)
    assert len(hits) == 3 and all(h.item_id.startswith("c_") and h.kind in ("chunk", None) for h in hits)
    assert hits[0].item_id == "c_0" and hits[0].score >= hits[1].score >= hits[2].score
    excluded = [f"img_{i}" for i in range(25)] + ["c_0"]
    hits = vector_index.search_lexical("t1", "pump", SearchFilters(exclude_item_ids=excluded), 8)
    assert {h.item_id for h in hits} == {f"img_{i}" for i in range(25, 30)} | {"c_1", "c_2", "c_3"}
    assert {h.item_id for h in hits[:5]} == {f"img_{i}" for i in range(25, 30)}


def test_lexical_shortcuts_equal_the_joined_query(tmp_path):
    """Local only: FTS5 ranking alone then the row checks, or FTS5 scoring only a list of allowed rowids, give what the
    query with every filter joined in SQL gives, for every kind of filter, after deletes and after a reopen."""
    from mmrag.adapters.local.vector_index import EmbeddedVectorIndex
    from mmrag.text import analyzer

    index = EmbeddedVectorIndex(tmp_path / "ix")
    rng = np.random.default_rng(4)
    words = [f"w{i}" for i in range(60)]
    p = 1 / np.arange(1, 61)

    def text() -> str:
        return " ".join(rng.choice(words, 12, p=p / p.sum()))

    for d in range(20):
        items = [chunk(f"c{d}_{i}", f"d{d}", text(), unit(1, 0, 0)) for i in range(25)]
        items.append(IndexItem(f"img_{d}", f"d{d}", "image", text() if d % 5 == 0 else "", {"clip": unit(0, 1, 0)}))
        tags = ["all"] + (["some"] if d % 2 else [])
        index.upsert_document(
            "t1", meta(f"d{d}", category=f"k{d % 4}", tags=tags, date=f"2024-{d % 12 + 1:02d}-01"), items
        )
    index.delete_document("t1", "d5")
    index.upsert_document("t1", meta("d6", category="k2"), [chunk("c6_new", "d6", text(), unit(1, 0, 0))])
    filters = [
        SearchFilters(kinds=["chunk"]),
        SearchFilters(kinds=["image"]),  # pictures with text in 3 documents
        SearchFilters(),
        SearchFilters(kinds=["chunk"], category="k1"),  # a quarter: FTS5 alone, then checks
        SearchFilters(kinds=["chunk"], document_ids=["d2", "d5", "d6", "d11"]),  # a tenth: a rowid list
        SearchFilters(tags=["some"], exclude_item_ids=["c1_0", "c3_3", "img_15"]),
        SearchFilters(date_start="2024-03", date_end="2024-04", kinds=["chunk", "image"]),
        SearchFilters(category="none"),
    ]
    for reopened in (False, True):
        if reopened:
            index = EmbeddedVectorIndex(tmp_path / "ix")
        t = index._t("t1")
        for _trial in range(15):
            query = " ".join(rng.choice(words, 3))
            for f in filters:
                for k in (3, 20):
                    got = index.search_lexical("t1", query, f, k)
                    want = index._lexical_joined(t, analyzer.fts_query(query), f, k)
                    assert [(h.item_id, round(h.score, 9)) for h in got] == [
                        (h.item_id, round(h.score, 9)) for h in want
                    ], (reopened, query, f, k)
                    assert not any(h.item_id.startswith("c5_") for h in got)
