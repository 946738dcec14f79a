"""Cold-start imports of the API Lambda functions, measured in fresh interpreters.

For each API function of template.yaml (and the authorizer) it runs, several times, a new `python -X importtime`
process and reports the median of:

- init:  importing the function's handler module (what Lambda's INIT phase does with Handler);
- first: init plus what the first invocation builds lazily - the AWS container (boto3 clients, adapters) and the
  FastAPI app - with dummy settings and no network;

and the three heaviest imports (cumulative, from -X importtime). Every process also checks that none of the local
machine-learning stack (onnxruntime, fastembed, OpenCV, RapidOCR) was imported; the script exits 1 if one was.

--built measures what `sam build` made instead (make bench-cold-built, after make sam-build): every zip function of
.aws-sam/build, each with its own code and layers, with python3.13 and sys.path as Lambda's (the function's folder,
the layers' python/ folders, then the runtime's boto3), -B so nothing is cached that Lambda's read-only /opt would not
have (the layers' precompiled .pyc files are used, as there).

    python bench/cold_import_bench.py [--runs 5] [--json]
    python bench/cold_import_bench.py --built [.aws-sam/build] [--python python3.13] [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ML_STACK = ("onnxruntime", "fastembed", "cv2", "rapidocr_onnxruntime")
TARGET_S = 1.0

# function -> (module to import at init, code that the first invocation runs)
FUNCTIONS = {
    "DocumentsFunction / SearchFunction / QaFunction / SessionsFunction": (
        "api_handler",
        "from mmrag.lambda_handlers import runtime, api; api._mangum()",
    ),
    "AskStreamFunction (uvicorn app under the Lambda Web Adapter)": (
        "mmrag.lambda_handlers.stream_app",
        "from mmrag.lambda_handlers import stream_app; stream_app.app._get()",
    ),
    "AuthorizerFunction": (
        "authorizer_handler",
        "from mmrag.lambda_handlers import authorizer; authorizer.key_store()",
    ),
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

# what the first invocation builds, by handler (for --built, where every function is measured with its own layers)
FIRST_BY_HANDLER = {
    "api_handler.handler": FUNCTIONS["DocumentsFunction / SearchFunction / QaFunction / SessionsFunction"][1],
    "authorizer_handler.handler": FUNCTIONS["AuthorizerFunction"][1],
    "run.sh": FUNCTIONS["AskStreamFunction (uvicorn app under the Lambda Web Adapter)"][1],
    "ingest_handler.handler": "from mmrag.lambda_handlers import runtime; runtime.container()",
    "textract_handler.handler": "from mmrag.lambda_handlers import runtime; runtime.container()",
}

PROBE = """
import sys, time, json
sys.path[:0] = {paths!r}
t0, c0 = time.perf_counter(), time.process_time()
import {module}
t1 = time.perf_counter()
{first}
t2, c2 = time.perf_counter(), time.process_time()
ml = [m for m in {ml!r} if m in sys.modules]
print(json.dumps({{"init": t1 - t0, "first": t2 - t0, "first_cpu": c2 - c0, "ml": ml}}))
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


def run_once(module: str, first: str, paths: list[str] | None = None, python: str = sys.executable) -> tuple[dict, str]:
    flags = ["-X", "importtime"]
    if paths is None:
        paths = [str(ROOT / "functions")]
    else:  # a built function: only its folders, the standard library and the runtime's SDK; nothing written
        flags = ["-I", "-S", "-B", *flags]
    code = PROBE.format(paths=paths, module=module, first=first, ml=ML_STACK)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MMRAG_", "POWERTOOLS_", "PYTHON"))}
    env.update(DUMMY_ENV)
    done = subprocess.run([python, *flags, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{module}: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def _check_build() -> Any:
    spec = importlib.util.spec_from_file_location("mmrag_check_build", ROOT / "scripts" / "check_build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def built_targets(build_dir: Path) -> dict[str, tuple[str, str, list[str]]]:
    """label -> (module, first, sys.path entries) for every zip function of a `sam build` output."""
    cb = _check_build()
    sdk, deps = cb.runtime_dirs(build_dir)
    out = {}
    for name, fn in cb.zip_functions(cb.built_template(build_dir), build_dir).items():
        handler = fn["handler"]
        module = "mmrag.lambda_handlers.stream_app" if handler == "run.sh" else handler.rsplit(".", 1)[0]
        layers = "+".join(ln for ln, p in fn["layers"] if p is not None)
        paths = [str(p) for p in cb.python_dirs(fn)] + [str(sdk), str(deps)]
        out[f"{name} ({layers})"] = (module, FIRST_BY_HANDLER[handler], paths)
    return out


def find_python313() -> str | None:
    for candidate in (sys.executable, shutil.which("python3.13")):
        if candidate:
            done = subprocess.run(
                [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 13))"], capture_output=True, text=True
            )
            if done.stdout.strip() == "True":
                return candidate
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--built", nargs="?", const=ROOT / ".aws-sam" / "build", type=Path, help="measure a sam build output"
    )
    parser.add_argument("--python", help="the interpreter for --built (default: python3.13)")
    args = parser.parse_args(argv)
    python = sys.executable
    if args.built is not None:
        targets = built_targets(args.built.resolve())
        python = args.python or find_python313() or ""
        if not python:
            parser.error("--built needs python3.13 (on PATH, or --python)")
    else:
        targets = {label: (module, first, None) for label, (module, first) in FUNCTIONS.items()}
    results = {}
    failed = False
    for label, (module, first, paths) in targets.items():
        inits, firsts, cpus, ml, trace = [], [], [], set(), ""
        for _ in range(args.runs):
            sample, trace = run_once(module, first, paths, python)
            inits.append(sample["init"])
            firsts.append(sample["first"])
            cpus.append(sample["first_cpu"])
            ml |= set(sample["ml"])
        failed |= bool(ml)
        results[label] = {
            "module": module,
            "init_median_s": round(statistics.median(inits), 3),
            "first_median_s": round(statistics.median(firsts), 3),
            "first_cpu_median_s": round(statistics.median(cpus), 3),
            "runs": args.runs,
            "ml_stack_imported": sorted(ml),
            "heaviest_imports_s": [(n, round(s, 3)) for n, s in heaviest(trace)],
        }
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        where = f"built functions in {args.built}, {python}" if args.built is not None else "source tree"
        print(f"cold imports ({where}), median of {args.runs} fresh interpreters (target: init under {TARGET_S:.0f} s)")
        for label, r in results.items():
            verdict = "ok" if r["init_median_s"] < TARGET_S else "over target"
            print(f"\n{label}\n  handler module   {r['module']}")
            print(f"  init import      {r['init_median_s']:.3f} s   ({verdict})")
            print(
                f"  + first request  {r['first_median_s']:.3f} s   (container and app built, no network; "
                f"CPU {r['first_cpu_median_s']:.3f} s)"
            )
            heavy = ", ".join(f"{n} {s:.2f} s" for n, s in r["heaviest_imports_s"])
            print(f"  heaviest         {heavy}")
            print(f"  local ML stack   {'NONE' if not r['ml_stack_imported'] else r['ml_stack_imported']}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
