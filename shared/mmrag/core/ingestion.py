"""The ingestion pipeline: sniffed bytes → pages, pictures, OCR → chunks → vectors → index → completed.

A run always starts from a clean slate for its document (derived blobs, index rows and chunks of an earlier, interrupted
attempt are removed first), and the document only becomes 'completed' after its chunks, images and vectors are all
written, so a crash or a retry can never leave half a document visible.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import time
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmrag.core import blob_paths
from mmrag.core.lifecycle import DocumentStatus, is_gone, mark_completed, mark_failed
from mmrag.core.models import Chunk, DocFilterMeta, Document, ImageRecord, IndexItem, Job, new_id
from mmrag.core.pictures import chunks_about
from mmrag.core.ports import BlobStore, ClipEmbedder, DocumentStore, OcrEngine, TextEmbedder, VectorIndex
from mmrag.errors import ModelUnavailable, ProcessingError, ServiceUnavailable
from mmrag.ingest.chunking import chunk_text
from mmrag.ingest.images import open_image, thumbnail_png, to_png
from mmrag.ingest.parsers import ParsedPage, parse_document  # loads a format's library only to parse that format
from mmrag.text.tokens import split_sentences

log = logging.getLogger(__name__)

DEFAULT_OPTIONS: dict[str, Any] = {
    "extract_images": True,
    "chunk_size": 200,
    "overlap": 30,
    "enable_ocr": True,
    "generate_summary": True,
}


@dataclass
class IngestLimits:
    max_pixels: int = 40_000_000
    max_pages: int = 2000
    ocr_min_chars: int = 16
    scan_dpi: int = 150


def filter_meta(doc: Document) -> DocFilterMeta:
    meta = doc.metadata
    return DocFilterMeta(
        document_id=doc.document_id,
        document_type=doc.document_type,
        category=meta.get("category"),
        tags=[str(t) for t in meta.get("tags") or []],
        date=str(meta.get("created_at") or doc.created_at),
    )


@dataclass
class _Stages:
    """Each stage's status and seconds; the running one also says how far it is (`done` of `total` `unit`).

    `report` is called with a snapshot when a stage starts or ends, and at most every REPORT_EVERY_S while it moves,
    so that a reader of the document sees a long ingestion advance without a store write per item."""

    report: Callable[[dict[str, dict[str, Any]]], None] | None = None
    timings: dict[str, dict[str, Any]] = field(default_factory=dict)
    _current: str | None = None
    _started: float = 0.0
    _reported: float = 0.0

    REPORT_EVERY_S = 1.0

    def run(self, name: str, fn: Callable[[], Any], total: int | None = None, unit: str | None = None) -> Any:
        self._current, self._started = name, time.perf_counter()
        self.timings[name] = {"status": "running", "seconds": 0.0}
        if total is not None:
            self.timings[name].update({"done": 0, "total": total, "unit": unit})
        self._emit(force=True)
        try:
            result = fn()
        except Exception:
            self._end(name, "failed")
            raise
        self._end(name, "completed")
        return result

    def advance(self, done: int) -> None:
        """The running stage has finished `done` of its `total` items."""
        if self._current is None:
            return
        entry = self.timings[self._current]
        entry["done"] = done
        entry["seconds"] = round(time.perf_counter() - self._started, 4)
        self._emit()

    def _end(self, name: str, status: str) -> None:
        entry = self.timings[name]
        entry.update({"status": status, "seconds": round(time.perf_counter() - self._started, 4)})
        if status == "completed" and "total" in entry:
            entry["done"] = entry["total"]
        self._current = None
        if status == "completed":
            self._emit(force=True)

    def _emit(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.report is None or (not force and now - self._reported < self.REPORT_EVERY_S):
            return
        self._reported = now
        try:
            self.report({k: dict(v) for k, v in self.timings.items()})
        except Exception:  # progress is informative only: never let it break an ingestion
            log.warning("could not record ingestion progress", exc_info=True)


class IngestionPipeline:
    def __init__(
        self,
        docs: DocumentStore,
        blobs: BlobStore,
        index: VectorIndex,
        text_embedder: TextEmbedder,
        clip: ClipEmbedder,
        ocr: OcrEngine,
        limits: IngestLimits,
        document_lock: Callable[[str], Any],
    ):
        self.docs, self.blobs, self.index = docs, blobs, index
        self.text_embedder, self.clip, self.ocr = text_embedder, clip, ocr
        self.limits = limits
        self.document_lock = document_lock

    # ------------------------------------------------------------------ entry point
    def run(self, job: Job) -> None:
        doc = self.docs.get_document(job.tenant, job.document_id)
        if is_gone(doc):
            return
        assert doc is not None
        self.discard_outputs(doc)
        started = time.perf_counter()
        stages = _Stages(report=lambda snapshot: self._record_progress(doc, snapshot))
        try:
            chunks, images, items, own_title = self._build(doc, stages)
        except ProcessingError as exc:
            self.fail_document(doc.tenant, doc.document_id, str(exc), stages.timings, started)
            return
        except ServiceUnavailable as exc:
            # a model endpoint or OCR service is briefly unavailable: leave nothing behind and let the job be retried
            self.discard_outputs(doc)
            if isinstance(exc, ModelUnavailable):
                self._record_waiting(doc, exc, stages.timings)
            raise
        except Exception as exc:
            log.exception("ingestion of %s failed", doc.document_id)
            message = f"internal error while processing: {type(exc).__name__}"
            self.fail_document(doc.tenant, doc.document_id, message, stages.timings, started)
            return
        stages.report = None  # the commit below writes the final stages itself, under the document's lock
        with self.document_lock(doc.document_id):
            current = self.docs.get_document(doc.tenant, doc.document_id)
            if is_gone(current):
                self.discard_outputs(doc)
                return
            assert current is not None
            stages.run("index", lambda: self._commit(current, chunks, images, items))
            mark_completed(current, chunks, len(images))
            if own_title and not current.metadata.get("title"):  # no title from the caller or the file name
                current.metadata = {**current.metadata, "title": own_title}
            current.content_preview = _preview(chunks)
            if current.processing_options.get("generate_summary", True):
                current.summary = _extractive_summary(chunks, items)
            current.stages = stages.timings
            current.processing_time = round(time.perf_counter() - started, 3)
            self.docs.update_document(current)

    def _record_waiting(self, doc: Document, exc: ModelUnavailable, stages: dict[str, dict[str, Any]]) -> None:
        """The document stays `processing`; its `error` says which model it waits for, why, and the fix."""
        waiting = {k: {**v, "status": "waiting"} if v.get("status") == "failed" else v for k, v in stages.items()}
        message = f"waiting: {exc.message}. {exc.detail} The document is processed as soon as the model is there."
        with self.document_lock(doc.document_id):
            current = self.docs.get_document(doc.tenant, doc.document_id)
            if current is None or current.status != DocumentStatus.PROCESSING or current.error == message:
                return
            current.error, current.stages = message, waiting
            self.docs.update_document(current)

    def _record_progress(self, doc: Document, snapshot: dict[str, dict[str, Any]]) -> None:
        with self.document_lock(doc.document_id):
            current = self.docs.get_document(doc.tenant, doc.document_id)
            if current is None or current.status != DocumentStatus.PROCESSING:
                return
            current.stages = snapshot
            self.docs.update_document(current)

    def _embed_in_slices(self, texts: list[str], stages: _Stages) -> np.ndarray:
        """Text vectors in input order, computed longest-alike together (less padding) and a slice at a time, so
        that the document's progress moves while a long one is embedded."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: np.ndarray | None = None
        for start in range(0, len(order), EMBED_SLICE):
            part = order[start : start + EMBED_SLICE]
            rows = self.text_embedder.embed_texts([texts[i] for i in part])
            if out is None:
                out = np.empty((len(texts), rows.shape[1]), dtype=np.float32)
            out[part] = rows
            stages.advance(start + len(part))
        assert out is not None
        return out

    def _commit(self, doc: Document, chunks: list[Chunk], images: list[ImageRecord], items: list[IndexItem]) -> None:
        self.docs.replace_content(doc.tenant, doc.document_id, chunks, images)
        self.index.upsert_document(doc.tenant, filter_meta(doc), items)

    def discard_outputs(self, doc: Document) -> None:
        """Remove everything an earlier attempt may have produced for this document (not the original upload)."""
        self._discard(doc.tenant, doc.document_id)

    def _discard(self, tenant: str, document_id: str) -> None:
        self.index.delete_document(tenant, document_id)
        self.blobs.delete_prefix(blob_paths.derived_prefix(tenant, document_id))
        with contextlib.suppress(KeyError):  # the document row is already gone
            self.docs.replace_content(tenant, document_id, [], [])

    def fail_document(
        self,
        tenant: str,
        document_id: str,
        message: str,
        stages: dict[str, dict[str, Any]] | None = None,
        started: float | None = None,
    ) -> None:
        """The one place a document is marked failed (local workers, the AWS ingest and Textract functions, a job
        given up after repeated crashes): nothing of it stays searchable, the reason is kept."""
        with self.document_lock(document_id):
            self._discard(tenant, document_id)  # also when the row is gone: no blob or vector may outlive it
            current = self.docs.get_document(tenant, document_id)
            if is_gone(current):
                return
            assert current is not None
            mark_failed(current, message)
            if stages is not None:
                current.stages = stages
            if started is not None:
                current.processing_time = round(time.perf_counter() - started, 3)
            self.docs.update_document(current)

    # ------------------------------------------------------------------ the work
    def _build(
        self, doc: Document, stages: _Stages
    ) -> tuple[list[Chunk], list[ImageRecord], list[IndexItem], str | None]:
        opts = {**DEFAULT_OPTIONS, **doc.processing_options}
        raw = self.blobs.get(doc.blob_key)
        if raw is None:
            raise ProcessingError("the uploaded file is missing from the blob store")
        parsed = stages.run(
            "parse",
            lambda: parse_document(
                raw,
                doc.file_format,
                extract_images=bool(opts["extract_images"]) or doc.document_type == "image",
                ocr=bool(opts["enable_ocr"]),
                max_pages=self.limits.max_pages,
                max_pixels=self.limits.max_pixels,
                ocr_min_chars=self.limits.ocr_min_chars,
                scan_dpi=self.limits.scan_dpi,
            ),
        )

        images: list[ImageRecord] = []
        pil_images = []
        scan_text: dict[int, tuple[str, str]] = {}  # page number → (ocr text, image id)

        def extract_pictures() -> None:
            derived = blob_paths.derived_prefix(doc.tenant, doc.document_id)
            for done, pimg in enumerate(parsed.images):
                stages.advance(done)
                img = open_image(pimg.data, self.limits.max_pixels)
                image_id = new_id("img")
                blob_key = f"{derived}/images/{image_id}.png"
                thumb_key = f"{derived}/images/{image_id}.thumb.png"
                self.blobs.put(blob_key, to_png(img), "image/png")
                self.blobs.put(thumb_key, thumbnail_png(img), "image/png")
                images.append(
                    ImageRecord(
                        image_id=image_id,
                        document_id=doc.document_id,
                        position=pimg.position,
                        blob_key=blob_key,
                        thumb_key=thumb_key,
                        width=img.width,
                        height=img.height,
                        mime="image/png",
                        page_number=pimg.page_number,
                        bbox=pimg.bbox,
                        text_before=pimg.text_before,
                        text_after=pimg.text_after,
                    )
                )
                pil_images.append((img, pimg.is_page_scan))

        stages.run("extract_images", extract_pictures, total=len(parsed.images), unit="pictures")

        def run_ocr() -> None:
            if not opts["enable_ocr"]:
                return
            for done, (rec, (img, is_scan)) in enumerate(zip(images, pil_images, strict=True)):
                stages.advance(done)
                text = self.ocr.recognize(img).strip()
                rec.ocr_text = text
                rec.caption = _caption(text, rec)
                if is_scan and rec.page_number is not None:
                    scan_text[rec.page_number] = (text, rec.image_id)
            for rec, (_img, _scan) in zip(images, pil_images, strict=True):
                if not rec.caption:
                    rec.caption = _caption("", rec)

        stages.run("ocr", run_ocr, total=len(images) if opts["enable_ocr"] else 0, unit="pictures")
        if not opts["enable_ocr"]:
            for rec in images:
                rec.caption = _caption("", rec)

        def make_chunks() -> list[Chunk]:
            size, overlap = int(opts["chunk_size"]), int(opts["overlap"])
            chunks: list[Chunk] = []

            def add(
                text: str, page: int | None, source: str, image_id: str | None, at: ParsedPage | None = None
            ) -> None:
                for piece in chunk_text(text, size, overlap):
                    section, paragraph = _position(at, piece.start)
                    chunks.append(
                        Chunk(
                            chunk_id=new_id("chunk"),
                            document_id=doc.document_id,
                            chunk_index=len(chunks),
                            content=piece.text,
                            token_count=piece.token_count,
                            page_number=page,
                            source=source,
                            image_id=image_id,
                            char_start=piece.start,
                            char_end=piece.end,
                            section=section,
                            paragraph=paragraph,
                        )
                    )

            scanned_images = {image_id for _, image_id in scan_text.values()}
            for page in parsed.pages:
                if page.text.strip():
                    add(page.text, page.number, "text", None, page)
                if page.number is not None and page.number in scan_text:
                    text, image_id = scan_text[page.number]
                    add(text, page.number, "ocr", image_id)
            for rec in images:
                if rec.image_id not in scanned_images and rec.ocr_text:
                    add(rec.ocr_text, rec.page_number, "ocr", rec.image_id)
            return chunks

        chunks = stages.run("chunk", make_chunks, total=len(parsed.pages), unit="pages")
        if not chunks and not images:
            raise ProcessingError("no text or pictures could be extracted from the document")

        # whole-page scans are not pictures here: their text is the page itself
        tied = chunks_about(chunks, [rec for rec, (_, scan) in zip(images, pil_images, strict=True) if not scan])

        def embed() -> list[IndexItem]:
            text_vecs = self._embed_in_slices([c.content for c in chunks], stages)
            # CLIP text vectors only where a picture is: a picture query reaches text through them, and CLIP reads
            # 77 tokens, so a vector per chunk of plain prose bought little for a third of the ingestion time
            clip_rows = [i for i, c in enumerate(chunks) if c.chunk_id in tied]
            clip_text = self.clip.embed_texts([chunks[i].content for i in clip_rows]) if clip_rows else []
            clip_of = {chunks[i].chunk_id: clip_text[n] for n, i in enumerate(clip_rows)}
            img_vecs = self.clip.embed_images([img for img, _ in pil_images]) if pil_images else np.zeros((0, 0))
            stages.advance(len(chunks) + len(images))
            items = [
                IndexItem(
                    item_id=c.chunk_id,
                    document_id=doc.document_id,
                    kind="chunk",
                    text=c.content,
                    vectors={"text": text_vecs[i], "clip": clip_of[c.chunk_id]}
                    if c.chunk_id in clip_of
                    else {"text": text_vecs[i]},
                    page_number=c.page_number,
                    image_id=c.image_id,
                )
                for i, c in enumerate(chunks)
            ]
            items += [
                IndexItem(
                    item_id=rec.image_id,
                    document_id=doc.document_id,
                    kind="image",
                    text="",
                    vectors={"clip": img_vecs[i]},
                    page_number=rec.page_number,
                    image_id=rec.image_id,
                )
                for i, rec in enumerate(images)
            ]
            return items

        items = stages.run("embed", embed, total=len(chunks) + len(images), unit="chunks and pictures")
        return chunks, images, items, own_title(parsed.title, parsed.pages[0].text if parsed.pages else "")


EMBED_SLICE = 64


def _position(page: ParsedPage | None, offset: int) -> tuple[str | None, int | None]:
    """The heading path and the paragraph number at `offset` of a page's text (DOCX sections; None elsewhere)."""
    if page is None:
        return None, None
    i = bisect_right(page.paragraphs, (offset, math.inf)) - 1
    return page.section, page.paragraphs[i][1] if i >= 0 else None


def _caption(ocr_text: str, rec: ImageRecord) -> str:
    text = " ".join(ocr_text.split())
    if not text:
        text = " ".join((rec.text_before or rec.text_after or "").split())[-200:]
    return text[:300]


def _preview(chunks: list[Chunk], limit: int = 300) -> str:
    text = " ".join(c.content for c in chunks[:3])
    return text[:limit]


def _extractive_summary(chunks: list[Chunk], items: list[IndexItem], max_sentences: int = 3) -> str | None:
    """The sentences of the chunk closest to the document's mean text vector (its most central passage)."""
    vecs = [it.vectors["text"] for it in items if it.kind == "chunk"]
    if not vecs:
        return None
    matrix = np.stack(vecs)
    centre = matrix.mean(axis=0)
    best = int(np.argmax(matrix @ centre))
    sentences = split_sentences(chunks[best].content)
    return " ".join(sentences[:max_sentences])[:600] or None

_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
TITLE_CHARS = 200
# what authoring tools write when the author wrote nothing: not a title
_TOOL_PREFIX = re.compile(r"^microsoft (?:word|powerpoint|excel) - ", re.IGNORECASE)
_PLACEHOLDER_TITLES = re.compile(
    r"^(?:untitled(?: document)?|title|document\d*|presentation\d*|powerpoint presentation|slide \d+|no title)$",
    re.IGNORECASE,
)


def own_title(declared: str | None, first_page: str) -> str | None:
    """A document's own title: its properties' (PDF, DOCX, PPTX) or HTML <title>/<h1>, else a Markdown heading.
    Placeholders of authoring tools ("Untitled", "Microsoft Word - x.docx") do not count."""
    title = " ".join(_TOOL_PREFIX.sub("", declared or "").split())
    if title and _TOOL_PREFIX.match(declared or ""):
        title = re.sub(r"\.(?:docx?|pptx?|xlsx?|rtf|txt)$", "", title, flags=re.IGNORECASE)
    if not title or _PLACEHOLDER_TITLES.match(title):
        heading = _HEADING.search(first_page[:20_000])
        title = " ".join(heading.group(1).split()) if heading else ""
    return title[:TITLE_CHARS] or None
