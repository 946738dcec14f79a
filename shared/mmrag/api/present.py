"""Shapes core records into the contract's response fields."""

from __future__ import annotations

import time
from typing import Any

from fastapi import Request

from mmrag.core.models import Chunk, Document, ImageRecord
from mmrag.core.search import MultimodalResults, Scored, SearchOutcome
from mmrag.text.analyzer import highlight


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return f"{n}B"


def image_urls(request: Request, image_id: str) -> tuple[str, str]:
    base = str(request.base_url).rstrip("/") + f"/api/v1/images/{image_id}"
    return base, base + "/thumbnail"


def upload_result(doc: Document) -> dict[str, Any]:
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
    url, thumb = image_urls(request, img.image_id)
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


def text_result(r: Scored, query: str, include_content: bool, include_metadata: bool) -> dict[str, Any]:
    ch = r.chunk
    assert ch is not None
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
    url, thumb = image_urls(request, img.image_id)
    return {
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


def multimodal_results(request: Request, found: MultimodalResults) -> dict[str, Any]:
    results = []
    for hit in found.hits:
        r = hit.result
        item: dict[str, Any] = {
            "result_id": r.item_id,
            "result_type": hit.result_type,
            "document_id": r.document.document_id if r.document else None,
            "content": {
                "text": hit.text,
                "images": [
                    {
                        "image_id": i.image_id,
                        "image_url": image_urls(request, i.image_id)[0],
                        "thumbnail_url": image_urls(request, i.image_id)[1],
                        "caption": i.caption,
                    }
                    for i in hit.images
                ],
            },
            "scores": {
                "text_similarity": _r(r.scores.get("text")),
                "image_similarity": _r(r.scores.get("image")),
                "combined_score": _r(r.score),
                "rerank_score": _r(r.rerank_score),
                "components": {k: _r(v) for k, v in r.scores.items()},
            },
            "metadata": result_document_meta(r),
        }
        if r.chunk is not None:
            item["position"] = {"chunk_index": r.chunk.chunk_index, "page_number": r.chunk.page_number}
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
