"""Request bodies → the core's parameters (the "parse" step every route shares)."""

from __future__ import annotations

from mmrag.api.schemas import AskRequest, RerankIn, SearchFiltersIn
from mmrag.core.answering import AskParams
from mmrag.core.models import DOCUMENT_TYPES, SearchFilters
from mmrag.core.search import RerankOptions
from mmrag.errors import InvalidParameter


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


def to_params(body: AskRequest) -> AskParams:
    rc, gc, op = body.retrieval_config, body.generation_config, body.options
    return AskParams(
        question=body.question,
        question_image=body.question_image,
        context_images=body.context_images,
        top_k=rc.top_k,
        similarity_threshold=rc.similarity_threshold,
        enable_rerank=rc.enable_rerank,
        search_mode=rc.search_mode,
        filters=to_filters(body.filters),
        model=gc.model,
        temperature=gc.temperature,
        max_tokens=gc.max_tokens,
        include_sources=op.include_sources,
        include_images=op.include_images,
        language=op.language,
        use_history_context=rc.use_history_context,
        history_weight=rc.history_weight,
    )
