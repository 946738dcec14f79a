"""The extractive answerer over HTTP: it answers what the documents hold, declines what they do not (English and
Chinese), never leans on its own refusal in a conversation, and offers follow-ups that are real questions."""

from __future__ import annotations

import uuid

import pytest

from mmrag.adapters.generators.extractive import NO_ANSWER

MANUAL = (
    "Cooling system\n\n"
    "The relief valve opens at 93 kPa. It must be inspected every six months by a certified technician.\n\n"
    "Coolant replacement\n\n"
    "The coolant is replaced every two years. Use only ethylene glycol coolant mixed half and half with water; "
    "the coolant mixture protects the engine down to minus 35 degrees.\n\n"
    "Radiator cap\n\n"
    "Never open the radiator cap while the engine is hot: the coolant is under pressure."
)


@pytest.fixture(scope="module")
def category(api) -> str:
    cat = "decline-" + uuid.uuid4().hex[:8]
    up = api.ok(
        api.post(
            "/documents/upload",
            json={"document_type": "text", "content": MANUAL, "metadata": {"title": "Pump manual", "category": cat}},
        )
    )
    assert api.wait(up["document_id"])["status"] == "completed"
    return cat


def ask(api, category: str, question: str) -> dict:
    body = {"question": question, "filters": {"category": category}, "generation_config": {"model": "extractive"}}
    return api.ok(api.post("/qa/ask", json=body))


def test_answers_what_the_documents_hold(api, category):
    data = ask(api, category, "At what pressure does the relief valve open?")
    assert data["answer"].startswith("The relief valve opens at 93 kPa.") and "[1]" in data["answer"]
    assert data["confidence_score"] > 0 and data["reasoning"]["answer_based_on"]


@pytest.mark.parametrize(
    ("question", "language"),
    [
        ("How long should I boil an egg to get a soft yolk?", "en"),
        ("Which team won the 1998 FIFA World Cup final?", "en"),
        ("红烧肉应该怎么做才好吃？", "zh"),
    ],
)
def test_declines_what_they_do_not(api, category, question, language):
    data = ask(api, category, question)
    assert data["sources"], "retrieval always finds something in the category: declining is the answerer's call"
    assert data["answer"] == NO_ANSWER[language]
    assert data["confidence_score"] == 0 and data["reasoning"]["answer_based_on"] == []


def test_a_refusal_is_never_history(api, category):
    sid = "decline_" + uuid.uuid4().hex[:8]
    chat = {"session_id": sid, "filters": {"category": category}, "generation_config": {"model": "extractive"}}
    first = api.ok(api.post("/qa/chat", json={**chat, "question": "Who painted the Mona Lisa?"}))
    assert first["answer"] == NO_ANSWER["en"]
    second = api.ok(api.post("/qa/chat", json={**chat, "question": "How often is the relief valve inspected?"}))
    assert "six months" in second["answer"]
    assert "do not contain" not in (second["context_used"]["history_query"] or "")
    # history sent with the request: the declined exchange is left out, the answered one is used
    history = [
        {"role": "user", "content": "What about the relief valve?"},
        {"role": "assistant", "content": "The relief valve opens at 93 kPa. [1]"},
        {"role": "user", "content": "Who painted the Mona Lisa?"},
        {"role": "assistant", "content": NO_ANSWER["en"]},
    ]
    third = api.ok(
        api.post(
            "/qa/chat",
            json={
                **chat,
                "question": "How often is it inspected?",
                "history": history,
                "options": {"save_session": False},
            },
        )
    )
    query = third["context_used"]["history_query"]
    assert "93 kPa" in query and "do not contain" not in query
    assert "six months" in third["answer"]
    api.ok(api.delete(f"/qa/sessions/{sid}"))


def test_follow_ups_are_questions_about_the_sources_not_used(api, category):
    sid = "decline_" + uuid.uuid4().hex[:8]
    question = "At what pressure does the relief valve open?"
    data = api.ok(
        api.post(
            "/qa/chat",
            json={
                "session_id": sid,
                "question": question,
                "filters": {"category": category},
                "retrieval_config": {"top_k": 5},
                "options": {"save_session": False},
            },
        )
    )
    suggestions = data["follow_up_suggestions"]
    assert suggestions and len(set(suggestions)) == len(suggestions)
    for s in suggestions:
        assert s.endswith("?") and s != question and "relief valve" not in s.lower()
    # the manual's other sections, named by their headings or their recurring phrases
    assert any(("Coolant" in s or "Radiator" in s or "coolant" in s) for s in suggestions), suggestions


def test_an_english_question_over_a_chinese_document_it_cannot_match_is_declined(api):
    cat = "decline-zh-" + uuid.uuid4().hex[:8]
    content = "冷却系统\n\n冷却液每两年更换一次。散热器盖在发动机热的时候不能打开，因为冷却液处于高压状态。"
    up = api.ok(
        api.post("/documents/upload", json={"document_type": "text", "content": content, "metadata": {"category": cat}})
    )
    assert api.wait(up["document_id"])["status"] == "completed"
    data = ask(api, cat, "How often is the coolant replaced?")  # retrieval cannot match: no shared word
    assert data["sources"] and data["answer"] == NO_ANSWER["en"] and data["confidence_score"] == 0
    # the same document answers a Chinese question about it
    data = ask(api, cat, "冷却液多久更换一次？")
    assert data["answer"].startswith("冷却液每两年更换一次。") and data["confidence_score"] > 0
