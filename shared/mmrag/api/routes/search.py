"""Section 2 of the contract: text, image, multimodal and similar-content search."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Request

from mmrag.api import present
from mmrag.api.deps import Caller, container, search_caller
from mmrag.api.envelope import ok
from mmrag.api.inputs import to_filters, to_rerank
from mmrag.api.schemas import ImageSearchRequest, MultimodalSearchRequest, SimilarRequest, TextSearchRequest

router = APIRouter(prefix="/api/v1/search", tags=["search"])


@router.post("/text", summary="Hybrid (BM25 + dense) search over chunk text and the OCR text of pictures")
def search_text(body: TextSearchRequest, caller: Caller = Depends(search_caller), c=Depends(container)):
    started = time.perf_counter()
    opts = body.search_options
    outcome = c.search.text(
        caller.tenant, body.query, body.top_k, to_filters(body.filters), opts.similarity_threshold, to_rerank(opts)
    )
    results = [present.text_result(r, body.query, opts.include_content, opts.include_metadata) for r in outcome.results]
    data = {"query": body.query, "total_results": len(results), "results": results}
    return ok({**data, **present.search_extra(outcome, started)}, "检索成功")


@router.post("/image", summary="Find pictures by a picture (CLIP) or by words (CLIP + OCR text)")
def search_image(
    body: ImageSearchRequest, request: Request, caller: Caller = Depends(search_caller), c=Depends(container)
):
    started = time.perf_counter()
    outcome = c.search.find_images(
        caller.tenant,
        body.query_type,
        body.query_image,
        body.query_text,
        body.top_k,
        to_filters(body.filters),
        body.search_options.similarity_threshold,
    )
    results = [present.image_result(request, r) for r in outcome.results]
    data = {"query_type": body.query_type, "total_results": len(results), "results": results}
    return ok({**data, **present.search_extra(outcome, started)}, "检索成功")


@router.post("/multimodal", summary="Text and a picture in one query, fused by weighted_sum, rrf or linear_combination")
def search_multimodal(
    body: MultimodalSearchRequest, request: Request, caller: Caller = Depends(search_caller), c=Depends(container)
):
    started = time.perf_counter()
    opts = body.search_options
    found = c.search.find_multimodal(
        caller.tenant,
        body.query_text,
        body.query_image,
        body.top_k,
        to_filters(body.filters),
        body.modality_weights.model_dump(),
        opts.fusion_strategy,
        opts.similarity_threshold,
        to_rerank(opts),
        body.return_modalities,
        opts.group_by_document,
    )
    data = {
        "query_text": body.query_text,
        "query_image_provided": bool(body.query_image),
        "fusion_strategy": opts.fusion_strategy,
        **present.multimodal_results(request, found),
        **present.search_extra(found.outcome, started),
    }
    return ok(data, "检索成功")


@router.post("/similar", summary="More like this: a document, a chunk or an image")
def search_similar(
    body: SimilarRequest, request: Request, caller: Caller = Depends(search_caller), c=Depends(container)
):
    started = time.perf_counter()
    results, timings = c.search.similar(
        caller.tenant, body.reference_type, body.reference_id, body.top_k, body.exclude_self, to_filters(body.filters)
    )
    return ok(
        {
            "reference_id": body.reference_id,
            "reference_type": body.reference_type,
            "total_results": len(results),
            "results": [present.similar_result(request, r) for r in results],
            "search_time": round(time.perf_counter() - started, 5),
            "timings": timings,
        },
        "推荐成功",
    )
