"""How `sam build` packages the functions (template.yaml, layers/): the runtime, which dependency layer each function
gets and what those layers may hold, the layer builder (layers/build_layer.py) and the post-build check
(scripts/check_build.py) on small stand-ins. Nothing here downloads or builds; `make sam-build` does the real thing."""

from __future__ import annotations

import importlib.util
import io
import json
import re
import sys
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("yaml", reason="reading template.yaml needs PyYAML (dev extra)")

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ROOT / "layers"
RUNTIME = "python3.13"

# function -> its dependency layer (with MmragCodeLayer after it)
DEPS_LAYER = {
    "AuthorizerFunction": "MmragAuthorizerDepsLayer",
    "DocumentsFunction": "MmragApiDepsLayer",
    "SessionsFunction": "MmragApiDepsLayer",
    "SearchFunction": "MmragSearchDepsLayer",
    "QaFunction": "MmragQaDepsLayer",
    "AskStreamFunction": "MmragQaDepsLayer",
    "IngestFunction": "MmragIngestDepsLayer",
    "TextractCompleteFunction": "MmragIngestDepsLayer",
}
PARSERS = {"pypdfium2", "python-docx", "python-pptx", "beautifulsoup4", "lxml"}
LOCAL_ML = {"fastembed", "onnxruntime", "onnx", "opencv-python", "opencv-python-headless", "rapidocr-onnxruntime"}


def _load(name: str, path: Path) -> Any:
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


builder = _load("mmrag_build_layer", LAYERS / "build_layer.py")


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    from mmrag_dev.template import load_template

    return load_template(ROOT / "template.yaml")["Resources"]


def zip_functions(resources) -> dict[str, dict[str, Any]]:
    return {
        k: r["Properties"]
        for k, r in resources.items()
        if r["Type"] == "AWS::Serverless::Function" and r["Properties"].get("PackageType") != "Image"
    }


def makefile_targets() -> dict[str, str]:
    """build-<Layer> target -> its recipe, from layers/Makefile."""
    text = (LAYERS / "Makefile").read_text(encoding="utf-8")
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"^build-(\w+):\s*\n\t(.+)$", text, re.M)}


def layer_requirements(layer: str) -> dict[str, str]:
    """canonical name -> requirement line, for the requirements file a layer's make target builds."""
    recipe = makefile_targets()[layer]
    path = LAYERS / re.search(r"(deps/\w+\.txt)", recipe).group(1)
    return {builder.requirement_name(line): line for line in builder.read_requirements(path)}


# ---------------------------------------------------------------------------------------------------- template
def test_zip_functions_run_python313_with_their_own_dependency_layer(resources):
    functions = zip_functions(resources)
    assert set(functions) == set(DEPS_LAYER)
    for name, props in functions.items():
        assert props["Runtime"] == RUNTIME, name
        layers = props["Layers"]
        assert layers[:2] == [{"Ref": DEPS_LAYER[name]}, {"Ref": "MmragCodeLayer"}], name
        assert len(layers) <= 5, f"{name}: Lambda allows five layers"  # the Web Adapter is the third of AskStream


def test_layers_are_built_by_make_for_the_runtime(resources):
    layers = {k: r for k, r in resources.items() if r["Type"] == "AWS::Serverless::LayerVersion"}
    assert set(layers) == set(DEPS_LAYER.values()) | {"MmragCodeLayer"}
    targets = makefile_targets()
    for name, layer in layers.items():
        props, meta = layer["Properties"], layer["Metadata"]
        assert props["CompatibleRuntimes"] == [RUNTIME], name
        assert props["CompatibleArchitectures"] == [meta["BuildArchitecture"]] == ["x86_64"], name
        if name == "MmragCodeLayer":  # shared/Makefile copies the mmrag package alone (no shared/mmrag_dev)
            assert meta["BuildMethod"] == "makefile" and props["ContentUri"] == "shared/"
            assert "build-MmragCodeLayer:" in (LAYERS.parent / "shared" / "Makefile").read_text()
            continue
        assert meta["BuildMethod"] == "makefile" and props["ContentUri"] == "layers/", name
        assert name in targets, f"layers/Makefile has no build-{name}"
    assert re.search(r"^ARCH \?= x86_64$", (LAYERS / "Makefile").read_text(), re.M)


def test_api_functions_carry_no_parsers_answers_sdk_or_local_ml():
    for function, layer in DEPS_LAYER.items():
        names = set(layer_requirements(layer))
        assert not names & LOCAL_ML, function
        if function not in ("IngestFunction", "TextractCompleteFunction"):
            assert not names & PARSERS, f"{function} would carry document parsers"
        if function not in ("QaFunction", "AskStreamFunction"):
            assert "anthropic" not in names and "uvicorn" not in names, function
        if function in ("SearchFunction", "QaFunction", "AskStreamFunction"):
            assert re.match(r"boto3>=1\.3[6-9]|boto3>=1\.[4-9]", layer_requirements(layer)["boto3"]), function
        elif function != "AuthorizerFunction":
            assert "boto3" not in names, f"{function} uses the runtime's boto3"
    assert set(layer_requirements("MmragAuthorizerDepsLayer")) == {"aws-lambda-powertools"}


def test_layers_together_are_the_container_images_requirements():
    """functions/ingest_image/Dockerfile installs layers/mmrag/requirements.txt: the same packages, same versions."""
    union: dict[str, str] = {}
    for layer in set(DEPS_LAYER.values()):
        for name, line in layer_requirements(layer).items():
            assert union.setdefault(name, line) == line, f"{name} differs between the layers' files"
    image = {
        builder.requirement_name(line): line
        for line in builder.read_requirements(LAYERS / "mmrag" / "requirements.txt")
    }
    assert {n: re.sub(r"\s+", "", v) for n, v in union.items()} == {n: re.sub(r"\s+", "", v) for n, v in image.items()}


def test_layers_with_boto3_keep_the_models_of_every_client_the_functions_make():
    made = set()
    for path in (ROOT / "shared" / "mmrag").rglob("*.py"):
        if "cli" in path.relative_to(ROOT / "shared" / "mmrag").parts:  # commands run on a workstation, not in Lambda
            continue
        made |= set(re.findall(r"client\(\s*\"([a-z0-9-]+)\"", path.read_text(encoding="utf-8")))
    made -= {"s3-presign"}  # a second S3 client (adapters/aws/direct_uploads.presign_client)
    kept = set(re.search(r"^BOTOCORE_SERVICES = (.+)$", (LAYERS / "Makefile").read_text(), re.M).group(1).split(","))
    assert made and made <= kept, f"add {sorted(made - kept)} to BOTOCORE_SERVICES in layers/Makefile"
    for layer in ("MmragSearchDepsLayer", "MmragQaDepsLayer"):
        assert "--botocore-services $(BOTOCORE_SERVICES)" in makefile_targets()[layer]


# ---------------------------------------------------------------------------------------------------- build_layer.py
def test_requirements_files_expand_includes(tmp_path):
    (tmp_path / "base.txt").write_text("# base\nnumpy>=1.26  # arrays\n\nPillow>=10\n")
    (tmp_path / "api.txt").write_text("-r base.txt\nfastapi>=0.115\n-r base.txt\n")
    lines = builder.read_requirements(tmp_path / "api.txt")
    assert lines == ["numpy>=1.26", "Pillow>=10", "fastapi>=0.115"]
    assert [builder.requirement_name(x) for x in lines] == ["numpy", "pillow", "fastapi"]
    assert builder.requirement_name("python_docx[extra]>=1; python_version>'3'") == "python-docx"


def _dist(root: Path, name: str, files: dict[str, str]) -> None:
    info = root / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    records = []
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
        records.append(f"{rel},,")
    (info / "RECORD").write_text("\n".join([*records, f"{info.name}/METADATA,,", f"{info.name}/RECORD,,"]) + "\n")


def test_dists_are_removed_by_their_record_and_files_pruned(tmp_path):
    _dist(tmp_path, "grpcio", {"grpc/__init__.py": "x", "grpc/_cython/cygrpc.so": "x" * 100})
    _dist(tmp_path, "jieba", {"jieba/__init__.py": "", "jieba/dict.txt": "d", "jieba/analyse/idf.txt": "i" * 50})
    _dist(tmp_path, "numpy", {"numpy/__init__.py": "", "numpy/_core/tests/test_a.py": "t" * 10, "numpy/a.pyi": "s"})
    dists = builder.installed_dists(tmp_path)
    assert set(dists) == {"grpcio", "jieba", "numpy"}
    builder.remove_dist(tmp_path, dists["grpcio"])
    assert not (tmp_path / "grpc").exists() and "grpcio" not in builder.installed_dists(tmp_path)
    assert builder.prune(tmp_path, builder.PRUNE["jieba"]) == 50
    assert builder.prune(tmp_path, builder.PRUNE["numpy"] + builder.PRUNE_ALL) == 11
    assert (tmp_path / "jieba" / "dict.txt").is_file() and (tmp_path / "numpy" / "__init__.py").is_file()


def test_botocore_models_are_pruned_to_the_named_services(tmp_path):
    data = tmp_path / "botocore" / "data"
    for service in ("s3", "dynamodb", "ec2", "sts"):
        (data / service / "2020-01-01").mkdir(parents=True)
        (data / service / "2020-01-01" / "service-2.json.gz").write_bytes(b"m" * 10)
    (data / "endpoints.json").write_text("{}")
    assert builder.prune_botocore(tmp_path, {"s3", "dynamodb"}) == 10
    assert sorted(p.name for p in data.iterdir()) == ["dynamodb", "endpoints.json", "s3", "sts"]
    with pytest.raises(SystemExit, match="no model for textract"):
        builder.prune_botocore(tmp_path, {"textract"})


# ---------------------------------------------------------------------------------------------------- check_build.py
def test_build_check_measures_functions_with_their_layers(tmp_path):
    check = _load("mmrag_check_build", ROOT / "scripts" / "check_build.py")
    build = tmp_path / "build"
    (build / "Fn").mkdir(parents=True)
    (build / "Fn" / "h.py").write_bytes(b"x" * 1000)
    (build / "Deps" / "python" / "pkg").mkdir(parents=True)
    (build / "Deps" / "python" / "pkg" / "__init__.py").write_bytes(b"y" * 4000)
    template = {
        "Resources": {
            "Fn": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "CodeUri": "Fn",
                    "Handler": "h.handler",
                    "Runtime": RUNTIME,
                    "Layers": [{"Ref": "Deps"}, "arn:aws:lambda:us-east-1:1:layer:Other:1"],
                },
            },
            "Deps": {"Type": "AWS::Serverless::LayerVersion", "Properties": {"ContentUri": "Deps"}},
        }
    }
    (build / "template.yaml").write_text(json.dumps(template))  # JSON is YAML
    out = io.StringIO()
    with redirect_stdout(out):
        assert check.main(["--build-dir", str(build), "--sizes-only", "--limit-mb", "0.006"]) == 0
        assert check.main(["--build-dir", str(build), "--sizes-only", "--limit-mb", "0.004"]) == 1
    text = out.getvalue()
    assert "Fn" in text and "0.0" in text and "(not measured)" in text and "OVER" in text
    fn = check.zip_functions(template, build)["Fn"]
    assert check.sizes({"Fn": fn})["Fn"]["total"] == 5000
    assert check.top_level_names(build / "Deps" / "python") == {"pkg"}
