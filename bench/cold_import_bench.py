"""Cold-start imports of the API Lambda functions, measured in fresh interpreters.

For each API function of template.yaml (and the authorizer) it runs, several times, a new `python -X importtime`
process and reports the median of:

- init:  importing the function's handler module (what Lambda's INIT phase does with Handler);
- first: init plus what the first invocation builds lazily - the AWS container (boto3 clients, adapters) and the
  FastAPI app - with dummy settings and no network;

and the three heaviest imports (cumulative, from -X importtime). Every process also checks that none of the local
machine-learning stack (onnxruntime, fastembed, OpenCV, RapidOCR) was imported; the script exits 1 if one was.

    python bench/cold_import_bench.py [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ML_STACK = ("onnxruntime", "fastembed", "cv2", "rapidocr_onnxruntime")
TARGET_S = 1.0

# function -> (module to import at init, code that the first invocation runs)
FUNCTIONS = {
    "DocumentsFunction / SearchFunction / QaFunction / SessionsFunction": (
        "api_handler",
        "from mmrag.aws import runtime, api; api._mangum()",
    ),
    "AskStreamFunction (uvicorn app under the Lambda Web Adapter)": (
        "mmrag.aws.stream_app",
        "from mmrag.aws import stream_app; stream_app.app._get()",
    ),
    "AuthorizerFunction": ("authorizer_handler", "from mmrag.aws import authorizer; authorizer.key_store()"),
}

DUMMY_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_LAMBDA_FUNCTION_NAME": "bench",
    "POWERTOOLS_METRICS_NAMESPACE": "mmrag",
    "MMRAG_BACKEND": "aws",
    "MMRAG_BUCKET": "bench-bucket",
    "MMRAG_OPENSEARCH_ENDPOINT": "https://search-bench.us-east-1.es.amazonaws.com",
    "MMRAG_SAGEMAKER_ENDPOINT": "bench-endpoint",
    "MMRAG_INGEST_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/bench",
    "MMRAG_TRUST_AUTHORIZER": "true",
}

PROBE = """
import sys, time, json
sys.path.insert(0, {functions!r})
t0 = time.perf_counter()
import {module}
t1 = time.perf_counter()
{first}
t2 = time.perf_counter()
print(json.dumps({{"init": t1 - t0, "first": t2 - t0, "ml": [m for m in {ml!r} if m in sys.modules]}}))
"""


def heaviest(importtime: str, n: int = 3) -> list[tuple[str, float]]:
    """The n modules with the largest cumulative import time in -X importtime output (top-level imports only)."""
    rows = []
    for line in importtime.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
        if cumulative.isdigit() and not name.startswith(" ") and "." not in name.strip():
            rows.append((name.strip(), int(cumulative) / 1e6))
    return sorted(rows, key=lambda r: -r[1])[:n]


def run_once(module: str, first: str) -> tuple[dict, str]:
    code = PROBE.format(functions=str(ROOT / "functions"), module=module, first=first, ml=ML_STACK)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MMRAG_", "POWERTOOLS_"))}
    env.update(DUMMY_ENV)
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"{module}: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    results = {}
    failed = False
    for label, (module, first) in FUNCTIONS.items():
        inits, firsts, ml, trace = [], [], set(), ""
        for _ in range(args.runs):
            sample, trace = run_once(module, first)
            inits.append(sample["init"])
            firsts.append(sample["first"])
            ml |= set(sample["ml"])
        failed |= bool(ml)
        results[label] = {
            "module": module,
            "init_median_s": round(statistics.median(inits), 3),
            "first_median_s": round(statistics.median(firsts), 3),
            "runs": args.runs,
            "ml_stack_imported": sorted(ml),
            "heaviest_imports_s": [(n, round(s, 3)) for n, s in heaviest(trace)],
        }
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"cold imports, median of {args.runs} fresh interpreters (target: init under {TARGET_S:.0f} s)")
        for label, r in results.items():
            verdict = "ok" if r["init_median_s"] < TARGET_S else "over target"
            print(f"\n{label}\n  handler module   {r['module']}")
            print(f"  init import      {r['init_median_s']:.3f} s   ({verdict})")
            print(f"  + first request  {r['first_median_s']:.3f} s   (container and app built, no network)")
            heavy = ", ".join(f"{n} {s:.2f} s" for n, s in r["heaviest_imports_s"])
            print(f"  heaviest         {heavy}")
            print(f"  local ML stack   {'NONE' if not r['ml_stack_imported'] else r['ml_stack_imported']}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
