"""Upload conveniences over HTTP: sniffed document types, titles from file names, one document per file and tenant,
POST /documents/{id}/reprocess, and batch uploads that report every item. A server of its own: exact counts, and
its own rate-limit budget."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import KEY_A, KEY_B, Api, LiveServer, assert_error, needs_models, settings_for
from tests.samples import b64, text_pdf

pytestmark = needs_models

LIMITS = "upload=1000,query=5000,search=1000,qa=1000"


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[LiveServer]:
    with LiveServer(settings_for(tmp_path_factory.mktemp("uploads"), rate_limits=LIMITS)) as server:
        yield server


@pytest.fixture(scope="module")
def a(live) -> Api:
    return Api(live.url, KEY_A)


@pytest.fixture(scope="module")
def b(live) -> Api:
    return Api(live.url, KEY_B)


def word() -> str:
    return "zq" + uuid.uuid4().hex[:8]


def multipart(api: Api, name: str, data: bytes, **fields: str):
    return api.http.post(
        api.base + "/documents/upload",
        headers=api.headers(),
        files={"file": (name, data, "application/octet-stream")},
        data=fields,
        timeout=120,
    )


def test_multipart_needs_no_document_type_and_titles_by_file_name(a):
    w = word()
    r = multipart(a, "Pump_manual v2.txt", f"The {w} pump needs oil every month.".encode())
    data = a.ok(r)
    assert "deduplicated" not in data and r.headers["X-RateLimit-Limit"] == "1000"
    d = a.wait(data["document_id"])
    assert d["status"] == "completed" and d["document_type"] == "text"
    assert d["metadata"]["title"] == "Pump manual v2" and d["metadata"]["file_name"] == "Pump_manual v2.txt"

    pdf = a.wait(a.ok(multipart(a, "scan.bin", text_pdf([[f"Page about the {w} valve."]])))["document_id"])
    assert pdf["document_type"] == "pdf" and pdf["metadata"]["title"] == "scan"
    # a declared type is still checked against the bytes
    r = multipart(a, "x.pdf", f"plain {w} text".encode(), document_type="pdf")
    assert_error(r, 415, "UNSUPPORTED_FORMAT")
    titled = multipart(a, "x.txt", f"titled {w}".encode(), metadata=json.dumps({"title": "Given"}))
    assert a.wait(a.ok(titled)["document_id"])["metadata"]["title"] == "Given"


def test_json_upload_sniffs_and_takes_the_documents_own_title(a):
    w = word()
    html = f"<html><head><title>Cooling {w}</title></head><body><p>Check the coolant when cold.</p></body></html>"
    d = a.wait(a.ok(a.post("/documents/upload", json={"content": html}))["document_id"])
    assert d["status"] == "completed" and d["document_type"] == "text" and d["metadata"]["title"] == f"Cooling {w}"
    body = {"file": b64(f"# Heading {w}\n\nbody".encode()), "file_name": "n.md"}
    named = a.ok(a.post("/documents/upload", json=body))
    assert a.wait(named["document_id"])["metadata"]["title"] == "n"
    assert_error(a.post("/documents/upload", json={"file": b64(b"\x7fELF\x02\x01\x01" + bytes(200))}), 415,
                 "UNSUPPORTED_FORMAT")


def test_the_same_file_twice_is_one_document_unless_a_copy_is_asked_for(a, b):
    w = word()
    raw = f"The {w} relief valve opens at 93 kPa.".encode()
    fresh = a.post("/documents/upload", json={"file": b64(raw), "metadata": {"title": "first"}})
    first = a.ok(fresh)
    r = a.post("/documents/upload", json={"file": b64(raw), "metadata": {"title": "second"}})
    again = a.ok(r)
    assert again["document_id"] == first["document_id"] == again["duplicate_of"]
    assert again["deduplicated"] is True and again["reprocessing"] is False
    assert r.json()["message"] and r.json()["message"] != fresh.json()["message"]  # says it found the earlier one
    multi = a.ok(multipart(a, "copy.txt", raw))
    assert multi["deduplicated"] and multi["document_id"] == first["document_id"]
    a.wait(first["document_id"])
    assert a.ok(a.get(f"/documents/{first['document_id']}"))["metadata"]["title"] == "first"
    listed = a.ok(a.get("/documents", params={"keyword": w}))
    assert listed["total"] == 1

    copy = a.ok(a.post("/documents/upload", json={"file": b64(raw), "allow_duplicate": True}))
    assert copy["document_id"] != first["document_id"] and "deduplicated" not in copy
    copy2 = a.ok(multipart(a, "copy.txt", raw, allow_duplicate="true"))
    assert copy2["document_id"] not in (first["document_id"], copy["document_id"])
    assert_error(multipart(a, "copy.txt", raw, allow_duplicate="perhaps"), 400, "INVALID_PARAMETER")
    theirs = b.ok(b.post("/documents/upload", json={"file": b64(raw)}))
    assert theirs["document_id"] != first["document_id"] and "deduplicated" not in theirs


def test_a_failed_file_uploaded_again_is_processed_again(a):
    broken = b"%PDF-1.7\n" + uuid.uuid4().bytes + bytes(range(256)) * 16
    first = a.ok(a.post("/documents/upload", json={"document_type": "pdf", "file": b64(broken)}))
    assert a.wait(first["document_id"])["status"] == "failed"
    again = a.ok(a.post("/documents/upload", json={"file": b64(broken)}))
    assert again["document_id"] == first["document_id"] and again["deduplicated"] and again["reprocessing"]
    assert a.wait(first["document_id"])["status"] == "failed"


def test_reprocess_runs_the_document_again_with_new_options(a, b):
    w = word()
    text = " ".join(f"Sentence {i} says the {w} pump {i} needs oil every month." for i in range(40))
    doc_id = a.ok(a.post("/documents/upload", json={"content": text, "processing_options": {"chunk_size": 400}}))[
        "document_id"
    ]
    before = a.wait(doc_id)
    assert before["status"] == "completed"

    assert_error(b.post(f"/documents/{doc_id}/reprocess", json={}), 404, "NOT_FOUND")
    assert_error(a.post("/documents/doc_0000000000000000/reprocess", json={}), 404, "NOT_FOUND")
    assert_error(a.post(f"/documents/{doc_id}/reprocess", json={"processing_options": {"chunk_size": 4}}), 400,
                 "INVALID_PARAMETER")
    assert_error(a.post(f"/documents/{doc_id}/reprocess", json={"processing_options": {"bogus": 1}}), 400,
                 "INVALID_PARAMETER")
    assert_error(a.post(f"/documents/{doc_id}/reprocess", json={"other": 1}), 400, "INVALID_PARAMETER")
    assert a.ok(a.get(f"/documents/{doc_id}"))["status"] == "completed"

    data = a.ok(a.post(f"/documents/{doc_id}/reprocess", json={"processing_options": {"chunk_size": 24, "overlap": 0}}))
    assert data["document_id"] == doc_id and data["status"] in ("processing", "completed")
    after = a.wait(doc_id)
    assert after["status"] == "completed" and after["statistics"]["total_chunks"] > before["statistics"]["total_chunks"]
    assert not {c["chunk_id"] for c in before["chunks"]} & {c["chunk_id"] for c in after["chunks"]}
    query = {"query": f"{w} pump oil", "top_k": 50, "filters": {"document_ids": [doc_id]}}
    hits = a.ok(a.post("/search/text", json=query))["results"]
    assert {h["chunk_id"] for h in hits} <= {c["chunk_id"] for c in after["chunks"]} and hits
    same = a.ok(a.post(f"/documents/{doc_id}/reprocess"))  # no body: the current options again
    assert same["document_id"] == doc_id


def test_reprocess_while_processing_is_409(a):
    w = word()
    text = " ".join(f"Section {i} of the {w} manual explains how valve {i} is checked." for i in range(1500))
    options = {"chunk_size": 16, "overlap": 0}
    doc_id = a.ok(a.post("/documents/upload", json={"content": text, "processing_options": options}))["document_id"]
    if a.ok(a.get(f"/documents/{doc_id}"))["status"] != "processing":
        pytest.skip("the document finished before the test could ask")  # needs a very fast machine
    body = assert_error(a.post(f"/documents/{doc_id}/reprocess", json={}), 409, "CONFLICT")
    assert "being processed" in body["error"]["error_detail"]
    a.wait(doc_id, timeout=300)


def test_batch_reports_bad_items_and_duplicates_and_stores_the_rest(a):
    w = word()
    elf = b"\x7fELF\x02\x01\x01" + bytes(200)
    docs = [
        {"content": f"first {w}", "metadata": {"title": "1"}},
        {"document_type": "text", "file": b64(f"second {w}".encode()), "file_name": "second.txt"},
        {"document_type": "pdf", "file": b64(elf)},
        {"content": f"first {w}"},
        {"document_type": 5, "content": "a type that is not a string"},
    ]
    t0 = time.time()
    data = a.ok(a.post("/documents/batch-upload", json={"documents": docs}))
    assert time.time() - t0 < 60
    assert data["total"] == 5 and data["success"] == 3 and data["failed"] == 2
    assert [f["index"] for f in data["failed_items"]] == [2, 4]
    assert data["failed_items"][0]["error_code"] == "UNSUPPORTED_FORMAT"
    ids = data["document_ids"]
    assert ids[0] == ids[2] and data["duplicates"] == [{"index": 3, "document_id": ids[0]}]
    second = a.wait(ids[1])
    assert second["metadata"]["title"] == "second" and a.wait(ids[0])["metadata"]["title"] == "1"
    assert a.ok(a.get("/documents", params={"keyword": w}))["total"] == 2
