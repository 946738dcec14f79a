"""DocumentStore contract: documents, content, tenant scoping, jobs."""

from __future__ import annotations

from mmrag.core.models import Chunk, Document, ImageRecord, Job


def doc(tenant="t1", doc_id="doc_1", **meta) -> Document:
    return Document(
        document_id=doc_id,
        tenant=tenant,
        document_type="text",
        metadata={"title": meta.pop("title", doc_id), **meta},
        created_at=f"2024-01-0{doc_id[-1]}T00:00:00Z",
    )


def test_create_get_update_is_tenant_scoped(document_store):
    document_store.create_document(doc(category="c", tags=["x", "y"]), None)
    assert document_store.get_document("t1", "doc_1").metadata["tags"] == ["x", "y"]
    assert document_store.get_document("t2", "doc_1") is None
    d = document_store.get_document("t1", "doc_1")
    d.status, d.metadata = "completed", {**d.metadata, "tags": ["z"]}
    document_store.update_document(d)
    got = document_store.get_document("t1", "doc_1")
    assert got.status == "completed" and got.metadata["tags"] == ["z"]


def test_list_filters_sorts_pages(document_store):
    for i, (title, cat, tags) in enumerate([("b", "c1", ["x"]), ("a", "c1", ["y"]), ("C", "c2", ["x", "y"])], 1):
        document_store.create_document(doc(doc_id=f"doc_{i}", title=title, category=cat, tags=tags), None)
    document_store.create_document(doc(tenant="other", doc_id="doc_9", title="a"), None)
    total, docs = document_store.list_documents("t1", sort_by="title", order="asc")
    assert total == 3 and [d.metadata["title"] for d in docs] == ["a", "b", "C"]
    assert document_store.list_documents("t1", category="c1")[0] == 2
    assert document_store.list_documents("t1", tags=["y"])[0] == 2
    total, docs = document_store.list_documents("t1", sort_by="created_at", order="desc", page=2, page_size=2)
    assert total == 3 and [d.document_id for d in docs] == ["doc_1"]
    assert document_store.list_documents("t1", keyword="C")[0] == 1


def test_documents_with_content_are_the_tenants_live_copies_oldest_first(document_store):
    same, other = "a" * 64, "b" * 64
    for doc_id, tenant, digest in (("doc_2", "t1", same), ("doc_1", "t1", same), ("doc_3", "t1", other),
                                   ("doc_4", "t2", same), ("doc_5", "t1", "")):
        d = doc(tenant=tenant, doc_id=doc_id)
        d.content_hash = digest
        document_store.create_document(d, None)
    assert [d.document_id for d in document_store.documents_with_content("t1", same)] == ["doc_1", "doc_2"]
    assert [d.document_id for d in document_store.documents_with_content("t2", same)] == ["doc_4"]
    assert document_store.documents_with_content("t1", "c" * 64) == []
    assert document_store.get_document("t1", "doc_5").content_hash == ""
    gone = document_store.get_document("t1", "doc_1")
    gone.status = "deleting"
    document_store.update_document(gone)
    assert [d.document_id for d in document_store.documents_with_content("t1", same)] == ["doc_2"]
    document_store.delete_document("t1", "doc_2")
    assert document_store.documents_with_content("t1", same) == []


def test_content_replace_and_lookup(document_store):
    document_store.create_document(doc(), None)
    chunks = [Chunk(f"chunk_{i}", "doc_1", i, f"text {i}", 2, page_number=1) for i in range(3)]
    images = [ImageRecord("img_1", "doc_1", 0, "k", "kt", 10, 20, bbox=[1.0, 2.0, 3.0, 4.0])]
    document_store.replace_content("t1", "doc_1", chunks, images)
    assert [c.chunk_id for c in document_store.get_chunks("t1", "doc_1")] == ["chunk_0", "chunk_1", "chunk_2"]
    assert document_store.get_chunks("t2", "doc_1") == []
    assert set(document_store.get_chunks_by_id("t1", ["chunk_1", "nope"])) == {"chunk_1"}
    assert document_store.get_chunks_by_id("t2", ["chunk_1"]) == {}
    assert document_store.get_images_by_id("t1", ["img_1"])["img_1"].bbox == [1.0, 2.0, 3.0, 4.0]
    assert document_store.list_documents("t1", keyword="text 2")[0] == 1
    document_store.replace_content("t1", "doc_1", chunks[:1], [])
    assert len(document_store.get_chunks("t1", "doc_1")) == 1 and document_store.get_images("t1", "doc_1") == []


def test_delete_removes_content_and_queued_jobs(document_store):
    document_store.create_document(doc(), Job("job_1", "t1", "doc_1"))
    document_store.replace_content("t1", "doc_1", [Chunk("chunk_0", "doc_1", 0, "x", 1)], [])
    assert document_store.delete_document("t2", "doc_1") == (0, 0)
    assert document_store.delete_document("t1", "doc_1") == (1, 0)
    assert document_store.get_document("t1", "doc_1") is None
    assert document_store.get_chunks_by_id("t1", ["chunk_0"]) == {}
    assert document_store.claim_job() is None


def test_jobs_claim_once_and_recover_after_crash(document_store):
    document_store.create_document(doc(), Job("job_1", "t1", "doc_1"))
    job = document_store.claim_job()
    assert job.job_id == "job_1" and job.attempts == 1 and job.status == "running"
    assert document_store.claim_job() is None
    assert document_store.recover_jobs() == 1  # the process died while it was running
    again = document_store.claim_job()
    assert again.job_id == "job_1" and again.attempts == 2
    document_store.finish_job("job_1", "done")
    assert document_store.recover_jobs() == 0 and document_store.claim_job() is None
