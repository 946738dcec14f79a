"""Document management: upload (JSON, multipart, URL, batch), list, detail, metadata updates, delete."""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from mmrag.core import blob_paths
from mmrag.core.ingestion import DEFAULT_OPTIONS, IngestionPipeline, filter_meta
from mmrag.core.jobs import ThreadJobRunner
from mmrag.core.lifecycle import DocumentStatus, mark_archived
from mmrag.core.models import DOCUMENT_TYPES, Chunk, DirectUpload, Document, ImageRecord, Job, new_id, utcnow
from mmrag.core.ports import BlobStore, DirectUploads, DocumentStore, VectorIndex
from mmrag.errors import (
    Conflict,
    FileTooLarge,
    InvalidParameter,
    MMRagError,
    NotFound,
    ProcessingError,
    ServiceUnavailable,
    UnsupportedFormat,
)
from mmrag.ingest.images import image_size
from mmrag.ingest.sniff import DOCUMENT_TYPE_FOR_FORMAT, check_declared, describe, sniff

log = logging.getLogger(__name__)

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
class Uploaded:
    """What an upload did: stored a new document, or found the same file already uploaded by the tenant."""

    document: Document
    deduplicated: bool = False  # `document` is the tenant's earlier upload of the same bytes
    reprocessing: bool = False  # ... which had failed, and is processed again with this upload's options


@dataclass
class NewDocument:
    """One document of a batch upload, as the caller described it (the arguments of DocumentService.upload)."""

    document_type: str | None
    file: str | None = None
    content: str | None = None
    metadata: dict[str, Any] | None = None
    processing_options: dict[str, Any] | None = None
    file_name: str | None = None
    allow_duplicate: bool = False


@dataclass
class BatchOutcome:
    total: int
    document_ids: list[str]
    failed: list[tuple[int, MMRagError]]  # (position in the batch, why)
    duplicates: list[tuple[int, str]] = field(default_factory=list)  # (position, the earlier upload it matched)


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


def url_file_name(url: str) -> str | None:
    """The file name at the end of a URL's path ('…/Q3%20report.pdf?x=1' -> 'Q3 report.pdf'), if it has one."""
    path = urllib.parse.urlsplit(url.strip()).path
    name = urllib.parse.unquote(path.rsplit("/", 1)[-1]).strip()
    return name or None


def title_from_file_name(name: str) -> str | None:
    """A title from a file name: no folders, no extension, '_' and runs of spaces as one space."""
    base = re.split(r"[\\/]", name)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base.lstrip(".") else base
    title = " ".join(stem.replace("_", " ").split())[:200]
    return title or None


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
    def resolve_file(self, document_type: str | None, file: str | None, content: str | None) -> bytes:
        if file is not None and content is not None:
            raise InvalidParameter("send either file (base64 or URL) or content (raw text), not both")
        if content is not None:
            if document_type not in (None, "text"):
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
        describe arrives as its error. Nothing is stored that the outcome does not list: an item either fails
        before anything of it is written, or its document is listed (submit cleans up after itself)."""
        ids: list[str] = []
        failed: list[tuple[int, MMRagError]] = []
        duplicates: list[tuple[int, str]] = []
        for index, item in enumerate(items):
            if isinstance(item, MMRagError):
                failed.append((index, item))
                continue
            try:
                done = self.submit(
                    tenant,
                    item.document_type,
                    file=item.file,
                    content=item.content,
                    metadata=item.metadata,
                    processing_options=item.processing_options,
                    file_name=item.file_name,
                    deduplicate=not item.allow_duplicate,
                    wait=False,
                )
            except MMRagError as exc:
                failed.append((index, exc))
                continue
            except Exception as exc:  # a bug must not hide the items already stored: report it with the others
                log.exception("batch item %d of tenant %s failed", index, tenant)
                failed.append((index, MMRagError(f"internal error: {type(exc).__name__}")))
                continue
            ids.append(done.document.document_id)
            if done.deduplicated:
                duplicates.append((index, done.document.document_id))
        return BatchOutcome(len(items), ids, failed, duplicates)

    def upload(self, tenant: str, document_type: str | None, **kwargs: Any) -> Document:
        """submit() for callers that only need the document (bulk ingest, S3 drops): no duplicate check unless asked."""
        return self.submit(tenant, document_type, **kwargs).document

    def submit(
        self,
        tenant: str,
        document_type: str | None,
        *,
        file: str | None = None,
        content: str | None = None,
        raw: bytes | None = None,
        metadata: dict[str, Any] | None = None,
        processing_options: dict[str, Any] | None = None,
        file_name: str | None = None,
        deduplicate: bool = False,
        wait: bool = True,
    ) -> Uploaded:
        """Store an upload and queue its ingestion. `document_type` None: taken from the sniffed bytes (a declared
        one must match them). With `deduplicate`, bytes the tenant uploaded before return that document instead."""
        if document_type is not None and document_type not in DOCUMENT_TYPES:
            raise InvalidParameter(f"document_type must be one of {', '.join(DOCUMENT_TYPES)}")
        opts = check_options(processing_options)
        meta = dict(metadata or {})
        data = raw if raw is not None else self.resolve_file(document_type, file, content)
        if len(data) > self.max_upload_bytes:
            raise FileTooLarge(f"file is larger than the {self.max_upload_bytes // (1024 * 1024)} MB limit")
        if document_type is None:
            fmt = sniff(data)
            if fmt not in DOCUMENT_TYPE_FOR_FORMAT:
                raise UnsupportedFormat(
                    f"cannot ingest {describe(fmt, data)}; send text, HTML, PDF, DOCX, PPTX or a picture"
                )
            document_type = DOCUMENT_TYPE_FOR_FORMAT[fmt]
        else:
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
        name = file_name or (url_file_name(file) if file is not None and URL_SCHEME.match(file.strip()) else None)
        if name:
            meta.setdefault("file_name", name)
            if not meta.get("title") and title_from_file_name(name):
                meta["title"] = title_from_file_name(name)
        meta.setdefault("source", "upload")
        content_hash = hashlib.sha256(data).hexdigest()
        if not deduplicate:
            return Uploaded(self._store(tenant, document_type, fmt, data, content_hash, meta, opts, wait))
        with self.locks(f"content:{tenant}:{content_hash}"):  # two concurrent copies here make one document
            earlier = self._earlier_upload(tenant, content_hash)
            if earlier is None:
                return Uploaded(self._store(tenant, document_type, fmt, data, content_hash, meta, opts, wait))
        if earlier.status != DocumentStatus.FAILED:
            return Uploaded(earlier, deduplicated=True)
        # the same file failed before: this upload retries it, with its own options, instead of adding a copy
        given = {k: v for k, v in (metadata or {}).items() if v is not None}
        try:
            again = self.reprocess(tenant, earlier.document_id, processing_options, metadata=given, wait=wait)
        except (Conflict, NotFound):  # someone else retried or deleted it a moment ago
            again = self.docs.get_document(tenant, earlier.document_id) or earlier
        return Uploaded(again, deduplicated=True, reprocessing=True)

    def _earlier_upload(self, tenant: str, content_hash: str) -> Document | None:
        """The tenant's earlier document of these bytes that an upload should return: not an archived one (the
        caller took it out of search; uploading again makes a new, searchable document)."""
        for doc in self.docs.documents_with_content(tenant, content_hash):
            if doc.status in (DocumentStatus.PROCESSING, DocumentStatus.COMPLETED, DocumentStatus.FAILED):
                return doc
        return None

    def _store(
        self,
        tenant: str,
        document_type: str,
        fmt: str,
        data: bytes,
        content_hash: str,
        meta: dict[str, Any],
        opts: dict[str, Any],
        wait: bool,
    ) -> Document:
        doc_id = new_id("doc")
        doc = Document(
            document_id=doc_id,
            tenant=tenant,
            document_type=document_type,
            metadata=meta,
            status="processing",
            file_format=fmt,
            file_size=len(data),
            content_hash=content_hash,
            blob_key=blob_paths.original_key(tenant, doc_id),
            processing_options=opts,
        )
        self.blobs.put(doc.blob_key, data)
        try:
            self.docs.create_document(doc, Job(job_id=new_id("job"), tenant=tenant, document_id=doc_id))
        except BaseException:
            self.blobs.delete_prefix(blob_paths.document_prefix(tenant, doc_id))
            raise
        return self._after_queueing(doc, wait)

    def _after_queueing(self, doc: Document, wait: bool) -> Document:
        """Wake the workers and, if asked, give a small document time to finish. The document is stored by now:
        nothing here may raise, or the caller would not learn its id."""
        try:
            if self.runner:
                self.runner.notify()
                if wait and self.upload_wait_s > 0:
                    self.runner.wait_idle(lambda: self._settled(doc.tenant, doc.document_id), self.upload_wait_s)
            return self.docs.get_document(doc.tenant, doc.document_id) or doc
        except Exception:
            log.exception("could not read back document %s after queueing it", doc.document_id)
            return doc

    def reprocess(
        self,
        tenant: str,
        document_id: str,
        processing_options: dict[str, Any] | None = None,
        *,
        metadata: dict[str, Any] | None = None,
        wait: bool = True,
    ) -> Document:
        """Run the document through the pipeline again, with `processing_options` over its current ones. The job
        starts by removing what the last run produced, and the document is `completed` again only once the new
        chunks, pictures and vectors are all written. A document being processed is 409."""
        with self.locks(document_id):
            doc = self.docs.get_document(tenant, document_id)
            if doc is None or doc.status == DocumentStatus.DELETING:
                raise NotFound(f"document {document_id} not found")
            if doc.status == DocumentStatus.PROCESSING:
                raise Conflict(
                    f"document {document_id} is being processed; reprocess it once its status is completed or failed"
                )
            opts = check_options({**doc.processing_options, **(processing_options or {})})
            before = Document(**{**doc.__dict__})
            doc.processing_options = opts
            doc.metadata = {**doc.metadata, **(metadata or {})}
            doc.status, doc.error = DocumentStatus.PROCESSING, None
            doc.stages, doc.processing_time = {}, None
            doc.updated_at = utcnow()
            self.docs.update_document(doc)
            try:
                self.docs.enqueue(Job(job_id=new_id("job"), tenant=tenant, document_id=document_id))
            except BaseException:
                self.docs.update_document(before)  # not queued: the document stays as it was
                raise
        return self._after_queueing(doc, wait)

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
