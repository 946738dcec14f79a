"""Stand-ins for what moto lacks, all in this process or on 127.0.0.1: the SageMaker encoder endpoint (deterministic
encoders behind the real SageMakerEmbedder), the OpenSearch server (tests/aws/opensearch_fake.py behind the real
OpenSearchVectorIndex), the text moto's Textract "reads", and the context Lambda passes to a handler."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import json
import sys
import time
import uuid
from typing import Any

from mmrag_dev.template import ACCOUNT, REGION, ROOT

# what the scanned sample PDF shows (seed.py draws it) and what moto's Textract answers for any document
SCANNED_TEXT = ["Boiler manual - scanned copy", "Check the water level gauge every morning."]


def _hash_vector(text: str, dim: int, salt: str) -> list[float]:
    """A deterministic bag-of-words vector: texts sharing words point the same way."""
    from mmrag.text.analyzer import tokens

    vec = [0.0] * dim
    words = tokens(text) or [text.strip().lower() or "empty"]
    for word in words:
        h = hashlib.sha256(f"{salt}:{word}".encode()).digest()
        vec[int.from_bytes(h[:4], "little") % dim] += 1.0 if h[4] % 2 else -1.0
        vec[int.from_bytes(h[5:9], "little") % dim] += 0.5
    return vec


def _image_vector(b64: str, dim: int) -> list[float]:
    import numpy as np
    from PIL import Image

    img = Image.open(io.BytesIO(base64.b64decode(b64))).convert("L").resize((8, 8))
    pixels = np.asarray(img, dtype=np.float32).reshape(-1) / 255.0 - 0.5
    matrix = np.random.default_rng(7).standard_normal((dim, pixels.size)).astype(np.float32)
    return (matrix @ pixels + 0.01).tolist()


class StandInEncoders:
    """The SageMaker endpoint's JSON contract (infra/sagemaker), answered by deterministic encoders."""

    def __init__(self, text_dim: int = 384, clip_dim: int = 512):
        self.text_dim, self.clip_dim = text_dim, clip_dim
        self.calls: list[str] = []

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        task, inputs = request["task"], request["inputs"]
        self.calls.append(task)
        if task in ("embed_text", "embed_query"):
            return {
                "vectors": [_hash_vector(t, self.text_dim, "text") for t in inputs],
                "dim": self.text_dim,
                "model": "stand-in/text",
            }
        if task == "embed_clip_text":
            return {
                "vectors": [_hash_vector(t, self.clip_dim, "clip") for t in inputs],
                "dim": self.clip_dim,
                "model": "stand-in/clip",
            }
        if task == "embed_image":
            return {
                "vectors": [_image_vector(b, self.clip_dim) for b in inputs],
                "dim": self.clip_dim,
                "model": "stand-in/clip",
            }
        if task == "rerank":
            from mmrag.text.analyzer import tokens

            q = set(tokens(request.get("query", "")))
            return {"scores": [float(len(q & set(tokens(d)))) - 1.0 for d in inputs], "model": "stand-in/rerank"}
        raise ValueError(f"unknown task {task!r}")

    def client(self) -> Any:
        """A sagemaker-runtime client whose InvokeEndpoint is answered here, before any request is sent."""
        import boto3
        from botocore.awsrequest import AWSResponse
        from botocore.response import StreamingBody

        client = boto3.client("sagemaker-runtime", region_name=REGION)

        def invoke(params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
            body = params["body"]
            answer = json.dumps(self.answer(json.loads(body))).encode()
            http = AWSResponse("https://runtime.sagemaker.stand-in/invocations", 200, {}, None)
            parsed = {
                "Body": StreamingBody(io.BytesIO(answer), len(answer)),
                "ContentType": "application/json",
                "ResponseMetadata": {"HTTPStatusCode": 200, "HTTPHeaders": {}},
            }
            return http, parsed

        client.meta.events.register("before-call.sagemaker-runtime.InvokeEndpoint", invoke)
        return client


def load_opensearch_fake() -> Any | None:
    """tests/aws/opensearch_fake.py, under the name its own tests import it by (None without a tests folder)."""
    path = ROOT / "tests" / "aws" / "opensearch_fake.py"
    if not path.exists():
        return None
    name = "opensearch_fake"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class LambdaContext:
    def __init__(self, function_name: str, timeout_s: int = 900, memory_mb: int = 1024):
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "stand-in"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def textract_lines() -> list[dict[str, Any]]:
    """SCANNED_TEXT as Textract LINE blocks, for moto's TextractBackend.BLOCKS."""
    return [
        {
            "BlockType": "LINE",
            "Id": f"line-{i}",
            "Text": text,
            "Page": 1,
            "Confidence": 99.0,
            "Geometry": {"BoundingBox": {"Left": 0.05, "Top": 0.05 + 0.05 * i, "Width": 0.8, "Height": 0.04}},
        }
        for i, text in enumerate(SCANNED_TEXT)
    ]
