"""Answer latency: time to the first SSE event, to the first content_chunk, and our own overhead before the provider
is called, for the extractive default and for an OpenAI-compatible provider fake with a fixed delay.

    python bench/qa_bench.py [--questions 30] [--provider-delay-ms 300] [--data-dir DIR]

The corpus is the English eval PDF (../shared/eval/corpus), ingested once into DIR (reused when DIR already has it);
questions are the eval's English questions. Everything runs on loopback.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT.parent / "shared" / "eval"
MODELS = ROOT.parent / "shared" / "models"
KEY = "bench-key"


class FakeProvider:
    """POST /v1/chat/completions, streamed: waits `delay` seconds, then sends a short answer in three chunks."""

    def __init__(self, delay: float):
        self.received: list[float] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                outer.received.append(time.perf_counter())
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                time.sleep(delay)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for part in ("The answer ", "is in the manual ", "[1]."):
                    body = {"choices": [{"index": 0, "delta": {"content": part}, "finish_reason": None}]}
                    self.wfile.write(f"data: {json.dumps(body)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def start_server(data_dir: Path, provider_url: str):
    import uvicorn

    from mmrag.api.app import create_app
    from mmrag.composition import build_container
    from mmrag.settings import Settings

    settings = Settings(
        data_dir=data_dir,
        model_dir=MODELS,
        api_keys=f"{KEY}=bench",
        max_upload_mb=50,
        rate_limits="qa=0,search=0",
        text_model="sentence-transformers/all-MiniLM-L6-v2",
        image_model="Qdrant/clip-ViT-B-32-vision",
        image_text_model="Qdrant/clip-ViT-B-32-text",
        rerank_model="Xenova/ms-marco-MiniLM-L-6-v2",
        openai_base_url=provider_url,
        openai_models="bench-model",
        openai_vision_models="bench-model",
    )
    container = build_container(settings)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(container), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    container.warm_up()
    return server, container, f"http://127.0.0.1:{port}/api/v1"


def ensure_corpus(http: requests.Session, base: str) -> None:
    title = "debian-reference.en.pdf"
    listed = http.get(f"{base}/documents", params={"keyword": title}).json()["data"]["documents"]
    if any(d["metadata"].get("title") == title and d["status"] == "completed" for d in listed):
        return
    import base64

    raw = (EVAL / "corpus" / title).read_bytes()
    doc = http.post(
        f"{base}/documents/upload",
        json={"document_type": "pdf", "file": base64.b64encode(raw).decode(), "metadata": {"title": title}},
        timeout=600,
    ).json()["data"]
    print(f"ingesting {title} once (about a minute)…", flush=True)
    while http.get(f"{base}/documents/{doc['document_id']}").json()["data"]["status"] == "processing":
        time.sleep(1)


def measure(http, base, question: str, model: str | None, provider: FakeProvider) -> dict[str, float]:
    body = {"question": question, "generation_config": {"stream": True, **({"model": model} if model else {})}}
    before = len(provider.received)
    start = time.perf_counter()
    first = first_chunk = None
    with http.post(f"{base}/qa/ask-stream", json=body, stream=True, timeout=60) as r:
        for line in r.iter_lines(decode_unicode=True):
            if not line.startswith("data:"):
                continue
            now = time.perf_counter() - start
            first = first if first is not None else now
            if first_chunk is None and '"content_chunk"' in line:
                first_chunk = now
    total = time.perf_counter() - start
    out = {"first_event": first, "first_chunk": first_chunk, "total": total}
    if len(provider.received) > before:
        out["before_provider"] = provider.received[-1] - start
    return out


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * (len(values) - 1) + 0.5))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, default=30)
    ap.add_argument("--provider-delay-ms", type=int, default=300)
    ap.add_argument("--data-dir", type=Path, default=None)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="mmrag-qa-bench-"))
    provider = FakeProvider(args.provider_delay_ms / 1000)
    server, container, base = start_server(data_dir, provider.url)
    http = requests.Session()
    http.trust_env = False
    http.headers["Authorization"] = f"Bearer {KEY}"
    ensure_corpus(http, base)
    questions = [json.loads(x) for x in (EVAL / "questions_en.jsonl").read_text().splitlines()]
    questions = [q["question"] for q in questions if not q.get("skip")][: args.questions]
    cases = (("extractive", "extractive"), ("bench-model", f"provider fake, {args.provider_delay_ms} ms"))
    for model, label in cases:
        measure(http, base, questions[0], model, provider)  # warm-up
        rows = [measure(http, base, q, model, provider) for q in questions]
        print(f"{label}: {len(rows)} questions over the 261-page English manual")
        for key, name in (
            ("first_event", "first SSE event"),
            ("before_provider", "our overhead before the provider"),
            ("first_chunk", "first content_chunk"),
            ("total", "whole answer"),
        ):
            vals = [r[key] for r in rows if r.get(key) is not None]
            if vals:
                p50, p95 = 1000 * statistics.median(vals), 1000 * pct(vals, 0.95)
                print(f"  {name:34s} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")
    server.should_exit = True
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
