"""The SageMaker handler (infra/sagemaker/inference.py) called in-process: the JSON contract, shapes, normalisation,
equality with the local fastembed adapters, request validation, and deploy.py without AWS or the sagemaker SDK.
No network: the models are the offline test models; any socket that is not 127.0.0.1 fails the test."""

from __future__ import annotations

import base64
import copy
import importlib.util
import io
import json
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.aws.offline import loopback_only, offline_aws_env
from tests.conftest import MODELS, TEST_MODELS, needs_models

pytestmark = needs_models

ROOT = Path(__file__).resolve().parents[2]
HANDLER_DIR = ROOT / "infra" / "sagemaker"
TEXT, IMAGE, IMAGE_TEXT, RERANK = (
    TEST_MODELS["MMRAG_TEXT_MODEL"],
    TEST_MODELS["MMRAG_IMAGE_MODEL"],
    TEST_MODELS["MMRAG_IMAGE_TEXT_MODEL"],
    TEST_MODELS["MMRAG_RERANK_MODEL"],
)
TEXTS = [
    "Coolant temperature sensors report to the engine control unit.",
    "short",
    "冷却液温度传感器",
    "A much longer passage " * 40,
    "",
]


def _load_handler() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mmrag_sagemaker_inference", HANDLER_DIR / "inference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def no_network(monkeypatch) -> None:
    loopback_only(monkeypatch)
    offline_aws_env(monkeypatch)


@pytest.fixture(scope="module")
def handler() -> ModuleType:
    return _load_handler()


@pytest.fixture(scope="module")
def model(handler, tmp_path_factory) -> Iterator[Any]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMRAG_MODEL_DIR", str(MODELS))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("MMRAG_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        for name, value in TEST_MODELS.items():
            mp.setenv(name, value)
        mp.delenv("MMRAG_TEXT_MAX_TOKENS", raising=False)
        # the directory SageMaker would pass; MMRAG_MODEL_DIR wins over it
        yield handler.model_fn("/opt/ml/model")


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> dict[str, Any]:
    from mmrag.adapters.local.model_source import ModelSource
    from mmrag.adapters.local.models import FastEmbedClip, FastEmbedReranker, FastEmbedTextEmbedder

    source = ModelSource(MODELS, tmp_path_factory.mktemp("local-cache"))
    return {
        "text": FastEmbedTextEmbedder(TEXT, source),
        "clip": FastEmbedClip(IMAGE, IMAGE_TEXT, source),
        "rerank": FastEmbedReranker(RERANK, source),
    }


def invoke(handler: ModuleType, model: Any, payload: Any, accept: str = "application/json") -> dict[str, Any]:
    """What the toolkit does with one request: the body arrives as text for application/json."""
    data = handler.input_fn(json.dumps(payload), "application/json")
    body, content_type = handler.output_fn(handler.predict_fn(data, model), accept)
    assert content_type == "application/json"
    return json.loads(body)


def picture(size: tuple[int, int] = (320, 200), seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
    arr[: size[1] // 2, :, 0] = 250  # some structure, not only noise
    return Image.fromarray(arr, "RGB")


def encoded(img: Image.Image, fmt: str = "PNG") -> str:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def assert_unit_rows(vectors: np.ndarray) -> None:
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


# ---------------------------------------------------------------------------------------------- the four embeddings
def test_embed_text_matches_local_adapter(handler, model, local) -> None:
    answer = invoke(handler, model, {"task": "embed_text", "inputs": TEXTS})
    assert set(answer) == {"vectors", "dim", "model"}
    assert answer["dim"] == 384 and answer["model"] == TEXT
    vectors = np.asarray(answer["vectors"], dtype=np.float32)
    assert vectors.shape == (len(TEXTS), 384)
    assert_unit_rows(vectors)
    np.testing.assert_allclose(vectors, local["text"].embed_texts(TEXTS), atol=1e-5)


def test_embed_query_matches_local_adapter(handler, model, local) -> None:
    queries = ["how hot does the coolant get?", "温度"]
    answer = invoke(handler, model, {"task": "embed_query", "inputs": queries})
    vectors = np.asarray(answer["vectors"], dtype=np.float32)
    assert vectors.shape == (2, 384) and answer["dim"] == 384
    assert_unit_rows(vectors)
    for row, query in zip(vectors, queries, strict=True):
        np.testing.assert_allclose(row, local["text"].embed_query(query), atol=1e-5)


def test_text_is_truncated_like_the_local_adapter(handler, model, local) -> None:
    long_a = "engine coolant " * 150 + "tail one"  # about 300 word pieces
    long_b = "engine coolant " * 150 + "a completely different ending"
    answer = invoke(handler, model, {"task": "embed_text", "inputs": [long_a, long_b]})
    vectors = np.asarray(answer["vectors"], dtype=np.float32)
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)  # the endings lie past 256 word pieces
    np.testing.assert_allclose(vectors, local["text"].embed_texts([long_a, long_b]), atol=1e-5)


def test_embed_clip_text_matches_local_adapter(handler, model, local) -> None:
    texts = ["a red car", "a diagram of a cooling system", "猫"]
    answer = invoke(handler, model, {"task": "embed_clip_text", "inputs": texts})
    assert answer["dim"] == 512 and answer["model"] == f"{IMAGE} + {IMAGE_TEXT}"
    vectors = np.asarray(answer["vectors"], dtype=np.float32)
    assert vectors.shape == (3, 512)
    assert_unit_rows(vectors)  # fastembed's CLIP text tower is not normalised by itself
    np.testing.assert_allclose(vectors, local["clip"].embed_texts(texts), atol=1e-5)


def test_embed_image_png_and_jpeg_match_local_adapter(handler, model, local) -> None:
    rgb = picture((320, 200), seed=1)
    rgba = picture((64, 96), seed=2).convert("RGBA")
    jpeg_bytes = base64.b64decode(encoded(rgb, "JPEG"))
    inputs = [encoded(rgb), encoded(rgba), encoded(rgb, "JPEG"), "data:image/png;base64," + encoded(rgb)]
    answer = invoke(handler, model, {"task": "embed_image", "inputs": inputs})
    assert answer["dim"] == 512 and answer["model"] == f"{IMAGE} + {IMAGE_TEXT}"
    vectors = np.asarray(answer["vectors"], dtype=np.float32)
    assert vectors.shape == (4, 512)
    assert_unit_rows(vectors)
    expected = local["clip"].embed_images([rgb, rgba, Image.open(io.BytesIO(jpeg_bytes))])
    np.testing.assert_allclose(vectors[:3], expected, atol=1e-5)
    np.testing.assert_allclose(vectors[3], vectors[0], atol=1e-6)
    assert not np.allclose(vectors[0], vectors[2], atol=1e-6)  # JPEG is lossy: the decoded pixels differ


def test_rerank_matches_local_adapter(handler, model, local) -> None:
    docs = ["Coolant flows through the radiator.", "The cafeteria opens at noon.", ""]
    answer = invoke(handler, model, {"task": "rerank", "inputs": docs, "query": "radiator coolant"})
    assert set(answer) == {"scores", "model"} and answer["model"] == RERANK
    assert len(answer["scores"]) == 3 and all(isinstance(s, float) for s in answer["scores"])
    np.testing.assert_allclose(answer["scores"], local["rerank"].score("radiator coolant", docs), atol=1e-5)


def test_empty_inputs_keep_the_dimension(handler, model) -> None:
    clip = f"{IMAGE} + {IMAGE_TEXT}"
    for task, dim, name in (
        ("embed_text", 384, TEXT),
        ("embed_query", 384, TEXT),
        ("embed_clip_text", 512, clip),
        ("embed_image", 512, clip),
    ):
        assert invoke(handler, model, {"task": task, "inputs": []}) == {"vectors": [], "dim": dim, "model": name}
    assert invoke(handler, model, {"task": "rerank", "inputs": [], "query": "q"})["scores"] == []


def test_bytes_body_and_wildcard_accept(handler, model) -> None:
    data = handler.input_fn(
        json.dumps({"task": "embed_text", "inputs": ["x"]}).encode(), "application/json; charset=utf-8"
    )
    body, content_type = handler.output_fn(handler.predict_fn(data, model), "*/*")
    assert content_type == "application/json" and len(json.loads(body)["vectors"][0]) == 384


# ---------------------------------------------------------------------------------------------- bad requests
@pytest.mark.parametrize(
    ("payload", "status", "words"),
    [
        ([1, 2], 400, "JSON object"),
        ({"task": "translate", "inputs": []}, 400, "task must be one of"),
        ({"task": "embed_text"}, 400, "inputs must be a JSON array"),
        ({"task": "embed_text", "inputs": "hello"}, 400, "inputs must be a JSON array"),
        ({"task": "embed_text", "inputs": ["ok", 3]}, 400, "inputs[1]"),
        ({"task": "embed_text", "inputs": ["ok"], "query": "q"}, 400, "only for rerank"),
        ({"task": "rerank", "inputs": ["doc"]}, 400, "query"),
        ({"task": "embed_image", "inputs": ["%%%not base64%%%"]}, 400, "not valid base64"),
        ({"task": "embed_image", "inputs": [base64.b64encode(b"plain text").decode()]}, 400, "not a readable image"),
        ({"task": "embed_image", "inputs": [42]}, 400, "base64 string"),
        ({"task": "embed_text", "inputs": ["x"] * 257}, 413, "at most 256"),
    ],
)
def test_contract_violations_are_client_errors(handler, model, payload, status, words) -> None:
    with pytest.raises(handler.BadRequest) as info:
        handler.input_fn(json.dumps(payload), "application/json")
    assert info.value.status_code == status
    assert words in str(info.value)


def test_other_formats_and_limits_are_refused(handler, monkeypatch) -> None:
    gif = io.BytesIO()
    picture((20, 20)).save(gif, format="GIF")
    with pytest.raises(handler.BadRequest, match="GIF images are not accepted"):
        handler.input_fn(
            json.dumps({"task": "embed_image", "inputs": [base64.b64encode(gif.getvalue()).decode()]}),
            "application/json",
        )
    monkeypatch.setenv("MMRAG_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(handler.BadRequest, match="pixel limit") as info:
        handler.input_fn(
            json.dumps({"task": "embed_image", "inputs": [encoded(picture((40, 40)))]}), "application/json"
        )
    assert info.value.status_code == 413
    with pytest.raises(handler.BadRequest) as info:
        handler.input_fn("{not json", "application/json")
    assert info.value.status_code == 400
    with pytest.raises(handler.BadRequest) as info:
        handler.input_fn("a,b", "text/csv")
    assert info.value.status_code == 415
    with pytest.raises(handler.BadRequest) as info:
        handler.output_fn({"scores": []}, "text/csv")
    assert info.value.status_code == 406


def test_model_fn_reads_the_environment(handler, monkeypatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(handler.Models, "__init__", lambda self, model_dir, **kw: seen.update(kw, model_dir=model_dir))
    monkeypatch.delenv("MMRAG_MODEL_DIR", raising=False)
    monkeypatch.delenv("MMRAG_TEXT_MODEL", raising=False)
    monkeypatch.setenv("MMRAG_RERANK_MODEL", "")
    monkeypatch.setenv("MMRAG_TEXT_MAX_TOKENS", "128")
    monkeypatch.setenv("MMRAG_MODEL_THREADS", "2")
    handler.model_fn("/opt/ml/model")
    assert seen["model_dir"] == "/opt/ml/model"  # no MMRAG_MODEL_DIR: the unpacked archive
    assert seen["text_model"] == handler.DEFAULT_TEXT_MODEL and seen["rerank_model"] is None
    assert seen["text_max_tokens"] == 128 and seen["threads"] == 2


def test_endpoint_without_reranker(handler, model) -> None:
    bare = copy.copy(model)
    bare.reranker = None
    data = handler.input_fn(json.dumps({"task": "rerank", "inputs": ["d"], "query": "q"}), "application/json")
    with pytest.raises(handler.BadRequest, match="no reranker"):
        handler.predict_fn(data, bare)


# ---------------------------------------------------------------------------------------------- client + handler
class HandlerClient:
    """A sagemaker-runtime client whose invoke_endpoint runs the handler in-process, as the container would."""

    def __init__(self, handler: ModuleType, model: Any):
        self.handler, self.model = handler, model
        self.requests: list[dict[str, Any]] = []

    def invoke_endpoint(self, *, EndpointName: str, ContentType: str, Accept: str, Body: bytes) -> dict[str, Any]:
        from botocore.response import StreamingBody

        self.requests.append(json.loads(Body))
        text = Body.decode("utf-8")  # the toolkit decodes application/json bodies before input_fn
        body, content_type = self.handler.output_fn(
            self.handler.predict_fn(self.handler.input_fn(text, ContentType), self.model), Accept
        )
        raw = body.encode("utf-8")
        return {"Body": StreamingBody(io.BytesIO(raw), len(raw)), "ContentType": content_type}


def test_sagemaker_embedder_over_the_handler_equals_local_adapters(handler, model, local) -> None:
    from mmrag.adapters.aws.sagemaker_embedder import SageMakerEmbedder

    client = HandlerClient(handler, model)
    remote = SageMakerEmbedder("mmrag-test", client=client, batch_size=2, image_batch_size=2)

    texts = ["coolant", "radiator", "温度", "engine control unit", ""]
    np.testing.assert_allclose(remote.text.embed_texts(texts), local["text"].embed_texts(texts), atol=1e-5)
    assert [len(r["inputs"]) for r in client.requests] == [2, 2, 1]  # batches of 2
    np.testing.assert_allclose(remote.text.embed_query("coolant"), local["text"].embed_query("coolant"), atol=1e-5)
    assert remote.text.dim == 384 and remote.text.name == TEXT

    clip_texts = ["a red car", "a blue sky", "a cat"]
    np.testing.assert_allclose(remote.clip.embed_texts(clip_texts), local["clip"].embed_texts(clip_texts), atol=1e-5)
    # a large picture is shrunk by the client before sending; the vector is still the local adapter's
    images = [picture((1600, 1000), seed=3), picture((90, 60), seed=4), picture((300, 900), seed=5).convert("RGBA")]
    client.requests.clear()
    np.testing.assert_allclose(remote.clip.embed_images(images), local["clip"].embed_images(images), atol=1e-5)
    sent = [Image.open(io.BytesIO(base64.b64decode(s))) for r in client.requests for s in r["inputs"]]
    assert [im.size for im in sent] == [(358, 224), (90, 60), (224, 672)]
    assert remote.clip.dim == 512 and remote.clip.name == f"{IMAGE} + {IMAGE_TEXT}"

    docs = ["radiator coolant", "lunch menu", "engine temperature", "parking"]
    np.testing.assert_allclose(
        remote.reranker.score("coolant", docs), local["rerank"].score("coolant", docs), atol=1e-5
    )
    assert remote.reranker.name == RERANK
    assert remote.health()["text"]["state"] == "loaded"


# ---------------------------------------------------------------------------------------------- deploy.py
def _fake_models(root: Path) -> Path:
    for name in (TEXT, IMAGE, IMAGE_TEXT, RERANK):
        (root / name).mkdir(parents=True)
        (root / name / "model.onnx").write_bytes(b"onnx")
        (root / name / "tokenizer.json").write_text("{}")
    return root


def test_deploy_help_works_without_the_sagemaker_sdk() -> None:
    out = subprocess.run(
        [sys.executable, str(HANDLER_DIR / "deploy.py"), "--help"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert "--dry-run" in out.stdout and "--serverless" in out.stdout and "--instance-type" in out.stdout


def test_deploy_dry_run_builds_the_archive_and_calls_nothing(tmp_path, monkeypatch, capsys) -> None:
    spec = importlib.util.spec_from_file_location("mmrag_sagemaker_deploy", HANDLER_DIR / "deploy.py")
    assert spec and spec.loader
    deploy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(deploy)
    monkeypatch.setitem(sys.modules, "sagemaker", None)  # as if the SDK were not installed
    monkeypatch.setitem(sys.modules, "boto3", None)  # and no AWS client can be made
    models = _fake_models(tmp_path / "models")
    archive = tmp_path / "model.tar.gz"
    common = ["--endpoint-name", "mmrag-models", "--model-dir", str(models), "--text-model", TEXT, "--dry-run"]

    assert deploy.main([*common, "--serverless", "--memory-mb", "4096", "--archive", str(archive)]) == 0
    out = capsys.readouterr().out
    plan = json.loads(out[: out.rindex("}") + 1])
    assert plan["hosting"] == {
        "type": "serverless",
        "memory_size_in_mb": 4096,
        "max_concurrency": 5,
        "provisioned_concurrency": None,
    }
    assert plan["environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert plan["environment"]["MMRAG_TEXT_MODEL"] == TEXT
    assert "pytorch-inference:2.6.0-cpu-py312" in plan["image_uri"]
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"code/inference.py", "code/requirements.txt", f"{TEXT}/model.onnx", f"{RERANK}/tokenizer.json"} <= names

    assert deploy.main([*common, "--instance-type", "ml.c5.xlarge"]) == 0
    plan = json.loads(capsys.readouterr().out.split("\ndry run")[0])
    assert plan["hosting"] == {"type": "real-time", "instance_type": "ml.c5.xlarge", "instance_count": 1}

    with pytest.raises(SystemExit, match="model folder not found"):
        deploy.main([*common, "--image-model", "nobody/missing"])
    with pytest.raises(SystemExit):  # a real deployment needs role, bucket and region
        deploy.main(["--endpoint-name", "x", "--model-dir", str(models)])
