"""`make fuzz`: Schemathesis over the API's OpenAPI document, against `mmrag serve` on loopback.

Starts a server on a free loopback port with a fresh data dir, the offline models of ../shared/models (or
MMRAG_MODEL_DIR), one API key and rate limits off; runs `schemathesis run` on its /openapi.json with the checks that
say whether the API keeps its own document (no 5xx, statuses, content types, headers and bodies as documented, auth
enforced where declared, Allow on 405); prints Schemathesis' report and a one-line summary from its JSON report
(requests, operations, checks, failures); exits non-zero when anything failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEY = "fuzz-key"
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
    "response_schema_conformance,ignored_auth,unsupported_method,allow_header_conformance"
)
SMALL_MODELS = {
    "MMRAG_TEXT_MODEL": "sentence-transformers/all-MiniLM-L6-v2",
    "MMRAG_IMAGE_MODEL": "Qdrant/clip-ViT-B-32-vision",
    "MMRAG_IMAGE_TEXT_MODEL": "Qdrant/clip-ViT-B-32-text",
    "MMRAG_RERANK_MODEL": "Xenova/ms-marco-MiniLM-L-6-v2",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"mmrag serve exited with {server.returncode}")
        try:
            with urllib.request.urlopen(url + "/api/v1/health", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("mmrag serve did not come up")


def summarize(report_dir: Path) -> dict:
    """Counts from Schemathesis' NDJSON event stream: test cases (requests), operations, checks and failures."""
    counts = {"requests": 0, "operations": 0, "checks": 0, "failed_checks": 0, "errors": 0}
    operations: set[str] = set()
    for path in report_dir.glob("*.ndjson"):
        for line in path.read_text(encoding="utf-8").splitlines():
            event = json.loads(line)
            for name, payload in event.items():
                if name == "ScenarioFinished":
                    recorder = payload.get("recorder", {})
                    counts["requests"] += len(recorder.get("interactions", {}))  # one per test case
                    for checks in recorder.get("checks", {}).values():
                        counts["checks"] += len(checks)
                        counts["failed_checks"] += sum(1 for c in checks if str(c.get("status")).lower() == "failure")
                    label = recorder.get("label")
                    if label:
                        operations.add(label)
                elif name == "NonFatalError":
                    counts["errors"] += 1
    counts["operations"] = len(operations)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=50, help="test cases per operation and phase")
    parser.add_argument("--max-time", type=int, default=None, help="time budget in seconds for the whole run")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--workers", default="1")
    parser.add_argument("--phases", default="examples,coverage,fuzzing,stateful")
    parser.add_argument("--report-dir", type=Path, default=None, help="keep Schemathesis' reports here")
    args = parser.parse_args(argv)

    data_dir = Path(tempfile.mkdtemp(prefix="mmrag-fuzz-"))
    report_dir = args.report_dir or data_dir / "report"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMRAG_")}
    env.update(
        SMALL_MODELS,
        MMRAG_MODEL_DIR=os.environ.get("MMRAG_MODEL_DIR", str(ROOT.parent / "shared" / "models")),
        MMRAG_API_KEYS=f"{KEY}=fuzz",
        MMRAG_RATE_LIMITS="upload=0,query=0,search=0,qa=0",
        MMRAG_MAX_UPLOAD_MB="5",
        MMRAG_UPLOAD_WAIT_S="0",
        HF_HUB_OFFLINE="1",
        NO_PROXY="127.0.0.1,localhost",
    )
    mmrag = [sys.executable, "-m", "mmrag.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen([*mmrag, "--data-dir", str(data_dir / "data")], env=env, cwd=ROOT)
    try:
        wait_healthy(url, server)
        st = [str(Path(sys.executable).with_name("schemathesis")), "run", f"{url}/openapi.json"]
        st += ["--header", f"Authorization: Bearer {KEY}", "--checks", CHECKS, "--phases", args.phases]
        st += ["--max-examples", str(args.max_examples), "--workers", str(args.workers), "--request-timeout", "60"]
        st += ["--report", "ndjson", "--report-dir", str(report_dir), "--no-color"]
        # an AWS-only operation: `mmrag serve` answers it 503 by design (no S3 to presign for)
        st += ["--exclude-path", "/api/v1/documents/upload-url"]
        if args.max_time:
            st += ["--max-time", str(args.max_time)]
        if args.seed is not None:
            st += ["--seed", str(args.seed)]
        code = subprocess.run(st, env=env, cwd=data_dir).returncode
        print("fuzz summary:", json.dumps(summarize(report_dir)))
        return code
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        if args.report_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
