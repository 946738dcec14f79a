"""A document's life: its statuses and the transitions between them, written once for every platform.

    processing ──► completed ──► archived (delete_related=false) ──► deleting ──► gone
        │  ▲            │                                                ▲
        ▼  │ reprocess  └────────────────────────────────────────────────┘ delete
      failed ─────────────────────────────────────────────────────────────┘

The ingestion pipeline moves a document out of `processing` (mmrag.core.ingestion:
`IngestionPipeline.run` and `IngestionPipeline.fail_document`, with `mark_completed` / `mark_failed` below);
the document service archives and deletes (mmrag.core.documents).
"""

from __future__ import annotations

from enum import StrEnum

from mmrag.core.models import Chunk, Document, utcnow


class DocumentStatus(StrEnum):
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    ARCHIVED = "archived"
    DELETING = "deleting"


def is_gone(doc: Document | None) -> bool:
    """Deleted or being deleted: nothing may be written for it any more."""
    return doc is None or doc.status == DocumentStatus.DELETING


def mark_failed(doc: Document, message: str) -> None:
    """Failed, with nothing of it searchable (its chunks, pictures and vectors were discarded by the caller)."""
    doc.status = DocumentStatus.FAILED
    doc.error = message
    doc.chunks_count = doc.images_count = doc.total_tokens = 0
    doc.updated_at = utcnow()


def mark_completed(doc: Document, chunks: list[Chunk], images_count: int) -> None:
    doc.status = DocumentStatus.COMPLETED
    doc.error = None
    doc.chunks_count = len(chunks)
    doc.images_count = images_count
    doc.total_tokens = sum(c.token_count for c in chunks)
    doc.updated_at = utcnow()


def mark_archived(doc: Document) -> None:
    doc.status = DocumentStatus.ARCHIVED
    doc.updated_at = utcnow()
