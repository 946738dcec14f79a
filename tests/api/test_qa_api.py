"""Answers over real HTTP with the extractive default: ask, ask-stream, chat and sessions."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.conftest import assert_error
from tests.samples import b64, build_pdf, shape_png


def word() -> str:
    return "zq" + uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def facts(api):
    w = word()
    cat = f"qa-{w}"
    text = (
        f"Maintenance bulletin for the {w} pump. The {w} relief valve opens at a pressure of 93 kPa. "
        "It must be inspected every six months by a certified technician. "
        "Replacement gaskets are stored in cabinet B."
    )
    doc = api.ok(
        api.post(
            "/documents/upload",
            json={"document_type": "text", "content": text, "metadata": {"title": f"Bulletin {w}", "category": cat}},
        )
    )
    zh = api.ok(
        api.post(
            "/documents/upload",
            json={
                "document_type": "text",
                "metadata": {"category": cat},
                "content": "散热器的冷却液必须在发动机冷却以后检查。水箱盖在高温时不得打开。",
            },
        )
    )
    api.wait(doc["document_id"]), api.wait(zh["document_id"])
    return w, cat, doc["document_id"], zh["document_id"]


def sse(r) -> list[dict]:
    return [json.loads(line[5:]) for line in r.iter_lines(decode_unicode=True) if line.startswith("data:")]


def test_ask_cites_sources_and_explains(api, facts):
    w, cat, doc_id, _ = facts
    data = api.ok(
        api.post(
            "/qa/ask",
            json={
                "question": f"At what pressure does the {w} relief valve open?",
                "filters": {"category": cat},
                "retrieval_config": {"top_k": 3},
            },
        )
    )
    assert "93 kPa" in data["answer"] and "[1]" in data["answer"]
    assert data["sources"][0]["document_id"] == doc_id and data["sources"][0]["metadata"]["title"] == f"Bulletin {w}"
    assert data["reasoning"]["answer_based_on"] == [data["sources"][0]["source_id"]]
    assert 0.3 < data["confidence_score"] <= 1 and data["provider"] == "extractive"
    assert "cabinet" not in data["answer"], "only the sentences that answer the question"


def test_ask_says_when_the_documents_hold_no_answer(api, facts):
    _, cat, _, _ = facts
    data = api.ok(
        api.post("/qa/ask", json={"question": "Who won the football world cup in 1998?", "filters": {"category": cat}})
    )
    assert "do not contain an answer" in data["answer"]
    assert data["confidence_score"] == 0 and data["reasoning"]["answer_based_on"] == []


def test_chinese_question_gets_a_chinese_answer(api, facts):
    _, cat, _, zh_id = facts
    data = api.ok(api.post("/qa/ask", json={"question": "冷却液什么时候检查？", "filters": {"category": cat}}))
    assert "冷却液" in data["answer"] and data["sources"][0]["document_id"] == zh_id
    none = api.ok(api.post("/qa/ask", json={"question": "股票价格是多少？", "filters": {"category": cat}}))
    assert none["answer"].startswith("检索到的文档中没有")


def test_options_and_validation(api, facts):
    w, cat, _, _ = facts
    data = api.ok(
        api.post(
            "/qa/ask",
            json={
                "question": f"{w} relief valve pressure?",
                "filters": {"category": cat},
                "options": {"include_sources": False, "include_images": False},
            },
        )
    )
    assert data["sources"] == [] and data["retrieved_images"] == [] and "93" in data["answer"]
    assert_error(api.post("/qa/ask", json={"question": "  "}), 400, "INVALID_PARAMETER")
    body = assert_error(
        api.post("/qa/ask", json={"question": "x", "generation_config": {"model": "gpt-9"}}), 400, "INVALID_PARAMETER"
    )
    assert "extractive" in body["error"]["error_detail"]
    assert_error(
        api.post("/qa/ask", json={"question": "x", "retrieval_config": {"search_mode": "psychic"}}),
        400,
        "INVALID_PARAMETER",
    )
    assert_error(api.post("/qa/ask-stream", json={"question": ""}), 400, "INVALID_PARAMETER")


def test_stream_events_in_contract_order(api, facts):
    w, cat, doc_id, _ = facts
    start = time.perf_counter()
    r = api.http.post(
        api.base + "/qa/ask-stream",
        headers=api.headers(),
        stream=True,
        timeout=60,
        json={
            "question": f"When does the {w} relief valve open?",
            "filters": {"category": cat},
            "generation_config": {"stream": True},
        },
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    lines = r.iter_lines(decode_unicode=True)
    first = next(lines)
    assert first.startswith("data:") and json.loads(first[5:])["type"] == "retrieval_start"
    assert time.perf_counter() - start < 5
    events = [json.loads(first[5:])] + [json.loads(x[5:]) for x in lines if x.startswith("data:")]
    types = [e["type"] for e in events]
    assert types[:3] == ["retrieval_start", "retrieval_complete", "generation_start"]
    assert types[-2:] == ["sources", "complete"] and set(types[3:-2]) == {"content_chunk"}
    text = "".join(e["data"]["text"] for e in events if e["type"] == "content_chunk")
    assert "93" in text and events[-1]["data"]["answer"] == text
    assert doc_id in [s["document_id"] for s in events[-2]["data"]["sources"]]


def test_question_image_retrieves_the_picture(api):
    w = word()
    png = shape_png("green")
    doc = api.ok(
        api.post(
            "/documents/upload",
            json={"document_type": "image", "file": b64(png), "metadata": {"category": w, "title": "green"}},
        )
    )
    detail = api.wait(doc["document_id"])
    data = api.ok(
        api.post(
            "/qa/ask", json={"question": "What is shown here?", "question_image": b64(png), "filters": {"category": w}}
        )
    )
    got = data["retrieved_images"]
    assert got and got[0]["image_id"] == detail["images"][0]["image_id"] and got[0]["image_url"]
    assert_error(api.post("/qa/ask", json={"question": "x", "question_image": "%%%"}), 400, "INVALID_PARAMETER")


def test_chat_uses_history_and_stores_turns(api, api_b, facts):
    w, cat, _, _ = facts
    sid = "t_" + uuid.uuid4().hex[:8]
    first = api.ok(
        api.post(
            "/qa/chat",
            json={"session_id": sid, "filters": {"category": cat}, "question": f"Tell me about the {w} relief valve."},
        )
    )
    assert first["session_id"] == sid and first["context_used"]["history_turns"] == 0
    second = api.ok(
        api.post(
            "/qa/chat",
            json={
                "session_id": sid,
                "filters": {"category": cat},
                "question": "How often must it be inspected?",
                "retrieval_config": {"use_history_context": True, "history_weight": 0.4},
            },
        )
    )
    assert "six months" in second["answer"] and second["context_used"]["history_turns"] == 1
    assert w in second["context_used"]["history_query"]
    assert second["follow_up_suggestions"] and all(q.endswith("?") for q in second["follow_up_suggestions"])
    hist = api.ok(api.get(f"/qa/sessions/{sid}"))
    assert [m["role"] for m in hist["messages"]] == ["user", "assistant"] * 2
    assert hist["messages"][1]["sources"] and hist["messages"][2]["content"] == "How often must it be inspected?"
    assert_error(api_b.get(f"/qa/sessions/{sid}"), 404, "NOT_FOUND")
    # the other tenant may use the same session id without meeting this one
    api_b.ok(api_b.post("/qa/chat", json={"session_id": sid, "question": "hello?"}))
    assert api_b.ok(api_b.get(f"/qa/sessions/{sid}"))["message_count"] == 2
    assert api.ok(api.delete(f"/qa/sessions/{sid}"))["deleted_messages"] == 4
    assert_error(api.get(f"/qa/sessions/{sid}"), 404, "NOT_FOUND")
    assert api_b.ok(api_b.get(f"/qa/sessions/{sid}"))["message_count"] == 2


def test_chat_history_from_request_and_no_save(api, facts):
    w, cat, _, _ = facts
    sid = "t_" + uuid.uuid4().hex[:8]
    data = api.ok(
        api.post(
            "/qa/chat",
            json={
                "session_id": sid,
                "question": "How often is it inspected?",
                "filters": {"category": cat},
                "history": [
                    {"role": "user", "content": f"What about the {w} relief valve?"},
                    {"role": "assistant", "content": "It opens at 93 kPa [1]."},
                ],
                "options": {"save_session": False},
            },
        )
    )
    assert "six" in data["answer"] and data["context_used"]["history_turns"] == 1 and not data["session_saved"]
    assert_error(api.get(f"/qa/sessions/{sid}"), 404, "NOT_FOUND")
    assert_error(
        api.post("/qa/chat", json={"question": "x", "session_id": "bad id with spaces"}), 400, "INVALID_PARAMETER"
    )


def test_pictures_sent_earlier_stay_in_the_session(api, server):
    sid = "t_" + uuid.uuid4().hex[:8]
    api.ok(
        api.post(
            "/qa/chat", json={"session_id": sid, "question": "Look at this", "question_image": b64(shape_png("red"))}
        )
    )
    hist = api.ok(api.get(f"/qa/sessions/{sid}"))
    assert hist["messages"][0]["images"][0]["image_id"]
    turns = server.container.answers.history_from_session("tenant-a", sid)
    assert turns[0].images and turns[0].images[0].mime == "image/jpeg"
    api.ok(api.delete(f"/qa/sessions/{sid}"))
    assert server.container.answers.history_from_session("tenant-a", sid) == []


def test_the_picture_on_the_page_of_the_answer_comes_with_it(api):
    w = word()
    pdf = build_pdf(
        [
            {
                "lines": [(72, 700, f"The {w} pump diagram shows the inlet, the impeller and the outlet valve.")],
                "images": [(72, 400, 240, 180, 48, 36, (0, 128, 255))],
            },
            {"lines": [(72, 700, "Warranty terms are printed on the back cover.")]},
        ]
    )
    doc = api.ok(
        api.post("/documents/upload", json={"document_type": "pdf", "file": b64(pdf), "metadata": {"category": w}})
    )
    detail = api.wait(doc["document_id"])
    picture = next(i for i in detail["images"] if i.get("page_number", i.get("page")) == 1)
    data = api.ok(
        api.post("/qa/ask", json={"question": f"What does the {w} pump diagram show?", "filters": {"category": w}})
    )
    assert data["sources"][0]["metadata"]["page"] == 1 and "[1]" in data["answer"]
    got = {i["image_id"]: i for i in data["retrieved_images"]}
    assert picture["image_id"] in got and got[picture["image_id"]]["page"] == 1
    assert got[picture["image_id"]]["image_url"]
    scores = [i["relevance_score"] for i in data["retrieved_images"]]
    assert scores == sorted(scores, reverse=True)
