"""Request bodies → the core's parameters (the "parse" step every route shares)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from pydantic import ValidationError

from mmrag.api.request_body import PARSED_JSON_KEY, loads_strict
from mmrag.api.schemas import AskRequest, BatchItem, RerankIn, SearchFiltersIn
from mmrag.core.answering import AskParams
from mmrag.core.documents import NewDocument
from mmrag.core.models import DOCUMENT_TYPES, SearchFilters
from mmrag.core.search import RerankOptions
from mmrag.errors import FileTooLarge, InvalidParameter, MMRagError


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


def validation_message(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())[:1000]


async def json_body(request: Request, limit: int) -> Any:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise FileTooLarge("request body is larger than the upload limit")
    if PARSED_JSON_KEY in request.scope:  # RequestBodyMiddleware parsed it already
        return request.scope[PARSED_JSON_KEY]
    raw = await request.body()
    if len(raw) > limit:
        raise FileTooLarge("request body is larger than the upload limit")
    return loads_strict(raw)


def json_field(form, name: str) -> dict | None:
    value = form.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidParameter(f"{name} must be a form field holding a JSON object, not a file")
    parsed = loads_strict(value)
    if not isinstance(parsed, dict):
        raise InvalidParameter(f"{name} must be a JSON object")
    return parsed


def form_flag(form, name: str) -> bool:
    """A true/false field of a multipart form (absent: false)."""
    value = str(form.get(name) or "").strip().lower()
    if value in ("", "false", "0", "no"):
        return False
    if value in ("true", "1", "yes"):
        return True
    raise InvalidParameter(f"{name} must be true or false")


def batch_item(raw: Any, shared_options: dict[str, Any]) -> NewDocument | MMRagError:
    """One entry of a batch upload; a malformed one becomes its error, reported with the others."""
    try:
        item = BatchItem.model_validate(raw)
    except ValidationError as exc:
        return InvalidParameter(validation_message(exc))
    own = item.processing_options.as_dict() if item.processing_options else {}
    return NewDocument(
        item.document_type,
        item.file,
        item.content,
        item.metadata.as_dict(),
        {**shared_options, **own},
        file_name=item.file_name,
        allow_duplicate=item.allow_duplicate,
    )
