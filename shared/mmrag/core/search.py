"""Retrieval across text and pictures: text, image, multimodal and "more like this", with explainable scores.
The scores and every weight that combines them are defined in mmrag.core.ranking."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from mmrag.core.models import Chunk, Document, ImageRecord, SearchFilters
from mmrag.core.pictures import is_about
from mmrag.core.ports import ClipEmbedder, DocumentStore, TextEmbedder, VectorIndex
from mmrag.core.ranking import (
    CLIP_TEXT_IN_TEXT_MODALITY,
    NEAR_PICTURE,
    NEAR_PICTURES,
    fuse_modalities,
    image_by_text_score,
    text_similarity,
)
from mmrag.errors import InvalidParameter, NotFound
from mmrag.text.passages import best_window

_CHANNELS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="mmrag-retrieve")
CANDIDATES = 50


@dataclass
class RerankOptions:
    enabled: bool = False
    model: str | None = None
    input_limit: int = 20
    score_threshold: float | None = None
    timeout_ms: int = 5000
    fail_strategy: str = "degrade"  # degrade | error


@dataclass
class Scored:
    item_id: str
    kind: str  # chunk | image (| document, from `similar` on a document)
    scores: dict[str, float] = field(default_factory=dict)
    score: float = 0.0
    rerank_score: float | None = None
    chunk: Chunk | None = None
    image: ImageRecord | None = None
    document: Document | None = None


@dataclass
class SearchOutcome:
    results: list[Scored]
    timings: dict[str, float]
    total_candidates: int
    rerank_error: str | None = None
    reranked: bool = False


@dataclass
class MultimodalHit:
    result: Scored
    result_type: str  # text | image | mixed
    images: list[ImageRecord]
    text: str


@dataclass
class DocumentGroup:
    document_id: str
    match_count: int
    avg_score: float
    max_score: float


@dataclass
class MultimodalResults:
    outcome: SearchOutcome
    hits: list[MultimodalHit]
    groups: list[DocumentGroup] | None


def _by_document(hits: list[MultimodalHit]) -> list[DocumentGroup]:
    scores: dict[str, list[float]] = {}
    for h in hits:
        if h.result.document is not None:
            scores.setdefault(h.result.document.document_id, []).append(h.result.score or 0.0)
    groups = [DocumentGroup(d, len(v), sum(v) / len(v), max(v)) for d, v in scores.items()]
    return sorted(groups, key=lambda g: -g.max_score)


class Timer:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            return fn()
        finally:
            self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - start, 5)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(x, 50.0), -50.0)))


class Rerankers:
    """Cross-encoders by name, loaded on first use in the background. Aliases map the contract's short names to
    fastembed models. A model that fails to load is not retried for RETRY_AFTER_S, so a missing model costs one
    failed attempt, not one per request."""

    ALIASES = {
        "bge-reranker-v2": "BAAI/bge-reranker-v2-m3",
        "bge-reranker-base": "BAAI/bge-reranker-base",
        "ms-marco-minilm": "Xenova/ms-marco-MiniLM-L-6-v2",
    }
    RETRY_AFTER_S = 600.0

    def __init__(self, default: str, factory: Callable[[str], Any], known: Sequence[str], passage_tokens: int = 96):
        self.default = default
        self.passage_tokens = passage_tokens
        self.factory = factory
        self.known = set(known) | {default}
        self._loads: dict[str, Any] = {}
        self._failed: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mmrag-rerank")

    def resolve(self, name: str | None) -> str:
        if not name:
            return self.default
        name = self.ALIASES.get(name, name)
        if name not in self.known:
            raise InvalidParameter(f"unknown rerank_model {name!r}; known: {', '.join(sorted(self.known))}")
        return name

    def _load(self, name: str) -> Any:
        model = self.factory(name)
        model.load()
        return model

    def model(self, name: str) -> Any:
        with self._lock:
            failed = self._failed.get(name)
            if failed and time.monotonic() - failed[0] < self.RETRY_AFTER_S:
                raise RuntimeError(failed[1])
            future = self._loads.get(name)
            if future is None or (future.done() and future.exception() is not None):
                future = self._loads[name] = self._pool.submit(self._load, name)
        return future

    def score(self, name: str, query: str, texts: list[str], timeout_s: float) -> list[float]:
        deadline = time.monotonic() + timeout_s
        future = self.model(name)
        try:
            model = future.result(timeout=timeout_s)
        except FutureTimeout:
            raise
        except Exception as exc:
            message = f"model {name} is not available: {type(exc).__name__}: {exc}"[:300]
            with self._lock:
                self._failed[name] = (time.monotonic(), message)
            raise RuntimeError(message) from exc
        scoring = self._pool.submit(model.score, query, texts)
        return scoring.result(timeout=max(deadline - time.monotonic(), 0.001))


class SearchService:
    def __init__(
        self,
        docs: DocumentStore,
        index: VectorIndex,
        text_embedder: TextEmbedder,
        clip: ClipEmbedder,
        rerankers: Rerankers,
        decode_image: Callable[[str], Any] | None = None,
    ):
        self.docs, self.index = docs, index
        self.text_embedder, self.clip = text_embedder, clip
        self.rerankers = rerankers
        self.decode_image = decode_image  # a query picture (base64 or URL) → PIL image, pixel-limited

    # ------------------------------------------------------------------ use cases of the search endpoints
    def query_image_vector(self, value: str, timer: Timer) -> np.ndarray:
        if self.decode_image is None:
            raise InvalidParameter("this service does not take query pictures")
        img = timer.run("decode_image", lambda: self.decode_image(value))
        return timer.run("encode_image", lambda: self.clip.embed_images([img])[0])

    def find_images(
        self,
        tenant: str,
        query_type: str,
        query_image: str | None,
        query_text: str | None,
        top_k: int,
        filters: SearchFilters,
        threshold: float | None,
    ) -> SearchOutcome:
        """Pictures by a picture (CLIP) or by words (CLIP + the pictures' OCR and page text)."""
        timer = Timer()
        if query_type == "image":
            if not query_image:
                raise InvalidParameter("query_image is required when query_type is image")
            vec = self.query_image_vector(query_image, timer)
            return self.image_by_image(tenant, vec, top_k, filters, threshold, timer)
        if not (query_text or "").strip():
            raise InvalidParameter("query_text is required when query_type is text")
        return self.image_by_text(tenant, query_text or "", top_k, filters, threshold, timer)

    def find_multimodal(
        self,
        tenant: str,
        query_text: str | None,
        query_image: str | None,
        top_k: int,
        filters: SearchFilters,
        weights: dict[str, float],
        strategy: str,
        threshold: float | None,
        rerank: RerankOptions,
        modalities: Sequence[str] = ("text", "image", "mixed"),
        group_by_document: bool = False,
    ) -> MultimodalResults:
        """Text and a picture in one query: results typed text / image / mixed (a chunk printed in a picture),
        filtered to the wanted modalities, and optionally grouped by document."""
        text = (query_text or "").strip() or None
        if not text and not query_image:
            raise InvalidParameter("give query_text, query_image or both")
        bad = set(modalities) - {"text", "image", "mixed"}
        if bad:
            raise InvalidParameter(f"return_modalities: unknown {', '.join(sorted(bad))}")
        timer = Timer()
        vec = self.query_image_vector(query_image, timer) if query_image else None
        # over-fetch: the modality filter below may drop some of them
        outcome = self.multimodal(tenant, text, vec, top_k * 3, filters, weights, strategy, threshold, rerank, timer)
        linked = self.images_for(tenant, [r.chunk.image_id for r in outcome.results if r.chunk])
        hits: list[MultimodalHit] = []
        for r in outcome.results:
            if r.chunk is not None:
                img = linked.get(r.chunk.image_id) if r.chunk.image_id else None
                hit = MultimodalHit(r, "mixed" if img else "text", [img] if img else [], r.chunk.content)
            else:
                hit = MultimodalHit(r, "image", [r.image] if r.image else [], r.image.caption if r.image else "")
            if hit.result_type in modalities:
                hits.append(hit)
            if len(hits) >= top_k:
                break
        groups = _by_document(hits) if group_by_document else None
        return MultimodalResults(outcome, hits, groups)

    # ------------------------------------------------------------------ text
    def text(
        self,
        tenant: str,
        query: str,
        top_k: int,
        filters: SearchFilters,
        threshold: float | None = None,
        rerank: RerankOptions | None = None,
        context: str | None = None,
        context_weight: float = 0.3,
    ) -> SearchOutcome:
        """`context` (e.g. a conversation's earlier questions) joins the query with weight `context_weight`."""
        timer = Timer()
        rerank = rerank or RerankOptions()
        model_name = self.rerankers.resolve(rerank.model) if rerank.enabled else None
        qvec = timer.run("encode", lambda: self.text_embedder.embed_query(query))
        ctx = (context or "").strip()
        w = min(max(context_weight, 0.0), 1.0) if ctx else 0.0
        if w > 0:
            cvec = timer.run("encode", lambda: self.text_embedder.embed_query(ctx))
            qvec = (1 - w) * qvec + w * cvec
            qvec = qvec / max(float(np.linalg.norm(qvec)), 1e-12)
        chunk_filters = replace(filters, kinds=["chunk"])
        k = max(CANDIDATES, top_k * 3, rerank.input_limit if rerank.enabled else 0)
        scored = timer.run("retrieve", lambda: self._text_candidates(tenant, query, qvec, chunk_filters, k))
        if w > 0:
            scored = self._blend_context(tenant, scored, ctx, qvec, chunk_filters, k, w, timer)
        timer.run("fuse", lambda: self._fuse_text(scored))
        scored.sort(key=lambda s: -s.score)
        return self._finish(tenant, query, scored, top_k, threshold, rerank, model_name, timer)

    def _finish(
        self,
        tenant: str,
        query: str,
        scored: list[Scored],
        top_k: int,
        threshold: float | None,
        rerank: RerankOptions,
        model_name: str | None,
        timer: Timer,
    ) -> SearchOutcome:
        """Hydrate the ranked candidates, rerank when asked (and possible), apply the threshold, cut to top_k."""
        limit = max(top_k, rerank.input_limit) if model_name else top_k
        results = timer.run("hydrate", lambda: self._hydrate(tenant, scored, limit))
        outcome = SearchOutcome(results, timer.timings, len(scored))
        if model_name and results:
            self._rerank(query, outcome, model_name, rerank, timer)
        if threshold is not None:
            outcome.results = [r for r in outcome.results if r.score >= threshold]
        outcome.results = outcome.results[:top_k]
        outcome.timings = timer.timings
        return outcome

    def _text_candidates(
        self, tenant: str, query: str, qvec: np.ndarray, filters: SearchFilters, k: int
    ) -> list[Scored]:
        # BM25 (SQLite) and the dense scan (NumPy) both release the GIL: run them side by side
        lexical_job = _CHANNELS.submit(self.index.search_lexical, tenant, query, filters, k)
        dense = self.index.search_vector(tenant, "text", qvec, filters, k)
        lexical = lexical_job.result()
        by_id: dict[str, Scored] = {}
        best_lex = max((h.score for h in lexical), default=0.0)
        for h in lexical:
            s = by_id.setdefault(h.item_id, Scored(h.item_id, "chunk"))
            s.scores["lexical"] = h.score / best_lex if best_lex > 0 else 0.0
            s.scores["bm25"] = h.score
        for h in dense:
            by_id.setdefault(h.item_id, Scored(h.item_id, "chunk")).scores["dense"] = max(h.score, 0.0)
        missing = [s.item_id for s in by_id.values() if "dense" not in s.scores]
        if missing:
            vecs = self.index.get_vectors(tenant, "text", missing)
            for item_id, v in vecs.items():
                by_id[item_id].scores["dense"] = max(float(v @ qvec), 0.0)
        return list(by_id.values())

    def _blend_context(
        self,
        tenant: str,
        scored: list[Scored],
        ctx: str,
        qvec: np.ndarray,
        filters: SearchFilters,
        k: int,
        weight: float,
        timer: Timer,
    ) -> list[Scored]:
        """Lexical scores become (1 - w) * query + w * context; dense scores already use the blended vector."""
        extra = {
            e.item_id: e for e in timer.run("retrieve", lambda: self._text_candidates(tenant, ctx, qvec, filters, k))
        }
        merged = {s.item_id: s for s in scored}
        for item_id, e in extra.items():
            merged.setdefault(item_id, Scored(item_id, "chunk", {"dense": e.scores.get("dense", 0.0)}))
        for item_id, s in merged.items():
            ctx_lex = extra[item_id].scores.get("lexical", 0.0) if item_id in extra else 0.0
            s.scores["lexical"] = (1 - weight) * s.scores.get("lexical", 0.0) + weight * ctx_lex
        return list(merged.values())

    @staticmethod
    def _fuse_text(scored: list[Scored]) -> None:
        for s in scored:
            s.scores.setdefault("lexical", 0.0)
            s.scores.setdefault("dense", 0.0)
            s.score = text_similarity(s.scores["lexical"], s.scores["dense"])
            s.scores["fused"] = s.score

    def _rerank(self, query: str, outcome: SearchOutcome, model: str, opts: RerankOptions, timer: Timer) -> None:
        head = outcome.results[: opts.input_limit]
        size = self.rerankers.passage_tokens
        texts = [
            best_window(query, r.chunk.content, size) if r.chunk else (r.image.caption if r.image else "") for r in head
        ]
        try:
            raw = timer.run("rerank", lambda: self.rerankers.score(model, query, texts, opts.timeout_ms / 1000))
        except FutureTimeout:
            self._rerank_failed(outcome, f"reranker {model} timed out after {opts.timeout_ms} ms", opts)
            return
        except Exception as exc:  # missing model, runtime failure
            self._rerank_failed(outcome, f"reranker {model} failed: {type(exc).__name__}: {exc}"[:300], opts)
            return
        for r, logit in zip(head, raw, strict=True):
            r.rerank_score = _sigmoid(logit)
            r.scores["rerank"] = r.rerank_score
        head.sort(key=lambda r: -(r.rerank_score or 0.0))
        # candidates past input_limit keep their first-stage order behind the reranked ones (top_k may be larger);
        # with a rerank score_threshold only reranked candidates can pass it
        tail = outcome.results[opts.input_limit :]
        if opts.score_threshold is not None:
            head, tail = [r for r in head if (r.rerank_score or 0.0) >= opts.score_threshold], []
        outcome.results = head + tail
        outcome.reranked = True

    @staticmethod
    def _rerank_failed(outcome: SearchOutcome, message: str, opts: RerankOptions) -> None:
        if opts.fail_strategy == "error":
            from mmrag.errors import ServiceUnavailable

            raise ServiceUnavailable("reranking failed", message)
        outcome.rerank_error = message

    # ------------------------------------------------------------------ hydration
    def _hydrate(self, tenant: str, scored: list[Scored], limit: int) -> list[Scored]:
        """Attach rows; drop items whose document is not (or no longer) completed. Keeps order."""
        out: list[Scored] = []
        start = 0
        batch = max(limit * 2, 20)
        while len(out) < limit and start < len(scored):
            part = scored[start : start + batch]
            start += batch
            chunks = self.docs.get_chunks_by_id(tenant, [s.item_id for s in part if s.kind == "chunk"])
            images = self.docs.get_images_by_id(tenant, [s.item_id for s in part if s.kind == "image"])
            doc_ids = [c.document_id for c in chunks.values()] + [i.document_id for i in images.values()]
            docs = self.docs.documents_by_id(tenant, doc_ids)
            for s in part:
                row = chunks.get(s.item_id) if s.kind == "chunk" else images.get(s.item_id)
                if row is None:
                    continue
                doc = docs.get(row.document_id)
                if doc is None or doc.status != "completed":
                    continue
                s.document = doc
                if s.kind == "chunk":
                    s.chunk = row  # type: ignore[assignment]
                else:
                    s.image = row  # type: ignore[assignment]
                out.append(s)
                if len(out) >= limit:
                    break
        return out

    def images_for(self, tenant: str, image_ids: Sequence[str]) -> dict[str, ImageRecord]:
        return self.docs.get_images_by_id(tenant, [i for i in image_ids if i])

    # ------------------------------------------------------------------ image
    def image_by_image(
        self,
        tenant: str,
        image_vec: np.ndarray,
        top_k: int,
        filters: SearchFilters,
        threshold: float | None,
        timer: Timer,
    ) -> SearchOutcome:
        hits = timer.run(
            "retrieve",
            lambda: self.index.search_vector(
                tenant, "clip", image_vec, replace(filters, kinds=["image"]), max(top_k * 2, 20)
            ),
        )
        scored = [Scored(h.item_id, "image", {"image": max(h.score, 0.0)}, max(h.score, 0.0)) for h in hits]
        for s in scored:
            s.scores["fused"] = s.score
        return self._finish(tenant, "", scored, top_k, threshold, RerankOptions(), None, timer)

    def image_by_text(
        self, tenant: str, query: str, top_k: int, filters: SearchFilters, threshold: float | None, timer: Timer
    ) -> SearchOutcome:
        """CLIP text→image, fused with lexical and dense matches on the pictures' OCR text and captions."""
        clip_q = timer.run("encode", lambda: self.clip.embed_texts([query])[0])
        text_q = timer.run("encode", lambda: self.text_embedder.embed_query(query))
        img_filters = replace(filters, kinds=["image"])
        k = max(CANDIDATES, top_k * 3)

        def retrieve():
            clip_hits = self.index.search_vector(tenant, "clip", clip_q, img_filters, k)
            chunk_hits = self._text_candidates(tenant, query, text_q, replace(filters, kinds=["chunk"]), k)
            return clip_hits, chunk_hits

        clip_hits, chunk_hits = timer.run("retrieve", retrieve)
        by_image: dict[str, Scored] = {}
        for h in clip_hits:
            by_image[h.item_id] = Scored(h.item_id, "image", {"clip": max(h.score, 0.0)})
        chunk_rows = self.docs.get_chunks_by_id(tenant, [c.item_id for c in chunk_hits])
        for c in chunk_hits:
            row = chunk_rows.get(c.item_id)
            if row is None or not row.image_id:
                continue
            s = by_image.setdefault(row.image_id, Scored(row.image_id, "image", {}))
            for name in ("lexical", "dense"):
                s.scores[name] = max(s.scores.get(name, 0.0), c.scores.get(name, 0.0))
        missing = [i for i, s in by_image.items() if "clip" not in s.scores]
        if missing:
            for item_id, v in self.index.get_vectors(tenant, "clip", missing).items():
                by_image[item_id].scores["clip"] = max(float(v @ clip_q), 0.0)

        def fuse():
            for s in by_image.values():
                s.score = image_by_text_score(s.scores)
                s.scores["fused"] = s.score

        timer.run("fuse", fuse)
        scored = sorted(by_image.values(), key=lambda s: -s.score)
        return self._finish(tenant, "", scored, top_k, threshold, RerankOptions(), None, timer)

    # ------------------------------------------------------------------ multimodal
    def multimodal(
        self,
        tenant: str,
        query_text: str | None,
        image_vec: np.ndarray | None,
        top_k: int,
        filters: SearchFilters,
        weights: dict[str, float],
        strategy: str,
        threshold: float | None,
        rerank: RerankOptions,
        timer: Timer,
    ) -> SearchOutcome:
        k = max(CANDIDATES, top_k * 3)
        cands: dict[str, Scored] = {}

        def get(item_id: str, kind: str) -> Scored:
            return cands.setdefault(item_id, Scored(item_id, kind))

        # the image channel's full CLIP scan runs while the text channels work
        image_job = (
            _CHANNELS.submit(self.index.search_vector, tenant, "clip", image_vec, replace(filters, kinds=None), k)
            if image_vec is not None
            else None
        )
        if query_text:
            text_q = timer.run("encode", lambda: self.text_embedder.embed_query(query_text))
            clip_tq = timer.run("encode", lambda: self.clip.embed_texts([query_text])[0])
            chunk_hits = timer.run(
                "retrieve",
                lambda: self._text_candidates(tenant, query_text, text_q, replace(filters, kinds=["chunk"]), k),
            )
            self._fuse_text(chunk_hits)
            chunk_rows = self.docs.get_chunks_by_id(tenant, [c.item_id for c in chunk_hits])
            for c in chunk_hits:
                s = get(c.item_id, "chunk")
                s.scores.update({n: c.scores[n] for n in ("lexical", "dense")})
                s.scores["text"] = c.score
                row = chunk_rows.get(c.item_id)
                if row is not None and row.image_id:  # the words are printed in a picture: the picture matches too
                    img = get(row.image_id, "image")
                    img.scores["text"] = max(img.scores.get("text", 0.0), c.score)
            clip_hits = timer.run(
                "retrieve",
                lambda: self.index.search_vector(tenant, "clip", clip_tq, replace(filters, kinds=["image"]), k),
            )
            for h in clip_hits:
                s = get(h.item_id, "image")
                s.scores["clip_text"] = max(h.score, 0.0)
                s.scores["text"] = max(s.scores.get("text", 0.0), CLIP_TEXT_IN_TEXT_MODALITY * max(h.score, 0.0))
        if image_vec is not None:
            img_hits = timer.run("retrieve", image_job.result)
            for h in img_hits:
                kind = h.kind or ("image" if h.item_id.startswith("img_") else "chunk")
                get(h.item_id, kind).scores["image"] = max(h.score, 0.0)
            picture_hits = [h for h in img_hits if (h.kind or "image") == "image" and h.item_id.startswith("img_")]
            for chunk_id, score in timer.run("retrieve", lambda: self._text_near(tenant, picture_hits)).items():
                s = get(chunk_id, "chunk")
                s.scores["image"] = max(s.scores.get("image", 0.0), score)
            # exact image similarity for text candidates too, so that every candidate is scored in both modalities
            missing = [i for i, s in cands.items() if "image" not in s.scores]
            for item_id, v in self.index.get_vectors(tenant, "clip", missing).items():
                cands[item_id].scores["image"] = max(float(v @ image_vec), 0.0)
        timer.run(
            "fuse",
            lambda: fuse_modalities(
                list(cands.values()), weights, strategy, has_text=bool(query_text), has_image=image_vec is not None
            ),
        )
        scored = sorted(cands.values(), key=lambda s: -s.score)
        model = self.rerankers.resolve(rerank.model) if rerank.enabled and query_text else None
        return self._finish(tenant, query_text or "", scored, top_k, threshold, rerank, model, timer)

    def _text_near(self, tenant: str, picture_hits: list[Any]) -> dict[str, float]:
        """Chunks about the best-matching pictures (their OCR text and the text on their page), each with its
        picture's image score × NEAR_PICTURE: how a picture as a query finds the text about it."""
        top = [h for h in picture_hits if h.score > 0][:NEAR_PICTURES]
        if not top:
            return {}
        records = self.docs.get_images_by_id(tenant, [h.item_id for h in top])
        chunks_of: dict[str, list[Chunk]] = {}
        out: dict[str, float] = {}
        for h in top:
            rec = records.get(h.item_id)
            if rec is None:
                continue
            if rec.document_id not in chunks_of:
                chunks_of[rec.document_id] = self.docs.get_chunks(tenant, rec.document_id)
            for c in chunks_of[rec.document_id]:
                if is_about(c, rec):
                    out[c.chunk_id] = max(out.get(c.chunk_id, 0.0), NEAR_PICTURE * h.score)
        return out

    # ------------------------------------------------------------------ similar
    def similar(
        self,
        tenant: str,
        reference_type: str,
        reference_id: str,
        top_k: int,
        exclude_self: bool,
        filters: SearchFilters,
    ) -> tuple[list[Scored], dict[str, float]]:
        """More like this. Results of a document reference are documents (kind "document", best item's score)."""
        timer = Timer()
        if reference_type == "document":
            doc = self.docs.get_document(tenant, reference_id)
            if doc is None or doc.status not in ("completed",):
                raise NotFound(f"document {reference_id} not found")
            item_ids = self.index.item_ids(tenant, reference_id)
            vecs = self.index.get_vectors(tenant, "text", item_ids)
            space = "text"
            if not vecs:
                vecs, space = self.index.get_vectors(tenant, "clip", item_ids), "clip"
            if not vecs:
                return [], timer.timings
            centre = np.mean(np.stack(list(vecs.values())), axis=0)
            centre /= max(float(np.linalg.norm(centre)), 1e-12)
            f = replace(filters, kinds=["chunk"] if space == "text" else None)
            if exclude_self:
                f.exclude_item_ids = item_ids
            hits = timer.run("retrieve", lambda: self.index.search_vector(tenant, space, centre, f, top_k * 20))
            best: dict[str, float] = {}
            item_docs = self._item_documents(tenant, [h.item_id for h in hits])
            for h in hits:
                d = item_docs.get(h.item_id)
                if d is None or (exclude_self and d == reference_id):
                    continue
                best[d] = max(best.get(d, -1.0), h.score)
            docs = self.docs.documents_by_id(tenant, list(best))
            ranked = sorted(
                ((d, sc) for d, sc in best.items() if d in docs and docs[d].status == "completed"), key=lambda x: -x[1]
            )[:top_k]
            return [
                Scored(d, "document", {"dense" if space == "text" else "image": sc}, max(sc, 0), document=docs[d])
                for d, sc in ranked
            ], timer.timings
        if reference_type == "chunk":
            row = self.docs.get_chunks_by_id(tenant, [reference_id]).get(reference_id)
            space, kinds = "text", ["chunk"]
        elif reference_type == "image":
            row = self.docs.get_images_by_id(tenant, [reference_id]).get(reference_id)
            space, kinds = "clip", ["image"]
        else:
            raise InvalidParameter("reference_type must be document, chunk or image")
        if row is None:
            raise NotFound(f"{reference_type} {reference_id} not found")
        vec = self.index.get_vectors(tenant, space, [reference_id]).get(reference_id)
        if vec is None:
            return [], timer.timings
        f = replace(filters, kinds=kinds, exclude_item_ids=[reference_id] if exclude_self else None)
        hits = timer.run("retrieve", lambda: self.index.search_vector(tenant, space, vec, f, top_k * 2))
        scored = [
            Scored(h.item_id, kinds[0], {"dense" if space == "text" else "image": h.score}, max(h.score, 0))
            for h in hits
        ]
        return self._hydrate(tenant, scored, top_k), timer.timings

    def _item_documents(self, tenant: str, item_ids: Sequence[str]) -> dict[str, str]:
        out = {i: c.document_id for i, c in self.docs.get_chunks_by_id(tenant, item_ids).items()}
        out.update({i: im.document_id for i, im in self.docs.get_images_by_id(tenant, item_ids).items()})
        return out
