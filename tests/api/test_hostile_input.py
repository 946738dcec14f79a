"""Hostile input over HTTP: every bad request is a 4xx with the envelope, and no error breaks the connection.

The cases are the ones issue 10 found answering 500 (lone surrogates, JSON nested 10,000 deep, a page whose offset
passes 2^63, Infinity as a weight), bodies past the limits, echoed ids, one endless token, and a failure inside a
route or a stream on a keep-alive connection.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator

import pytest
from fastapi.responses import StreamingResponse

from tests.conftest import KEY_A, Api, LiveServer, assert_error, needs_models, settings_for

pytestmark = needs_models

SURROGATE = '"\\ud800"'  # a JSON string holding a lone surrogate: valid JSON syntax, not text
DEEP = "[" * 10_000 + "]" * 10_000


def _boom() -> None:
    raise RuntimeError("a bug inside a route")


def _broken_stream() -> StreamingResponse:
    def events() -> Iterator[bytes]:
        yield b"data: first\n\n"
        raise RuntimeError("a bug in the middle of a stream")

    return StreamingResponse(events(), media_type="text/event-stream")


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[LiveServer]:
    settings = settings_for(tmp_path_factory.mktemp("hostile"), rate_limits="upload=0,query=0,search=0,qa=0")
    server = LiveServer(settings)
    # two routes with bugs, to see what a failure does to the connection (the real ones are fixed)
    server.app.add_api_route("/test/boom", _boom, methods=["GET"])
    server.app.add_api_route("/test/broken-stream", _broken_stream, methods=["GET"])
    with server:
        yield server


@pytest.fixture(scope="module")
def a(live) -> Api:
    return Api(live.url, KEY_A)


def raw(a: Api, method: str, path: str, body: str, content_type: str = "application/json"):
    """Sends `body` as it is; @S stands for a JSON string holding a lone surrogate, @D for JSON nested 10,000 deep."""
    body = body.replace("@S", SURROGATE).replace("@D", DEEP)
    return a.request(method, path, data=body.encode("utf-8", "surrogatepass"), headers={"Content-Type": content_type})


def connection(live: LiveServer) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", live.port, timeout=60)


def exchange(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None):
    headers = {"Authorization": f"Bearer {KEY_A}", "Content-Type": "application/json"}
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    return response.status, response.read(), response


# ------------------------------------------------------------------ lone surrogates
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/documents/upload", '{"document_type": "text", "content": @S}'),
        ("POST", "/documents/upload", '{"document_type": "text", "content": "x", "metadata": {"title": @S}}'),
        ("PUT", "/documents/doc_0123456789abcdef/metadata", '{"metadata": {"title": @S}}'),
        ("POST", "/documents/batch-upload", '{"documents": [{"document_type": "text", "content": @S}]}'),
        ("POST", "/search/text", '{"query": @S}'),
        ("POST", "/qa/ask", '{"question": "why \\udfff"}'),
        ("POST", "/documents/upload", '{"document_type": "text", "content": "x", "metadata": {@S: 1}}'),
    ],
)
def test_a_lone_surrogate_is_400(a, method, path, body):
    body_json = assert_error(raw(a, method, path, body), 400, "INVALID_PARAMETER")
    assert "surrogate" in body_json["error"]["error_detail"]


def test_a_surrogate_pair_is_text(a):
    doc = a.ok(raw(a, "POST", "/documents/upload", '{"document_type": "text", "content": "smile \\ud83d\\ude00 ok"}'))
    assert a.wait(doc["document_id"])["status"] == "completed"


def test_a_lone_surrogate_in_multipart_metadata_is_400(a):
    files = {"file": ("note.txt", b"plain text about valves", "text/plain")}
    form = {"document_type": "text", "metadata": '{"title": "\\ud800"}'}
    assert_error(a.post("/documents/upload", files=files, data=form), 400, "INVALID_PARAMETER")


# ------------------------------------------------------------------ nesting
@pytest.mark.parametrize("path", ["/documents/upload", "/documents/batch-upload", "/search/text", "/qa/ask"])
def test_json_nested_10000_deep_is_400(a, path):
    body = assert_error(raw(a, "POST", path, DEEP), 400, "INVALID_PARAMETER")
    assert "nested" in body["error"]["error_detail"]


def test_metadata_nested_10000_deep_is_400(a):
    nested = '{"document_type": "text", "content": "x", "metadata": {"extra": @D}}'
    assert_error(raw(a, "POST", "/documents/upload", nested), 400, "INVALID_PARAMETER")
    files = {"file": ("note.txt", b"plain text", "text/plain")}
    form = {"document_type": "text", "metadata": '{"extra": @D}'.replace("@D", DEEP)}
    assert_error(a.post("/documents/upload", files=files, data=form), 400, "INVALID_PARAMETER")


def test_multipart_metadata_sent_as_a_file_is_400(a):
    files = {"file": ("note.txt", b"plain text", "text/plain"), "metadata": ("m.json", b'{"title": "x"}', "x/y")}
    assert_error(a.post("/documents/upload", files=files, data={"document_type": "text"}), 400, "INVALID_PARAMETER")


# ------------------------------------------------------------------ numbers
@pytest.mark.parametrize("weight", ["Infinity", "-Infinity", "NaN", "1e309", "-1e309"])
def test_a_non_finite_modality_weight_is_400(a, weight):
    body = '{"query_text": "valve", "modality_weights": {"text": @W, "image": 0.5}}'.replace("@W", weight)
    assert_error(raw(a, "POST", "/search/multimodal", body), 400, "INVALID_PARAMETER")


def test_a_page_past_2_63_is_400(a):
    for page in (2**63 // 100 + 2, 10**30):
        assert_error(a.get(f"/documents?page={page}&page_size=100"), 400, "INVALID_PARAMETER")
    assert a.ok(a.get("/documents?page=1000000&page_size=100"))["documents"] == []  # the last page one may ask for


def test_the_sqlite_store_refuses_an_offset_past_2_63(live):
    from mmrag.errors import InvalidParameter

    store = live.container.store
    assert store.list_documents("tenant-a", page=2**63 // 100, page_size=100)[1] == []  # fits: an empty page
    with pytest.raises(InvalidParameter):
        store.list_documents("tenant-a", page=2**63 // 100 + 2, page_size=100)


# ------------------------------------------------------------------ sizes
def test_every_json_endpoint_has_a_body_limit(a):
    from mmrag.api.request_body import JSON_BODY_LIMIT

    big = json.dumps({"query": "valve", "pad": "a" * (JSON_BODY_LIMIT + 1)})
    for path in ("/search/text", "/qa/ask", "/search/similar"):
        body = assert_error(raw(a, "POST", path, big), 413, "FILE_TOO_LARGE")
        assert str(JSON_BODY_LIMIT) in body["error"]["error_detail"]
    chunked = (big[i : i + 65536].encode() for i in range(0, len(big), 65536))  # no Content-Length
    r = a.request("POST", "/search/text", data=chunked, headers={"Content-Type": "application/json"})
    assert_error(r, 413, "FILE_TOO_LARGE")
    assert a.get("/documents").status_code == 200  # the same session goes on


def test_uploads_keep_their_own_larger_limit(a, live):
    from mmrag.api.request_body import JSON_BODY_LIMIT, upload_body_limit

    limit = upload_body_limit(live.container.documents.max_upload_bytes)
    assert limit < JSON_BODY_LIMIT  # the test settings allow 5 MB files
    # above the upload limit: 413 before the body is read
    too_big = json.dumps({"document_type": "text", "content": "a " * (limit // 2 + 10)})
    assert_error(raw(a, "POST", "/documents/upload", too_big), 413, "FILE_TOO_LARGE")
    # a batch may carry ten uploads' worth: the same body is read, and refused for what it says (not its size)
    batch = json.dumps({"documents": [{"document_type": "bogus", "content": "a " * (limit // 2 + 10)}]})
    assert a.ok(raw(a, "POST", "/documents/batch-upload", batch))["failed_items"]


def test_an_error_echoes_only_a_short_prefix_of_the_input(a):
    reference = "doc_" + "x" * 5_000_000
    r = a.post("/search/similar", json={"reference_type": "document", "reference_id": reference})
    body = assert_error(r, 404, "NOT_FOUND")
    assert len(r.content) < 2000
    assert "doc_" + "x" * 60 + "…" in body["error"]["error_detail"] and "x" * 61 not in r.text
    assert r.text.count("doc_") == 1


# ------------------------------------------------------------------ one endless token
def test_one_endless_token_is_cut_into_chunks_of_chunk_size(a):
    content = "a" * 1_000_000
    options = {"chunk_size": 100, "overlap": 10}
    body = {"document_type": "text", "content": content, "processing_options": options}
    doc = a.ok(a.post("/documents/upload", json=body))
    detail = a.wait(doc["document_id"], timeout=300)
    assert detail["status"] == "completed", detail.get("error")
    from mmrag.ingest.chunking import MAX_TOKEN_CHARS

    chunks = detail["chunks"]
    assert len(chunks) > 100
    assert all(c["token_count"] <= 100 for c in chunks)
    assert max(len(c["content"]) for c in chunks) <= 100 * MAX_TOKEN_CHARS


# ------------------------------------------------------------------ the stream validates first
def test_ask_stream_rejects_what_ask_rejects_before_streaming(a):
    for body in ({"question": "why?", "generation_config": {"model": "no-such-model"}}, {"question": "  "}):
        plain = a.post("/qa/ask", json=body)
        streamed = a.post("/qa/ask-stream", json=body)
        assert plain.status_code == 400
        assert_error(streamed, 400, "INVALID_PARAMETER")
        assert streamed.headers["content-type"].startswith("application/json")


# ------------------------------------------------------------------ 405
def test_405_names_every_allowed_method(a):
    r = a.request("PATCH", "/documents/doc_0123456789abcdef")
    assert_error(r, 405, "INVALID_PARAMETER")
    assert set(r.headers["Allow"].split(", ")) == {"GET", "DELETE"}
    r = a.request("PUT", "/search/text")
    assert_error(r, 405, "INVALID_PARAMETER")
    assert r.headers["Allow"] == "POST"


# ------------------------------------------------------------------ keep-alive
def test_a_bad_request_then_a_good_one_on_one_connection(live):
    conn = connection(live)
    try:
        bad = [
            ("POST", "/api/v1/documents/upload", b'{"document_type": "text", "content": "\\ud800"}'),
            ("POST", "/api/v1/documents/upload", DEEP.encode()),
            ("GET", f"/api/v1/documents?page={10**30}", None),
            ("POST", "/api/v1/search/multimodal", b'{"query_text": "x", "modality_weights": {"text": Infinity}}'),
        ]
        for method, path, body in bad:
            status, _, _ = exchange(conn, method, path, body)
            assert 400 <= status < 500, (path, status)
            status, payload, _ = exchange(conn, "GET", "/api/v1/documents")
            assert status == 200, payload[:200]
    finally:
        conn.close()


def test_a_bug_answers_500_and_the_connection_lives_on(live):
    conn = connection(live)
    try:
        status, payload, response = exchange(conn, "GET", "/test/boom")
        assert status == 500
        body = json.loads(payload)
        assert body["error"]["error_code"] == "INTERNAL_ERROR" and "a bug inside" not in payload.decode()
        assert body["error"]["request_id"] == response.headers["X-Request-ID"]
        status, payload, _ = exchange(conn, "GET", "/api/v1/documents")  # same socket
        assert status == 200, payload[:200]
        assert conn.sock is not None
    finally:
        conn.close()


def test_a_stream_that_breaks_ends_cleanly_and_the_connection_lives_on(live):
    conn = connection(live)
    try:
        started = time.time()
        status, payload, _ = exchange(conn, "GET", "/test/broken-stream")
        assert status == 200 and payload == b"data: first\n\n"  # the chunked body ended properly
        assert time.time() - started < 30
        status, payload, _ = exchange(conn, "GET", "/api/v1/documents")
        assert status == 200, payload[:200]
    finally:
        conn.close()
