#!/usr/bin/env python3
"""Build one dependency layer of template.yaml for the Lambda runtime: `sam build` runs it through layers/Makefile
(the layers' Metadata `BuildMethod: makefile`), with the python3.13 that sam itself needs on PATH.

    python3.13 build_layer.py deps/api.txt "$ARTIFACTS_DIR" [--arch x86_64] [--python-version 3.13]

1. pip installs the requirements file (its `-r` includes too) into a scratch folder for the Lambda platform, not this
   machine's: manylinux wheels up to glibc 2.34 (Amazon Linux 2023) for CPython 3.13 and the layer's architecture,
   binary wheels only, so the build needs neither Docker nor a compiler and gives the same files on Linux and macOS.
   Packages that PyPI has as an sdist only (SDIST_ONLY: pure Python) are installed in a second pass without deps.
2. It drops whole distributions the functions never import (DROP_DISTS) and the AWS SDK, which the runtime has
   (RUNTIME_SDK; resolved together with the layer, so that what they share fits the runtime's botocore, and kept
   when the layer names boto3 itself), then files no function reads (PRUNE; --botocore-services).
3. It compiles the sources to unchecked-hash .pyc files (--compile, the default): /opt is read-only on Lambda, so
   without them every cold start compiles every module it imports.
4. The result becomes $ARTIFACTS_DIR/python (Lambda puts /opt/python on sys.path); the sizes are printed.

Standard library only: it runs with whatever python3.13 is on PATH.
"""

from __future__ import annotations

import argparse
import compileall
import csv
import json
import os
import py_compile
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

# glibc 2.34 is Amazon Linux 2023's (the python3.12+ runtimes); pip takes the newest wheel one of these tags allows.
MANYLINUX = ("manylinux1", "manylinux2010", "manylinux2014", "manylinux_2_17", "manylinux_2_28", "manylinux_2_34")

# Published as an sdist only; pure Python, no dependencies: installed with --no-deps outside the platform pass.
SDIST_ONLY = {"jieba"}

# The Lambda Python runtime's own packages (/var/runtime, after /opt/python on sys.path): boto3 and its dependencies.
# A layer leaves out those only the SDK needs, unless it names boto3 itself (the search and QA functions pin a boto3
# that knows Bedrock's Rerank API).
RUNTIME_SDK = {"boto3", "botocore", "s3transfer"}
RUNTIME_SDK_DEPS = {"jmespath", "python-dateutil", "six", "urllib3"}  # left out only when nothing else needs them

# Installed as dependencies, never imported by the functions (the post-build check runs them without these).
DROP_DISTS = {
    # opensearch-py >= 3.1 requires them for a gRPC transport that opensearchpy never imports (18 MB)
    "grpcio": "opensearch-py's unused gRPC transport",
    "protobuf": "opensearch-py's unused gRPC transport",
    "opensearch-protobufs": "opensearch-py's unused gRPC transport",
}

# Files of installed packages that no function reads (paths relative to the layer's python/ folder).
PRUNE = {
    # mmrag.text.analyzer uses jieba.cut_for_search only: the dictionary (dict.txt) and the HMM tables (finalseg/*.py).
    # Keyword extraction, POS tagging and the paddle model are other features (32 MB of 38); the .p pickles are the
    # HMM tables for Jython.
    "jieba": ["jieba/analyse", "jieba/posseg", "jieba/lac_small", "jieba/__main__.py", "jieba/finalseg/*.p"],
    # numpy's own test suites (7 MB); numpy.testing stays
    "numpy": ["numpy/tests", "numpy/*/tests", "numpy/*/*/tests"],
}
PRUNE_ALL = ["**/*.pyi"]  # type stubs: read by type checkers, never imported

# botocore's data/ holds every AWS service's model (23 MB); --botocore-services keeps these files and the named ones
BOTOCORE_COMMON = {"endpoints.json", "partitions.json", "_retry.json", "sdk-default-configuration.json", "sts"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_requirements(path: Path, seen: set[Path] | None = None) -> list[str]:
    """The requirement lines of a requirements file, `-r` includes expanded, comments dropped."""
    seen = seen if seen is not None else set()
    path = path.resolve()
    if path in seen:
        return []
    seen.add(path)
    out: list[str] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        include = re.match(r"^(-r|--requirement)\s*(\S+)$", line)
        if include:
            out.extend(read_requirements(path.parent / include.group(2), seen))
        elif line.startswith("-"):
            raise SystemExit(f"{path}: option lines other than -r are not supported: {line!r}")
        else:
            out.append(line)
    return out


def requirement_name(line: str) -> str:
    m = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
    if not m:
        raise SystemExit(f"cannot read a package name from {line!r}")
    return canonical(m.group(1))


def pip_args(requirements: list[str], *, arch: str, python_version: str, platform: bool) -> tuple[list[str], str]:
    """The common part of a pip install command (and the temporary requirements file it reads)."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(requirements) + "\n")
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-warn-conflicts"]
    cmd += ["--no-compile", "--ignore-installed", "-r", f.name]
    if platform:
        abi = "cp" + python_version.replace(".", "")
        cmd += ["--implementation", "cp", "--python-version", python_version, "--only-binary=:all:"]
        cmd += [arg for tag in MANYLINUX for arg in ("--platform", f"{tag}_{arch}")]
        cmd += [arg for a in (abi, "abi3", "none") for arg in ("--abi", a)]
    else:
        cmd += ["--no-deps"]
    return cmd, f.name


def pip_install(target: Path, requirements: list[str], **kw: object) -> None:
    cmd, req_file = pip_args(requirements, **kw)  # type: ignore[arg-type]
    try:
        subprocess.run([*cmd, "--target", str(target), "--upgrade"], check=True)
    finally:
        os.unlink(req_file)


def pip_resolve(requirements: list[str], **kw: object) -> set[str]:
    """The names of the distributions pip would install for these requirements (nothing is installed)."""
    cmd, req_file = pip_args(requirements, **kw)  # type: ignore[arg-type]
    report = req_file + ".json"
    try:
        subprocess.run([*cmd, "--dry-run", "--report", report], check=True)
        with open(report, encoding="utf-8") as f:
            return {canonical(item["metadata"]["name"]) for item in json.load(f)["install"]}
    finally:
        os.unlink(req_file)
        if os.path.exists(report):
            os.unlink(report)


def installed_dists(root: Path) -> dict[str, Path]:
    """canonical name -> its .dist-info folder."""
    out = {}
    for info in root.glob("*.dist-info"):
        meta = info / "METADATA"
        name = None
        if meta.is_file():
            for line in meta.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith("Name:"):
                    name = line.split(":", 1)[1].strip()
                    break
        out[canonical(name or info.name.rsplit("-", 1)[0])] = info
    return out


def remove_dist(root: Path, info: Path) -> None:
    record = info / "RECORD"
    if record.is_file():
        with open(record, newline="", encoding="utf-8") as f:
            for row in csv.reader(f):
                if not row:
                    continue
                path = (root / row[0]).resolve()
                if root.resolve() in path.parents and path.is_file():
                    path.unlink()
    shutil.rmtree(info, ignore_errors=True)
    remove_empty_dirs(root)


def remove_empty_dirs(root: Path) -> None:
    for dirpath, _dirs, _files in sorted(os.walk(root), key=lambda t: -len(t[0])):
        p = Path(dirpath)
        if p != root and not any(p.iterdir()):
            p.rmdir()


def prune(root: Path, patterns: list[str]) -> int:
    """Delete what the glob patterns (relative to root) match; returns the bytes freed."""
    freed = 0
    for pattern in patterns:
        for path in root.glob(pattern):
            if path.is_dir():
                freed += tree_size(path)
                shutil.rmtree(path)
            elif path.exists():
                freed += path.stat().st_size
                path.unlink()
    return freed


def prune_botocore(root: Path, services: set[str]) -> int:
    """Keep the models of `services` (boto3 client names) and botocore's common data; returns the bytes freed."""
    data = root / "botocore" / "data"
    missing = sorted(s for s in services if not (data / s).is_dir())
    if missing:
        raise SystemExit(f"--botocore-services: botocore has no model for {', '.join(missing)}")
    keep = services | BOTOCORE_COMMON
    return prune(root, [f"botocore/data/{p.name}" for p in data.iterdir() if p.name not in keep])


def tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def compile_tree(root: Path) -> None:
    """.pyc next to every module (in __pycache__), valid whatever the files' timestamps after zip and unzip."""
    with warnings.catch_warnings():  # e.g. jieba's invalid escapes (SyntaxWarning on 3.12+): its problem, not ours
        warnings.simplefilter("ignore")
        ok = compileall.compile_dir(
            str(root), quiet=2, workers=1, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH
        )
    if not ok:
        print("note: some files did not compile (left as source)", file=sys.stderr)


def dist_sizes(root: Path) -> list[tuple[str, int]]:
    sizes = []
    for name, info in installed_dists(root).items():
        total = 0
        record = info / "RECORD"
        if record.is_file():
            with open(record, newline="", encoding="utf-8") as f:
                for row in csv.reader(f):
                    if row and (root / row[0]).is_file():
                        total += (root / row[0]).stat().st_size
        sizes.append((name, total))
    return sorted(sizes, key=lambda t: -t[1])


def build(
    requirements_file: Path,
    artifacts_dir: Path,
    *,
    arch: str,
    python_version: str,
    compile_: bool,
    botocore_services: set[str] | None = None,
) -> Path:
    if sys.version_info[:2] != tuple(int(x) for x in python_version.split(".")):
        print(
            f"note: building for Python {python_version} with Python {sys.version.split()[0]}: "
            "no .pyc files (they would not match the runtime)",
            file=sys.stderr,
        )
        compile_ = False
    lines = read_requirements(requirements_file)
    names = {requirement_name(line) for line in lines}
    binary = [line for line in lines if requirement_name(line) not in SDIST_ONLY]
    source = [line for line in lines if requirement_name(line) in SDIST_ONLY]
    target = {"arch": arch, "python_version": python_version}
    work = Path(tempfile.mkdtemp(prefix="mmrag-layer-"))
    try:
        site = work / "python"
        drop = dict(DROP_DISTS)
        if "boto3" in names:
            pip_install(site, binary, platform=True, **target)
        else:
            # The runtime's botocore shares the process with the layer and imports the layer's python-dateutil,
            # urllib3 and six (/opt/python comes first on sys.path): resolve the layer together with boto3 so that
            # those fit botocore too, then leave out what only the SDK needed.
            own = pip_resolve(binary, platform=True, **target)
            pip_install(site, [*binary, "boto3"], platform=True, **target)
            runtime = {d for d in installed_dists(site) if d in RUNTIME_SDK or (d in RUNTIME_SDK_DEPS and d not in own)}
            drop.update({d: "the Lambda runtime has it" for d in runtime})
        if source:
            pip_install(site, source, platform=False, **target)
            for name in map(requirement_name, source):
                info = installed_dists(site)[name]
                if any(row.split(",", 1)[0].endswith((".so", ".pyd")) for row in (info / "RECORD").read_text().split()):
                    raise SystemExit(f"{name}: built from its sdist, with compiled parts (not portable)")
        shutil.rmtree(site / "bin", ignore_errors=True)  # console scripts, with this machine's interpreter path

        sizes = dict(dist_sizes(site))
        dists = installed_dists(site)
        for name, why in sorted(drop.items()):
            if name in dists and name not in names:
                print(f"  drop  {name:22s} {sizes.get(name, 0) / 1e6:5.1f} MB  ({why})")
                remove_dist(site, dists[name])
        for name, patterns in PRUNE.items():
            if name in installed_dists(site):
                print(f"  prune {name:22s} {prune(site, patterns) / 1e6:5.1f} MB")
        print(f"  prune {'type stubs':22s} {prune(site, PRUNE_ALL) / 1e6:5.1f} MB")
        if botocore_services:
            if "botocore" not in installed_dists(site):
                raise SystemExit("--botocore-services: this layer has no botocore")
            freed = prune_botocore(site, botocore_services)
            print(
                f"  prune {'botocore models':22s} {freed / 1e6:5.1f} MB  (kept: {', '.join(sorted(botocore_services))})"
            )
        remove_empty_dirs(site)
        if compile_:
            compile_tree(site)

        out = artifacts_dir / "python"
        if out.exists():
            shutil.rmtree(out)
        artifacts_dir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(site, out, symlinks=False)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    total = tree_size(out)
    top = ", ".join(f"{n} {s / 1e6:.1f}" for n, s in dist_sizes(out)[:8])
    print(f"{requirements_file.name}: {total / 1e6:.1f} MB unzipped in {out} (largest, MB: {top})")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("requirements", type=Path)
    parser.add_argument("artifacts_dir", type=Path, help="sam build's ARTIFACTS_DIR; the layer goes to its python/")
    parser.add_argument("--arch", default="x86_64", choices=["x86_64", "aarch64"])
    parser.add_argument("--python-version", default="3.13")
    parser.add_argument("--no-compile", dest="compile_", action="store_false", help="ship sources only")
    parser.add_argument(
        "--botocore-services",
        default="",
        help="comma-separated boto3 client names whose botocore models the layer keeps (the others are removed)",
    )
    args = parser.parse_args(argv)
    if not args.requirements.is_file():
        raise SystemExit(f"{args.requirements}: no such file")
    services = {s.strip() for s in args.botocore_services.split(",") if s.strip()}
    build(
        args.requirements,
        args.artifacts_dir,
        arch=args.arch,
        python_version=args.python_version,
        compile_=args.compile_,
        botocore_services=services or None,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
