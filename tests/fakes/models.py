"""Deterministic stand-ins for the models: text and CLIP embedders that hash words into vectors (texts that share
words have a high cosine), a cross-encoder whose score is term overlap, an OCR engine that reads what it is told, and
an answer provider that replies what it is told. No model file, no ONNX, microseconds per call.

Every fake records its calls (`calls`) and raises `fail` when it is set, so that a test can make a model unavailable
(`ServiceUnavailable`), broken (`RuntimeError`) or crash the process (a `BaseException`) at the step it chooses.
"""

from __future__ import annotations

import colorsys
import hashlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from PIL import Image

from mmrag.core.generation import GenRequest, GenResult
from mmrag.core.search import Rerankers
from mmrag.text.analyzer import tokens


def _hashed(terms: Sequence[str], dim: int, salt: str) -> np.ndarray:
    """Each term adds ±1 at a position chosen by a stable hash of the term; the sum is L2-normalised."""
    v = np.zeros(dim, dtype=np.float32)
    for term in terms:
        digest = hashlib.blake2b(f"{salt}:{term}".encode(), digest_size=8).digest()
        n = int.from_bytes(digest, "little")
        v[n % dim] += 1.0 if (n >> 32) & 1 else -1.0
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


class _Recording:
    fail: BaseException | None = None

    def _called(self, method: str, n: int) -> None:
        self.calls.append((method, n))
        if self.fail is not None:
            raise self.fail


class HashingTextEmbedder(_Recording):
    """The text space. `synonyms` ({"automobile": "car"}) gives a paraphrase the same vector as its word, so that a
    test can have a match that only the dense channel sees."""

    def __init__(self, dim: int = 512, synonyms: dict[str, str] | None = None, name: str = "fake/hashing-text"):
        self.name, self.dim = name, dim
        self.synonyms = {tokens(a)[0]: tokens(b)[0] for a, b in (synonyms or {}).items()}
        self.calls: list[tuple[str, int]] = []
        self.fail = None

    def vector(self, text: str) -> np.ndarray:
        return _hashed([self.synonyms.get(t, t) for t in tokens(text)], self.dim, "text")

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        self._called("embed_texts", len(texts))
        return np.stack([self.vector(t) for t in texts]) if texts else np.zeros((0, self.dim), dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        self._called("embed_query", 1)
        return self.vector(text)


# ------------------------------------------------------------------ pictures
def image_key(img: Image.Image) -> str:
    """A picture's identity by its pixels (the same PNG decoded twice has the same key)."""
    rgb = img.convert("RGB")
    return hashlib.sha256(repr(rgb.size).encode() + rgb.tobytes()).hexdigest()[:16]


def image_key_of(data: bytes) -> str:
    import io

    with Image.open(io.BytesIO(data)) as img:
        return image_key(img)


def colour_name(img: Image.Image) -> str:
    """The colour of what is drawn on a picture: the mean of its non-white pixels, named by hue (grey and black ink
    are "black"; a blank picture is "white")."""
    pixels = np.asarray(img.convert("RGB"))[::2, ::2].reshape(-1, 3)  # every other pixel still catches thin ink
    ink = pixels[pixels.min(axis=1) < 235].astype(np.float32)
    if not len(ink):
        return "white"
    r, g, b = ink.mean(axis=0) / 255.0
    hue, sat, val = colorsys.rgb_to_hsv(r, g, b)
    if sat < 0.25:
        return "black" if val < 0.75 else "white"
    deg = hue * 360
    for limit, name in ((20, "red"), (45, "orange"), (70, "yellow"), (170, "green"), (260, "blue"), (330, "purple")):
        if deg < limit:
            return name
    return "red"


class HashingClip(_Recording):
    """The CLIP space: a text is hashed like the text space (with its own salt); a picture is the vector of the words
    that describe it — `descriptions[image_key(img)]` when given, else the name of its colour. So "a red warning
    light" is near a red picture, and two red pictures are near each other."""

    def __init__(self, dim: int = 256, descriptions: dict[str, str] | None = None, name: str = "fake/hashing-clip"):
        self.name, self.dim = name, dim
        self.descriptions = dict(descriptions or {})
        self.calls: list[tuple[str, int]] = []
        self.fail = None

    def describe(self, img: Image.Image) -> str:
        return self.descriptions.get(image_key(img)) or colour_name(img)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        self._called("embed_texts", len(texts))
        rows = [_hashed(tokens(t), self.dim, "clip") for t in texts]
        return np.stack(rows) if rows else np.zeros((0, self.dim), dtype=np.float32)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        self._called("embed_images", len(images))
        rows = [_hashed(tokens(self.describe(img)), self.dim, "clip") for img in images]
        return np.stack(rows) if rows else np.zeros((0, self.dim), dtype=np.float32)


class FakeOcr(_Recording):
    """Reads `by_key[image_key(img)]`, else `by_colour[colour_name(img)]`, else `default`."""

    def __init__(
        self, by_colour: dict[str, str] | None = None, by_key: dict[str, str] | None = None, default: str = ""
    ):
        self.name = "fake-ocr"
        self.by_colour, self.by_key, self.default = dict(by_colour or {}), dict(by_key or {}), default
        self.calls: list[tuple[str, int]] = []
        self.fail = None

    def recognize(self, image: Image.Image) -> str:
        self._called("recognize", 1)
        key = image_key(image)
        if key in self.by_key:
            return self.by_key[key]
        return self.by_colour.get(colour_name(image), self.default)


# ------------------------------------------------------------------ reranking
def term_overlap(query: str, text: str) -> float:
    """Share of the query's distinct terms that the text contains."""
    q = set(tokens(query))
    return len(q & set(tokens(text))) / len(q) if q else 0.0


class TermOverlapReranker(_Recording):
    """A cross-encoder whose logit is 8 × term overlap − 4 (sigmoid: 0.018 for no shared term, 0.982 for all).
    With `block` set, scoring waits for that event (a reranker slower than any timeout, released by the test)."""

    def __init__(self, name: str = "fake/term-overlap"):
        self.name = name
        self.calls: list[tuple[str, int]] = []
        self.seen: list[tuple[str, list[str]]] = []
        self.fail = None
        self.block: threading.Event | None = None
        self.loads = 0

    def load(self) -> None:
        self.loads += 1

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        self.seen.append((query, list(texts)))
        if self.block is not None:
            self.block.wait(10)
        self._called("score", len(texts))
        return [8.0 * term_overlap(query, t) - 4.0 for t in texts]


def fake_rerankers(
    *models: TermOverlapReranker, passage_tokens: int = 96, unloadable: Sequence[str] = ()
) -> Rerankers:
    """The core's Rerankers over fake cross-encoders (the first is the default); a name in `unloadable` is known but
    its model fails to load, like a model file that is missing."""
    models = models or (TermOverlapReranker(),)
    by_name: dict[str, Any] = {m.name: m for m in models}

    def factory(name: str) -> Any:
        if name in unloadable:
            raise FileNotFoundError(f"no model files for {name}")
        return by_name[name]

    return Rerankers(models[0].name, factory, [*by_name, *unloadable], passage_tokens=passage_tokens)


# ------------------------------------------------------------------ answers
class ScriptedGenerator:
    """An answer provider that replies `reply` (a string, or a function of the request) and streams it word by word.
    `fail` raised from generate(), or from the stream after `fail_after` pieces."""

    provider = "scripted"

    def __init__(
        self,
        reply: str | Callable[[GenRequest], str] = "",
        model: str = "scripted",
        vision: bool = False,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
    ):
        self.reply, self.model, self.vision = reply, model, vision
        self.input_tokens, self.output_tokens = input_tokens, output_tokens
        self.requests: list[GenRequest] = []
        self.fail: BaseException | None = None
        self.fail_after = 0
        self.closed = 0

    def models(self) -> list[str]:
        return [self.model]

    def supports_images(self, model: str) -> bool:
        return self.vision

    def _text(self, request: GenRequest) -> str:
        self.requests.append(request)
        return self.reply(request) if callable(self.reply) else self.reply

    def generate(self, request: GenRequest) -> GenResult:
        text = self._text(request)
        if self.fail is not None:
            raise self.fail
        return GenResult(text, request.model, self.input_tokens, self.output_tokens, "end_turn")

    def stream(self, request: GenRequest) -> Iterator[str | GenResult]:
        text = self._text(request)
        try:
            for n, piece in enumerate(text.split(" ")):
                if self.fail is not None and n >= self.fail_after:
                    raise self.fail
                yield piece if n == 0 else " " + piece
            yield GenResult(text, request.model, self.input_tokens, self.output_tokens, "end_turn")
        finally:
            self.closed += 1


__all__ = [
    "FakeOcr",
    "HashingClip",
    "HashingTextEmbedder",
    "ScriptedGenerator",
    "TermOverlapReranker",
    "colour_name",
    "fake_rerankers",
    "image_key",
    "image_key_of",
    "term_overlap",
]
