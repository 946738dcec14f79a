"""Ingestion jobs on AWS: there are no worker threads, SQS is the runner.

- Every upload writes the document and its job row in one DynamoDB transaction (DocumentService.upload, unchanged).
  `JobSubmittingStore` wraps the document store so that, right after that transaction, the job is handed on: the
  API functions send it to the ingest queue as a job message; the ingest function, which created the document from
  an S3 object itself, keeps it and runs it at once. If the message cannot be sent, the document row is removed
  again and the upload fails (503): never a document that nobody will process.
- `process_job` runs one job: claim the row (queued -> running, attempts + 1), give up after too many receives,
  skip documents that are gone or already settled, then either run the whole pipeline or, for a PDF with scanned
  pages when MMRAG_OCR_ENGINE=textract, start Textract's asynchronous text detection and stop; the completion
  function (mmrag.lambda_handlers.textract_complete) runs the pipeline with Textract's page text (`run_with_page_text`).

The split of "OCR of scanned pages via Textract" from the rest is done here without changing the pipeline: the
pages that need OCR are found from the PDF's text layer (`scan_pages`, the same rule as the parser's), and on
completion `PageTextOcr` answers the pipeline's OCR calls for those page renders with Textract's text. It recognises
a page render by its pixels, which costs one more parse of the PDF; infra/README.md names the pipeline interface
that would make that unnecessary.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from mmrag.core.models import Document, Job, utcnow
from mmrag.errors import ServiceUnavailable

log = logging.getLogger(__name__)

JOB_MESSAGE_KEY = "mmrag_job"
TEXTRACT_RECORD_PREFIX = "textract-jobs"


@dataclass(frozen=True)
class JobRef:
    job_id: str
    tenant: str
    document_id: str

    @classmethod
    def of(cls, job: Job) -> JobRef:
        return cls(job.job_id, job.tenant, job.document_id)

    def job(self) -> Job:
        return Job(job_id=self.job_id, tenant=self.tenant, document_id=self.document_id)

    def message(self) -> str:
        return json.dumps({JOB_MESSAGE_KEY: asdict(self)}, separators=(",", ":"))

    @classmethod
    def from_message(cls, body: Any) -> JobRef | None:
        """The job of an SQS message body, or None if the body is something else (an S3 notification)."""
        if isinstance(body, str):
            try:
                body = json.loads(body)
            except ValueError:
                return None
        ref = body.get(JOB_MESSAGE_KEY) if isinstance(body, dict) else None
        if not isinstance(ref, dict):
            return None
        try:
            return cls(str(ref["job_id"]), str(ref["tenant"]), str(ref["document_id"]))
        except KeyError:
            return None


class JobSubmittingStore:
    """A DocumentStore that hands each new job to `on_job` once its document row is written."""

    def __init__(self, inner: Any, on_job: Callable[[Job], None]):
        self._inner = inner
        self._on_job = on_job

    def create_document(self, doc: Document, job: Job | None) -> None:
        self._inner.create_document(doc, job)
        if job is None:
            return
        try:
            self._on_job(job)
        except Exception as exc:
            log.exception("could not queue job %s; removing document %s", job.job_id, doc.document_id)
            try:
                self._inner.delete_document(doc.tenant, doc.document_id)
            except Exception:  # the row stays 'processing'; the log line above names it
                log.exception("could not remove document %s after a failed enqueue", doc.document_id)
            raise ServiceUnavailable(
                "the document could not be queued for processing; try again", f"{type(exc).__name__}: {exc}"
            ) from exc

    def enqueue(self, job: Job) -> None:
        """A job for a stored document (reprocess): its row, then the message; the caller undoes its own change."""
        self._inner.enqueue(job)
        try:
            self._on_job(job)
        except Exception as exc:
            log.exception("could not queue job %s", job.job_id)
            with contextlib.suppress(Exception):
                self._inner.finish_job(job.job_id, "failed", f"not queued: {type(exc).__name__}")
            raise ServiceUnavailable(
                "the document could not be queued for processing; try again", f"{type(exc).__name__}: {exc}"
            ) from exc

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class SqsJobQueue:
    """Sends job messages to the ingest queue."""

    def __init__(self, queue_url: str, client: Any = None):
        if not queue_url:
            raise ValueError("MMRAG_INGEST_QUEUE_URL is not set: uploads through the API could not be processed")
        self.queue_url = queue_url
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("sqs")
        return self._client

    def submit(self, job: Job) -> None:
        self.client.send_message(QueueUrl=self.queue_url, MessageBody=JobRef.of(job).message())


# ---------------------------------------------------------------------------------------------------- running jobs
def fail_document(c: Any, tenant: str, document_id: str, message: str) -> None:
    c.pipeline.fail_document(tenant, document_id, message)


def process_job(c: Any, ref: JobRef, *, receive_count: int = 1, max_attempts: int = 3) -> dict[str, Any]:
    """Run one ingestion job; returns what happened (kept by the idempotency layer, logged by the handler).

    Exceptions are for failures worth retrying (a service down, throttling): SQS delivers the message again.
    Problems with the document itself are recorded on the document (status failed) by the pipeline."""
    store = c.store
    claimed = store.claim_job_by_id(ref.job_id) if hasattr(store, "claim_job_by_id") else None
    job = claimed or ref.job()
    out: dict[str, Any] = {"job_id": ref.job_id, "document_id": ref.document_id}
    if receive_count > max_attempts:
        fail_document(c, ref.tenant, ref.document_id, "processing was interrupted repeatedly")
        store.finish_job(ref.job_id, "failed", "gave up after repeated interruptions")
        return {**out, "result": "gave_up"}
    doc = store.get_document(ref.tenant, ref.document_id)
    if doc is None or doc.status != "processing":
        store.finish_job(ref.job_id, "done")
        return {**out, "result": "skipped", "status": doc.status if doc else None}
    if textract_pages(c, doc):
        textract_job = start_textract(c, doc, ref)
        return {**out, "result": "waiting_for_textract", "textract_job_id": textract_job}
    c.pipeline.run(job)
    store.finish_job(ref.job_id, "done")
    current = store.get_document(ref.tenant, ref.document_id)
    return {**out, "result": "done", "status": current.status if current else None}


# ---------------------------------------------------------------------------------------------------- Textract split
def scan_pages(data: bytes, ocr_min_chars: int, max_pages: int) -> list[int]:
    """The PDF pages that need OCR, by the parser's own rule (sent to Textract instead of being rendered)."""
    from mmrag.ingest.parsers.pdf import pages_needing_ocr

    return pages_needing_ocr(data, ocr_min_chars, max_pages)


def _options(doc: Document) -> dict[str, Any]:
    from mmrag.core.ingestion import DEFAULT_OPTIONS

    return {**DEFAULT_OPTIONS, **doc.processing_options}


def textract_pages(c: Any, doc: Document) -> list[int]:
    """The scanned pages Textract should read asynchronously: only for PDFs, with OCR on, engine textract."""
    if c.config.ocr_engine != "textract" or doc.file_format != "pdf" or not _options(doc)["enable_ocr"]:
        return []
    if not (c.config.textract_sns_topic_arn and c.config.textract_role_arn):
        return []  # no completion channel configured: the pipeline OCRs page by page (synchronous Textract)
    raw = c.blobs.get(doc.blob_key)
    if raw is None:
        return []  # the pipeline records the missing upload
    return scan_pages(raw, c.pipeline.limits.ocr_min_chars, c.pipeline.limits.max_pages)


def textract_record_key(textract_job_id: str) -> str:
    return f"{TEXTRACT_RECORD_PREFIX}/{textract_job_id}.json"


def start_textract(c: Any, doc: Document, ref: JobRef) -> str:
    from mmrag.adapters.aws.textract_ocr import start_pdf_text_detection

    cfg = c.config
    s3_key = cfg.blob_key_prefix + doc.blob_key
    job_id = start_pdf_text_detection(
        c.textract_client,
        cfg.bucket,
        s3_key,
        cfg.textract_sns_topic_arn,
        cfg.textract_role_arn,
        doc.document_id,
        client_request_token=ref.job_id,  # a retried message gets the same Textract job back
    )
    record = {**asdict(ref), "started_at": utcnow()}
    c.blobs.put(textract_record_key(job_id), json.dumps(record).encode(), "application/json")
    with c.locks(doc.document_id):
        current = c.store.get_document(doc.tenant, doc.document_id)
        if current is not None and current.status == "processing":
            current.stages = {**current.stages, "ocr": {"status": "waiting", "textract_job_id": job_id}}
            current.updated_at = utcnow()
            c.store.update_document(current)
    return job_id


def _fingerprint(img: Any) -> str:
    h = hashlib.sha256(f"{img.mode}:{img.size}".encode())
    h.update(img.tobytes())
    return h.hexdigest()


class PageTextOcr:
    """An OcrEngine that answers for known page renders with text read elsewhere (Textract's asynchronous job) and
    passes every other picture to `fallback` (synchronous Textract)."""

    def __init__(self, page_text: Mapping[int, str], renders: Mapping[str, int], fallback: Any):
        self.page_text = dict(page_text)
        self.renders = dict(renders)  # fingerprint of a page render -> page number
        self.fallback = fallback
        self.name = f"textract-async+{getattr(fallback, 'name', 'ocr')}"
        self.hits = 0

    def recognize(self, image: Any) -> str:
        page = self.renders.get(_fingerprint(image))
        if page is not None and page in self.page_text:
            self.hits += 1
            return self.page_text[page]
        return self.fallback.recognize(image)

    def health(self) -> dict[str, Any]:
        return self.fallback.health() if hasattr(self.fallback, "health") else {"engine": self.name}


def page_renders(c: Any, doc: Document, raw: bytes) -> dict[str, int]:
    """Fingerprints of the page renders the pipeline will OCR, by parsing the PDF as the pipeline does."""
    from mmrag.ingest.images import open_image
    from mmrag.ingest.parsers import parse_document

    opts, limits = _options(doc), c.pipeline.limits
    parsed = parse_document(
        raw,
        doc.file_format,
        extract_images=bool(opts["extract_images"]) or doc.document_type == "image",
        ocr=bool(opts["enable_ocr"]),
        max_pages=limits.max_pages,
        max_pixels=limits.max_pixels,
        ocr_min_chars=limits.ocr_min_chars,
        scan_dpi=limits.scan_dpi,
    )
    out: dict[str, int] = {}
    for pimg in parsed.images:
        if pimg.is_page_scan and pimg.page_number is not None:
            out[_fingerprint(open_image(pimg.data, limits.max_pixels))] = pimg.page_number
    return out


def run_with_page_text(c: Any, ref: JobRef, page_text: Mapping[int, str]) -> dict[str, Any]:
    """The rest of a document whose scanned pages Textract has read: the whole pipeline, those pages' OCR answered
    with `page_text`."""
    out: dict[str, Any] = {"job_id": ref.job_id, "document_id": ref.document_id}
    doc = c.store.get_document(ref.tenant, ref.document_id)
    if doc is None or doc.status != "processing":
        c.store.finish_job(ref.job_id, "done")
        return {**out, "result": "skipped", "status": doc.status if doc else None}
    raw = c.blobs.get(doc.blob_key)
    renders: dict[str, int] = {}
    if raw is not None:
        try:
            renders = page_renders(c, doc, raw)
        except Exception:  # the pipeline will meet (and record) the same problem
            log.info("could not pre-parse %s", doc.document_id, exc_info=True)
    ocr = PageTextOcr(page_text, renders, c.ocr)
    c.pipeline_with_ocr(ocr).run(ref.job())
    c.store.finish_job(ref.job_id, "done")
    current = c.store.get_document(ref.tenant, ref.document_id)
    return {**out, "result": "done", "status": current.status if current else None, "pages_from_textract": ocr.hits}
