"""One result shape per kind of item: a chunk and a picture carry the same core fields, with the same values, on
/search/text, /search/image, /search/multimodal and /search/similar; every picture result carries its page."""

from __future__ import annotations

import uuid

import pytest

from tests.samples import b64, build_pdf

CHUNK_CORE = {
    "item_id",
    "item_type",
    "chunk_id",
    "document_id",
    "similarity_score",
    "scores",
    "page_number",
    "position",
    "metadata",
}
PICTURE_CORE = {
    "item_id",
    "item_type",
    "image_id",
    "document_id",
    "similarity_score",
    "scores",
    "page_number",
    "position",
    "image_url",
    "thumbnail_url",
    "caption",
    "metadata",
}
# the same thing must have the same value wherever it is shown
SAME_VALUE = ("item_id", "item_type", "document_id", "page_number", "position", "chunk_id", "image_id")


@pytest.fixture(scope="module")
def manual(api) -> dict:
    """A two-page PDF in its own category: prose on both pages, a picture on each page."""
    category = "shapes-" + uuid.uuid4().hex[:8]
    pdf = build_pdf(
        [
            {
                "lines": [(72, 700, "The coolant pump circulates coolant through the radiator and the engine block.")],
                "images": [(72, 400, 240, 180, 48, 36, (200, 30, 30))],
            },
            {
                "lines": [(72, 700, "The radiator cap holds the coolant pressure; never open it while hot.")],
                "images": [(72, 400, 240, 180, 48, 36, (30, 30, 200))],
            },
        ]
    )
    up = api.ok(
        api.post(
            "/documents/upload",
            json={"document_type": "pdf", "file": b64(pdf), "metadata": {"title": "Cooling", "category": category}},
        )
    )
    detail = api.wait(up["document_id"])
    assert detail["status"] == "completed" and len(detail["images"]) == 2
    return {"category": category, "detail": detail}


def core(item: dict, kind: str) -> dict:
    wanted = CHUNK_CORE if kind == "chunk" else PICTURE_CORE
    missing = wanted - item.keys()
    assert not missing, f"{kind} result lacks {sorted(missing)}: {item}"
    assert item["item_type"] == kind
    assert item["position"]["page_number"] == item["page_number"]
    assert isinstance(item["scores"], dict) and isinstance(item["similarity_score"], float)
    assert item["metadata"]["title"] == "Cooling"
    return {k: item[k] for k in SAME_VALUE if k in item}


def test_a_chunk_has_one_shape_on_text_multimodal_and_similar(api, manual):
    filters = {"category": manual["category"]}
    text = api.ok(api.post("/search/text", json={"query": "radiator cap pressure", "top_k": 5, "filters": filters}))
    chunk = text["results"][0]
    seen = core(chunk, "chunk")
    assert chunk["page_number"] == 2 and chunk["chunk_id"] == chunk["item_id"]

    multi = api.ok(
        api.post(
            "/search/multimodal",
            json={"query_text": "radiator cap pressure", "top_k": 10, "filters": filters},
        )
    )
    same = [r for r in multi["results"] if r.get("chunk_id") == chunk["chunk_id"]]
    assert same and core(same[0], "chunk") == seen
    assert {"text_similarity", "combined_score"} <= same[0]["scores"].keys()  # the contract's names stay

    other = next(c for c in manual["detail"]["chunks"] if c["chunk_id"] != chunk["chunk_id"] and c["source"] == "text")
    similar = api.ok(
        api.post(
            "/search/similar",
            json={"reference_type": "chunk", "reference_id": other["chunk_id"], "top_k": 5, "filters": filters},
        )
    )
    same = [r for r in similar["results"] if r["item_id"] == chunk["chunk_id"]]
    assert same and core(same[0], "chunk") == seen


def test_a_picture_has_one_shape_and_its_page_on_image_multimodal_and_similar(api, manual):
    filters = {"category": manual["category"]}
    pages = {i["image_id"]: i["page_number"] for i in manual["detail"]["images"]}
    assert sorted(pages.values()) == [1, 2]

    found = api.ok(
        api.post("/search/image", json={"query_type": "text", "query_text": "a red picture", "filters": filters})
    )
    assert {r["image_id"] for r in found["results"]} == set(pages)
    shapes = {}
    for r in found["results"]:
        shapes[r["image_id"]] = core(r, "image")
        assert r["page_number"] == pages[r["image_id"]] and r["metadata"]["page_number"] == r["page_number"]

    multi = api.ok(
        api.post(
            "/search/multimodal",
            json={"query_text": "a red picture", "top_k": 10, "filters": filters, "return_modalities": ["image"]},
        )
    )
    assert multi["results"]
    for r in multi["results"]:
        assert r["result_type"] == "image" and core(r, "image") == shapes[r["image_id"]]
        assert [i["page_number"] for i in r["content"]["images"]] == [pages[r["image_id"]]]

    first = next(iter(pages))
    similar = api.ok(
        api.post(
            "/search/similar",
            json={"reference_type": "image", "reference_id": first, "top_k": 5, "filters": filters},
        )
    )
    assert similar["results"]
    for r in similar["results"]:
        assert core(r, "image") == shapes[r["image_id"]] and r["image_id"] != first

    answer = api.ok(
        api.post(
            "/qa/ask",
            json={
                "question": "a red picture",
                "filters": filters,
                "retrieval_config": {"search_mode": "image", "top_k": 5},
            },
        )
    )
    assert answer["retrieved_images"]
    for i in answer["retrieved_images"]:
        assert i["page_number"] == pages[i["image_id"]]


def test_docx_chunks_say_which_section_and_paragraph_they_are_in(api):
    import io

    import docx

    document = docx.Document()
    document.add_heading("Pump manual", 0)
    document.add_heading("Installation", 1)
    document.add_paragraph("Bolt the pump to a level concrete floor.")
    document.add_heading("Maintenance", 1)
    document.add_paragraph("Intro to the care of the pump.")
    document.add_paragraph("Replace the shaft seal every spring before the season starts.")
    buf = io.BytesIO()
    document.save(buf)
    category = "docx-" + uuid.uuid4().hex[:8]
    up = api.ok(
        api.post(
            "/documents/upload",
            json={"document_type": "mixed", "file": b64(buf.getvalue()), "metadata": {"category": category}},
        )
    )
    detail = api.wait(up["document_id"])
    assert [(c["position"].get("section"), c["position"].get("paragraph")) for c in detail["chunks"]] == [
        ("Pump manual > Installation", 1),
        ("Pump manual > Maintenance", 4),
    ]
    found = api.ok(
        api.post("/search/text", json={"query": "shaft seal spring", "top_k": 1, "filters": {"category": category}})
    )
    top = found["results"][0]
    assert top["position"] == {
        "chunk_index": 1,
        "page_number": None,
        "section": "Pump manual > Maintenance",
        "paragraph": 4,
    }
    answer = api.ok(
        api.post(
            "/qa/ask",
            json={"question": "When is the shaft seal replaced?", "filters": {"category": category}},
        )
    )
    cited = [s for s in answer["sources"] if s["source_id"] in answer["reasoning"]["answer_based_on"]]
    assert cited and cited[0]["metadata"]["section"] == "Pump manual > Maintenance"
    assert cited[0]["metadata"]["paragraph"] == 4
