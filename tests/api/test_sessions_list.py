"""GET /api/v1/qa/sessions over HTTP, and the X-RateLimit-* headers, on a server of their own (exact counts)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.conftest import KEY_A, KEY_B, Api, LiveServer, assert_error, needs_models, settings_for

pytestmark = needs_models

LIMITS = "upload=100,query=1000,search=2,qa=200"


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[LiveServer]:
    with LiveServer(settings_for(tmp_path_factory.mktemp("sessions"), rate_limits=LIMITS)) as server:
        yield server


def chat(api: Api, session_id: str, question: str) -> None:
    data = api.ok(api.post("/qa/chat", json={"session_id": session_id, "question": question}))
    assert data["session_id"] == session_id


def test_sessions_are_listed_per_tenant_newest_first_with_titles(live):
    a, b = Api(live.url, KEY_A), Api(live.url, KEY_B)
    assert a.ok(a.get("/qa/sessions")) == {"total": 0, "page": 1, "page_size": 20, "sessions": []}
    long_question = "How often must the hydraulic relief valve of the second pump be inspected and by whom " * 3
    chat(a, "s-old", "What is the relief valve pressure?")
    chat(a, "s-long", long_question)
    chat(a, "s-new", "散热器的冷却液什么时候检查？")
    chat(b, "s-b", "Tenant b asks something")
    chat(a, "s-old", "And the second question?")  # the most recently active now

    data = a.ok(a.get("/qa/sessions"))
    assert data["total"] == 3 and [s["session_id"] for s in data["sessions"]] == ["s-old", "s-new", "s-long"]
    old, new, long = data["sessions"]
    assert old["title"] == "What is the relief valve pressure?" and old["message_count"] == 4
    assert new["title"] == "散热器的冷却液什么时候检查？" and new["message_count"] == 2
    assert long["title"].endswith("…") and len(long["title"]) <= 60
    assert long_question.startswith(long["title"][:-1])
    assert old["updated_at"] > old["created_at"] and old["updated_at"] > new["updated_at"]
    detail = a.ok(a.get("/qa/sessions/s-old"))
    assert detail["message_count"] == old["message_count"] and detail["updated_at"] == old["updated_at"]

    page2 = a.ok(a.get("/qa/sessions", params={"page": 2, "page_size": 2}))
    assert page2["total"] == 3 and [s["session_id"] for s in page2["sessions"]] == ["s-long"]
    assert [s["session_id"] for s in b.ok(b.get("/qa/sessions"))["sessions"]] == ["s-b"]

    a.ok(a.delete("/qa/sessions/s-new"))
    assert [s["session_id"] for s in a.ok(a.get("/qa/sessions"))["sessions"]] == ["s-old", "s-long"]
    for bad in ({"page": 0}, {"page_size": 0}, {"page_size": 101}, {"page": "x"}):
        assert_error(a.get("/qa/sessions", params=bad), 400, "INVALID_PARAMETER")
    assert_error(Api(live.url, None).get("/qa/sessions"), 401, "UNAUTHORIZED")


def test_rate_limit_headers_on_every_limited_response(live):
    a, b = Api(live.url, KEY_A), Api(live.url, KEY_B)
    first = a.get("/documents")
    second = a.get("/documents/doc_0000000000000000")  # an error of the same class counts and says so too
    assert first.status_code == 200 and second.status_code == 404
    assert first.headers["X-RateLimit-Limit"] == second.headers["X-RateLimit-Limit"] == "1000"
    assert int(first.headers["X-RateLimit-Remaining"]) == int(second.headers["X-RateLimit-Remaining"]) + 1
    reset = int(first.headers["X-RateLimit-Reset"])
    assert time.time() < reset <= time.time() + 3601

    for remaining in ("1", "0"):
        r = b.post("/search/text", json={"query": "valve", "top_k": 1})
        assert r.status_code == 200 and r.headers["X-RateLimit-Limit"] == "2"
        assert r.headers["X-RateLimit-Remaining"] == remaining
    refused = b.post("/search/text", json={"query": "valve", "top_k": 1})
    assert_error(refused, 429, "RATE_LIMIT_EXCEEDED")
    assert refused.headers["X-RateLimit-Remaining"] == "0" and refused.headers["X-RateLimit-Limit"] == "2"
    retry = int(refused.headers["Retry-After"])
    assert 3590 <= retry <= 3600 and abs(int(refused.headers["X-RateLimit-Reset"]) - (time.time() + retry)) <= 2
    assert a.post("/search/text", json={"query": "valve", "top_k": 1}).headers["X-RateLimit-Remaining"] == "1"

    health = a.get("/health")  # no limited class: no headers
    assert health.status_code == 200 and "X-RateLimit-Limit" not in health.headers
