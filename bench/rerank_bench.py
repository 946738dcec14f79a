"""Rerank latency over HTTP: `search/text` with `rerank: true` under today's defaults against the way it used to
run (the whole chunk per candidate, 50 candidates, fp32 cross-encoder), side by side in one run.

    python bench/rerank_bench.py [--models DIR] [--top-k 10] [--rounds 2]

Two `mmrag serve` processes on loopback share one data dir (the English eval PDF is ingested once, by the first);
every question goes to both, alternating which goes first, so that machine noise hits both alike. Prints p50/p95 of
plain search and of search with rerank for each configuration, and how often the reranked top 5 hold the gold page
(meaningless with the random full-size stand-ins: use `../shared/models` for that figure).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CONFIGS = {
    "now": {"search_options": {}},
    "before": {
        "env": {"MMRAG_INT8": "text", "MMRAG_RERANK_PASSAGE_TOKENS": "512"},
        "search_options": {"input_limit": 50},
    },
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(data_dir: str, models: str, extra: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(
        os.environ,
        MMRAG_MODEL_DIR=models,
        MMRAG_TEXT_MODEL="sentence-transformers/all-MiniLM-L6-v2",
        MMRAG_API_KEYS="k=t",
        MMRAG_RATE_LIMITS="upload=0,query=0,search=0,qa=0",
        HF_HUB_OFFLINE="1",
        MMRAG_WORKERS="1",
        **extra,
    )
    cmd = [sys.executable, "-m", "mmrag.cli", "serve", "--port", str(port), "--data-dir", data_dir]
    log = open(Path(data_dir) / f"log-{port}", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}/api/v1"


def wait_healthy(http: requests.Session, api: str) -> None:
    for _ in range(600):
        try:
            if http.get(api + "/health", timeout=2).json()["data"].get("status") == "ok":
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{api} did not become healthy")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * (len(values) - 1) + 0.5))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=str(SHARED / "models"))
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    http = requests.Session()
    http.trust_env = False
    headers = {"Authorization": "Bearer k"}
    data_dir = tempfile.mkdtemp(prefix="mmrag-rerank-")
    servers = {name: start(data_dir, args.models, cfg.get("env", {})) for name, cfg in CONFIGS.items()}
    try:
        for _, api in servers.values():
            wait_healthy(http, api)
        first = next(iter(servers.values()))[1]
        pdf = (SHARED / "eval/corpus/debian-reference.en.pdf").read_bytes()
        body = {"document_type": "pdf", "file": base64.b64encode(pdf).decode(), "metadata": {"title": "en"}}
        doc = http.post(first + "/documents/upload", headers=headers, json=body, timeout=600).json()["data"]
        while http.get(first + f"/documents/{doc['document_id']}", headers=headers).json()["data"]["status"] == (
            "processing"
        ):
            time.sleep(1)
        for _, api in servers.values():  # load (and on first use quantise) each server's cross-encoder
            warm = {"query": "warm up", "top_k": 3, "search_options": {"rerank": True, "timeout_ms": 60000}}
            http.post(api + "/search/text", headers=headers, json=warm, timeout=120)
        questions = [json.loads(line) for line in (SHARED / "eval/questions_en.jsonl").read_text().splitlines()]
        questions = [q for q in questions if not q.get("skip")]
        lat: dict[str, list[float]] = {f"{n} {m}": [] for n in servers for m in ("plain", "rerank")}
        hits: dict[str, int] = dict.fromkeys(lat, 0)
        errors: dict[str, int] = dict.fromkeys(lat, 0)
        order = list(servers)
        for _ in range(args.rounds):
            for i, q in enumerate(questions):
                for name in order if i % 2 == 0 else order[::-1]:
                    api = servers[name][1]
                    for mode in ("plain", "rerank"):
                        opts = {"rerank": True, **CONFIGS[name]["search_options"]} if mode == "rerank" else {}
                        req = {"query": q["question"], "top_k": args.top_k, "search_options": opts}
                        t = time.perf_counter()
                        r = http.post(api + "/search/text", headers=headers, json=req, timeout=120)
                        lat[f"{name} {mode}"].append(1000 * (time.perf_counter() - t))
                        data = r.json().get("data") or {}
                        errors[f"{name} {mode}"] += bool(data.get("rerank_error")) or r.status_code != 200
                        pages = [x.get("position", {}).get("page_number") for x in data.get("results", [])[:5]]
                        hits[f"{name} {mode}"] += q["page"] in pages
        n = len(questions) * args.rounds
        print(f"models {args.models}, top_k {args.top_k}, {len(questions)} questions x {args.rounds} rounds")
        for key, values in lat.items():
            print(
                f"{key:16s} p50 {pct(values, 0.5):7.0f} ms  p95 {pct(values, 0.95):7.0f} ms  "
                f"hit@5 {hits[key] / n:.3f}  rerank errors {errors[key]}"
            )
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
