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
