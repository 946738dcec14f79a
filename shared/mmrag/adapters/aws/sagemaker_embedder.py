"""The models on AWS: one SageMaker endpoint (infra/sagemaker) hosts the text encoder, the CLIP pair and the reranker.

`SageMakerEmbedder(endpoint)` gives `.text` (a TextEmbedder), `.clip` (a ClipEmbedder) and `.reranker` (score/load),
the twins of FastEmbedTextEmbedder, FastEmbedClip and FastEmbedReranker: same vectors, same raw reranker logits.
They speak the JSON contract of infra/sagemaker/README.md through sagemaker-runtime InvokeEndpoint, in batches that
stay under the serverless payload limit (4 MB). Every failure to get an answer becomes ServiceUnavailable.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator, Sequence
from typing import Any

import boto3
import numpy as np
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError
from PIL import Image

from mmrag.adapters.local.models import normalise
from mmrag.errors import ServiceUnavailable

CONTENT_TYPE = "application/json"
# Serverless endpoints take at most 4 MB per request (real-time ones 6 MB); a request body never goes over this.
MAX_PAYLOAD_BYTES = 4_000_000
# Far more than any of the models reads (256 / 77 / 512 word pieces), so cutting here never changes a vector, and one
# text always fits in a request.
MAX_TEXT_CHARS = 32_768
# CLIP's preprocessing starts by shrinking the shorter side to 224 px with bicubic resampling; doing that step here,
# exactly as fastembed does it, sends a fraction of the bytes and leaves the endpoint's own resize a no-op, so the
# vectors equal the local adapter's.
CLIP_IMAGE_EDGE = 224

_THROTTLED = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"})
_SAGEMAKER_DOWN = frozenset({"ServiceUnavailable", "InternalFailure", "InternalDependencyException"})


def default_client() -> Any:
    # InvokeEndpoint waits up to 60 s for the container; a serverless cold start can take most of that
    return boto3.client(
        "sagemaker-runtime", config=Config(read_timeout=70, retries={"mode": "standard", "max_attempts": 3})
    )


def _failure(endpoint: str, exc: Exception) -> ServiceUnavailable:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code, message = error.get("Code", ""), error.get("Message", "")
        if code == "ModelError":
            status = exc.response.get("OriginalStatusCode")
            original = exc.response.get("OriginalMessage") or message
            reason = f"the model container failed (HTTP {status}): {original}" if status else f"model error: {original}"
        elif code in _THROTTLED:
            reason = "the endpoint is throttling requests; retry later"
        elif code == "ValidationError" and ("not found" in message.lower() or "could not find" in message.lower()):
            reason = "the endpoint does not exist in this account and region (is it deployed? see infra/sagemaker)"
        elif code == "ModelNotReadyException":
            reason = "the endpoint's model is not ready yet; retry later"
        elif code in _SAGEMAKER_DOWN:
            reason = "SageMaker Runtime is unavailable; retry later"
        else:
            reason = f"{code or 'error'}: {message}"
        detail = f"{code}: {message}" if code else str(exc)
    else:
        reason = f"cannot reach the endpoint ({type(exc).__name__})"
        detail = str(exc)
    return ServiceUnavailable(f"SageMaker endpoint {endpoint!r}: {reason}", detail)


class _Invoker:
    """One InvokeEndpoint call per request dict; remembers what the endpoint says about its models."""

    def __init__(self, endpoint_name: str, client: Any, max_payload_bytes: int):
        self.endpoint_name = endpoint_name
        self.client = client
        self.max_payload_bytes = max_payload_bytes
        self.models: dict[str, str] = {}  # space ("text" | "clip" | "rerank") -> model name
        self.dims: dict[str, int] = {}
        self.state: dict[str, str] = {}

    def body(self, task: str, inputs: list[Any], query: str | None = None) -> bytes:
        payload: dict[str, Any] = {"task": task, "inputs": inputs}
        if query is not None:
            payload["query"] = query
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def call(self, space: str, body: bytes) -> dict[str, Any]:
        try:
            resp = self.client.invoke_endpoint(
                EndpointName=self.endpoint_name, ContentType=CONTENT_TYPE, Accept=CONTENT_TYPE, Body=body
            )
            raw = resp["Body"].read()
        except ParamValidationError:
            raise  # a bug in the call, not an outage
        except (ClientError, BotoCoreError) as exc:
            self.state[space] = "error"
            raise _failure(self.endpoint_name, exc) from exc
        try:
            answer = json.loads(raw)
            if not isinstance(answer, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            self.state[space] = "error"
            raise ServiceUnavailable(
                f"SageMaker endpoint {self.endpoint_name!r}: unexpected response (not the mmrag JSON contract)",
                f"{exc}: {raw[:200]!r}",
            ) from exc
        return answer

    def bad_answer(self, space: str, why: str) -> ServiceUnavailable:
        self.state[space] = "error"
        return ServiceUnavailable(f"SageMaker endpoint {self.endpoint_name!r}: unexpected response ({why})")

    def batches(self, encoded: list[str], batch_size: int, task: str, query: str | None = None) -> Iterator[int]:
        """End offsets of consecutive batches: at most batch_size items and max_payload_bytes of body each."""
        overhead = len(self.body(task, [], query))
        size, count = overhead, 0
        for i, item in enumerate(encoded):
            item_size = len(json.dumps(item, ensure_ascii=False).encode("utf-8")) + 1
            if count and (count >= batch_size or size + item_size > self.max_payload_bytes):
                yield i
                size, count = overhead, 0
            if overhead + item_size > self.max_payload_bytes:
                raise ServiceUnavailable(
                    f"SageMaker endpoint {self.endpoint_name!r}: input {i} alone is over the "
                    f"{self.max_payload_bytes}-byte request limit"
                )
            size += item_size
            count += 1
        if count:
            yield len(encoded)

    def embed(self, space: str, task: str, inputs: list[str], batch_size: int) -> np.ndarray:
        parts: list[np.ndarray] = []
        start = 0
        for end in self.batches(inputs, batch_size, task):
            answer = self.call(space, self.body(task, inputs[start:end]))
            vectors, dim = answer.get("vectors"), answer.get("dim")
            if not isinstance(vectors, list) or len(vectors) != end - start:
                raise self.bad_answer(space, f"expected {end - start} vectors for {task}")
            try:
                rows = np.asarray(vectors, dtype=np.float32).reshape(end - start, -1)
            except ValueError as exc:
                raise self.bad_answer(space, f"vectors of {task} are not a matrix") from exc
            if isinstance(dim, int) and rows.shape[1] != dim:
                raise self.bad_answer(space, f"{rows.shape[1]}-d vectors but dim {dim}")
            if space in self.dims and rows.shape[1] != self.dims[space]:
                raise self.bad_answer(space, f"{rows.shape[1]}-d vectors, earlier {self.dims[space]}-d")
            self.dims[space] = rows.shape[1]
            if isinstance(answer.get("model"), str):
                self.models[space] = answer["model"]
            self.state[space] = "loaded"
            parts.append(rows)
            start = end
        return normalise(np.concatenate(parts))

    def probe(self, space: str) -> None:
        if space == "rerank":
            answer = self.call(space, self.body("rerank", ["probe"], "probe"))
            if isinstance(answer.get("model"), str):
                self.models[space] = answer["model"]
            self.state[space] = "loaded"
        else:
            self.embed(space, "embed_text" if space == "text" else "embed_clip_text", ["dimension probe"], 1)


def _cut(texts: Sequence[str]) -> list[str]:
    return [t[:MAX_TEXT_CHARS] for t in texts]


class _Space:
    """What the three model objects share: name and dim learned from the endpoint, health, load."""

    space = ""

    def __init__(self, invoker: _Invoker):
        self._invoker = invoker

    @property
    def endpoint_name(self) -> str:
        return self._invoker.endpoint_name

    @property
    def name(self) -> str:
        """The model name the endpoint reports (one probe call the first time, if nothing was asked yet)."""
        if self.space not in self._invoker.models:
            self._invoker.probe(self.space)
        return self._invoker.models.get(self.space, f"sagemaker:{self.endpoint_name}")

    @property
    def state(self) -> str:
        return self._invoker.state.get(self.space, "not loaded")

    def load(self) -> None:
        """Wake the endpoint (a serverless one may be cold) and learn name and dimension."""
        self._invoker.probe(self.space)


class SageMakerTextEmbedder(_Space):
    space = "text"

    def __init__(self, invoker: _Invoker, batch_size: int = 32):
        super().__init__(invoker)
        self.batch_size = batch_size

    @property
    def dim(self) -> int:
        if self.space not in self._invoker.dims:
            self._invoker.probe(self.space)
        return self._invoker.dims[self.space]

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._invoker.dims.get(self.space, 0)), dtype=np.float32)
        return self._invoker.embed(self.space, "embed_text", _cut(texts), self.batch_size)

    def embed_query(self, text: str) -> np.ndarray:
        return self._invoker.embed(self.space, "embed_query", _cut([text]), 1)[0]

    def health(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint_name, "model": self._invoker.models.get(self.space), "state": self.state}


def clip_image_bytes(image: Image.Image, edge: int | None = CLIP_IMAGE_EDGE, max_bytes: int | None = None) -> bytes:
    """PNG bytes of an image as the endpoint should see it: RGB, the shorter side shrunk to `edge` (never enlarged)
    exactly like fastembed's CLIP resize, and, only if still over `max_bytes`, halved until it fits."""
    img = image.convert("RGB")
    if edge and min(img.size) > edge:
        w, h = img.size
        short, long = min(w, h), max(w, h)
        new_long = int(edge * long / short)  # fastembed's arithmetic, so its own resize then keeps this size
        img = img.resize((edge, new_long) if w <= h else (new_long, edge), Image.Resampling.BICUBIC)
    while True:
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        data = buf.getvalue()
        # base64 grows the bytes by 4/3; the JSON quotes and comma are noise
        if max_bytes is None or len(data) * 4 // 3 + 8 <= max_bytes or min(img.size) <= 16:
            return data
        img = img.resize((max(1, img.width // 2), max(1, img.height // 2)), Image.Resampling.BICUBIC)


class SageMakerClipEmbedder(_Space):
    space = "clip"

    def __init__(
        self,
        invoker: _Invoker,
        batch_size: int = 32,
        image_batch_size: int = 16,
        image_edge: int | None = CLIP_IMAGE_EDGE,
    ):
        super().__init__(invoker)
        self.batch_size = batch_size
        self.image_batch_size = image_batch_size
        self.image_edge = image_edge

    @property
    def dim(self) -> int:
        if self.space not in self._invoker.dims:
            self._invoker.probe(self.space)
        return self._invoker.dims[self.space]

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self._invoker.dims.get(self.space, 0)), dtype=np.float32)
        budget = self._invoker.max_payload_bytes - len(self._invoker.body("embed_image", []))
        encoded = [base64.b64encode(clip_image_bytes(im, self.image_edge, budget)).decode("ascii") for im in images]
        return self._invoker.embed(self.space, "embed_image", encoded, self.image_batch_size)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._invoker.dims.get(self.space, 0)), dtype=np.float32)
        return self._invoker.embed(self.space, "embed_clip_text", _cut(texts), self.batch_size)

    def health(self) -> dict[str, Any]:
        state = self.state
        return {
            "endpoint": self.endpoint_name,
            "model": self._invoker.models.get(self.space),
            "image_state": state,
            "text_state": state,
        }


class SageMakerReranker(_Space):
    space = "rerank"

    def __init__(self, invoker: _Invoker, batch_size: int = 32):
        super().__init__(invoker)
        self.batch_size = batch_size

    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        """Raw cross-encoder logits, one per document, in order (the search service applies the sigmoid)."""
        docs = _cut(documents)
        query = query[:MAX_TEXT_CHARS]
        scores: list[float] = []
        start = 0
        for end in self._invoker.batches(docs, self.batch_size, "rerank", query):
            answer = self._invoker.call(self.space, self._invoker.body("rerank", docs[start:end], query))
            got = answer.get("scores")
            if not isinstance(got, list) or len(got) != end - start:
                raise self._invoker.bad_answer(self.space, f"expected {end - start} scores")
            try:
                scores.extend(float(s) for s in got)
            except (TypeError, ValueError) as exc:
                raise self._invoker.bad_answer(self.space, "scores are not numbers") from exc
            if isinstance(answer.get("model"), str):
                self._invoker.models[self.space] = answer["model"]
            self._invoker.state[self.space] = "loaded"
            start = end
        return scores

    def health(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint_name, "model": self._invoker.models.get(self.space), "state": self.state}


class SageMakerEmbedder:
    """The three model objects of one endpoint, sharing one client."""

    def __init__(
        self,
        endpoint_name: str,
        client: Any = None,
        batch_size: int = 32,
        *,
        image_batch_size: int = 16,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
        clip_image_edge: int | None = CLIP_IMAGE_EDGE,
    ):
        if batch_size < 1 or image_batch_size < 1:
            raise ValueError("batch sizes must be at least 1")
        self.endpoint_name = endpoint_name
        self.client = client or default_client()
        self._invoker = _Invoker(endpoint_name, self.client, max_payload_bytes)
        self.text = SageMakerTextEmbedder(self._invoker, batch_size)
        self.clip = SageMakerClipEmbedder(self._invoker, batch_size, image_batch_size, clip_image_edge)
        self.reranker = SageMakerReranker(self._invoker, batch_size)

    def load(self) -> None:
        self.text.load()
        self.clip.load()

    def health(self) -> dict[str, Any]:
        return {"text": self.text.health(), "clip": self.clip.health(), "rerank": self.reranker.health()}
