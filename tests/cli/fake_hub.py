"""A model hub on loopback (HF_ENDPOINT) serving folders laid out like ../shared/models: the model-info, file-tree,
revision and resolve requests huggingface_hub makes for fastembed's downloads. File bodies can be held back until
`release()`, to see what the service does while a model downloads."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import urllib.parse
from pathlib import Path

SHA = "0" * 39 + "1"


class FakeHub:
    def __init__(self, repos: dict[str, Path], hold: bool = False):
        self.repos = repos  # hub repo id -> folder
        self.gate = threading.Event()  # file bodies wait until it is set
        if not hold:
            self.gate.set()
        self.requests: list[str] = []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):  # noqa: N802
                hub.answer(self, head=True)

            def do_GET(self):  # noqa: N802
                hub.answer(self, head=False)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def release(self) -> None:
        self.gate.set()

    def close(self) -> None:
        self.gate.set()
        self.server.shutdown()

    def files(self, repo: str) -> list[tuple[str, Path]]:
        root = self.repos[repo]
        return sorted((p.relative_to(root).as_posix(), p) for p in root.rglob("*") if p.is_file())

    def answer(self, h, head: bool):
        path = urllib.parse.urlparse(h.path).path
        self.requests.append(f"{h.command} {path}")
        for repo in self.repos:
            if path in (
                f"/api/models/{repo}",
                f"/api/models/{repo}/revision/main",
                f"/api/models/{repo}/revision/{SHA}",
            ):
                siblings = [{"rfilename": rel} for rel, _ in self.files(repo)]
                return self.json(h, {"id": repo, "modelId": repo, "sha": SHA, "siblings": siblings, "private": False})
            if path.startswith(f"/api/models/{repo}/tree/"):
                tree = [
                    {"type": "file", "path": rel, "size": p.stat().st_size, "oid": self.oid(p)}
                    for rel, p in self.files(repo)
                ]
                return self.json(h, tree)
            for prefix in (f"/{repo}/resolve/main/", f"/{repo}/resolve/{SHA}/"):
                if path.startswith(prefix):
                    rel = path[len(prefix) :]
                    file = self.repos[repo] / rel
                    if not file.is_file():
                        break
                    if not head:
                        self.gate.wait(60)
                    data = b"" if head else file.read_bytes()
                    h.send_response(200)
                    h.send_header("X-Repo-Commit", SHA)
                    h.send_header("ETag", f'"{self.oid(file)}"')
                    h.send_header("Content-Length", str(file.stat().st_size))
                    h.send_header("Content-Type", "application/octet-stream")
                    h.end_headers()
                    if not head:
                        h.wfile.write(data)
                    return
        h.send_response(404)
        h.send_header("Content-Type", "application/json")
        h.send_header("X-Error-Code", "EntryNotFound")
        body = b'{"error": "not found"}'
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if not head:
            h.wfile.write(body)

    @staticmethod
    def oid(p: Path) -> str:
        return hashlib.sha1(p.read_bytes()[: 1 << 20] + str(p.stat().st_size).encode()).hexdigest()

    @staticmethod
    def json(h, obj):
        body = json.dumps(obj).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)


def repos_for(models: Path, names: list[str]) -> dict[str, Path]:
    """Hub repo id (fastembed's source of each model) -> the model's folder under `models`."""
    from fastembed import ImageEmbedding, TextEmbedding
    from fastembed.rerank.cross_encoder import TextCrossEncoder

    sources = {
        m["model"]: m["sources"]["hf"]
        for cls in (TextEmbedding, ImageEmbedding, TextCrossEncoder)
        for m in cls.list_supported_models()
    }
    return {sources[name]: models / name for name in names}
