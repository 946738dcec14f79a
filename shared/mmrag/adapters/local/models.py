"""ONNX models on the CPU through fastembed: the text encoder, the CLIP pair and the cross-encoder reranker.

A model is looked up first in MMRAG_MODEL_DIR/<model name> (files laid out as fastembed expects); otherwise fastembed
downloads it into <data dir>/models. Models named in MMRAG_INT8_MODELS run from an int8 copy made once beside the
cache (mmrag.adapters.local.int8). Models load lazily and once; loading is thread-safe.

Every ONNX session runs without spin-waiting: on a shared 2-core machine a waiting ONNX thread that spins takes the core
the other request (or the ingest worker) needs; measured on multimodal search at 100k chunks under load, p50 fell
from 230-284 ms to 67-74 ms.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)


def normalise(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    if rows.ndim == 1:
        rows = rows[None, :]
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.maximum(norms, 1e-12)


class ModelSource:
    def __init__(
        self,
        model_dir: Path | None,
        cache_dir: Path,
        threads: int | None = None,
        int8: Sequence[str] = (),
        int8_cache: Path | None = None,
    ):
        self.int8_cache = Path(int8_cache) if int8_cache else None  # default: beside the model cache
        self.model_dir = Path(model_dir) if model_dir else None
        self.cache_dir = Path(cache_dir)
        self.threads = threads or os.cpu_count() or 1
        self.int8 = frozenset(int8)

    def build(self, cls: Callable[..., Any], name: str, threads: int | None = None) -> Any:
        """A fastembed model object (TextEmbedding, ImageEmbedding, TextCrossEncoder) for `name`, int8 if asked,
        running on `threads` cores (default: all this source may use)."""
        threads = threads or self.threads
        return quiet_sessions(self._build(cls, name, threads), threads)

    def _build(self, cls: Callable[..., Any], name: str, threads: int) -> Any:
        kwargs = {**self.kwargs(name), "threads": threads}
        if name not in self.int8:
            return cls(name, **kwargs)
        from mmrag.adapters.local.int8 import int8_copy

        # resolve (or download) the fp32 files without opening them, then open the int8 copy made from them
        inner = cls(name, lazy_load=True, **kwargs).model
        try:
            folder = int8_copy(
                Path(inner._model_dir), inner.model_description.model_file, self.int8_cache or self.cache_dir
            )
        except Exception:  # an int8 copy is an optimisation: without one the fp32 model serves, only slower
            log.warning("could not make an int8 copy of %s; using fp32", name, exc_info=True)
            return cls(name, **kwargs)
        return cls(name, **{**kwargs, "specific_model_path": str(folder)})

    def kwargs(self, name: str) -> dict[str, Any]:
        kw: dict[str, Any] = {"cache_dir": str(self.cache_dir)}
        if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes"):
            kw["local_files_only"] = True  # fail at once instead of retrying downloads with back-off sleeps
        if self.threads:
            kw["threads"] = self.threads
        if self.model_dir and (self.model_dir / name).is_dir():
            kw["specific_model_path"] = str(self.model_dir / name)
        return kw


def session_options(threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1  # these graphs are one chain of operators: a second pool only competes for cores
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return opts


def quiet_sessions(model: Any, threads: int) -> Any:
    """`model` (a fastembed wrapper) with its ONNX session reopened under `session_options` — fastembed exposes
    neither the spinning switches nor inter-op threads, and its loader also sets up tokenizers we keep."""
    import onnxruntime as ort

    inner = getattr(model, "model", None)
    session = getattr(inner, "model", None)
    path = getattr(session, "_model_path", None)
    if not isinstance(session, ort.InferenceSession) or not path:
        return model
    inner.model = ort.InferenceSession(path, sess_options=session_options(threads), providers=session.get_providers())
    return model


class _Lazy:
    def __init__(self, loader: Callable[[], Any]):
        self._loader = loader
        self._obj: Any = None
        self._error: str | None = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        if self._obj is None:
            with self._lock:
                if self._obj is None:
                    try:
                        self._obj = self._loader()
                    except Exception as exc:
                        self._error = f"{type(exc).__name__}: {exc}"
                        raise
        return self._obj

    @property
    def state(self) -> str:
        if self._obj is not None:
            return "loaded"
        return "error" if self._error else "not loaded"


class _Replicas:
    """`count` copies of a model, each on its own share of the cores, and the threads that run work on them side by
    side. On 2 cores two single-threaded copies each taking half of the work ran ~1.2x faster than one session with
    2 intra-op threads: with batches this small a second intra-op thread is idle for much of each operator."""

    def __init__(self, load: Callable[[int], Any], cores: int, count: int | None = None, name: str = "model"):
        self.count = max(1, count or min(cores, 4))
        threads = max(1, cores // self.count)
        self.copies = [_Lazy(lambda: load(threads)) for _ in range(self.count)]
        self._name = name
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @property
    def first(self) -> _Lazy:
        return self.copies[0]

    def map(self, fn: Callable[[Any, Any], Any], parts: Sequence[Any]) -> list[Any]:
        """fn(model, part) for every part, part k on copy k mod count; results in order."""
        if len(parts) <= 1 or self.count == 1:
            return [fn(self.copies[0].get(), part) for part in parts]
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.count, thread_name_prefix=self._name)
        return list(self._pool.map(lambda k: fn(self.copies[k % self.count].get(), parts[k]), range(len(parts))))

    def load(self) -> None:
        for copy in self.copies:
            copy.get()


class FastEmbedTextEmbedder:
    """The text encoder. Passages go through single-threaded copies of the model side by side (`_Replicas`), one
    batch of similar length each."""

    def __init__(
        self,
        name: str,
        source: ModelSource,
        batch_size: int = 16,
        max_tokens: int = 256,
        replicas: int | None = None,
    ):
        from fastembed import TextEmbedding

        def load(threads: int):
            model = source.build(TextEmbedding, name, threads=threads)
            # Sentence encoders of the MiniLM/mpnet family are trained on at most 256 word pieces; beyond that their
            # vectors get worse while the cost grows quadratically. BM25 still sees the whole chunk.
            tokenizer = getattr(getattr(model, "model", None), "tokenizer", None)
            if tokenizer is not None and max_tokens:
                tokenizer.enable_truncation(max_length=max_tokens)
            return model

        self.name = name
        self.batch_size = batch_size
        self._replicas = _Replicas(load, source.threads, replicas, "text-embed")
        self._model = self._replicas.first  # queries and health
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.embed_texts(["dimension probe"]).shape[1])
        return self._dim

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        # batches of similar length waste less time on padding; the original order is restored afterwards
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        batches = [[texts[i] for i in order[k : k + self.batch_size]] for k in range(0, len(order), self.batch_size)]
        parts = self._replicas.map(lambda model, part: list(model.passage_embed(part, batch_size=len(part))), batches)
        rows = [row for part in parts for row in part]
        out = np.empty((len(texts), len(rows[0])), dtype=np.float32)
        out[order] = np.stack(rows)
        return normalise(out)

    def embed_query(self, text: str) -> np.ndarray:
        return normalise(np.stack(list(self._model.get().query_embed([text]))))[0]

    def health(self) -> dict[str, Any]:
        return {"model": self.name, "state": self._model.state}

    def load(self) -> None:
        self._replicas.load()


class FastEmbedClip:
    def __init__(self, image_model: str, text_model: str, source: ModelSource, batch_size: int = 16):
        from fastembed import ImageEmbedding, TextEmbedding

        self.name = f"{image_model} + {text_model}"
        self.batch_size = batch_size
        self._image = _Lazy(lambda: source.build(ImageEmbedding, image_model))
        self._text = _Lazy(lambda: source.build(TextEmbedding, text_model))
        self._names = (image_model, text_model)

    @property
    def dim(self) -> int:
        return int(self.embed_texts(["probe"]).shape[1])

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        rows = list(self._image.get().embed([im.convert("RGB") for im in images], batch_size=self.batch_size))
        return normalise(np.stack(rows))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        # CLIP's text tower reads 77 tokens; longer text is truncated by its tokenizer
        rows = list(self._text.get().embed(list(texts), batch_size=self.batch_size * 2))
        return normalise(np.stack(rows))

    def health(self) -> dict[str, Any]:
        return {
            "image_model": self._names[0],
            "image_state": self._image.state,
            "text_model": self._names[1],
            "text_state": self._text.state,
        }

    def load(self) -> None:
        self._image.get()
        self._text.get()


class FastEmbedReranker:
    # the search core hands over a window of the candidate (mmrag.text.passages); this only stops a pathological one
    MAX_WORD_PIECES = 256

    def __init__(self, name: str, source: ModelSource, replicas: int | None = None):
        from fastembed.rerank.cross_encoder import TextCrossEncoder

        def load(threads: int):
            model = source.build(TextCrossEncoder, name, threads=threads)
            tokenizer = getattr(getattr(model, "model", None), "tokenizer", None)
            if tokenizer is not None:
                tokenizer.enable_truncation(max_length=self.MAX_WORD_PIECES, strategy="longest_first")
            return model

        self.name = name
        self._replicas = _Replicas(load, source.threads, replicas, "rerank")
        self._model = self._replicas.first

    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        docs = list(documents)
        # one share of the candidates per model copy (each padded to its own longest window)
        share = max(4, -(-len(docs) // self._replicas.count))
        parts = [docs[i : i + share] for i in range(0, len(docs), share)]
        scored = self._replicas.map(lambda model, part: list(model.rerank(query, part, batch_size=len(part))), parts)
        return [float(s) for part in scored for s in part]

    def health(self) -> dict[str, Any]:
        return {"model": self.name, "state": self._model.state}

    def load(self) -> None:
        self._replicas.load()
