"""IngestionPipeline and DocumentService on the fakes, with real parsing of real document bytes: the lifecycle,
progress, failures that leave nothing behind, transient outages that are retried, deletes racing an ingestion, and
recovery from a crash (a BaseException: the process dies where it stands, whatever it wrote stays written)."""

from __future__ import annotations

import copy

import pytest

from mmrag.core import blob_paths, ingestion
from mmrag.core.documents import Deletion
from mmrag.core.ingestion import _Stages
from mmrag.core.models import SearchFilters
from mmrag.errors import NotFound, ServiceUnavailable
from tests.fakes import CoreServices, FakeOcr
from tests.samples import b64, pdf_with_picture, scanned_pdf, shape_png, text_pdf

T = "t1"  # the tenant

STAGES = ["parse", "extract_images", "ocr", "chunk", "embed", "index"]
LONG_TEXT = " ".join(
    f"Section {i} explains how the pump number {i} is primed, vented and started after maintenance." for i in range(40)
)


class Crash(BaseException):
    """The process dies here (kill -9): no except clause of the code under test runs."""


def blue_pdf() -> str:
    return b64(pdf_with_picture("Figure 1: the coolant level gauge of the blue tank.", (0, 0, 255)))


def pictures_services() -> CoreServices:
    return CoreServices(ocr=FakeOcr(by_colour={"blue": "COOLANT LEVEL max min", "black": "scanned page words"}))


def original(doc) -> list[str]:
    return [blob_paths.original_key(doc.tenant, doc.document_id)]


def assert_clean_slate(s: CoreServices, doc) -> None:
    """Nothing but the upload: no chunk, picture, index row or derived blob."""
    left = s.leftovers(T, doc.document_id)
    assert left == {"chunks": [], "images": [], "items": [], "blobs": original(doc)}, left


def assert_complete_and_unique(s: CoreServices, doc_id: str) -> None:
    """Exactly one set of outputs: the chunks and pictures the document counts, one index row each, two blobs per
    picture (image and thumbnail) plus the upload."""
    doc = s.docs.get_document(T, doc_id)
    left = s.leftovers(T, doc_id)
    assert doc.status == "completed" and doc.error is None
    assert len(left["chunks"]) == doc.chunks_count and len(left["images"]) == doc.images_count
    ids = [c.chunk_id for c in left["chunks"]] + [i.image_id for i in left["images"]]
    assert sorted(left["items"]) == sorted(ids) and len(set(left["items"])) == len(left["items"])
    pictures = sorted(k for i in left["images"] for k in (i.blob_key, i.thumb_key))
    assert sorted(left["blobs"]) == sorted(pictures + original(doc))


# ------------------------------------------------------------------ the lifecycle
def test_a_text_document_goes_from_processing_to_completed(services):
    doc = services.upload(T, "text", content=LONG_TEXT, metadata={"title": "pumps"},
                          processing_options={"chunk_size": 60, "overlap": 10})
    assert doc.status == "processing" and doc.chunks_count == 0
    assert services.leftovers(T, doc.document_id)["blobs"] == original(doc)
    assert services.run_jobs() == 1
    done = services.docs.get_document(T, doc.document_id)
    chunks = services.docs.get_chunks(T, doc.document_id)
    assert done.status == "completed" and done.error is None and done.chunks_count == len(chunks) > 5
    assert done.images_count == 0 and done.total_tokens == sum(c.token_count for c in chunks)
    assert [c.chunk_index for c in chunks] == list(range(len(chunks)))
    assert all(c.token_count <= 60 and c.source == "text" for c in chunks)
    assert done.content_preview.startswith("Section 0 explains") and done.summary and done.processing_time >= 0
    assert services.index.item_ids(T, doc.document_id) == [c.chunk_id for c in chunks]
    assert len(services.index.get_vectors(T, "text", [c.chunk_id for c in chunks])) == len(chunks)
    assert services.index.get_vectors(T, "clip", [c.chunk_id for c in chunks]) == {}  # no picture, no CLIP text
    assert list(done.stages) == STAGES and all(v["status"] == "completed" for v in done.stages.values())
    assert done.stages["embed"] == {**done.stages["embed"], "done": len(chunks), "total": len(chunks)}
    assert [j.status for j in services.docs.jobs.values()] == ["done"]
    assert_complete_and_unique(services, doc.document_id)


def test_a_pdf_with_a_picture_yields_pictures_ocr_text_and_clip_vectors():
    s = pictures_services()
    doc = s.ingest(T, "pdf", file=blue_pdf(), metadata={"title": "gauge"})
    chunks, images = s.docs.get_chunks(T, doc.document_id), s.docs.get_images(T, doc.document_id)
    assert doc.images_count == 1 and [c.source for c in chunks] == ["text", "ocr"]
    (picture,) = images
    assert picture.page_number == 1 and picture.ocr_text == "COOLANT LEVEL max min" and picture.caption
    assert picture.text_before.startswith("Figure 1") and picture.bbox
    assert chunks[1].image_id == picture.image_id and chunks[1].content == "COOLANT LEVEL max min"
    # the picture and the text about it (its OCR text, the text of its page) are in the CLIP space
    clip = s.index.get_vectors(T, "clip", [picture.image_id, *(c.chunk_id for c in chunks)])
    assert set(clip) == {picture.image_id, *(c.chunk_id for c in chunks)}
    data, mime = s.documents.image(T, picture.image_id)
    thumb, _ = s.documents.image(T, picture.image_id, thumbnail=True)
    assert mime == "image/png" and data.startswith(b"\x89PNG") and thumb.startswith(b"\x89PNG")
    assert_complete_and_unique(s, doc.document_id)


def test_an_image_document_and_a_scanned_pdf_are_read_by_ocr():
    s = pictures_services()
    image = s.ingest(T, "image", file=b64(shape_png("blue")))
    (chunk,) = s.docs.get_chunks(T, image.document_id)
    assert image.images_count == 1 and chunk.source == "ocr" and chunk.content == "COOLANT LEVEL max min"
    scan = s.ingest(T, "pdf", file=b64(scanned_pdf([["First scanned page"], ["Second scanned page"]])))
    chunks = s.docs.get_chunks(T, scan.document_id)
    assert [(c.source, c.page_number) for c in chunks] == [("ocr", 1), ("ocr", 2)]
    assert all(c.content == "scanned page words" for c in chunks)
    # a whole-page scan's text is the page itself: no CLIP text vectors for it
    assert s.index.get_vectors(T, "clip", [c.chunk_id for c in chunks]) == {}
    for doc in (image, scan):
        assert_complete_and_unique(s, doc.document_id)


def test_options_turn_ocr_and_pictures_off():
    s = pictures_services()
    no_ocr = s.ingest(T, "pdf", file=blue_pdf(), processing_options={"enable_ocr": False})
    assert s.ocr.calls == [] and no_ocr.images_count == 1 and no_ocr.chunks_count == 1
    assert s.docs.get_images(T, no_ocr.document_id)[0].caption.startswith("Figure 1")  # from the nearby text
    no_pictures = s.ingest(T, "pdf", file=blue_pdf(), processing_options={"extract_images": False})
    assert no_pictures.images_count == 0 and no_pictures.chunks_count == 1
    multi = s.ingest(T, "pdf", file=b64(text_pdf([["Page one talks about valves."], ["Page two about pumps."]])))
    assert [c.page_number for c in s.docs.get_chunks(T, multi.document_id)] == [1, 2]


def test_progress_is_recorded_stage_by_stage(monkeypatch):
    monkeypatch.setattr(_Stages, "REPORT_EVERY_S", 0.0)  # every step, not once a second
    monkeypatch.setattr(ingestion, "EMBED_SLICE", 4)
    s = CoreServices()
    snapshots: list[dict] = []
    update = s.docs.update_document

    def spy(doc):
        if doc.status == "processing":
            snapshots.append(copy.deepcopy(doc.stages))
        update(doc)

    s.docs.update_document = spy
    doc = s.ingest(T, "text", content=LONG_TEXT, processing_options={"chunk_size": 60, "overlap": 10})
    n = doc.chunks_count
    assert snapshots[0] == {"parse": {"status": "running", "seconds": 0.0}}
    for snap in snapshots:  # stages appear in order, all finished but the last one
        assert list(snap) == STAGES[: len(snap)]
        assert all(v["status"] == "completed" for v in list(snap.values())[:-1])
    embedding = [snap["embed"] for snap in snapshots if snap.get("embed", {}).get("status") == "running"]
    assert {e["unit"] for e in embedding} == {"chunks and pictures"} and {e["total"] for e in embedding} == {n}
    done = [e["done"] for e in embedding]
    assert done[0] == 0 and done == sorted(done) and set(range(4, n, 4)) <= set(done)
    assert snapshots[-1]["embed"]["status"] == "completed" and snapshots[-1]["embed"]["done"] == n
    assert "index" not in snapshots[-1]  # the commit writes the final stages with the completed document
    assert list(s.docs.get_document(T, doc.document_id).stages) == STAGES


# ------------------------------------------------------------------ failures
def test_a_parser_failure_fails_the_document_with_its_error(services):
    doc = services.ingest(T, "pdf", file=b64(b"%PDF-1.7\n" + b"this is not a PDF body " * 20))
    assert doc.status == "failed" and doc.error.startswith("corrupt or unreadable PDF")
    assert doc.stages["parse"]["status"] == "failed" and list(doc.stages) == ["parse"]
    assert doc.chunks_count == doc.images_count == doc.total_tokens == 0
    assert_clean_slate(services, doc)
    empty = services.ingest(T, "text", content="   \n  ")
    assert empty.status == "failed" and empty.error == "no text or pictures could be extracted from the document"


def test_a_failure_after_pictures_were_written_leaves_nothing_behind():
    s = pictures_services()
    s.clip.fail = RuntimeError("clip tower exploded")
    doc = s.ingest(T, "pdf", file=blue_pdf())
    assert doc.status == "failed" and doc.error == "internal error while processing: RuntimeError"
    assert doc.stages["embed"]["status"] == "failed" and doc.stages["extract_images"]["status"] == "completed"
    assert_clean_slate(s, doc)
    assert s.search.text(T, "coolant gauge", 5, SearchFilters()).results == []


def test_a_missing_upload_fails_the_document(services):
    doc = services.upload(T, "text", content="Some words.")
    services.blobs.delete(doc.blob_key)
    services.run_jobs()
    failed = services.docs.get_document(T, doc.document_id)
    assert failed.status == "failed" and failed.error == "the uploaded file is missing from the blob store"


@pytest.mark.parametrize("model", ["ocr", "text_embedder", "clip"])
def test_an_unavailable_model_discards_the_outputs_and_the_job_is_retried(model):
    s = pictures_services()
    getattr(s, model).fail = ServiceUnavailable(f"{model} unavailable", "throttled, try again")
    doc = s.upload(T, "pdf", file=blue_pdf())
    with pytest.raises(ServiceUnavailable):
        s.run_next_job()
    waiting = s.docs.get_document(T, doc.document_id)
    assert waiting.status == "processing" and waiting.error is None  # not failed: the outage is transient
    assert_clean_slate(s, doc)  # the pictures written before the outage are gone
    (job,) = s.docs.jobs.values()
    assert job.status == "queued" and job.error == "throttled, try again" and job.attempts == 1
    getattr(s, model).fail = None
    assert s.run_jobs() == 1 and s.docs.jobs[job.job_id].attempts == 2
    assert_complete_and_unique(s, doc.document_id)


# ------------------------------------------------------------------ deletes
def test_a_document_deleted_while_it_is_processed_leaves_nothing():
    s = pictures_services()
    doc = s.upload(T, "pdf", file=blue_pdf())
    embed_texts = s.text_embedder.embed_texts

    def delete_then_embed(texts):
        if s.docs.get_document(T, doc.document_id) is not None:
            result = s.documents.delete(T, doc.document_id)  # a user's DELETE arrives mid-ingestion
            assert result.document_id == doc.document_id
        return embed_texts(texts)

    s.text_embedder.embed_texts = delete_then_embed
    s.run_jobs()
    assert s.docs.get_document(T, doc.document_id) is None
    assert s.leftovers(T, doc.document_id) == {"chunks": [], "images": [], "items": [], "blobs": []}
    assert s.index.count(T) == 0 and s.blobs.blobs == {} and s.docs.jobs == {}


def test_a_job_for_a_document_being_deleted_does_nothing(services):
    doc = services.upload(T, "text", content="Words that will never be indexed.")
    marked = services.docs.get_document(T, doc.document_id)
    marked.status = "deleting"  # a crash came between marking the delete and purging
    services.docs.update_document(marked)
    services.run_jobs()
    assert services.text_embedder.calls == [] and services.index.count(T) == 0
    assert services.documents.finish_deletes() == 1
    assert services.docs.get_document(T, doc.document_id) is None and services.blobs.blobs == {}


def test_delete_and_archive(services):
    kept = services.ingest(T, "text", content=LONG_TEXT, processing_options={"chunk_size": 60, "overlap": 10})
    n = kept.chunks_count
    archived = services.documents.delete(T, kept.document_id, delete_related=False)
    assert archived == Deletion(kept.document_id, 0, n, archived=True)
    doc, chunks, _ = services.documents.get(T, kept.document_id)
    assert doc.status == "archived" and len(chunks) == n and services.index.item_ids(T, kept.document_id) == []
    gone = services.documents.delete(T, kept.document_id)
    assert gone == Deletion(kept.document_id, n, 0)
    assert services.blobs.blobs == {} and services.docs.get_document(T, kept.document_id) is None
    with pytest.raises(NotFound):
        services.documents.delete(T, kept.document_id)


def test_a_delete_interrupted_by_a_crash_is_finished_at_start_up():
    s = pictures_services()
    doc = s.ingest(T, "pdf", file=blue_pdf())
    delete_document = s.index.delete_document

    def crash(*args):
        raise Crash

    s.index.delete_document = crash
    with pytest.raises(Crash):
        s.documents.delete(T, doc.document_id)
    s.index.delete_document = delete_document  # the process restarts
    assert s.docs.get_document(T, doc.document_id).status == "deleting"
    with pytest.raises(NotFound):
        s.documents.get(T, doc.document_id)
    assert s.documents.list(T) == (0, [])
    assert s.search.text(T, "coolant gauge", 5, SearchFilters()).results == []
    assert s.documents.finish_deletes() == 1
    assert s.docs.get_document(T, doc.document_id) is None and s.index.count(T) == 0 and s.blobs.blobs == {}
    assert s.documents.finish_deletes() == 0


# ------------------------------------------------------------------ crashes
def crash_in(s: CoreServices, where: str) -> None:
    """Make the next call at `where` kill the process."""
    if where == "ocr":
        s.ocr.fail = Crash()
    elif where == "embed":
        s.clip.fail = Crash()
    elif where == "index":  # chunks and pictures are stored, the index is not written
        upsert = s.index.upsert_document

        def once(*args):
            s.index.upsert_document = upsert
            raise Crash

        s.index.upsert_document = once
    elif where == "completed":  # everything is written, the document is not yet marked completed
        update = s.docs.update_document

        def before_completed(doc):
            if doc.status == "completed":
                s.docs.update_document = update
                raise Crash
            update(doc)

        s.docs.update_document = before_completed


def recover(s: CoreServices) -> None:
    s.ocr.fail = s.clip.fail = None
    assert s.docs.recover_jobs() == 1  # start-up: the running job goes back to the queue


@pytest.mark.parametrize("where", ["ocr", "embed", "index", "completed"])
def test_a_rerun_after_a_crash_leaves_no_duplicates(where):
    s = pictures_services()
    doc = s.upload(T, "pdf", file=blue_pdf())
    crash_in(s, where)
    with pytest.raises(Crash):
        s.run_next_job()
    left = s.leftovers(T, doc.document_id)
    assert len(left["blobs"]) == 3  # the picture and its thumbnail were written before the crash
    if where in ("index", "completed"):
        assert left["chunks"] and left["images"]
    if where == "completed":
        assert left["items"]
    assert s.docs.get_document(T, doc.document_id).status == "processing"
    assert s.search.text(T, "coolant gauge", 5, SearchFilters()).results == []  # nothing half-done is visible
    recover(s)
    assert s.run_jobs() == 1
    assert_complete_and_unique(s, doc.document_id)
    assert s.index.count(T) == 3 and len(s.blobs.blobs) == 3  # two chunks and the picture; upload, picture, thumb
    assert [j.attempts for j in s.docs.jobs.values()] == [2]
    assert s.search.text(T, "coolant gauge", 5, SearchFilters()).results


def test_repeated_crashes_give_up_and_discard_the_outputs():
    s = pictures_services()
    doc = s.upload(T, "pdf", file=blue_pdf())
    crash_in(s, "index")
    with pytest.raises(Crash):
        s.run_next_job()
    recover(s)
    job = s.docs.claim_job()
    s.documents.give_up(job)  # what the runner does once a job has been interrupted too often
    failed = s.docs.get_document(T, doc.document_id)
    assert failed.status == "failed" and failed.error == "processing was interrupted repeatedly"
    assert_clean_slate(s, failed)
