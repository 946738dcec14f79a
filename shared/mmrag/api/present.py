"""Shapes core records into the contract's response fields."""

from __future__ import annotations

import time
from typing import Any

from fastapi import Request

from mmrag.api.messages import error_message
from mmrag.core.answering import (
    Answer,
    Answered,
    ChatAnswered,
    ChatTurn,
    GenerationStarted,
    Prepared,
    RetrievalStarted,
    Retrieved,
    StreamEvent,
    StreamFailed,
    Token,
)
from mmrag.core.documents import BatchOutcome, Deletion
from mmrag.core.image_links import ImageVariant
from mmrag.core.models import Chunk, DirectUpload, Document, ImageRecord, Session, SessionSummary
from mmrag.core.search import MultimodalResults, Scored, SearchOutcome
from mmrag.text.analyzer import highlight


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return f"{n}B"


def image_urls(request: Request, img: ImageRecord) -> tuple[str, str]:
    """The picture's and its thumbnail's URLs: signed for the caller's tenant, loadable without the API key."""
    links = request.app.state.container.image_links
    tenant, base = request.state.tenant, str(request.base_url)
    return links.url(tenant, img, ImageVariant.FULL, base), links.url(tenant, img, ImageVariant.THUMBNAIL, base)


def upload_result(doc: Document, deduplicated: bool = False, reprocessing: bool = False) -> dict[str, Any]:
    done = doc.status == "completed"
    out = {
        "document_id": doc.document_id,
        "status": doc.status,
        "chunks_count": doc.chunks_count,
        "images_count": doc.images_count,
        "processing_time": doc.processing_time if doc.processing_time is not None else 0.0,
        "index_status": "indexed" if done else ("failed" if doc.status == "failed" else "pending"),
        "embeddings_generated": done and (doc.chunks_count + doc.images_count) > 0,
    }
    if doc.error:
        out["error"] = doc.error
    if deduplicated:  # the tenant's earlier upload of the same bytes (retried if it had failed)
        out.update(deduplicated=True, duplicate_of=doc.document_id, reprocessing=reprocessing)
    return out


STAGE_ORDER = ("parse", "extract_images", "ocr", "chunk", "embed", "index")


def progress(doc: Document) -> dict[str, Any] | None:
    """Where a processing document is: the running (or last finished) stage and how far it is; None once done."""
    if doc.status != "processing":
        return None
    completed = [n for n in STAGE_ORDER if doc.stages.get(n, {}).get("status") == "completed"]
    running = [n for n, st in doc.stages.items() if st.get("status") == "running"]
    name = running[-1] if running else (completed[-1] if completed else None)
    out: dict[str, Any] = {"stage": name or "queued", "stages_done": len(completed), "stages_total": len(STAGE_ORDER)}
    st = doc.stages.get(name, {}) if name else {}
    out["seconds"] = st.get("seconds")
    if st.get("total") is not None:
        total, done = int(st["total"]), int(st.get("done") or 0)
        out.update(
            {
                "done": done,
                "total": total,
                "unit": st.get("unit"),
                "percent": round(100 * done / total, 1) if total else 100.0,
            }
        )
    return out


def direct_upload(u: DirectUpload) -> dict[str, Any]:
    return {
        "upload_id": u.upload_id,
        "upload_url": u.url,
        "method": u.method,
        "headers": u.headers,
        "key": u.key,
        "expires_in": u.expires_in,
        "max_size": u.size,
    }


def batch_outcome(o: BatchOutcome) -> dict[str, Any]:
    return {
        "total": o.total,
        "success": len(o.document_ids),
        "failed": len(o.failed),
        "document_ids": o.document_ids,
        "failed_items": [{"index": i, "error": e.message, "error_code": e.code} for i, e in o.failed],
        "duplicates": [{"index": i, "document_id": d} for i, d in o.duplicates],
    }


def deletion(d: Deletion) -> dict[str, Any]:
    out: dict[str, Any] = {
        "document_id": d.document_id,
        "deleted_chunks": d.deleted_chunks,
        "deleted_embeddings": d.deleted_embeddings,
    }
    if d.archived:
        out["status"] = "archived"
    return out


def document_summary(doc: Document) -> dict[str, Any]:
    out = {
        "document_id": doc.document_id,
        "document_type": doc.document_type,
        "metadata": doc.metadata,
        "chunks_count": doc.chunks_count,
        "images_count": doc.images_count,
        "created_at": doc.created_at,
        "updated_at": doc.updated_at,
        "status": doc.status,
    }
    if doc.error:
        out["error"] = doc.error
    return out


def image_info(request: Request, img: ImageRecord) -> dict[str, Any]:
    url, thumb = image_urls(request, img)
    return {
        "image_id": img.image_id,
        "url": url,
        "thumbnail_url": thumb,
        "caption": img.caption,
        "position": img.position,
        "page_number": img.page_number,
        "size": f"{img.width}x{img.height}",
        "ocr_text": img.ocr_text,
        "related_text": {"before": img.text_before, "after": img.text_after},
    }


def document_detail(request: Request, doc: Document, chunks: list[Chunk], images: list[ImageRecord]) -> dict:
    out = document_summary(doc)
    out.update(
        {
            "file_format": doc.file_format,
            "content_preview": doc.content_preview,
            "summary": doc.summary,
            "chunks": [
                {
                    "chunk_id": c.chunk_id,
                    "content": c.content,
                    "chunk_index": c.chunk_index,
                    "token_count": c.token_count,
                    "page_number": c.page_number,
                    "position": chunk_position(c),
                    "source": c.source,
                    "image_id": c.image_id,
                }
                for c in chunks
            ],
            "images": [image_info(request, i) for i in images],
            "statistics": {
                "total_chunks": len(chunks),
                "total_images": len(images),
                "total_tokens": sum(c.token_count for c in chunks),
                "file_size": human_size(doc.file_size),
                "file_size_bytes": doc.file_size,
            },
            "processing": {
                "progress": progress(doc),
                "stages": doc.stages,
                "processing_time": doc.processing_time,
                "options": doc.processing_options,
            },
        }
    )
    return out


# ---------------------------------------------------------------------------------------------------- search results
def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 6)


def result_document_meta(r: Scored) -> dict[str, Any]:
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


def search_extra(outcome: SearchOutcome, started: float) -> dict[str, Any]:
    out: dict[str, Any] = {"search_time": round(time.perf_counter() - started, 5), "timings": outcome.timings}
    if outcome.rerank_error:
        out["rerank_error"] = outcome.rerank_error
    return out


def chunk_position(ch: Chunk) -> dict[str, Any]:
    """Where a chunk is: its index and page, and in documents with headings (DOCX) its heading path (`section`) and
    the number of the paragraph it starts in (`paragraph`, 1-based)."""
    out: dict[str, Any] = {"chunk_index": ch.chunk_index, "page_number": ch.page_number}
    if ch.section is not None:
        out["section"] = ch.section
    if ch.paragraph is not None:
        out["paragraph"] = ch.paragraph
    return out


def result_core(request: Request | None, r: Scored) -> dict[str, Any]:
    """The fields every search endpoint gives a chunk or a picture, under the same names (endpoints add their own):
    item_id, item_type, document_id, chunk_id | image_id, similarity_score, scores (components), page_number,
    position (chunk_index | image_index, page_number); a picture also image_url, thumbnail_url, caption."""
    out: dict[str, Any] = {
        "item_id": r.item_id,
        "item_type": r.kind,
        "similarity_score": _r(r.score),
        "scores": {k: _r(v) for k, v in r.scores.items()},
    }
    if r.rerank_score is not None:
        out["rerank_score"] = _r(r.rerank_score)
    if r.chunk is not None:
        ch = r.chunk
        out.update(
            chunk_id=ch.chunk_id,
            document_id=ch.document_id,
            page_number=ch.page_number,
            position=chunk_position(ch),
            source=ch.source,
        )
        if ch.image_id:
            out["image_id"] = ch.image_id
    elif r.image is not None:
        img = r.image
        out.update(
            image_id=img.image_id,
            document_id=img.document_id,
            page_number=img.page_number,
            position={"image_index": img.position, "page_number": img.page_number},
            caption=img.caption or img.ocr_text,
        )
        if request is not None:
            out["image_url"], out["thumbnail_url"] = image_urls(request, img)
    return out


def text_result(r: Scored, query: str, include_content: bool, include_metadata: bool) -> dict[str, Any]:
    ch = r.chunk
    assert ch is not None
    item: dict[str, Any] = {
        **result_core(None, r),
        "chunk_id": r.item_id,
        "document_id": ch.document_id,
        "similarity_score": _r(r.score),
        "scores": {k: _r(v) for k, v in r.scores.items()},
        "position": chunk_position(ch),
        "source": ch.source,
    }
    if r.rerank_score is not None:
        item["rerank_score"] = _r(r.rerank_score)
    if include_content:
        item["content"] = ch.content
        item["highlight"] = {"content": highlight(ch.content, query)}
    if include_metadata:
        item["metadata"] = result_document_meta(r)
    if ch.image_id:
        item["image_id"] = ch.image_id
    return item


def image_result(request: Request, r: Scored) -> dict[str, Any]:
    img = r.image
    assert img is not None
    url, thumb = image_urls(request, img)
    return {
        **result_core(request, r),
        "image_id": img.image_id,
        "document_id": img.document_id,
        "image_url": url,
        "thumbnail_url": thumb,
        "similarity_score": _r(r.score),
        "scores": {k: _r(v) for k, v in r.scores.items()},
        "caption": img.caption or img.ocr_text,
        "metadata": {
            **result_document_meta(r),
            "position": img.position,
            "page_number": img.page_number,
            "size": f"{img.width}x{img.height}",
        },
        "related_text": {"before": img.text_before, "after": img.text_after},
    }


def similar_result(request: Request, r: Scored) -> dict[str, Any]:
    d = r.document
    if r.kind == "document":
        assert d is not None
        meta = {
            "title": d.metadata.get("title"),
            "category": d.metadata.get("category"),
            "document_type": d.document_type,
        }
        return {
            "item_id": r.item_id,
            "item_type": "document",
            "document_id": r.item_id,
            "similarity_score": round(r.score, 6),
            "metadata": meta,
        }
    meta = {**result_document_meta(r), "title": d.metadata.get("title") if d else None}
    meta["document_id"] = d.document_id if d else None
    if r.chunk:
        meta.update({"chunk_index": r.chunk.chunk_index, "page_number": r.chunk.page_number})
        content = r.chunk.content
    else:
        content = r.image.caption if r.image else ""
        if r.image:
            meta["page_number"] = r.image.page_number
    return {
        **result_core(request, r),
        "item_id": r.item_id,
        "item_type": "chunk" if r.kind == "chunk" else "image",
        "document_id": d.document_id if d else None,
        "similarity_score": round(r.score, 6),
        "content": content,
        "metadata": meta,
    }


def multimodal_results(request: Request, found: MultimodalResults) -> dict[str, Any]:
    results = []
    for hit in found.hits:
        r = hit.result
        core = result_core(request, r)
        item: dict[str, Any] = {
            **core,
            "result_id": r.item_id,
            "result_type": hit.result_type,
            "document_id": r.document.document_id if r.document else None,
            "content": {
                "text": hit.text,
                "images": [
                    {
                        "image_id": i.image_id,
                        "image_url": image_urls(request, i)[0],
                        "thumbnail_url": image_urls(request, i)[1],
                        "caption": i.caption,
                        "page_number": i.page_number,
                    }
                    for i in hit.images
                ],
            },
            "scores": {
                **core["scores"],  # the component scores under the names the other endpoints use
                "text_similarity": _r(r.scores.get("text")),
                "image_similarity": _r(r.scores.get("image")),
                "combined_score": _r(r.score),
                "rerank_score": _r(r.rerank_score),
                "components": {k: _r(v) for k, v in r.scores.items()},
            },
            "metadata": result_document_meta(r),
        }
        results.append(item)
    out: dict[str, Any] = {"total_results": len(results), "results": results}
    if found.groups is not None:
        out["aggregation"] = {
            "by_document": [
                {
                    "document_id": g.document_id,
                    "match_count": g.match_count,
                    "avg_score": round(g.avg_score, 6),
                    "max_score": round(g.max_score, 6),
                }
                for g in found.groups
            ]
        }
    return out


# ---------------------------------------------------------------------------------------------------- answers
def retrieval_summary(prep: Prepared, answer: Answer) -> str:
    n_chunks = sum(1 for s in prep.sources if s.kind == "chunk")
    if prep.language == "zh":
        return f"检索到{n_chunks}个相关片段和{len(prep.images)}张图片，答案引用了{len(answer.cited)}个来源。"
    return (
        f"Retrieved {n_chunks} passage(s) and {len(prep.images)} picture(s); "
        f"the answer cites {len(answer.cited)} source(s)."
    )


def token_usage(answer: Answer) -> dict[str, Any] | None:
    if answer.input_tokens is None and answer.output_tokens is None:
        return None
    return {
        "input_tokens": answer.input_tokens,
        "output_tokens": answer.output_tokens,
        "total_tokens": (answer.input_tokens or 0) + (answer.output_tokens or 0),
    }


def reasoning(prep: Prepared, answer: Answer) -> dict[str, Any]:
    return {
        "retrieval_summary": retrieval_summary(prep, answer),
        "answer_based_on": [s.source_id for s in answer.cited],
    }


def answer_fields(prep: Prepared, answer: Answer) -> dict[str, Any]:
    out: dict[str, Any] = {
        "answer": answer.text,
        "confidence_score": answer.confidence,
        "model": answer.model,
        "provider": answer.provider,
        "reasoning": reasoning(prep, answer),
    }
    usage = token_usage(answer)
    if usage:
        out["token_usage"] = usage
    if answer.rerank_error:
        out["rerank_error"] = answer.rerank_error
    return out


def answer_sources(prep: Prepared) -> list[dict[str, Any]]:
    return [
        {
            "source_id": s.source_id,
            "number": s.number,
            "document_id": s.document_id,
            "content": s.content,
            "relevance_score": round(s.relevance, 6),
            "type": s.kind,
            "metadata": {"title": s.title, "page": s.page}
            | ({"section": s.section, "paragraph": s.paragraph} if s.section or s.paragraph else {}),
        }
        for s in prep.sources
    ]


def answer_images(request: Request, prep: Prepared) -> list[dict[str, Any]]:
    out = []
    for rec, score in prep.images:
        url, thumb = image_urls(request, rec)
        out.append(
            {
                "image_id": rec.image_id,
                "document_id": rec.document_id,
                "image_url": url,
                "thumbnail_url": thumb,
                "caption": rec.caption or rec.ocr_text,
                "relevance_score": round(score, 6),
                "page": rec.page_number,
                "page_number": rec.page_number,  # the name the search results use
            }
        )
    return out


def answer_evidence(request: Request, prep: Prepared) -> dict[str, Any]:
    """The sources and pictures an answer rests on, as far as the caller asked for them (`options.include_*`)."""
    p = prep.params
    return {
        "sources": answer_sources(prep) if p.include_sources else [],
        "retrieved_images": answer_images(request, prep) if p.include_images else [],
    }


def response_time(prep: Prepared) -> float:
    return round(time.perf_counter() - prep.started, 4)


def answer_data(request: Request, prep: Prepared, answer: Answer) -> dict[str, Any]:
    return {
        "question": prep.params.question,
        **answer_fields(prep, answer),
        "response_time": response_time(prep),
        "timings": prep.timings,
        **answer_evidence(request, prep),
    }


def chat_fields(turn: ChatTurn) -> dict[str, Any]:
    """What a chat answer adds to an answer (in /qa/chat's data and in /qa/chat-stream's `complete` event)."""
    return {
        "session_id": turn.session_id,
        "context_used": {
            "history_turns": turn.history_turns,
            "retrieved_chunks": sum(1 for s in turn.prep.sources if s.kind == "chunk"),
            "retrieved_images": len(turn.prep.images),
            "history_query": turn.history_query,
        },
        "follow_up_suggestions": turn.suggestions,
        "session_saved": turn.saved,
    }


def chat_data(request: Request, turn: ChatTurn) -> dict[str, Any]:
    return answer_data(request, turn.prep, turn.answer) | chat_fields(turn)


def stream_events(request: Request, event: StreamEvent) -> list[dict[str, Any]]:
    """The contract's SSE events for one event of AnswerService.stream (an answer becomes `sources` + `complete`)."""
    match event:
        case RetrievalStarted():
            return [{"type": "retrieval_start", "data": {"status": "searching"}}]
        case Retrieved(prep):
            data = {"retrieved_count": len(prep.sources), "retrieved_images": len(prep.images), "timings": prep.timings}
            return [{"type": "retrieval_complete", "data": data}]
        case GenerationStarted(prep):
            return [{"type": "generation_start", "data": {"model": prep.model, "provider": prep.generator.provider}}]
        case Token(text):
            return [{"type": "content_chunk", "data": {"text": text}}]
        case Answered(prep, answer):
            usage = token_usage(answer)
            complete = {
                "total_tokens": usage["total_tokens"] if usage else None,
                "token_usage": usage,
                "answer": answer.text,
                "confidence_score": answer.confidence,
                "reasoning": reasoning(prep, answer),
                "response_time": response_time(prep),
            }
            return [
                {"type": "sources", "data": answer_evidence(request, prep)},
                {"type": "complete", "data": complete},
            ]
        case ChatAnswered(turn):
            *before, complete = stream_events(request, Answered(turn.prep, turn.answer))
            return [*before, {"type": "complete", "data": complete["data"] | chat_fields(turn)}]
        case StreamFailed(code, message, detail):
            # like every error: `message` in the client's language, the specifics (English) in `detail`
            specifics = message if code == "INTERNAL_ERROR" or not detail else f"{message}: {detail}"
            data = {"error_code": code, "message": error_message(code), "detail": specifics}
            return [{"type": "error", "data": data}]
    raise TypeError(f"unknown stream event {event!r}")


def session_list(total: int, page: int, page_size: int, sessions: list[SessionSummary]) -> dict[str, Any]:
    return {
        "total": total,
        "page": page,
        "page_size": page_size,
        "sessions": [
            {
                "session_id": s.session_id,
                "title": s.title,
                "created_at": s.created_at,
                "updated_at": s.updated_at,
                "message_count": s.message_count,
            }
            for s in sessions
        ],
    }


def session_detail(s: Session) -> dict[str, Any]:
    messages = []
    for m in s.messages:
        item = {"message_id": m.message_id, "role": m.role, "content": m.content, "timestamp": m.timestamp}
        if m.role == "user":
            item["images"] = [{"image_id": i.get("image_id")} for i in m.images]
        else:
            item["sources"] = m.sources
        messages.append(item)
    return {
        "session_id": s.session_id,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "message_count": len(messages),
        "messages": messages,
    }


def caller_info(
    tenant: str, key_id: str, default_model: str, offered: list[tuple[str, list[str], list[str]]]
) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "key_id": key_id,
        "answer": {
            "default_model": default_model,
            "providers": [{"provider": p, "models": models, "vision_models": vision} for p, models, vision in offered],
        },
    }
