"""ONNX models on the CPU through fastembed: the text encoder, the CLIP pair and the cross-encoder reranker.

Each is built by a ModelSource (mmrag.adapters.local.model_source: where the files come from, int8 copies, sessions
without spin-waiting), loads lazily and once (thread-safe), and runs its work on one single-threaded copy per core.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from PIL import Image

from mmrag.adapters.local.model_source import ModelSource


def normalise(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    if rows.ndim == 1:
        rows = rows[None, :]
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.maximum(norms, 1e-12)



class _Lazy:
    """`loader()` once, on first use. A caller that finds another thread loading waits for it, asking `busy()`
    every 0.2 s, which raises when waiting makes no sense (the model is being downloaded: minutes)."""

    def __init__(self, loader: Callable[[], Any], busy: Callable[[], None] = lambda: None):
        self._loader = loader
        self._busy = busy
        self._obj: Any = None
        self._error: str | None = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        if self._obj is not None:
            return self._obj
        while not self._lock.acquire(timeout=0.2):
            if self._obj is not None:
                return self._obj
            self._busy()
        try:
            if self._obj is None:
                try:
                    self._obj = self._loader()
                except Exception as exc:
                    self._error = f"{type(exc).__name__}: {exc}"
                    raise
        finally:
            self._lock.release()
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

    def __init__(
        self,
        load: Callable[[int], Any],
        cores: int,
        count: int | None = None,
        name: str = "model",
        busy: Callable[[], None] = lambda: None,
    ):
        self.count = max(1, count or min(cores, 4))
        threads = max(1, cores // self.count)
        self.copies = [_Lazy(lambda: load(threads), busy) for _ in range(self.count)]
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
        batch_size: int = 8,  # measured on 2 cores: 8 < 16 < 32 < one 2-thread session at 64 (padding, cache)
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
        self._source = source
        self._replicas = _Replicas(
            load, source.threads, replicas, "text-embed", lambda: source.raise_if_downloading(name)
        )
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
        return _model_health(self._source, self.name, self._model.state)

    def load(self) -> None:
        self._replicas.load()


def _model_health(source: ModelSource, name: str, state: str) -> dict[str, Any]:
    out = {"model": name, "state": "not loaded" if state == "error" else state}  # error only while it holds
    if state != "loaded" and name in source.downloads:
        out["state"] = "downloading"
    problem = source.problem(name)
    if problem and state != "loaded":
        out.update({"state": "error", "error": problem})
    return out


class FastEmbedClip:
    def __init__(self, image_model: str, text_model: str, source: ModelSource, batch_size: int = 16):
        from fastembed import ImageEmbedding, TextEmbedding

        self.name = f"{image_model} + {text_model}"
        self.batch_size = batch_size
        self._image = _Lazy(
            lambda: source.build(ImageEmbedding, image_model), lambda: source.raise_if_downloading(image_model)
        )
        self._text = _Lazy(
            lambda: source.build(TextEmbedding, text_model), lambda: source.raise_if_downloading(text_model)
        )
        self._names = (image_model, text_model)
        self._source = source

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
        image = _model_health(self._source, self._names[0], self._image.state)
        text = _model_health(self._source, self._names[1], self._text.state)
        out = {"image_model": image["model"], "image_state": image["state"]}
        out.update({"text_model": text["model"], "text_state": text["state"]})
        out.update({f"{side}_error": h["error"] for side, h in (("image", image), ("text", text)) if "error" in h})
        return out

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
        self._source = source
        self._replicas = _Replicas(load, source.threads, replicas, "rerank", lambda: source.raise_if_downloading(name))
        self._model = self._replicas.first

    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        docs = list(documents)
        # one share of the candidates per model copy (each padded to its own longest window)
        share = max(4, -(-len(docs) // self._replicas.count))
        parts = [docs[i : i + share] for i in range(0, len(docs), share)]
        scored = self._replicas.map(lambda model, part: list(model.rerank(query, part, batch_size=len(part))), parts)
        return [float(s) for part in scored for s in part]

    def health(self) -> dict[str, Any]:
        return _model_health(self._source, self.name, self._model.state)

    def load(self) -> None:
        self._replicas.load()
