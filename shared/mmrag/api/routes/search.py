"""Section 2 of the contract: text, image, multimodal and similar-content search."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Request

from mmrag.api import present
from mmrag.api.deps import Caller, container, search_caller
from mmrag.api.envelope import ok
from mmrag.api.schemas import (
    ImageSearchRequest,
    MultimodalSearchRequest,
    RerankIn,
    SearchFiltersIn,
    SimilarRequest,
    TextSearchRequest,
)
from mmrag.core.models import DOCUMENT_TYPES, SearchFilters
from mmrag.core.search import RerankOptions, Scored, SearchOutcome, Timer
from mmrag.errors import InvalidParameter
from mmrag.text.analyzer import highlight

router = APIRouter(prefix="/api/v1/search", tags=["search"])


def to_filters(f: SearchFiltersIn) -> SearchFilters:
    types = [f.document_type] if isinstance(f.document_type, str) else f.document_type
    for t in types or []:
        if t not in DOCUMENT_TYPES:
            raise InvalidParameter(f"filters.document_type: {t!r} is not one of {', '.join(DOCUMENT_TYPES)}")
    return SearchFilters(
        document_ids=f.document_ids,
        document_types=types or None,
        category=f.category,
        tags=f.tags or None,
        date_start=f.date_range.start if f.date_range else None,
        date_end=f.date_range.end if f.date_range else None,
    )


def to_rerank(o: RerankIn) -> RerankOptions:
    return RerankOptions(
        enabled=o.rerank,
        model=o.rerank_model,
        input_limit=o.input_limit,
        score_threshold=o.score_threshold,
        timeout_ms=o.timeout_ms,
        fail_strategy=o.fail_strategy,
    )


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 6)


def _doc_meta(r: Scored) -> dict[str, Any]:
    d = r.document
    if d is None:
        return {}
    m = d.metadata
    return {
        "title": m.get("title"),
        "source": m.get("source"),
        "category": m.get("category"),
        "tags": m.get("tags"),
        "author": m.get("author"),
        "document_type": d.document_type,
    }


def _envelope_extra(outcome: SearchOutcome, started: float) -> dict[str, Any]:
    out: dict[str, Any] = {"search_time": round(time.perf_counter() - started, 5), "timings": outcome.timings}
    if outcome.rerank_error:
        out["rerank_error"] = outcome.rerank_error
    return out


@router.post("/text", summary="Hybrid (BM25 + dense) search over chunk text and the OCR text of pictures")
def search_text(body: TextSearchRequest, caller: Caller = Depends(search_caller), c=Depends(container)):
    started = time.perf_counter()
    opts = body.search_options
    outcome = c.search.text(
        caller.tenant, body.query, body.top_k, to_filters(body.filters), opts.similarity_threshold, to_rerank(opts)
    )
    results = []
    for r in outcome.results:
        ch = r.chunk
        item: dict[str, Any] = {
            "chunk_id": r.item_id,
            "document_id": ch.document_id,
            "similarity_score": _r(r.score),
            "scores": {k: _r(v) for k, v in r.scores.items()},
            "position": {"chunk_index": ch.chunk_index, "page_number": ch.page_number},
            "source": ch.source,
        }
        if r.rerank_score is not None:
            item["rerank_score"] = _r(r.rerank_score)
        if opts.include_content:
            item["content"] = ch.content
            item["highlight"] = {"content": highlight(ch.content, body.query)}
        if opts.include_metadata:
            item["metadata"] = _doc_meta(r)
        if ch.image_id:
            item["image_id"] = ch.image_id
        results.append(item)
    data = {"query": body.query, "total_results": len(results), "results": results, **_envelope_extra(outcome, started)}
    return ok(data, "检索成功")


def _query_image_vector(c, query_image: str, timer: Timer) -> np.ndarray:
    img = timer.run("decode_image", lambda: c.decode_query_image(query_image))
    return timer.run("encode_image", lambda: c.clip.embed_images([img])[0])


def _image_result(request: Request, r: Scored) -> dict[str, Any]:
    img = r.image
    url, thumb = present.image_urls(request, img.image_id)
    return {
        "image_id": img.image_id,
        "document_id": img.document_id,
        "image_url": url,
        "thumbnail_url": thumb,
        "similarity_score": _r(r.score),
        "scores": {k: _r(v) for k, v in r.scores.items()},
        "caption": img.caption or img.ocr_text,
        "metadata": {
            **_doc_meta(r),
            "position": img.position,
            "page_number": img.page_number,
            "size": f"{img.width}x{img.height}",
        },
        "related_text": {"before": img.text_before, "after": img.text_after},
    }


@router.post("/image", summary="Find pictures by a picture (CLIP) or by words (CLIP + OCR text)")
def search_image(
    body: ImageSearchRequest, request: Request, caller: Caller = Depends(search_caller), c=Depends(container)
):
    started = time.perf_counter()
    timer = Timer()
    filters = to_filters(body.filters)
    threshold = body.search_options.similarity_threshold
    if body.query_type == "image":
        if not body.query_image:
            raise InvalidParameter("query_image is required when query_type is image")
        vec = _query_image_vector(c, body.query_image, timer)
        outcome = c.search.image_by_image(caller.tenant, vec, body.top_k, filters, threshold, timer)
    else:
        if not (body.query_text or "").strip():
            raise InvalidParameter("query_text is required when query_type is text")
        outcome = c.search.image_by_text(caller.tenant, body.query_text, body.top_k, filters, threshold, timer)
    results = [_image_result(request, r) for r in outcome.results]
    data = {
        "query_type": body.query_type,
        "total_results": len(results),
        "results": results,
        **_envelope_extra(outcome, started),
    }
    return ok(data, "检索成功")


@router.post("/multimodal", summary="Text and a picture in one query, fused by weighted_sum, rrf or linear_combination")
def search_multimodal(
    body: MultimodalSearchRequest, request: Request, caller: Caller = Depends(search_caller), c=Depends(container)
):
    started = time.perf_counter()
    timer = Timer()
    text = (body.query_text or "").strip() or None
    if not text and not body.query_image:
        raise InvalidParameter("give query_text, query_image or both")
    bad = set(body.return_modalities) - {"text", "image", "mixed"}
    if bad:
        raise InvalidParameter(f"return_modalities: unknown {', '.join(sorted(bad))}")
    vec = _query_image_vector(c, body.query_image, timer) if body.query_image else None
    opts = body.search_options
    outcome = c.search.multimodal(
        caller.tenant,
        text,
        vec,
        body.top_k * 3,
        to_filters(body.filters),
        body.modality_weights.model_dump(),
        opts.fusion_strategy,
        opts.similarity_threshold,
        to_rerank(opts),
        timer,
    )
    linked = c.search.images_for(caller.tenant, [r.chunk.image_id for r in outcome.results if r.chunk])
    results = []
    for r in outcome.results:
        if r.chunk is not None:
            img = linked.get(r.chunk.image_id) if r.chunk.image_id else None
            rtype = "mixed" if img else "text"
            images = [img] if img else []
            content_text = r.chunk.content
        else:
            rtype, images, content_text = "image", [r.image], r.image.caption
        if rtype not in body.return_modalities:
            continue
        item = {
            "result_id": r.item_id,
            "result_type": rtype,
            "document_id": r.document.document_id,
            "content": {
                "text": content_text,
                "images": [
                    {
                        "image_id": i.image_id,
                        "image_url": present.image_urls(request, i.image_id)[0],
                        "thumbnail_url": present.image_urls(request, i.image_id)[1],
                        "caption": i.caption,
                    }
                    for i in images
                ],
            },
            "scores": {
                "text_similarity": _r(r.scores.get("text")),
                "image_similarity": _r(r.scores.get("image")),
                "combined_score": _r(r.score),
                "rerank_score": _r(r.rerank_score),
                "components": {k: _r(v) for k, v in r.scores.items()},
            },
            "metadata": _doc_meta(r),
        }
        if r.chunk is not None:
            item["position"] = {"chunk_index": r.chunk.chunk_index, "page_number": r.chunk.page_number}
        results.append(item)
        if len(results) >= body.top_k:
            break
    data: dict[str, Any] = {
        "query_text": body.query_text,
        "query_image_provided": bool(body.query_image),
        "fusion_strategy": opts.fusion_strategy,
        "total_results": len(results),
        "results": results,
        **_envelope_extra(outcome, started),
    }
    if opts.group_by_document:
        groups: dict[str, list[float]] = {}
        for item in results:
            groups.setdefault(item["document_id"], []).append(item["scores"]["combined_score"] or 0.0)
        data["aggregation"] = {
            "by_document": sorted(
                (
                    {
                        "document_id": d,
                        "match_count": len(s),
                        "avg_score": round(sum(s) / len(s), 6),
                        "max_score": round(max(s), 6),
                    }
                    for d, s in groups.items()
                ),
                key=lambda g: -g["max_score"],
            )
        }
    return ok(data, "检索成功")


@router.post("/similar", summary="More like this: a document, a chunk or an image")
def search_similar(body: SimilarRequest, caller: Caller = Depends(search_caller), c=Depends(container)):
    started = time.perf_counter()
    results, timings = c.search.similar(
        caller.tenant, body.reference_type, body.reference_id, body.top_k, body.exclude_self, to_filters(body.filters)
    )
    return ok(
        {
            "reference_id": body.reference_id,
            "reference_type": body.reference_type,
            "total_results": len(results),
            "results": results,
            "search_time": round(time.perf_counter() - started, 5),
            "timings": timings,
        },
        "推荐成功",
    )
