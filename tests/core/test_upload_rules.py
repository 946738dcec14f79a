"""Upload rules on the in-memory fakes: sniffed document types, titles, one document per file and tenant, reprocess,
and batches that never lose what they stored."""

from __future__ import annotations

import base64
import io

import pytest

from mmrag.core.documents import NewDocument, title_from_file_name, url_file_name
from mmrag.core.ingestion import own_title
from mmrag.errors import Conflict, InvalidParameter, MMRagError, NotFound, UnsupportedFormat
from tests.fakes import CoreServices, MemoryDocumentStore
from tests.samples import text_pdf

T, OTHER = "tenant-a", "tenant-b"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def docx_titled(title: str, text: str) -> bytes:
    from docx import Document as Docx

    d = Docx()
    d.core_properties.title = title
    d.add_paragraph(text)
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------------- types, titles
def test_document_type_is_sniffed_when_left_out_and_checked_when_given(services):
    assert services.ingest(T, None, content="plain words about pumps").document_type == "text"
    pdf = services.ingest(T, None, file=b64(text_pdf([["A page about valves."]])))
    assert (pdf.document_type, pdf.file_format, pdf.status) == ("pdf", "pdf", "completed")
    docx = services.ingest(T, None, file=b64(docx_titled("Gearbox guide", "Oil the gearbox.")))
    assert (docx.document_type, docx.file_format) == ("mixed", "docx")
    with pytest.raises(UnsupportedFormat, match="declared document_type 'pdf'"):
        services.upload(T, "pdf", content=None, file=b64(b"just some text"))
    with pytest.raises(UnsupportedFormat, match="cannot ingest"):
        services.upload(T, None, file=b64(b"\x7fELF\x02\x01\x01" + bytes(200)))
    with pytest.raises(InvalidParameter):
        services.upload(T, "spreadsheet", content="x")


def test_title_comes_from_the_caller_the_file_name_or_the_document_itself(services):
    given = services.ingest(T, None, content="# Heading\n\nbody", metadata={"title": "Mine"}, file_name="x.md")
    assert given.metadata["title"] == "Mine" and given.metadata["file_name"] == "x.md"
    named = services.ingest(T, None, content="# Heading one\n\nbody two", file_name="Q3_pump report.final.txt")
    assert named.metadata["title"] == "Q3 pump report.final"
    assert services.ingest(T, None, content="Intro line\n\n## Second level heading ##\n\nbody").metadata["title"] == (
        "Second level heading"
    )
    html = "<html><head><title> Relief  valves </title></head><body><h1>Other</h1><p>x</p></body></html>"
    assert services.ingest(T, None, content=html).metadata["title"] == "Relief valves"
    h1 = "<html><body><h1>Cooling   system</h1><p>Check the coolant when cold.</p></body></html>"
    assert services.ingest(T, None, content=h1).metadata["title"] == "Cooling system"
    docx = services.ingest(T, None, file=b64(docx_titled("Gearbox guide", "Oil the gearbox monthly.")))
    assert docx.metadata["title"] == "Gearbox guide"
    assert "title" not in services.ingest(T, None, content="no heading at all, only prose").metadata


def test_placeholder_titles_of_authoring_tools_do_not_count(services):
    assert own_title("Microsoft Word - Pump Manual.docx", "") == "Pump Manual"
    for placeholder in ("Untitled", "PowerPoint Presentation", "Document1", "Slide 1", "title"):
        assert own_title(placeholder, "") is None and own_title(placeholder, "# Real one\n\nx") == "Real one"
    assert own_title("  Gear   box ", "# ignored") == "Gear box" and own_title(None, "no heading") is None
    untitled = services.ingest(T, None, file=b64(docx_titled("Untitled", "Oil the gearbox monthly.")))
    assert "title" not in untitled.metadata


def test_file_names_of_urls_and_paths():
    assert url_file_name("https://example.com/docs/Q3%20report.pdf?download=1#p2") == "Q3 report.pdf"
    assert url_file_name("https://example.com/") is None and url_file_name("https://example.com") is None
    assert title_from_file_name("C:\\Users\\me\\pump_manual.v2.pdf") == "pump manual.v2"
    assert title_from_file_name(".bashrc") == ".bashrc" and title_from_file_name("README") == "README"
    assert title_from_file_name(".pdf") == ".pdf" and title_from_file_name("   .") is None


# ---------------------------------------------------------------------------------------------------- duplicates
def submit(services: CoreServices, tenant: str, data: bytes, **kw):
    return services.documents.submit(tenant, None, file=b64(data), deduplicate=True, wait=False, **kw)


def test_the_same_bytes_from_the_same_tenant_are_one_document(services):
    first = submit(services, T, b"The relief valve opens at 93 kPa.", metadata={"title": "first"})
    assert not first.deduplicated
    again = submit(services, T, b"The relief valve opens at 93 kPa.", metadata={"title": "second"})
    assert again.deduplicated and not again.reprocessing
    assert again.document.document_id == first.document.document_id and again.document.metadata["title"] == "first"
    services.run_jobs()
    done = submit(services, T, b"The relief valve opens at 93 kPa.")
    assert done.deduplicated and done.document.status == "completed"
    assert services.docs.list_documents(T)[0] == 1

    other = submit(services, OTHER, b"The relief valve opens at 93 kPa.")
    assert not other.deduplicated and other.document.document_id != first.document.document_id
    copy = services.documents.submit(T, None, file=b64(b"The relief valve opens at 93 kPa."), wait=False)
    assert not copy.deduplicated and copy.document.document_id != first.document.document_id
    assert services.docs.list_documents(T)[0] == 2


def test_a_failed_earlier_upload_is_processed_again_and_an_archived_one_gets_a_new_copy(services):
    broken = b"%PDF-1.7\n" + bytes(range(256)) * 16
    failed = submit(services, T, broken, processing_options={"chunk_size": 64, "overlap": 0})
    services.run_jobs()
    assert services.docs.get_document(T, failed.document.document_id).status == "failed"
    retry = submit(services, T, broken, metadata={"category": "retried"}, processing_options={"enable_ocr": False})
    assert retry.deduplicated and retry.reprocessing
    doc = retry.document
    assert doc.document_id == failed.document.document_id and doc.status == "processing" and doc.error is None
    assert doc.metadata["category"] == "retried" and doc.processing_options["enable_ocr"] is False
    assert doc.processing_options["chunk_size"] == 64  # the options of the earlier upload stay unless replaced
    assert services.run_jobs() == 1
    assert services.docs.get_document(T, doc.document_id).status == "failed"

    text = b"Archived words about compressors."
    kept = submit(services, T, text).document
    services.run_jobs()
    services.documents.delete(T, kept.document_id, delete_related=False)
    fresh = submit(services, T, text)
    assert not fresh.deduplicated and fresh.document.document_id != kept.document_id
    assert submit(services, T, text).document.document_id == fresh.document.document_id


# ---------------------------------------------------------------------------------------------------- reprocess
def test_reprocess_replaces_chunks_and_vectors_with_new_options(services):
    words = " ".join(f"Sentence {i} says the pump {i} needs oil every month." for i in range(30))
    doc = services.ingest(T, "text", content=words, processing_options={"chunk_size": 200, "overlap": 0})
    old_chunks = {c.chunk_id for c in services.docs.get_chunks(T, doc.document_id)}
    with pytest.raises(NotFound):
        services.documents.reprocess(OTHER, doc.document_id, {"chunk_size": 32})
    with pytest.raises(InvalidParameter):
        services.documents.reprocess(T, doc.document_id, {"chunk_size": 4})
    with pytest.raises(InvalidParameter):
        services.documents.reprocess(T, doc.document_id, {"bogus": True})
    assert services.docs.get_document(T, doc.document_id).status == "completed"  # a refused request changes nothing

    again = services.documents.reprocess(T, doc.document_id, {"chunk_size": 32}, wait=False)
    assert again.status == "processing" and again.processing_options["chunk_size"] == 32
    with pytest.raises(Conflict):
        services.documents.reprocess(T, doc.document_id, {})
    assert services.run_jobs() == 1
    done = services.docs.get_document(T, doc.document_id)
    new_chunks = services.docs.get_chunks(T, doc.document_id)
    assert done.status == "completed" and done.chunks_count == len(new_chunks) > len(old_chunks)
    assert not old_chunks & {c.chunk_id for c in new_chunks}
    assert set(services.index.item_ids(T, doc.document_id)) == {c.chunk_id for c in new_chunks}


def test_reprocess_brings_an_archived_document_back_into_search(services):
    doc = services.ingest(T, "text", content="Turbochargers spin very fast.")
    services.documents.delete(T, doc.document_id, delete_related=False)
    assert services.index.item_ids(T, doc.document_id) == []
    services.documents.reprocess(T, doc.document_id)
    services.run_jobs()
    assert services.docs.get_document(T, doc.document_id).status == "completed"
    assert services.index.item_ids(T, doc.document_id)


# ---------------------------------------------------------------------------------------------------- batches
class FlakyStore(MemoryDocumentStore):
    """A document store whose create_document breaks (a bug, not an MMRagError) for one document's content."""

    def create_document(self, doc, job):
        if doc.file_size == len(b"boom boom"):
            raise RuntimeError("disk on fire")
        super().create_document(doc, job)


def test_a_batch_reports_every_item_and_stores_exactly_what_it_reports():
    services = CoreServices()
    flaky = FlakyStore()
    services.documents.docs = services.pipeline.docs = services.docs = flaky
    items: list[NewDocument | MMRagError] = [
        NewDocument("text", content="first item"),
        NewDocument(None, content="boom boom"),
        InvalidParameter("item 2 was not even an object"),
        NewDocument("pdf", file=b64(b"not a pdf")),
        NewDocument(None, content="first item"),
        NewDocument(None, content="first item", allow_duplicate=True),
    ]
    outcome = services.documents.upload_batch(T, items)
    assert outcome.total == 6 and [i for i, _ in outcome.failed] == [1, 2, 3]
    assert outcome.failed[0][1].code == "INTERNAL_ERROR" and "RuntimeError" in outcome.failed[0][1].message
    assert outcome.failed[2][1].code == "UNSUPPORTED_FORMAT"
    assert len(outcome.document_ids) == 3 and outcome.document_ids[0] == outcome.document_ids[1]
    assert outcome.duplicates == [(4, outcome.document_ids[0])]
    stored = {d.document_id for d in flaky.list_documents(T, page_size=100)[1]}
    assert stored == set(outcome.document_ids)
    assert all(k.split("/")[2] in stored for k in services.blobs.list_keys("t"))  # no blob of a failed item
