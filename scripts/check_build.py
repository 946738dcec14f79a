#!/usr/bin/env python3
"""Checks what `sam build` made (.aws-sam/build), as Lambda will load it; `make sam-build` runs it after the build.

1. Sizes: every zip function's code plus its layers, unzipped (Lambda's limit is 250 MB; ours, --limit-mb, 150).
   Layers from outside the build (the Lambda Web Adapter) are named, not measured.
2. Imports (unless --sizes-only): one python3.13 process with the built code on sys.path as Lambda puts it (the
   function's folder, the layers' python/ folders; boto3 as the runtime has it) runs every function with the events
   of events/ against moto (shared/mmrag_dev, as `make invoke` does), plus what the sandbox skips: the real AWS
   container, the answer providers of the QA functions (Bedrock, Anthropic), uvicorn for the streaming function, and
   Chinese text for jieba. Every import made by the built code is recorded; a package that none of the layers has
   fails the import at once (as on Lambda), and one that only another function's layers have is reported. The boto3
   clients each function creates must be among the botocore models its layers keep (layers/Makefile).

    python scripts/check_build.py [--build-dir .aws-sam/build] [--limit-mb 150] [--sizes-only] [--json]

Needs PyYAML, moto and python3.13 (the interpreter running it; `make sam-build` uses .venv-sam).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BUILD = ROOT / ".aws-sam" / "build"
LIMIT_MB = 150
# /var/runtime of the Lambda Python runtimes: the AWS SDK and its dependencies (after /opt/python on sys.path)
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")


# ---------------------------------------------------------------------------------------------------- the build
def built_template(build_dir: Path) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "shared"))
    from mmrag_dev.template import load_template

    return load_template(build_dir / "template.yaml")


def tree_size(path: Path) -> int:
    """Bytes of the regular files under path (what the unzipped package occupies, as Lambda counts it)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def zip_functions(template: dict[str, Any], build_dir: Path) -> dict[str, dict[str, Any]]:
    """name -> {code: Path, layers: [(name, Path or None)], runtime, handler} for every zip function."""
    resources = template["Resources"]
    out = {}
    for name, res in resources.items():
        if res.get("Type") != "AWS::Serverless::Function" or res["Properties"].get("PackageType") == "Image":
            continue
        props = res["Properties"]
        layers = []
        for layer in props.get("Layers", []):
            ref = layer.get("Ref") if isinstance(layer, dict) else None
            if ref in resources and resources[ref]["Type"] == "AWS::Serverless::LayerVersion":
                layers.append((ref, build_dir / resources[ref]["Properties"]["ContentUri"]))
            else:  # an ARN, or a parameter with a default (the Lambda Web Adapter)
                refs = re.findall(r'"Ref": "(\w+)"', json.dumps(layer))
                layers.append((f"external layer ({refs[0] if refs else layer})", None))
        out[name] = {
            "code": build_dir / props["CodeUri"],
            "layers": layers,
            "runtime": props.get("Runtime") or template.get("Globals", {}).get("Function", {}).get("Runtime"),
            "handler": props["Handler"],
        }
    return out


def sizes(functions: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    cache: dict[Path, int] = {}

    def size(path: Path) -> int:
        if path not in cache:
            cache[path] = tree_size(path)
        return cache[path]

    out = {}
    for name, fn in functions.items():
        layers = {ln: (size(p) if p else None) for ln, p in fn["layers"]}
        total = size(fn["code"]) + sum(v for v in layers.values() if v)
        out[name] = {"code": size(fn["code"]), "layers": layers, "total": total}
    return out


def print_sizes(table: dict[str, dict[str, Any]], limit: int) -> None:
    print(f"unzipped sizes (MB; limit {limit / 1e6:.0f} per function with its layers; Lambda's is 250)")
    for name, row in sorted(table.items(), key=lambda kv: -kv[1]["total"]):
        parts = ", ".join(
            f"{ln} {v / 1e6:.1f}" if v is not None else f"{ln} (not measured)" for ln, v in row["layers"].items()
        )
        flag = "  OVER" if row["total"] > limit else ""
        print(f"  {name:26s} {row['total'] / 1e6:6.1f}{flag}   code {row['code'] / 1e6:.2f}; {parts}")


# ---------------------------------------------------------------------------------------------------- imports
def top_level_names(folder: Path) -> set[str]:
    """The importable top-level names a sys.path entry provides."""
    names = set()
    if not folder.is_dir():
        return names
    for p in folder.iterdir():
        if p.name.endswith((".dist-info", ".egg-info", ".libs")) or p.name in ("__pycache__", "bin"):
            continue
        if p.is_dir():
            names.add(p.name)
        elif p.suffix in (".py", ".so", ".pyd") or p.name.endswith(".pyc"):
            names.add(p.name.split(".", 1)[0])
    return names


def uvicorn_app(code_dir: Path) -> tuple[str, str]:
    """(module, attribute) of the ASGI app that functions/run.sh serves with uvicorn."""
    m = re.search(r"uvicorn\s+([\w.]+):(\w+)", (Path(code_dir) / "run.sh").read_text(encoding="utf-8"))
    if not m:
        raise ValueError(f"{code_dir}/run.sh does not start uvicorn on an app")
    return m.group(1), m.group(2)


def python_dirs(fn: dict[str, Any]) -> list[Path]:
    """sys.path entries Lambda adds for a function: /var/task, then /opt/python of each layer."""
    return [fn["code"]] + [p / "python" for _, p in fn["layers"] if p is not None]


def botocore_models(fn: dict[str, Any]) -> set[str] | None:
    """The service models of the botocore a function's layers ship (None: it uses the runtime's, which has all)."""
    for folder in python_dirs(fn)[1:]:
        data = folder / "botocore" / "data"
        if data.is_dir():
            return {p.name for p in data.iterdir() if p.is_dir()}
    return None


def runtime_dirs(build_dir: Path) -> tuple[Path, Path]:
    """Stand-ins for /var/runtime, linked to this interpreter's boto3: (the SDK, its dependencies)."""
    base = build_dir.parent / "runtime-sdk"
    site = [Path(p) for p in sys.path if p.endswith("site-packages")]
    out = []
    for part, packages in (("sdk", RUNTIME_PACKAGES[:3]), ("deps", RUNTIME_PACKAGES[3:])):
        folder = base / part
        folder.mkdir(parents=True, exist_ok=True)
        for pkg in packages:
            for name in (pkg, f"{pkg}.py"):
                src = next((d / name for d in site if (d / name).exists()), None)
                link = folder / name
                if src and not link.is_symlink():
                    link.symlink_to(src)
        out.append(folder)
    return out[0], out[1]


def run_imports(build_dir: Path, functions: dict[str, dict[str, Any]], python: str) -> dict[str, Any]:
    sdk, deps = runtime_dirs(build_dir)
    spec = {
        "build_dir": str(build_dir),
        "runtime": [str(sdk), str(deps)],
        "functions": {n: [str(p) for p in python_dirs(fn)] for n, fn in functions.items()},
        "handlers": {n: fn["handler"] for n, fn in functions.items()},
    }
    report = _child_json(python, ["-I", "-B"], "--child", spec)
    # every module a function used must import with that function's own folders only (what a layer lacks fails here,
    # also when another function's layer brought it into the shared process)
    for name, r in report["functions"].items():
        alone = {"paths": [*spec["functions"][name], str(sdk), str(deps)], "modules": r.pop("modules")}
        r["missing"] = _child_json(python, ["-I", "-S", "-B"], "--child-imports", alone)["failures"]
    return report


def _child_json(python: str, flags: list[str], mode: str, spec: dict[str, Any]) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MMRAG_", "POWERTOOLS_", "PYTHON"))}
    env.update({"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"})
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    done = subprocess.run(
        [python, *flags, str(Path(__file__).resolve()), mode, "-"],
        input=json.dumps(spec),
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_sdk_layers(functions: dict[str, dict[str, Any]], python: str) -> list[str]:
    """Every layer that ships boto3 imports and makes a client for each botocore model it kept."""
    problems, seen = [], set()
    for name, fn in functions.items():
        models = botocore_models(fn)
        layer = next((d for d in python_dirs(fn)[1:] if (d / "botocore").is_dir()), None)
        if models is None or layer in seen:
            continue
        seen.add(layer)
        code = (
            f"import sys; sys.path.insert(0, {str(layer)!r}); import boto3, botocore; "
            f"assert botocore.__file__.startswith({str(layer)!r}), botocore.__file__; "
            f"[boto3.client(s, region_name='us-east-1') for s in {sorted(models)!r}]; print(boto3.__version__)"
        )
        env = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_EC2_METADATA_DISABLED": "true"}
        done = subprocess.run([python, "-I", "-B", "-c", code], capture_output=True, text=True, env=env, timeout=120)
        if done.returncode != 0:
            problems.append(f"{name}: the boto3 of {layer} fails: {done.stderr.strip()[-500:]}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-dir", type=Path, default=DEFAULT_BUILD)
    parser.add_argument("--limit-mb", type=float, default=LIMIT_MB)
    parser.add_argument("--sizes-only", action="store_true", help="measure, do not run the functions")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-imports", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(json.load(sys.stdin))
    if args.child_imports:
        return child_imports(json.load(sys.stdin))
    build_dir = args.build_dir.resolve()
    if not (build_dir / "template.yaml").is_file():
        print(f"{build_dir}: no template.yaml - run `make sam-build` (or sam build) first", file=sys.stderr)
        return 2
    functions = zip_functions(built_template(build_dir), build_dir)
    limit = int(args.limit_mb * 1e6)
    table = sizes(functions)
    failed = [
        f"{n}: {r['total'] / 1e6:.1f} MB unzipped with its layers (limit {args.limit_mb:g} MB)"
        for n, r in table.items()
        if r["total"] > limit
    ]
    results: dict[str, Any] = {"sizes": table}
    if not args.json:
        print_sizes(table, limit)
    runtimes = {fn["runtime"] for fn in functions.values()}
    if not args.sizes_only:
        want = f"python{sys.version_info.major}.{sys.version_info.minor}"
        if runtimes != {want}:
            failed.append(f"the functions' runtimes are {sorted(runtimes)}; this check runs {want}")
        else:
            started = time.perf_counter()
            report = run_imports(build_dir, functions, sys.executable)
            report["seconds"] = round(time.perf_counter() - started, 1)
            results["imports"] = report
            for name, r in sorted(report["functions"].items()):
                failed += [
                    f"{name}: {module} does not import from its own layers: {why}" for module, why in r["missing"]
                ]
                extra = sorted(set(r["clients"]) - (botocore_models(functions[name]) or set(r["clients"])))
                if extra:
                    failed.append(f"{name} makes boto3 clients its layers have no models for: {', '.join(extra)}")
            failed += [f"{e}" for e in report["errors"]]
            failed += check_sdk_layers(functions, sys.executable)
            if not args.json:
                print(
                    f"\nimports of the built functions (python {sys.version.split()[0]}, {report['seconds']} s; "
                    f"{report['invocations']} invocations; third-party packages each one imported)"
                )
                for name, r in sorted(report["functions"].items()):
                    print(f"  {name:26s} {', '.join(r['needed']) or '-'}")
                    if r["clients"]:
                        print(f"  {'':26s} boto3 clients: {', '.join(r['clients'])}")
                    if r["unused"]:
                        print(f"  {'':26s} in its layers, never imported: {', '.join(r['unused'])}")
    results["failures"] = failed
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    elif failed:
        print("\nFAILED:\n  " + "\n  ".join(failed))
    else:
        print("\nok")
    return 1 if failed else 0


# ---------------------------------------------------------------------------------------------------- the children
def _handler_source(code_dir: Path, handler: str, build_dir: str) -> str:
    """The handler module's source and that of the mmrag.lambda_handlers module it re-exports."""
    if handler == "run.sh":
        return ""
    text = (Path(code_dir) / f"{handler.rsplit('.', 1)[0]}.py").read_text(encoding="utf-8")
    for target in re.findall(r"from (mmrag\.[\w.]+) import", text):
        for layer in Path(build_dir).glob("*/python"):
            path = layer / (target.replace(".", "/") + ".py")
            if path.is_file():
                text += path.read_text(encoding="utf-8")
    return text


def _html() -> bytes:
    return b"<!doctype html><html><body><h1>Pump</h1><p>Check the coolant pump every week.</p></body></html>"


def _docx() -> bytes:
    import io

    import docx

    doc = docx.Document()
    doc.add_heading("Pump", 1)
    doc.add_paragraph("Check the coolant pump every week.")
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()


def _pptx() -> bytes:
    import io

    import pptx

    deck = pptx.Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = "Pump"
    slide.placeholders[1].text = "Check the coolant pump every week."
    buf = io.BytesIO()
    deck.save(buf)
    return buf.getvalue()


def child_imports(spec: dict[str, Any]) -> int:
    """Runs in a fresh python3.13 -I -S -B with one function's folders only: imports the modules it used."""
    import importlib
    import warnings

    sys.path[:0] = spec["paths"]
    failures = []
    for module in spec["modules"]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - collected
            failures.append((module, f"{type(exc).__name__}: {exc}"))
    print(json.dumps({"failures": failures}))
    return 0


def child(spec: dict[str, Any]) -> int:  # noqa: PLR0915 - one procedure, in order
    """Runs in a fresh python3.13 -I -B: the functions with the built code, every import recorded."""
    import builtins
    import collections
    import contextlib
    import importlib
    import importlib.util
    import io
    import warnings

    build_dir = spec["build_dir"]
    fn_paths = {n: [Path(p) for p in paths] for n, paths in spec["functions"].items()}
    stdlib = set(sys.stdlib_module_names) | {"__future__", "__main__", "_distutils_hack"}
    runtime = set(RUNTIME_PACKAGES)
    provided = {n: set().union(*(top_level_names(p) for p in paths)) | runtime for n, paths in fn_paths.items()}
    anywhere = set().union(*provided.values())

    # sys.path as Lambda's: function code, layers (every function's; each is judged by its own below), the runtime's
    # boto3 - but that first, since the sandbox (moto) needs every service model and a layer's botocore keeps a few
    # (checked apart: check_sdk_layers, and the clients recorded here). This interpreter's site-packages (moto, PyYAML)
    # come last; the import hook below keeps the built code from using them.
    ordered: list[str] = []
    for paths in fn_paths.values():
        ordered += [str(p) for p in paths[1:] if str(p) not in ordered]
    code_dir = str(next(iter(fn_paths.values()))[0])
    sdk, deps = spec["runtime"]
    sys.path[:0] = [code_dir, sdk, *ordered, deps]

    def lambda_code(filename: str) -> bool:
        return filename.startswith(build_dir)

    label: list[str | None] = [None]
    warm = [False]  # True: every import counts as the function's (the warm-ups below import on its behalf)
    roots: dict[str, set[str]] = collections.defaultdict(set)
    edges: dict[str, set[str]] = collections.defaultdict(set)
    clients: dict[str, set[str]] = collections.defaultdict(set)
    real_import = builtins.__import__

    def absolute(name: str, globals_: Any, level: int) -> str:
        if not level:
            return name
        g = globals_ or {}
        package = g.get("__package__") or g.get("__name__", "").rpartition(".")[0]
        return importlib.util.resolve_name("." * level + name, package) if name else package

    def hook(name, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002 - __import__'s signature
        caller = sys._getframe(1)
        ours = lambda_code(caller.f_code.co_filename)
        target = absolute(name, globals, level) if name or level else name
        top = target.split(".", 1)[0]
        if ours and not level and top not in stdlib and top not in (provided[label[0]] if label[0] else anywhere):
            raise ModuleNotFoundError(f"No module named {top!r} (not in the layers)", name=top)
        module = real_import(name, globals, locals, fromlist, level)
        if ours or warm[0]:
            names = {target} | {f"{target}.{f}" for f in fromlist or () if f != "*" and f"{target}.{f}" in sys.modules}
            if ours and caller.f_code.co_name == "<module>":
                edges[caller.f_globals.get("__name__", "")] |= names
            if label[0]:
                roots[label[0]] |= names
        return module

    real_import_module = importlib.import_module

    def import_module(name, package=None):
        caller = sys._getframe(1)
        ours = lambda_code(caller.f_code.co_filename)
        target = importlib.util.resolve_name(name, package) if name.startswith(".") else name
        top = target.split(".")[0]
        if ours and top not in stdlib and top not in (provided[label[0]] if label[0] else anywhere):
            raise ModuleNotFoundError(f"No module named {target!r} (not in the layers)", name=target)
        module = real_import_module(name, package)
        if (ours or warm[0]) and label[0]:
            roots[label[0]].add(target)
        return module

    builtins.__import__ = hook
    importlib.import_module = import_module

    import mmrag  # the built code layer's, before mmrag_dev (from the source tree) can bring another

    assert mmrag.__file__.startswith(build_dir), mmrag.__file__
    sys.path.insert(0, str(ROOT / "shared"))
    import mmrag_dev.sandbox as sandbox_mod
    from mmrag_dev import events, seed
    from mmrag_dev.template import FunctionSpec

    sys.path.remove(str(ROOT / "shared"))
    import botocore.session

    real_create_client = botocore.session.Session.create_client

    def create_client(self, service_name, *a, **kw):
        if label[0] and any(lambda_code(f.f_code.co_filename) for f in _frames()):
            clients[label[0]].add(service_name)
        return real_create_client(self, service_name, *a, **kw)

    def _frames():
        f = sys._getframe(1)
        while f is not None:
            yield f
            f = f.f_back

    botocore.session.Session.create_client = create_client

    from mmrag.adapters.aws.api_routes import ROUTES

    plan: dict[str, list[str]] = collections.defaultdict(list)
    for r in ROUTES:
        plan[r.function].append(r.event)
    plan["AuthorizerFunction"].append("authorizer.json")
    plan["IngestFunction"].append("s3_via_sqs.json")
    plan["TextractCompleteFunction"].append("textract_complete.json")
    errors: list[str] = []
    invocations = [0]

    with sandbox_mod.Sandbox() as sb:
        original_function = sb.stack.function
        original_invoke = sb.invoke

        def function(name: str) -> FunctionSpec:
            fn = original_function(name)
            fn.code_dir = Path(spec["functions"][name][0])  # the built copy of CodeUri
            return fn

        def invoke(name: str, event: dict[str, Any]) -> Any:
            previous, label[0] = label[0], name
            invocations[0] += 1
            try:
                return original_invoke(name, event)
            finally:
                label[0] = previous

        sb.stack.function = function
        sb.invoke = invoke

        def attempt(what: str, fn: Any) -> Any:
            try:
                return fn()
            except Exception as exc:  # noqa: BLE001 - reported, the check goes on
                errors.append(f"{what}: {type(exc).__name__}: {exc}")
                return None

        for name, files in plan.items():
            if name not in fn_paths:
                continue
            for file in files:

                def run(file: str = file, name: str = name) -> Any:
                    event = seed.ensure_objects(sb, seed.seed_for(sb, events.load_event(file)))
                    response = sb.invoke(name, event)
                    status = response.get("statusCode") if isinstance(response, dict) else None
                    if isinstance(status, int) and status >= 500:
                        raise RuntimeError(f"status {status}: {str(response.get('body'))[:300]}")
                    if isinstance(response, dict) and response.get("batchItemFailures") and file != "s3_via_sqs.json":
                        raise RuntimeError(f"batch item failures: {response['batchItemFailures']}")
                    return response

                attempt(f"{name} {file}", run)
        # Chinese through ingestion, search and answers (jieba)
        zh = "冷却液温度过高时，请检查水泵和散热器。"
        attempt("upload zh", lambda: sb.api("documents_upload.json", body={"document_type": "text", "content": zh}))
        attempt("drain", sb.drain)
        attempt("search zh", lambda: sb.api("search_text.json", body={"query": "冷却液温度", "top_k": 3}))
        attempt("ask zh", lambda: sb.api("qa_ask.json", body={"question": "冷却液温度过高怎么办？"}))
        # the parsers the sample events do not reach: HTML, Word, PowerPoint (made with the ingest layer's packages)
        for kind, make in (("html", _html), ("docx", _docx), ("pptx", _pptx)):

            def upload(kind: str = kind, make: Any = make) -> Any:
                body = {
                    "document_type": "mixed",
                    "file": base64.b64encode(make()).decode(),
                    "metadata": {"title": kind},
                }
                return sb.api("documents_upload.json", body=body)

            attempt(f"upload {kind}", upload)
        attempt("drain", sb.drain)

        # what the sandbox replaces or never reaches, imported on each function's behalf
        qa_functions = {r.function for r in ROUTES if r.path.startswith("/api/v1/qa/ask")}

        @contextlib.contextmanager
        def on_behalf(name: str, **env: str):
            fn = sb.stack.function(name)
            saved = {k: os.environ.get(k) for k in (*fn.environment, *env)}
            os.environ.update(sb.function_env(fn))
            os.environ.update(env)
            previous, label[0], warm[0] = label[0], name, True
            try:
                with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    yield fn
            finally:
                label[0], warm[0] = previous, False
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v

        for name, handler in spec["handlers"].items():
            if name == "AuthorizerFunction":
                continue
            with on_behalf(name):
                from mmrag.lambda_handlers import runtime

                attempt(f"{name} container", lambda: runtime.default_factory().health)
            if name in qa_functions:
                for provider in ("bedrock", "anthropic"):
                    env = {"MMRAG_ANSWER_PROVIDER": provider, "MMRAG_ANTHROPIC_API_KEY": "sk-ant-check"}
                    with on_behalf(name, **env):
                        attempt(f"{name} {provider}", lambda: runtime.default_factory().generators)
            if handler == "run.sh":  # python3 -m uvicorn mmrag.lambda_handlers.stream_app:app under the Web Adapter
                with on_behalf(name):

                    def uvicorn_app() -> Any:
                        import uvicorn.main  # noqa: F401 - what `python -m uvicorn` imports
                        from uvicorn.config import Config

                        config = Config(
                            "mmrag.lambda_handlers.stream_app:app", host="127.0.0.1", port=8080, access_log=False
                        )
                        config.load()
                        return config

                    attempt(f"{name} uvicorn", uvicorn_app)

    def closure(names: set[str]) -> set[str]:
        seen: set[str] = set()
        stack = list(names)
        while stack:
            m = stack.pop()
            if m in seen or not m:
                continue
            seen.add(m)
            parts = m.split(".")
            stack += [".".join(parts[:i]) for i in range(1, len(parts))]
            stack += edges.get(m, ())
        return seen

    report: dict[str, Any] = {"functions": {}, "errors": errors, "invocations": invocations[0]}
    for name in fn_paths:
        mods = {m for m in closure(roots.get(name, set())) if m in sys.modules}
        if "mmrag.text.analyzer" in mods:  # it imports jieba at the first Chinese text
            mods.add("jieba")
        if "Tracer(" in _handler_source(fn_paths[name][0], spec["handlers"][name], build_dir):
            mods.add("aws_xray_sdk.core")  # Powertools' Tracer, when X-Ray is on (the sandbox turns it off)
        tops = {m.split(".", 1)[0] for m in mods}
        third = sorted(t for t in tops if t not in stdlib and not t.startswith("_") and t != "mmrag")
        own_layers = set().union(*(top_level_names(p) for p in fn_paths[name][1:]))
        report["functions"][name] = {
            "needed": [t for t in third if t in provided[name]],
            "modules": sorted(m for m in mods if m.split(".", 1)[0] in provided[name] - stdlib),
            "unused": sorted(t for t in own_layers - tops - {"mmrag"} if not t.startswith("_")),
            "clients": sorted(clients.get(name, ())),
        }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
