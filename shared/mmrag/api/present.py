"""Shapes core records into the contract's response fields."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from mmrag.core.models import Chunk, Document, ImageRecord


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
