"""POST /qa/chat-stream over real HTTP with the extractive default: a chat turn as Server-Sent Events, the session
history it leans on, the turn saved (and listed) only when the answer completed, bad input as a plain 400."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.conftest import assert_error


@pytest.fixture(scope="module")
def bulletin(api):
    w = "zq" + uuid.uuid4().hex[:8]
    cat = f"chat-stream-{w}"
    text = (
        f"Maintenance bulletin for the {w} compressor. The {w} relief valve opens at a pressure of 93 kPa. "
        f"The {w} relief valve must be inspected every six months by a certified technician."
    )
    doc = api.ok(
        api.post(
            "/documents/upload",
            json={"document_type": "text", "content": text, "metadata": {"title": f"Bulletin {w}", "category": cat}},
        )
    )
    api.wait(doc["document_id"])
    return w, cat, doc["document_id"]


def stream(api, body: dict) -> list[dict]:
    r = api.http.post(api.base + "/qa/chat-stream", headers=api.headers(), json=body, stream=True, timeout=60)
    assert r.status_code == 200, r.text[:500]
    assert r.headers["content-type"].startswith("text/event-stream")
    return [json.loads(line[5:]) for line in r.iter_lines(decode_unicode=True) if line.startswith("data:")]


def test_a_streamed_chat_turn_leans_on_the_session_and_is_saved(api, api_b, bulletin):
    w, cat, doc_id = bulletin
    sid = "cs_" + uuid.uuid4().hex[:8]
    first = stream(
        api,
        {
            "session_id": sid,
            "question": f"When does the {w} relief valve open and how often is it inspected?",
            "filters": {"category": cat},
        },
    )
    types = [e["type"] for e in first]
    assert types[:3] == ["retrieval_start", "retrieval_complete", "generation_start"]
    assert types[-2:] == ["sources", "complete"] and set(types[3:-2]) == {"content_chunk"}
    assert types.count("content_chunk") >= 2  # the answer arrives in pieces
    done = first[-1]["data"]
    assert done["session_id"] == sid and done["session_saved"] is True
    assert done["context_used"]["history_turns"] == 0 and done["context_used"]["history_query"] is None
    assert done["answer"] == "".join(e["data"]["text"] for e in first if e["type"] == "content_chunk")
    assert doc_id in [s["document_id"] for s in first[-2]["data"]["sources"]]

    second = stream(
        api,
        {
            "session_id": sid,
            "question": "How often must it be inspected?",
            "filters": {"category": cat},
            "retrieval_config": {"use_history_context": True, "history_weight": 0.4},
        },
    )
    done = second[-1]["data"]
    assert second[-1]["type"] == "complete"
    assert "six months" in done["answer"] and done["context_used"]["history_turns"] == 1
    assert w in done["context_used"]["history_query"] and isinstance(done["follow_up_suggestions"], list)
    hist = api.ok(api.get(f"/qa/sessions/{sid}"))
    assert [m["role"] for m in hist["messages"]] == ["user", "assistant"] * 2
    assert hist["messages"][2]["content"] == "How often must it be inspected?"
    assert hist["messages"][3]["content"] == done["answer"] and hist["messages"][3]["sources"]
    assert sid in [s["session_id"] for s in api.ok(api.get("/qa/sessions", params={"page_size": 100}))["sessions"]]
    assert_error(api_b.get(f"/qa/sessions/{sid}"), 404, "NOT_FOUND")
    assert api.ok(api.delete(f"/qa/sessions/{sid}"))["deleted_messages"] == 4


def test_history_from_the_request_and_no_save(api, bulletin):
    w, cat, _ = bulletin
    sid = "cs_" + uuid.uuid4().hex[:8]
    events = stream(
        api,
        {
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
    done = events[-1]["data"]
    assert "six" in done["answer"] and done["context_used"]["history_turns"] == 1 and done["session_saved"] is False
    assert_error(api.get(f"/qa/sessions/{sid}"), 404, "NOT_FOUND")


def test_bad_input_is_a_plain_400_before_the_stream(api):
    for body in (
        {"question": "  "},
        {"question": "x", "generation_config": {"model": "gpt-9"}},
        {"question": "x", "session_id": "bad id with spaces"},
        {"question": "x", "history": [{"role": "user", "content": "see", "images": ["%%%"]}]},
    ):
        r = api.post("/qa/chat-stream", json=body)
        assert_error(r, 400, "INVALID_PARAMETER")
        assert r.headers["content-type"].startswith("application/json")
