"""`make fuzz`: Schemathesis over the API's OpenAPI document, against `mmrag serve` on loopback.

Starts a server on a free loopback port with a fresh data dir, the offline models of ../shared/models (or
MMRAG_MODEL_DIR), one API key and rate limits off; stores two text documents, a picture and a chat session, whose ids
Schemathesis uses for most path parameters (so requests reach the routes' logic, not only their 404s; deletes get
their own document and session); runs `schemathesis run` on its /openapi.json with the checks that
say whether the API keeps its own document (no 5xx, statuses, content types, headers and bodies as documented, auth
enforced where declared, Allow on 405); prints Schemathesis' report and a one-line summary from its JSON report
(requests, operations, checks, failures); exits non-zero when anything failed.
"""

from __future__ import annotations

import argparse
import base64
import io
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


def call(url: str, method: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    request = urllib.request.Request(url + "/api/v1" + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())["data"]


def seed(url: str) -> dict[str, str]:
    """Documents, a picture and chat sessions for the path parameters; their ids."""
    from PIL import Image, ImageDraw

    picture = Image.new("RGB", (320, 120), "white")
    ImageDraw.Draw(picture).text((10, 50), "PRESSURE 93 kPa", fill="black")
    png = io.BytesIO()
    picture.save(png, format="PNG")
    text = "The relief valve opens at 93 kPa. It is inspected every six months."
    ids = {
        "document": call(url, "POST", "/documents/upload", {"document_type": "text", "content": text}),
        "deletable": call(url, "POST", "/documents/upload", {"document_type": "text", "content": "Spare. " + text}),
        "picture": call(
            url,
            "POST",
            "/documents/upload",
            {"document_type": "image", "file": base64.b64encode(png.getvalue()).decode()},
        ),
    }
    ids = {name: data["document_id"] for name, data in ids.items()}
    deadline = time.time() + 300
    while time.time() < deadline:
        details = {name: call(url, "GET", f"/documents/{doc}") for name, doc in ids.items()}
        if all(d["status"] in ("completed", "failed") for d in details.values()):
            break
        time.sleep(0.5)
    images = details["picture"].get("images") or [{}]
    ids["image"] = images[0].get("image_id", "img_0000000000000000")
    for session in ("fuzz-session", "fuzz-deletable"):
        call(url, "POST", "/qa/chat", {"session_id": session, "question": "When does the relief valve open?"})
    return ids


def write_config(path: Path, ids: dict[str, str]) -> None:
    """schemathesis.toml: the seeded ids for most path parameters (70% of the cases; the rest stay generated)."""
    path.write_text(
        f"""[dictionaries.documents]
values = ["{ids["document"]}"]
[dictionaries.deletable]
values = ["{ids["deletable"]}"]
[dictionaries.images]
values = ["{ids["image"]}"]
[dictionaries.sessions]
values = ["fuzz-session"]
[dictionaries.deletable-sessions]
values = ["fuzz-deletable"]

[parameters]
"path.document_id" = {{ dictionary = "documents", probability = 0.7 }}
"path.image_id" = {{ dictionary = "images", probability = 0.7 }}
"path.session_id" = {{ dictionary = "sessions", probability = 0.7 }}
"body.reference_id" = {{ dictionary = "documents", probability = 0.5 }}

[[operations]]
include-method = "DELETE"
[operations.parameters]
"path.document_id" = {{ dictionary = "deletable", probability = 0.7 }}
"path.session_id" = {{ dictionary = "deletable-sessions", probability = 0.7 }}
""",
        encoding="utf-8",
    )


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
        config = data_dir / "schemathesis.toml"
        write_config(config, seed(url))
        st = [
            str(Path(sys.executable).with_name("schemathesis")),
            "--config-file",
            str(config),
            "run",
            f"{url}/openapi.json",
        ]
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
