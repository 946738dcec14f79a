"""Shared fixtures: the offline models, a real server over HTTP on loopback, API clients, test documents."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
MODELS = Path(os.environ.get("MMRAG_TEST_MODEL_DIR", ROOT.parent / "shared" / "models"))
TEST_MODELS = {
    "MMRAG_TEXT_MODEL": "sentence-transformers/all-MiniLM-L6-v2",
    "MMRAG_IMAGE_MODEL": "Qdrant/clip-ViT-B-32-vision",
    "MMRAG_IMAGE_TEXT_MODEL": "Qdrant/clip-ViT-B-32-text",
    "MMRAG_RERANK_MODEL": "Xenova/ms-marco-MiniLM-L-6-v2",
}
KEY_A, KEY_B = "test-key-a", "test-key-b"
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never download: a missing model must fail at once

needs_models = pytest.mark.skipif(
    not (MODELS / "sentence-transformers").is_dir(),
    reason=f"offline models not found at {MODELS} (set MMRAG_TEST_MODEL_DIR)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settings_for(data_dir: Path, **overrides):
    from mmrag.settings import Settings

    env = {k[len("MMRAG_") :].lower(): v for k, v in TEST_MODELS.items()}
    values = {
        **env,
        "data_dir": data_dir,
        "model_dir": MODELS,
        "api_keys": f"{KEY_A}=tenant-a,{KEY_B}=tenant-b",
        "max_upload_mb": 5,
        "upload_wait_s": 0.5,
        **overrides,
    }
    return Settings(**values)


class LiveServer:
    """The real FastAPI app under uvicorn in a thread, on a free loopback port."""

    def __init__(self, settings):
        import uvicorn

        from mmrag.api.app import create_app
        from mmrag.composition import build_container

        self.container = build_container(settings)
        self.app = create_app(self.container)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.server.started:
                return self
            time.sleep(0.05)
        raise RuntimeError("server did not start")

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


class Api:
    def __init__(self, base: str, key: str | None):
        self.base = base + "/api/v1"
        self.root = base
        self.key = key
        self.http = requests.Session()
        self.http.trust_env = False

    def headers(self, extra: dict | None = None) -> dict:
        h = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        h.update(extra or {})
        return h

    def request(self, method: str, path: str, **kw) -> requests.Response:
        headers = self.headers(kw.pop("headers", None))
        url = path if path.startswith("http") else self.base + path
        return self.http.request(method, url, headers=headers, timeout=120, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, json=None, **kw):
        return self.request("POST", path, json=json, **kw)

    def put(self, path, json=None, **kw):
        return self.request("PUT", path, json=json, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def ok(self, r: requests.Response) -> dict:
        assert r.status_code == 200, f"{r.status_code}: {r.text[:500]}"
        body = r.json()
        assert body["code"] == 200
        return body["data"]

    def wait(self, doc_id: str, timeout: float = 120) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            data = self.ok(self.get(f"/documents/{doc_id}"))
            if data["status"] in ("completed", "failed"):
                return data
            time.sleep(0.1)
        raise AssertionError(f"{doc_id} not processed in {timeout} s")


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Iterator[LiveServer]:
    if not (MODELS / "sentence-transformers").is_dir():
        pytest.skip(f"offline models not found at {MODELS}")
    with LiveServer(settings_for(tmp_path_factory.mktemp("mmrag-data"))) as live:
        yield live


@pytest.fixture(scope="session")
def api(server) -> Api:
    return Api(server.url, KEY_A)


@pytest.fixture(scope="session")
def api_b(server) -> Api:
    return Api(server.url, KEY_B)


@pytest.fixture(scope="session")
def anon(server) -> Api:
    return Api(server.url, None)


def assert_error(r: requests.Response, status: int, code: str) -> dict:
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text[:500]}"
    body = r.json()
    assert body["code"] == status and body["message"]
    assert body["error"]["error_code"] == code, body
    assert body["error"]["request_id"] and body["error"]["timestamp"]
    assert "Traceback" not in r.text
    return body
