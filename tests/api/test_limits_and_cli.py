"""Rate limits over HTTP, URL uploads through the SSRF guard, and the mmrag command line."""

from __future__ import annotations

import http.server
import ipaddress
import subprocess
import sys
import threading

import pytest

from tests.conftest import KEY_A, MODELS, TEST_MODELS, Api, LiveServer, assert_error, needs_models, settings_for
from tests.samples import text_pdf

pytestmark = needs_models


def test_rate_limit_is_per_key_and_class_with_retry_after(tmp_path):
    with LiveServer(settings_for(tmp_path, rate_limits="upload=2,query=3")) as live:
        a, b = Api(live.url, KEY_A), Api(live.url, "test-key-b")
        for _ in range(2):
            a.ok(a.post("/documents/upload", json={"document_type": "text", "content": "x"}))
        r = a.post("/documents/upload", json={"document_type": "text", "content": "x"})
        body = assert_error(r, 429, "RATE_LIMIT_EXCEEDED")
        assert 1 <= int(r.headers["Retry-After"]) <= 3600 and "per hour" in body["error"]["error_detail"]
        b.ok(b.post("/documents/upload", json={"document_type": "text", "content": "x"}))  # another key
        for _ in range(3):
            a.ok(a.get("/documents"))  # another class
        assert_error(a.get("/documents"), 429, "RATE_LIMIT_EXCEEDED")
        assert a.get("/health").status_code == 200  # health is never limited


class _Files(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        body = text_pdf([["Fetched from a URL about gearboxes."]])
        self.send_response(200)
        self.send_header("Content-Type", "application/pdf")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def file_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/manual.pdf"
    srv.shutdown()


def test_upload_by_url_fetches_through_the_guard(tmp_path, file_server):
    from mmrag.composition import build_container
    from mmrag.errors import InvalidParameter
    from mmrag.security.fetch import fetch_url

    c = build_container(settings_for(tmp_path))
    c.start()
    try:
        with pytest.raises(InvalidParameter):  # the real policy: loopback is never fetched
            c.documents.upload("tenant-a", "pdf", file=file_server)
        loopback = ipaddress.ip_address("127.0.0.1")
        c.documents.fetch = lambda url, n: fetch_url(url, max_bytes=n, allow=lambda ip: ip == loopback).data
        doc = c.documents.upload("tenant-a", "pdf", file=file_server)
        assert c.runner.wait_idle(lambda: c.store.get_document("tenant-a", doc.document_id).status == "completed", 60)
        assert "gearboxes" in c.store.get_chunks("tenant-a", doc.document_id)[0].content
    finally:
        c.stop()


def _mmrag(*args: str, data_dir, env_extra=None) -> subprocess.CompletedProcess:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MMRAG_")}
    env.update(TEST_MODELS, MMRAG_MODEL_DIR=str(MODELS), HF_HUB_OFFLINE="1", **(env_extra or {}))
    return subprocess.run(
        [sys.executable, "-m", "mmrag.cli", *args, "--data-dir", str(data_dir)]
        if args[0] == "ingest"
        else [sys.executable, "-m", "mmrag.cli", args[0], "--data-dir", str(data_dir), *args[1:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_keys_create_list_revoke_and_use(tmp_path):
    created = _mmrag("keys", "create", "--tenant", "acme", "--label", "ci", data_dir=tmp_path)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("mmr_") and key not in (tmp_path / "mmrag.sqlite").read_bytes().decode("latin-1")
    listed = _mmrag("keys", "list", data_dir=tmp_path).stdout
    key_id = listed.split("\t")[0]
    assert "acme" in listed and "active" in listed
    with LiveServer(settings_for(tmp_path, api_keys="")) as live:
        api = Api(live.url, key)
        doc = api.ok(api.post("/documents/upload", json={"document_type": "text", "content": "acme note"}))
        assert api.wait(doc["document_id"])["status"] == "completed"
        assert _mmrag("keys", "revoke", key_id, data_dir=tmp_path).returncode == 0
        assert_error(api.get("/documents"), 401, "UNAUTHORIZED")


def test_ingest_command_walks_folders(tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("Alpha note about compressors.")
    (folder / "sub" / "b.pdf").write_bytes(text_pdf([["Beta manual page."]]))
    (folder / "junk.bin").write_bytes(b"\x7fELF" + bytes(64))
    result = _mmrag("ingest", str(folder), "--tenant", "acme", "--tags", "bulk", data_dir=tmp_path / "data")
    assert result.returncode == 1, "one file was not ingestible"
    assert "ingested 2 of 3 files" in result.stdout and "junk.bin" in result.stderr
    from mmrag.composition import build_container

    c = build_container(settings_for(tmp_path / "data"), start_workers=False)
    total, docs = c.store.list_documents("acme", tags=["bulk"])
    assert total == 2 and {d.status for d in docs} == {"completed"}
    assert {d.metadata["title"] for d in docs} == {"a.txt", "b.pdf"}
