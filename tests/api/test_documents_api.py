"""The documents API over real HTTP: section 1, 4 and 5 of the contract."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.conftest import assert_error
from tests.samples import (
    b64,
    cjk_font_available,
    docx_with_picture,
    pptx_with_picture,
    scanned_pdf,
    shape_png,
    text_pdf,
    text_png,
)


def word() -> str:
    return "zq" + uuid.uuid4().hex[:8]


def upload(api, raw: bytes, doc_type: str, options: dict | None = None, **metadata) -> str:
    body = {"document_type": doc_type, "file": b64(raw), "metadata": metadata}
    if options:
        body["processing_options"] = options
    data = api.ok(api.post("/documents/upload", json=body))
    assert data["status"] in ("processing", "completed", "failed")
    return data["document_id"]


def test_health_needs_no_key_and_lists_components(anon):
    data = anon.ok(anon.get("/health"))
    assert set(data["components"]) >= {"store", "blobs", "index", "models", "ocr"}
    assert data["status"] in ("ok", "starting", "degraded")


def test_text_upload_chunks_with_sentences_whole(api):
    w = word()
    text = " ".join(f"Sentence number {i} mentions {w} and pumps." for i in range(40))
    doc_id = upload(
        api,
        text.encode(),
        "text",
        {"chunk_size": 48, "overlap": 8},
        title=f"t-{w}",
        tags=["a", w],
        category="manuals",
        author="tester",
        created_at="2024-03-01T00:00:00Z",
    )
    d = api.wait(doc_id)
    assert d["status"] == "completed"
    assert d["metadata"] == {
        "title": f"t-{w}",
        "tags": ["a", w],
        "category": "manuals",
        "author": "tester",
        "created_at": "2024-03-01T00:00:00Z",
        "source": "upload",
    }
    assert len(d["chunks"]) > 3
    for c in d["chunks"]:
        assert c["token_count"] <= 48
        assert c["content"].startswith("Sentence") and c["content"].endswith(".")
    assert d["statistics"]["total_chunks"] == len(d["chunks"])
    assert d["statistics"]["total_tokens"] == sum(c["token_count"] for c in d["chunks"])
    stages = d["processing"]["stages"]
    assert {"parse", "chunk", "embed", "index"} <= set(stages)
    assert all(s["status"] == "completed" and s["seconds"] >= 0 for s in stages.values())
    assert d["summary"] and d["content_preview"]


def test_small_upload_answers_completed_with_true_figures(api):
    data = api.ok(api.post("/documents/upload", json={"document_type": "text", "content": "One short sentence."}))
    if data["status"] == "completed":
        assert data["chunks_count"] == 1 and data["index_status"] == "indexed" and data["embeddings_generated"]
        assert data["processing_time"] > 0
    else:
        assert data["chunks_count"] == 0 and data["index_status"] == "pending"


def test_multipart_upload_with_json_fields(api):
    w = word()
    r = api.post(
        "/documents/upload",
        files={"file": ("n.md", f"# Notes\n\nAbout {w}.".encode(), "text/markdown")},
        data={
            "document_type": "text",
            "metadata": json.dumps({"title": w, "tags": [w]}),
            "processing_options": json.dumps({"chunk_size": 64, "overlap": 0}),
        },
    )
    d = api.wait(api.ok(r)["document_id"])
    assert d["status"] == "completed" and w in d["chunks"][0]["content"]
    assert d["metadata"]["tags"] == [w] and d["processing"]["options"]["chunk_size"] == 64


def test_pdf_chunks_carry_their_page(api):
    w1, w2 = word(), word()
    doc_id = upload(api, text_pdf([[f"First page about {w1}."], [f"Second page about {w2}."]]), "pdf")
    d = api.wait(doc_id)
    pages = {c["page_number"]: c["content"] for c in d["chunks"]}
    assert w1 in pages[1] and w2 in pages[2]


def test_scanned_pdf_goes_through_ocr_with_pages(api):
    d = api.wait(upload(api, scanned_pdf([["INVOICE NUMBER 4471"], ["TOTAL DUE 9300"]]), "pdf"))
    assert d["status"] == "completed", d
    by_page = {c["page_number"]: c["content"] for c in d["chunks"]}
    assert "4471" in by_page[1] and "9300" in by_page[2]
    assert all(c["source"] == "ocr" for c in d["chunks"])
    assert len(d["images"]) == 2 and {i["page_number"] for i in d["images"]} == {1, 2}


def test_image_is_ocred_stored_fetchable_and_deleted(api, anon):
    doc_id = upload(api, text_png(["RADIATOR CAP WARNING"]), "image", title="label")
    d = api.wait(doc_id)
    img = d["images"][0]
    assert "radiator" in img["ocr_text"].lower() and img["size"] == "1000x400"
    assert "radiator" in d["chunks"][0]["content"].lower() and d["chunks"][0]["image_id"] == img["image_id"]
    r = api.get(img["url"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    t = api.get(img["thumbnail_url"])
    assert t.status_code == 200 and len(t.content) < len(r.content)
    assert_error(anon.get(img["url"].split("?")[0]), 401, "UNAUTHORIZED")  # the signed URL itself needs no key
    api.ok(api.delete(f"/documents/{doc_id}"))
    assert_error(api.get(img["url"]), 404, "NOT_FOUND")


def test_docx_picture_keeps_neighbouring_text(api):
    w = word()
    raw = docx_with_picture(f"Before the picture {w}.", "After the picture.", shape_png("red"))
    d = api.wait(upload(api, raw, "mixed"))
    assert d["status"] == "completed" and d["file_format"] == "docx"
    assert w in " ".join(c["content"] for c in d["chunks"])
    assert len(d["images"]) == 1
    assert w in d["images"][0]["related_text"]["before"]
    assert "After" in d["images"][0]["related_text"]["after"]


def test_pptx_slides_are_pages(api):
    w = word()
    d = api.wait(upload(api, pptx_with_picture(f"Slide about {w}", shape_png("blue")), "mixed"))
    assert d["status"] == "completed" and d["file_format"] == "pptx"
    assert any(c["page_number"] == 2 and w in c["content"] for c in d["chunks"])
    assert d["images"][0]["page_number"] == 2


def test_declared_type_must_match_the_bytes(api):
    elf = b"\x7fELF\x02\x01\x01" + bytes(200)
    assert_error(
        api.post("/documents/upload", json={"document_type": "pdf", "file": b64(elf)}), 415, "UNSUPPORTED_FORMAT"
    )
    assert_error(
        api.post("/documents/upload", json={"document_type": "image", "file": b64(text_pdf([["x"]]))}),
        415,
        "UNSUPPORTED_FORMAT",
    )
    assert_error(
        api.post("/documents/upload", json={"document_type": "text", "file": b64(shape_png("red"))}),
        415,
        "UNSUPPORTED_FORMAT",
    )


@pytest.mark.parametrize(
    "body",
    [
        {"document_type": "text", "file": "%%% not base64 %%%"},
        {"document_type": "text"},
        {"document_type": "spreadsheet", "file": b64(b"x")},
        {"document_type": "text", "file": b64(b"x"), "content": "x"},
        {"document_type": "image", "content": "raw text is only for text"},
        {"document_type": "text", "content": "x", "processing_options": {"chunk_size": 4}},
        {"document_type": "text", "content": "x", "processing_options": {"chunk_size": 64, "overlap": 64}},
        {"document_type": "text", "content": "x", "processing_options": {"bogus": True}},
        {"document_type": "text", "content": "x", "metadata": {"tags": "not-a-list"}},
        {"document_type": "text", "content": "x", "metadata": {"created_at": "yesterday"}},
        {"document_type": "text", "file": "file:///etc/passwd"},
    ],
)
def test_bad_uploads_are_400_with_envelope(api, body):
    assert_error(api.post("/documents/upload", json=body), 400, "INVALID_PARAMETER")


def test_invalid_json_and_validation_never_leak_fastapi_bodies(api):
    r = api.post("/documents/upload", data="{nope", headers={"Content-Type": "application/json"})
    assert_error(r, 400, "INVALID_PARAMETER")
    r = api.get("/documents", params={"page": 0})
    body = assert_error(r, 400, "INVALID_PARAMETER")
    assert "detail" not in body
    assert_error(api.get("/documents", params={"sort_by": "size"}), 400, "INVALID_PARAMETER")


def test_too_large_upload_is_413(api):
    big = b"a" * (6 * 1024 * 1024)
    assert_error(api.post("/documents/upload", json={"document_type": "text", "file": b64(big)}), 413, "FILE_TOO_LARGE")
    r = api.post("/documents/upload", files={"file": ("big.txt", big, "text/plain")}, data={"document_type": "text"})
    assert_error(r, 413, "FILE_TOO_LARGE")


def test_decompression_bomb_is_refused_at_once(api):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (24000, 24000)).save(buf, "PNG")
    assert_error(
        api.post("/documents/upload", json={"document_type": "image", "file": b64(buf.getvalue())}),
        400,
        "INVALID_PARAMETER",
    )


def test_corrupt_pdf_fails_cleanly_and_leaves_nothing(api, server):
    doc_id = upload(api, b"%PDF-1.7\n" + bytes(range(256)) * 16, "pdf")
    d = api.wait(doc_id)
    assert d["status"] == "failed" and d["error"] and "Traceback" not in d["error"]
    assert server.container.index.item_ids("tenant-a", doc_id) == []


def test_auth_and_request_id(api, anon, server):
    from tests.conftest import Api

    assert_error(anon.get("/documents"), 401, "UNAUTHORIZED")
    assert_error(Api(server.url, "wrong").get("/documents"), 401, "UNAUTHORIZED")
    r = api.get("/documents/doc_missing", headers={"X-Request-ID": "rid-77"})
    assert assert_error(r, 404, "NOT_FOUND")["error"]["request_id"] == "rid-77"
    assert r.headers["X-Request-ID"] == "rid-77"
    r = api.get("/documents")
    assert r.headers["X-Request-ID"].startswith("req_")


def test_list_filters_keyword_paging_sorting(api):
    w, solo = word(), word()
    ids = []
    for title, cat, extra, dtype in [("b", "c1", "", "text"), ("a", "c1", "", "text"), ("c", "c2", solo, "text")]:
        ids.append(
            upload(
                api,
                f"{title} {w} body {extra}".encode(),
                dtype,
                title=f"{title}-{w}",
                category=f"{cat}-{w}",
                tags=[w, title],
            )
        )
    for i in ids:
        api.wait(i)
    data = api.ok(api.get("/documents", params={"category": f"c1-{w}", "sort_by": "title", "order": "asc"}))
    assert [d["metadata"]["title"] for d in data["documents"]] == [f"a-{w}", f"b-{w}"] and data["total"] == 2
    data = api.ok(api.get("/documents", params={"tags": w, "page": 2, "page_size": 2}))
    assert data["total"] == 3 and len(data["documents"]) == 1 and data["page"] == 2
    data = api.ok(api.get("/documents", params={"tags": f"nothing,{w}", "sort_by": "created_at", "order": "asc"}))
    assert [d["document_id"] for d in data["documents"]] == ids
    assert api.ok(api.get("/documents", params={"keyword": solo}))["total"] == 1
    assert api.ok(api.get("/documents", params={"keyword": f"A-{w}"}))["total"] == 1  # title, case-insensitive
    assert api.ok(api.get("/documents", params={"tags": w, "document_type": "pdf"}))["total"] == 0


def test_update_metadata_and_delete(api):
    w = word()
    doc_id = upload(api, f"metadata {w}".encode(), "text", title="old", category="old")
    api.wait(doc_id)
    data = api.ok(api.put(f"/documents/{doc_id}/metadata", json={"metadata": {"title": "new", "tags": [w]}}))
    assert data["updated_fields"] == ["tags", "title"]
    d = api.ok(api.get(f"/documents/{doc_id}"))
    assert d["metadata"]["title"] == "new" and d["metadata"]["category"] == "old" and d["metadata"]["tags"] == [w]
    assert_error(api.put(f"/documents/{doc_id}/metadata", json={"metadata": {}}), 400, "INVALID_PARAMETER")
    data = api.ok(api.delete(f"/documents/{doc_id}"))
    assert data["deleted_chunks"] == 1 and data["deleted_embeddings"] == 1  # text only: no picture
    assert_error(api.get(f"/documents/{doc_id}"), 404, "NOT_FOUND")
    assert_error(api.delete(f"/documents/{doc_id}"), 404, "NOT_FOUND")


def test_delete_without_related_archives(api):
    doc_id = upload(api, b"archive me please", "text")
    api.wait(doc_id)
    data = api.ok(api.delete(f"/documents/{doc_id}", params={"delete_related": "false"}))
    assert data["deleted_chunks"] == 0 and data["deleted_embeddings"] == 1
    d = api.ok(api.get(f"/documents/{doc_id}"))
    assert d["status"] == "archived" and d["chunks"]
    api.ok(api.delete(f"/documents/{doc_id}"))


def test_batch_upload_partial_failure(api):
    w = word()
    docs = [
        {"document_type": "text", "file": b64(f"first {w}".encode())},
        {"document_type": "pdf", "file": b64(b"\x7fELF" + bytes(100))},
        {"document_type": "text", "content": f"third {w}"},
        {"document_type": "text"},
    ]
    data = api.ok(
        api.post("/documents/batch-upload", json={"documents": docs, "processing_options": {"chunk_size": 64}})
    )
    assert (data["total"], data["success"], data["failed"]) == (4, 2, 2)
    assert [f["index"] for f in data["failed_items"]] == [1, 3]
    assert data["failed_items"][0]["error_code"] == "UNSUPPORTED_FORMAT"
    for doc_id in data["document_ids"]:
        assert api.wait(doc_id)["processing"]["options"]["chunk_size"] == 64


def test_tenants_are_isolated(api, api_b):
    w = word()
    doc_id = upload(api, f"secret {w}".encode(), "text", title=w)
    d = api.wait(doc_id)
    assert_error(api_b.get(f"/documents/{doc_id}"), 404, "NOT_FOUND")
    assert_error(api_b.put(f"/documents/{doc_id}/metadata", json={"metadata": {"title": "x"}}), 404, "NOT_FOUND")
    assert_error(api_b.delete(f"/documents/{doc_id}"), 404, "NOT_FOUND")
    assert api_b.ok(api_b.get("/documents", params={"keyword": w}))["total"] == 0
    assert not api_b.ok(api_b.post("/search/text", json={"query": w}))["results"]
    assert_error(api_b.get(f"/images/{d['chunks'][0]['chunk_id']}"), 404, "NOT_FOUND")


@pytest.mark.skipif(not cjk_font_available(), reason="no CJK font (apt-get install fonts-wqy-zenhei)")
def test_chinese_text_in_a_picture_is_read(api):
    doc_id = upload(api, text_png(["散热器冷却液检查", "每六个月一次"], cjk=True), "image")
    d = api.wait(doc_id)
    text = "".join(d["chunks"][0]["content"].split())
    assert "冷却液" in text and "六个月" in text
    found = api.ok(api.post("/search/text", json={"query": "冷却液", "filters": {"document_ids": [doc_id]}}))
    assert found["results"][0]["image_id"] == d["images"][0]["image_id"]


def test_progress_shows_the_running_stage_and_how_far_it_is(api, monkeypatch):
    from mmrag.core import ingestion

    monkeypatch.setattr(ingestion._Stages, "REPORT_EVERY_S", 0.0)  # report every slice, not once a second
    w = word()
    sentences = [f"Section {i} of the {w} manual explains how valve {i} is checked and cleaned." for i in range(1200)]
    doc_id = upload(api, " ".join(sentences).encode(), "text", {"chunk_size": 40, "overlap": 0})
    seen = []
    deadline = time.time() + 180
    while time.time() < deadline:
        data = api.ok(api.get(f"/documents/{doc_id}"))
        if data["status"] != "processing":
            break
        if data["processing"]["progress"]:
            seen.append(data["processing"]["progress"])
        time.sleep(0.02)
    assert data["status"] == "completed", data.get("error")
    assert data["processing"]["progress"] is None
    embed = [p for p in seen if p["stage"] == "embed"]
    assert embed, seen
    assert all(p["unit"] == "chunks and pictures" and p["total"] == data["chunks_count"] for p in embed)
    assert any(0 < p["done"] < p["total"] for p in embed), embed
    assert [p["done"] for p in embed] == sorted(p["done"] for p in embed)  # it only moves forward
    assert all(0 <= p["percent"] <= 100 and p["stages_total"] == 6 for p in embed)
    stages = data["processing"]["stages"]
    assert stages["embed"]["status"] == "completed" and stages["embed"]["done"] == stages["embed"]["total"]
    assert stages["chunk"]["unit"] == "pages" and stages["ocr"]["total"] == 0
