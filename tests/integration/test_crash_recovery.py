"""kill -9 during ingestion, crashes mid-delete and between upload and row: nothing half-done survives a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from tests.conftest import KEY_A, MODELS, TEST_MODELS, free_port, needs_models, settings_for
from tests.samples import b64, scanned_pdf

pytestmark = needs_models


def _serve(data_dir, port) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMRAG_")}
    env.update(
        TEST_MODELS,
        MMRAG_MODEL_DIR=str(MODELS),
        MMRAG_API_KEYS=f"{KEY_A}=tenant-a",
        MMRAG_UPLOAD_WAIT_S="0",
        HF_HUB_OFFLINE="1",
    )
    cmd = [
        sys.executable,
        "-m",
        "mmrag.cli",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200:
                return proc
        except requests.RequestException:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start")


def _get(port, path):
    return requests.get(
        f"http://127.0.0.1:{port}/api/v1{path}", headers={"Authorization": f"Bearer {KEY_A}"}, timeout=30
    )


def test_kill_9_during_ingestion_resumes_cleanly(tmp_path):
    port = free_port()
    proc = _serve(tmp_path, port)
    try:
        pages = [[f"PAGE {i} SERIAL {1000 + i}"] for i in range(8)]
        r = requests.post(
            f"http://127.0.0.1:{port}/api/v1/documents/upload",
            timeout=60,
            headers={"Authorization": f"Bearer {KEY_A}"},
            json={"document_type": "pdf", "file": b64(scanned_pdf(pages))},
        )
        doc_id = r.json()["data"]["document_id"]
        # wait until the OCR stage is under way, then pull the plug
        deadline = time.time() + 30
        while time.time() < deadline and not list((tmp_path / "blobs").rglob("*.thumb.png")):
            time.sleep(0.05)
        assert _get(port, f"/documents/{doc_id}").json()["data"]["status"] == "processing"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    proc = _serve(tmp_path, port)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            d = _get(port, f"/documents/{doc_id}").json()["data"]
            if d["status"] != "processing":
                break
            time.sleep(0.2)
        assert d["status"] == "completed", d
        assert len(d["images"]) == 8
        assert {c["page_number"] for c in d["chunks"]} == set(range(1, 9))
        squashed = [c["content"].replace(" ", "").upper() for c in d["chunks"]]
        assert sum("SERIAL1003" in s for s in squashed) == 1, ("no duplicated chunks from attempt 1", squashed)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    # nothing orphaned: the index holds exactly this document's chunks and images, the blob store its files
    from mmrag.composition import build_container

    c = build_container(settings_for(tmp_path), start_workers=False)
    assert len(c.index.item_ids("tenant-a", doc_id)) == len(d["chunks"]) + len(d["images"])
    blobs = sorted(p.name for p in (tmp_path / "blobs").rglob("*") if p.is_file())
    assert len(blobs) == 1 + 2 * len(d["images"]), blobs  # the original, each picture and its thumbnail


def test_interrupted_delete_and_orphan_upload_are_finished_at_start(tmp_path):
    from mmrag.composition import build_container
    from mmrag.core import blob_paths as keys

    first = build_container(settings_for(tmp_path))
    first.start()
    try:
        doc = first.documents.upload("tenant-a", "text", content="A short note about valves.")
        assert first.runner.wait_idle(
            lambda: first.store.get_document("tenant-a", doc.document_id).status == "completed", 60
        )
    finally:
        first.stop()
    # simulate a crash right after the delete was recorded, and one between writing an upload and its row
    d = first.store.get_document("tenant-a", doc.document_id)
    d.status = "deleting"
    first.store.update_document(d)
    first.blobs.put(keys.original_key("tenant-a", "doc_orphan"), b"lost upload")

    second = build_container(settings_for(tmp_path))
    second.start()
    try:
        assert second.store.get_document("tenant-a", doc.document_id) is None
        assert second.index.item_ids("tenant-a", doc.document_id) == []
        assert second.blobs.list_keys(keys.document_prefix("tenant-a", doc.document_id)) == []
        assert second.blobs.get(keys.original_key("tenant-a", "doc_orphan")) is None
    finally:
        second.stop()


@pytest.mark.parametrize("attempts", [4])
def test_a_job_that_keeps_crashing_gives_up_and_fails(tmp_path, attempts):
    from mmrag.composition import build_container
    from mmrag.core.models import Job

    c = build_container(settings_for(tmp_path), start_workers=False)
    doc = c.documents.upload("tenant-a", "text", content="text", wait=False)
    job = c.store.claim_job()
    for _ in range(attempts - 1):  # every start-up finds it 'running': the process died while working on it
        c.store.recover_jobs()
        job = c.store.claim_job()
    assert isinstance(job, Job) and job.attempts == attempts
    c.store.recover_jobs()
    c2 = build_container(settings_for(tmp_path, max_job_attempts=attempts - 1))
    c2.start()
    try:
        assert c2.runner.wait_idle(lambda: c2.store.get_document("tenant-a", doc.document_id).status == "failed", 30)
        assert "interrupted" in c2.store.get_document("tenant-a", doc.document_id).error
    finally:
        c2.stop()


class FlakyEmbedder:
    """A text-embedder adapter whose service is down for its first `failures` calls (fault injection at the port)."""

    def __init__(self, real, failures: int):
        self.real, self.failures = real, failures
        self.name, self.calls = real.name, 0

    def embed_texts(self, texts):
        self.calls += 1
        if self.calls <= self.failures:
            from mmrag.errors import ServiceUnavailable

            raise ServiceUnavailable("embedding endpoint is throttling", "ThrottlingException")
        return self.real.embed_texts(texts)

    def embed_query(self, text):
        return self.real.embed_query(text)


@pytest.mark.parametrize("failures,expected", [(1, "completed"), (5, "failed")])
def test_a_briefly_unavailable_model_is_retried_then_given_up(tmp_path, failures, expected):
    from mmrag.composition import build_container

    c = build_container(settings_for(tmp_path, max_job_attempts=2))
    c.pipeline.text_embedder = FlakyEmbedder(c.text_embedder, failures)
    c.runner.retry_delay_s = 0.05
    c.start()
    try:
        doc = c.documents.upload("tenant-a", "text", content="Pumps need oil every month.", wait=False)
        assert c.runner.wait_idle(lambda: c.store.get_document("tenant-a", doc.document_id).status != "processing", 60)
        done = c.store.get_document("tenant-a", doc.document_id)
        assert done.status == expected, done.error
        items = c.index.item_ids("tenant-a", doc.document_id)
        assert (len(items) == done.chunks_count) if expected == "completed" else items == []
    finally:
        c.stop()
