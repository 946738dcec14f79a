"""Document management: upload (JSON, multipart, URL, batch), list, detail, metadata updates, delete."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from mmrag.core import blob_paths
from mmrag.core.ingestion import DEFAULT_OPTIONS, IngestionPipeline, filter_meta
from mmrag.core.jobs import ThreadJobRunner
from mmrag.core.lifecycle import DocumentStatus, mark_archived
from mmrag.core.models import DOCUMENT_TYPES, Chunk, DirectUpload, Document, ImageRecord, Job, new_id, utcnow
from mmrag.core.ports import BlobStore, DirectUploads, DocumentStore, VectorIndex
from mmrag.errors import (
    FileTooLarge,
    InvalidParameter,
    MMRagError,
    NotFound,
    ProcessingError,
    ServiceUnavailable,
    UnsupportedFormat,
)
from mmrag.ingest.images import image_size
from mmrag.ingest.sniff import check_declared

URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
METADATA_FIELDS = ("title", "source", "tags", "category", "author", "created_at")


@dataclass
class UploadResult:
    document: Document
    waited: float


@dataclass
class Deletion:
    document_id: str
    deleted_chunks: int
    deleted_embeddings: int
    archived: bool = False  # delete_related=False: the document stays readable, out of search


@dataclass
class NewDocument:
    """One document of a batch upload, as the caller described it (the arguments of DocumentService.upload)."""

    document_type: str
    file: str | None = None
    content: str | None = None
    metadata: dict[str, Any] | None = None
    processing_options: dict[str, Any] | None = None


@dataclass
class BatchOutcome:
    total: int
    document_ids: list[str]
    failed: list[tuple[int, MMRagError]]  # (position in the batch, why)


class DocumentLocks:
    """In-process per-document locks: a delete and the end of an ingestion never interleave."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @contextmanager
    def __call__(self, document_id: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(document_id, threading.Lock())
        with lock:
            yield


def decode_base64(value: str) -> bytes:
    cleaned = re.sub(r"\s+", "", value)
    if cleaned.startswith("data:") and "," in cleaned:
        cleaned = cleaned.split(",", 1)[1]
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidParameter("file is neither valid base64 nor an http(s) URL", str(exc)) from exc


def decode_image_value(value: str, fetch: Callable[[str, int], bytes], max_bytes: int, max_pixels: int):
    """A picture given as base64 or an http(s) URL (fetched through the SSRF guard), decoded with the pixel limit."""
    from mmrag.ingest.images import open_image

    value = value.strip()
    data = fetch(value, max_bytes) if URL_SCHEME.match(value) else decode_base64(value)
    try:
        return open_image(data, max_pixels)
    except ProcessingError as exc:
        raise InvalidParameter(f"query_image: {exc}") from exc


def check_options(options: dict[str, Any] | None) -> dict[str, Any]:
    opts = {**DEFAULT_OPTIONS, **(options or {})}
    unknown = set(opts) - set(DEFAULT_OPTIONS)
    if unknown:
        raise InvalidParameter(f"unknown processing_options: {', '.join(sorted(unknown))}")
    for flag in ("extract_images", "enable_ocr", "generate_summary"):
        if not isinstance(opts[flag], bool):
            raise InvalidParameter(f"processing_options.{flag} must be true or false")
    size, overlap = opts["chunk_size"], opts["overlap"]
    if not isinstance(size, int) or isinstance(size, bool) or not 16 <= size <= 8192:
        raise InvalidParameter("processing_options.chunk_size must be an integer between 16 and 8192")
    if not isinstance(overlap, int) or isinstance(overlap, bool) or not 0 <= overlap < size:
        raise InvalidParameter("processing_options.overlap must be an integer >= 0 and smaller than chunk_size")
    return opts


class DocumentService:
    def __init__(
        self,
        docs: DocumentStore,
        blobs: BlobStore,
        index: VectorIndex,
        pipeline: IngestionPipeline,
        runner: ThreadJobRunner | None,
        locks: DocumentLocks,
        fetch: Callable[[str, int], bytes],
        max_upload_bytes: int,
        max_image_pixels: int,
        upload_wait_s: float = 0.0,
        direct_uploads: DirectUploads | None = None,
    ):
        self.direct_uploads = direct_uploads  # large files PUT straight to storage (AWS only)
        self.docs, self.blobs, self.index = docs, blobs, index
        self.pipeline = pipeline
        self.runner = runner
        self.locks = locks
        self.fetch = fetch
        self.max_upload_bytes = max_upload_bytes
        self.max_image_pixels = max_image_pixels
        self.upload_wait_s = upload_wait_s

    # ------------------------------------------------------------------ upload
    def resolve_file(self, document_type: str, file: str | None, content: str | None) -> bytes:
        if file is not None and content is not None:
            raise InvalidParameter("send either file (base64 or URL) or content (raw text), not both")
        if content is not None:
            if document_type != "text":
                raise InvalidParameter("content (raw text) is only for document_type 'text'")
            data = content.encode("utf-8")
        elif file is not None:
            if not file.strip():
                raise InvalidParameter("file is empty")
            if URL_SCHEME.match(file.strip()):
                data = self.fetch(file.strip(), self.max_upload_bytes)
            else:
                if len(file) > self.max_upload_bytes * 4 // 3 + 8:
                    raise FileTooLarge(f"file is larger than the {self.max_upload_bytes // (1024 * 1024)} MB limit")
                data = decode_base64(file)
        else:
            raise InvalidParameter("file (base64 or URL) or content (raw text) is required")
        if not data:
            raise InvalidParameter("the file is empty")
        return data

    def direct_upload(
        self,
        tenant: str,
        file_name: str,
        size: int,
        content_type: str,
        document_type: str | None,
        metadata: dict[str, Any],
        processing_options: dict[str, Any],
    ) -> DirectUpload:
        """A signed URL to PUT a file too large for the API straight into storage; the document's type, metadata and
        options travel signed with it, so the upload cannot change them."""
        if self.direct_uploads is None:
            raise ServiceUnavailable(
                "upload URLs need the AWS deployment (S3)", "send the file to POST /api/v1/documents/upload instead"
            )
        if size > self.max_upload_bytes:
            raise FileTooLarge(f"file is larger than the {self.max_upload_bytes // (1024 * 1024)} MB limit")
        check_options(processing_options)  # 400 now rather than a failed ingestion later
        meta = {**metadata}
        meta.setdefault("title", file_name)
        attributes = {"document_type": document_type, "metadata": meta, "processing_options": processing_options}
        return self.direct_uploads.presign(tenant, file_name, size, content_type, attributes)

    def upload_batch(self, tenant: str, items: list[NewDocument | MMRagError]) -> BatchOutcome:
        """Each item is stored (and queued) or reported failed on its own; an item the caller could not even
        describe arrives as its error. Nothing is stored that the outcome does not list."""
        ids: list[str] = []
        failed: list[tuple[int, MMRagError]] = []
        for index, item in enumerate(items):
            if isinstance(item, MMRagError):
                failed.append((index, item))
                continue
            try:
                doc = self.upload(
                    tenant,
                    item.document_type,
                    file=item.file,
                    content=item.content,
                    metadata=item.metadata,
                    processing_options=item.processing_options,
                    wait=False,
                )
            except MMRagError as exc:
                failed.append((index, exc))
                continue
            ids.append(doc.document_id)
        return BatchOutcome(len(items), ids, failed)

    def upload(
        self,
        tenant: str,
        document_type: str,
        *,
        file: str | None = None,
        content: str | None = None,
        raw: bytes | None = None,
        metadata: dict[str, Any] | None = None,
        processing_options: dict[str, Any] | None = None,
        wait: bool = True,
    ) -> Document:
        if document_type not in DOCUMENT_TYPES:
            raise InvalidParameter(f"document_type must be one of {', '.join(DOCUMENT_TYPES)}")
        opts = check_options(processing_options)
        meta = dict(metadata or {})
        data = raw if raw is not None else self.resolve_file(document_type, file, content)
        if len(data) > self.max_upload_bytes:
            raise FileTooLarge(f"file is larger than the {self.max_upload_bytes // (1024 * 1024)} MB limit")
        fmt = check_declared(document_type, data)
        if document_type == "image":
            try:
                width, height = image_size(data)
            except ProcessingError as exc:
                raise UnsupportedFormat(f"unreadable image: {exc}") from exc
            if width * height > self.max_image_pixels:
                raise InvalidParameter(
                    f"image is {width}x{height} pixels, above the limit of {self.max_image_pixels} pixels"
                )
        meta.setdefault("source", "upload")
        doc_id = new_id("doc")
        doc = Document(
            document_id=doc_id,
            tenant=tenant,
            document_type=document_type,
            metadata=meta,
            status="processing",
            file_format=fmt,
            file_size=len(data),
            content_hash=hashlib.sha256(data).hexdigest(),
            blob_key=blob_paths.original_key(tenant, doc_id),
            processing_options=opts,
        )
        self.blobs.put(doc.blob_key, data)
        try:
            self.docs.create_document(doc, Job(job_id=new_id("job"), tenant=tenant, document_id=doc_id))
        except BaseException:
            self.blobs.delete_prefix(blob_paths.document_prefix(tenant, doc_id))
            raise
        if self.runner:
            self.runner.notify()
            if wait and self.upload_wait_s > 0:
                self.runner.wait_idle(lambda: self._settled(tenant, doc_id), self.upload_wait_s)
        return self.docs.get_document(tenant, doc_id) or doc

    def _settled(self, tenant: str, doc_id: str) -> bool:
        d = self.docs.get_document(tenant, doc_id)
        return d is None or d.status != "processing"

    # ------------------------------------------------------------------ read
    def get(self, tenant: str, document_id: str) -> tuple[Document, list[Chunk], list[ImageRecord]]:
        doc = self.docs.get_document(tenant, document_id)
        if doc is None or doc.status == "deleting":
            raise NotFound(f"document {document_id} not found")
        return doc, self.docs.get_chunks(tenant, document_id), self.docs.get_images(tenant, document_id)

    def list(self, tenant: str, **query: Any) -> tuple[int, list[Document]]:
        return self.docs.list_documents(tenant, **query)

    def image(self, tenant: str, image_id: str, thumbnail: bool = False) -> tuple[bytes, str]:
        rec = self.docs.get_images_by_id(tenant, [image_id]).get(image_id)
        if rec is None:
            raise NotFound(f"image {image_id} not found")
        data = self.blobs.get(rec.thumb_key if thumbnail else rec.blob_key)
        if data is None:
            raise NotFound(f"image {image_id} not found")
        return data, "image/png" if thumbnail else rec.mime

    # ------------------------------------------------------------------ write
    def update_metadata(self, tenant: str, document_id: str, changes: dict[str, Any]) -> tuple[Document, list[str]]:
        if not changes:
            raise InvalidParameter("metadata must name at least one field to update")
        with self.locks(document_id):
            doc = self.docs.get_document(tenant, document_id)
            if doc is None or doc.status == "deleting":
                raise NotFound(f"document {document_id} not found")
            doc.metadata = {**doc.metadata, **changes}
            doc.updated_at = utcnow()
            self.docs.update_document(doc)
            self.index.update_document_meta(tenant, filter_meta(doc))
        return doc, sorted(changes)

    def delete(self, tenant: str, document_id: str, delete_related: bool = True) -> Deletion:
        with self.locks(document_id):
            doc = self.docs.get_document(tenant, document_id)
            if doc is None or doc.status == "deleting":
                raise NotFound(f"document {document_id} not found")
            n_chunks = len(self.docs.get_chunks(tenant, document_id))
            if not delete_related:
                # keep the document and its chunks readable, but take it out of search: status 'archived'
                n_vectors = self.index.delete_document(tenant, document_id)
                mark_archived(doc)
                self.docs.update_document(doc)
                return Deletion(document_id, 0, n_vectors, archived=True)
            doc.status = DocumentStatus.DELETING
            self.docs.update_document(doc)  # a crash from here on is finished by finish_deletes() at start-up
            return self._purge(doc, n_chunks)

    def _purge(self, doc: Document, n_chunks: int | None = None) -> Deletion:
        n_vectors = self.index.delete_document(doc.tenant, doc.document_id)
        self.blobs.delete_prefix(blob_paths.document_prefix(doc.tenant, doc.document_id))
        chunks, _images = self.docs.delete_document(doc.tenant, doc.document_id)
        return Deletion(doc.document_id, n_chunks if n_chunks is not None else chunks, n_vectors)

    def finish_deletes(self) -> int:
        """Complete deletions that a crash interrupted."""
        count = 0
        for doc in self.docs.documents_with_status(DocumentStatus.DELETING):
            self._purge(doc)
            count += 1
        return count

    def give_up(self, job: Job) -> None:
        self.pipeline.fail_document(job.tenant, job.document_id, "processing was interrupted repeatedly")
