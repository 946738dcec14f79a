"""SageMaker inference handler: mmrag's text encoder, CLIP pair and cross-encoder reranker behind one endpoint.

Runs in the SageMaker PyTorch inference container (model_fn / input_fn / predict_fn / output_fn of the SageMaker
inference toolkit); torch itself is never used, the models are ONNX files run by fastembed on the CPU. The JSON
contract is documented in README.md next to this file; mmrag.adapters.aws.sagemaker_embedder is its client.

The endpoint must return what mmrag's local adapters (mmrag.adapters.local.models) compute, so an index built locally
and one built on AWS agree: the same fastembed calls, the same truncation, L2-normalised rows. This file cannot import
mmrag (the package is not installed in the container); tests/aws/test_sagemaker_inference.py checks the two agree.

Configuration (environment variables, set by deploy.py on the SageMaker model):
    MMRAG_MODEL_DIR          where the model folders are (default: the model_dir SageMaker passes, /opt/ml/model)
    MMRAG_TEXT_MODEL         text encoder        (default sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2)
    MMRAG_IMAGE_MODEL        CLIP image tower    (default Qdrant/clip-ViT-B-32-vision)
    MMRAG_IMAGE_TEXT_MODEL   CLIP text tower     (default Qdrant/clip-ViT-B-32-text)
    MMRAG_RERANK_MODEL       cross-encoder       (default Xenova/ms-marco-MiniLM-L-6-v2); an empty value disables it
    MMRAG_TEXT_MAX_TOKENS    word pieces the text encoder reads (default 256, as mmrag's setting of the same name)
    MMRAG_MODEL_THREADS      ONNX Runtime threads per model (default: ONNX Runtime's choice, all cores)
    MMRAG_MAX_INPUTS         most inputs per request (default 256)
    MMRAG_MAX_IMAGE_PIXELS   largest image accepted, in pixels (default 40,000,000)
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

TASKS = ("embed_text", "embed_query", "embed_clip_text", "embed_image", "rerank")
JSON = "application/json"
IMAGE_FORMATS = ("PNG", "JPEG")

DEFAULT_TEXT_MODEL = "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2"
DEFAULT_IMAGE_MODEL = "Qdrant/clip-ViT-B-32-vision"
DEFAULT_IMAGE_TEXT_MODEL = "Qdrant/clip-ViT-B-32-text"
DEFAULT_RERANK_MODEL = "Xenova/ms-marco-MiniLM-L-6-v2"

try:  # present inside the SageMaker containers: lets a bad request answer 400 instead of 500
    from sagemaker_inference.errors import BaseInferenceToolkitError as _ToolkitError
except ImportError:  # pragma: no cover - outside SageMaker
    _ToolkitError = Exception  # type: ignore[assignment,misc]


class BadRequest(_ToolkitError):  # type: ignore[valid-type,misc]
    """A request that breaks the contract; the toolkit answers it with this status and message."""

    def __init__(self, message: str, status_code: int = 400):
        Exception.__init__(self, message)
        self.status_code = status_code
        self.message = message
        self.phrase = message

    def __str__(self) -> str:
        return self.message


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def normalise(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    if rows.ndim == 1:
        rows = rows[None, :]
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.maximum(norms, 1e-12)


@dataclass
class Request:
    task: str
    texts: list[str] = field(default_factory=list)
    images: list[Image.Image] = field(default_factory=list)
    query: str | None = None

    def __len__(self) -> int:
        return len(self.images) if self.task == "embed_image" else len(self.texts)


class Models:
    """The loaded models and their dimensions; what model_fn returns and predict_fn receives."""

    def __init__(
        self,
        model_dir: str | Path,
        *,
        text_model: str = DEFAULT_TEXT_MODEL,
        image_model: str = DEFAULT_IMAGE_MODEL,
        image_text_model: str = DEFAULT_IMAGE_TEXT_MODEL,
        rerank_model: str | None = DEFAULT_RERANK_MODEL,
        text_max_tokens: int = 256,
        threads: int | None = None,
        cache_dir: str | Path | None = None,
    ):
        from fastembed import ImageEmbedding, TextEmbedding
        from fastembed.rerank.cross_encoder import TextCrossEncoder

        self.model_dir = Path(model_dir)
        self.cache_dir = Path(cache_dir or Path(tempfile.gettempdir()) / "mmrag-fastembed")
        self.threads = threads
        self.text_name = text_model
        self.clip_name = f"{image_model} + {image_text_model}"  # as FastEmbedClip.name
        self.rerank_name = rerank_model or None

        self.text = TextEmbedding(text_model, **self._kwargs(text_model))
        # the local adapter reads at most this many word pieces; both sides must cut at the same place
        tokenizer = getattr(getattr(self.text, "model", None), "tokenizer", None)
        if tokenizer is not None and text_max_tokens:
            tokenizer.enable_truncation(max_length=text_max_tokens)
        self.clip_image = ImageEmbedding(image_model, **self._kwargs(image_model))
        self.clip_text = TextEmbedding(image_text_model, **self._kwargs(image_text_model))
        self.reranker = TextCrossEncoder(rerank_model, **self._kwargs(rerank_model)) if rerank_model else None

        # one pass through every model: learns the dimensions and warms ONNX Runtime up before the first request
        self.text_dim = int(self.embed_text(["dimension probe"]).shape[1])
        self.clip_dim = int(self.embed_clip_text(["probe"]).shape[1])
        image_dim = int(self.embed_images([Image.new("RGB", (32, 32), (128, 128, 128))]).shape[1])
        if image_dim != self.clip_dim:
            raise ValueError(f"{image_model} ({image_dim}-d) and {image_text_model} ({self.clip_dim}-d) differ")
        if self.reranker is not None:
            self.rerank(["probe"], "probe")
        log.info(
            "mmrag models ready: text %s (%d-d), clip %s (%d-d), rerank %s",
            self.text_name,
            self.text_dim,
            self.clip_name,
            self.clip_dim,
            self.rerank_name,
        )

    @classmethod
    def from_env(cls, model_dir: str | Path) -> Models:
        threads = _env_int("MMRAG_MODEL_THREADS", 0)
        return cls(
            os.environ.get("MMRAG_MODEL_DIR") or model_dir,
            text_model=os.environ.get("MMRAG_TEXT_MODEL") or DEFAULT_TEXT_MODEL,
            image_model=os.environ.get("MMRAG_IMAGE_MODEL") or DEFAULT_IMAGE_MODEL,
            image_text_model=os.environ.get("MMRAG_IMAGE_TEXT_MODEL") or DEFAULT_IMAGE_TEXT_MODEL,
            rerank_model=os.environ.get("MMRAG_RERANK_MODEL", DEFAULT_RERANK_MODEL).strip() or None,
            text_max_tokens=_env_int("MMRAG_TEXT_MAX_TOKENS", 256),
            threads=threads or None,
            cache_dir=os.environ.get("MMRAG_CACHE_DIR") or None,
        )

    def _kwargs(self, name: str) -> dict[str, Any]:
        """fastembed arguments, as mmrag.adapters.local.models.ModelSource builds them."""
        kw: dict[str, Any] = {"cache_dir": str(self.cache_dir)}
        if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes"):
            kw["local_files_only"] = True
        if self.threads:
            kw["threads"] = self.threads
        if (self.model_dir / name).is_dir():
            kw["specific_model_path"] = str(self.model_dir / name)
        return kw

    # The same calls, batch sizes and order as FastEmbedTextEmbedder / FastEmbedClip / FastEmbedReranker.
    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, getattr(self, "text_dim", 0)), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        rows = list(self.text.passage_embed([texts[i] for i in order], batch_size=32))
        out = np.empty((len(texts), len(rows[0])), dtype=np.float32)
        out[order] = np.stack(rows)
        return normalise(out)

    def embed_query(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.text_dim), dtype=np.float32)
        return normalise(np.stack(list(self.text.query_embed(list(texts)))))

    def embed_clip_text(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.clip_dim), dtype=np.float32)
        return normalise(np.stack(list(self.clip_text.embed(list(texts), batch_size=32))))

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.clip_dim), dtype=np.float32)
        rows = list(self.clip_image.embed([im.convert("RGB") for im in images], batch_size=16))
        return normalise(np.stack(rows))

    def rerank(self, documents: Sequence[str], query: str) -> list[float]:
        if self.reranker is None:
            raise BadRequest("this endpoint hosts no reranker (MMRAG_RERANK_MODEL is empty)")
        if not documents:
            return []
        return [float(s) for s in self.reranker.rerank(query, list(documents), batch_size=32)]


# ---------------------------------------------------------------------------------------------- request decoding
def _decode_image(value: Any, position: int, max_pixels: int) -> Image.Image:
    if not isinstance(value, str):
        raise BadRequest(f"inputs[{position}]: expected a base64 string, got {type(value).__name__}")
    data = value.strip()
    if data.startswith("data:"):  # tolerate data URLs: data:image/png;base64,....
        data = data.partition(",")[2]
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"inputs[{position}]: not valid base64 ({exc})") from exc
    try:
        img = Image.open(io.BytesIO(raw))
    except Exception as exc:
        raise BadRequest(f"inputs[{position}]: not a readable image") from exc
    if img.format not in IMAGE_FORMATS:
        raise BadRequest(f"inputs[{position}]: {img.format} images are not accepted; send PNG or JPEG")
    # checked from the header, before the pixels are decompressed
    if img.width * img.height > max_pixels:
        raise BadRequest(f"inputs[{position}]: {img.width}x{img.height} is over the {max_pixels}-pixel limit", 413)
    try:
        img.load()
    except Exception as exc:
        raise BadRequest(f"inputs[{position}]: the image data is damaged ({exc})") from exc
    return img


def parse_request(payload: Any) -> Request:
    """Validate a decoded JSON request against the contract."""
    if not isinstance(payload, dict):
        raise BadRequest("the request must be a JSON object")
    task = payload.get("task")
    if task not in TASKS:
        raise BadRequest(f"task must be one of {', '.join(TASKS)}; got {task!r}")
    inputs = payload.get("inputs")
    if not isinstance(inputs, list):
        raise BadRequest("inputs must be a JSON array")
    limit = _env_int("MMRAG_MAX_INPUTS", 256)
    if len(inputs) > limit:
        raise BadRequest(f"at most {limit} inputs per request; got {len(inputs)}", 413)
    if task == "embed_image":
        max_pixels = _env_int("MMRAG_MAX_IMAGE_PIXELS", 40_000_000)
        return Request(task, images=[_decode_image(v, i, max_pixels) for i, v in enumerate(inputs)])
    for i, v in enumerate(inputs):
        if not isinstance(v, str):
            raise BadRequest(f"inputs[{i}]: expected a string, got {type(v).__name__}")
    query = None
    if task == "rerank":
        query = payload.get("query")
        if not isinstance(query, str):
            raise BadRequest("rerank needs a query string")
    elif "query" in payload:
        raise BadRequest(f"query is only for rerank, not {task}")
    return Request(task, texts=list(inputs), query=query)


# ------------------------------------------------------------------------------ the SageMaker handler functions
def model_fn(model_dir: str) -> Models:
    """Load every model once per worker. MMRAG_MODEL_DIR, when set, wins over the directory SageMaker passes."""
    return Models.from_env(model_dir)


def input_fn(request_body: str | bytes | bytearray, request_content_type: str | None) -> Request:
    content_type = (request_content_type or JSON).split(";")[0].strip().lower()
    if content_type != JSON:
        raise BadRequest(f"send {JSON}; got {request_content_type}", 415)
    if isinstance(request_body, (bytes, bytearray)):
        try:
            request_body = bytes(request_body).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadRequest("the request body is not UTF-8") from exc
    try:
        payload = json.loads(request_body)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not JSON: {exc}") from exc
    return parse_request(payload)


def predict_fn(data: Request, model: Models) -> dict[str, Any]:
    if data.task == "rerank":
        return {"scores": model.rerank(data.texts, data.query or ""), "model": model.rerank_name}
    if data.task == "embed_text":
        vectors, dim, name = model.embed_text(data.texts), model.text_dim, model.text_name
    elif data.task == "embed_query":
        vectors, dim, name = model.embed_query(data.texts), model.text_dim, model.text_name
    elif data.task == "embed_clip_text":
        vectors, dim, name = model.embed_clip_text(data.texts), model.clip_dim, model.clip_name
    else:
        vectors, dim, name = model.embed_images(data.images), model.clip_dim, model.clip_name
    # float32 values widened to Python floats: the JSON text round-trips to the same float32 on the client
    return {"vectors": vectors.astype(np.float32).tolist(), "dim": dim, "model": name}


def output_fn(prediction: dict[str, Any], accept: str | None) -> tuple[str, str]:
    wanted = (accept or JSON).split(";")[0].strip().lower()
    if wanted not in (JSON, "*/*", "application/*"):
        raise BadRequest(f"the endpoint answers {JSON} only; Accept was {accept}", 406)
    return json.dumps(prediction, separators=(",", ":")), JSON
