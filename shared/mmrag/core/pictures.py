"""Which text is about a picture: its OCR text, the text on its page, or (unpaged documents) the text that holds the
words just before or after it. Ingestion gives that text a CLIP vector; a picture query lifts it in search."""

from __future__ import annotations

from mmrag.core.models import Chunk, ImageRecord

ANCHOR_CHARS = 40


def _anchors(rec: ImageRecord) -> list[str]:
    before = " ".join(rec.text_before.split())[-ANCHOR_CHARS:]
    after = " ".join(rec.text_after.split())[:ANCHOR_CHARS]
    return [a for a in (before, after) if len(a) >= 8]


def is_about(chunk: Chunk, rec: ImageRecord) -> bool:
    if chunk.image_id == rec.image_id:
        return True
    if rec.page_number is not None:
        return chunk.page_number == rec.page_number
    if chunk.page_number is not None:
        return False
    flat = " ".join(chunk.content.split())
    return any(a in flat for a in _anchors(rec))


def chunks_about(chunks: list[Chunk], pictures: list[ImageRecord]) -> set[str]:
    """Ids of the chunks that are about any of the pictures."""
    by_page = {p.page_number for p in pictures if p.page_number is not None}
    ids = {p.image_id for p in pictures}
    unpaged = [p for p in pictures if p.page_number is None]
    return {
        c.chunk_id
        for c in chunks
        if c.image_id in ids
        or (c.page_number is not None and c.page_number in by_page)
        or any(is_about(c, p) for p in unpaged)
    }
