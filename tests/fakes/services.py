"""The core services wired to the in-memory fakes, as mmrag.wiring wires them to the real adapters, with the job table
worked off synchronously on the caller's thread (no worker threads, no sleeps)."""

from __future__ import annotations

from typing import Any

from mmrag.adapters.generators.extractive import ExtractiveGenerator
from mmrag.core import blob_paths
from mmrag.core.answering import AnswerService, GeneratorRegistry
from mmrag.core.documents import DocumentLocks, DocumentService, decode_image_value
from mmrag.core.generation import Generator
from mmrag.core.ingestion import IngestionPipeline, IngestLimits
from mmrag.core.models import Document, Job
from mmrag.core.search import Rerankers, SearchService
from mmrag.errors import InvalidParameter, ServiceUnavailable

from .index import MemoryVectorIndex
from .models import FakeOcr, HashingClip, HashingTextEmbedder, fake_rerankers
from .stores import MemoryBlobStore, MemoryDocumentStore, MemorySessionStore

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000


def no_network(url: str, max_bytes: int) -> bytes:
    raise InvalidParameter(f"core tests fetch nothing: {url}")


class CoreServices:
    """Stores, index, models, pipeline and the document, search and answer services of one in-memory deployment."""

    def __init__(
        self,
        *,
        text_embedder: HashingTextEmbedder | None = None,
        clip: HashingClip | None = None,
        ocr: FakeOcr | None = None,
        rerankers: Rerankers | None = None,
        generators: list[Generator] | None = None,
        limits: IngestLimits | None = None,
    ):
        self.docs = MemoryDocumentStore()
        self.blobs = MemoryBlobStore()
        self.index = MemoryVectorIndex()
        self.sessions = MemorySessionStore()
        self.text_embedder = text_embedder or HashingTextEmbedder()
        self.clip = clip or HashingClip()
        self.ocr = ocr or FakeOcr()
        self.locks = DocumentLocks()
        self.pipeline = IngestionPipeline(
            self.docs,
            self.blobs,
            self.index,
            self.text_embedder,
            self.clip,
            self.ocr,
            limits or IngestLimits(max_pixels=MAX_IMAGE_PIXELS, max_pages=50),
            self.locks,
        )
        self.documents = DocumentService(
            self.docs,
            self.blobs,
            self.index,
            self.pipeline,
            None,  # no worker threads: run_jobs() works the queue off
            self.locks,
            no_network,
            MAX_UPLOAD_BYTES,
            MAX_IMAGE_PIXELS,
        )
        self.rerankers = rerankers or fake_rerankers()
        self.search = SearchService(
            self.docs, self.index, self.text_embedder, self.clip, self.rerankers, decode_image=self.decode_image
        )
        self.generators = GeneratorRegistry(generators or [ExtractiveGenerator(self.text_embedder)])
        self.answers = AnswerService(
            self.search,
            self.blobs,
            self.sessions,
            self.generators,
            self.decode_image,
            lambda img: self.clip.embed_images([img])[0],
        )

    def decode_image(self, value: str) -> Any:
        return decode_image_value(value, no_network, MAX_UPLOAD_BYTES, MAX_IMAGE_PIXELS)

    # ------------------------------------------------------------------ documents
    def upload(self, tenant: str, document_type: str, **kw: Any) -> Document:
        """DocumentService.upload: the document row and its job, nothing processed yet."""
        return self.documents.upload(tenant, document_type, wait=False, **kw)

    def run_next_job(self) -> Job | None:
        """What a worker does with one job: claim, run the pipeline, record the outcome. A ServiceUnavailable puts
        the job back in the queue and is re-raised."""
        job = self.docs.claim_job()
        if job is None:
            return None
        try:
            self.pipeline.run(job)
        except ServiceUnavailable as exc:
            self.docs.finish_job(job.job_id, "queued", exc.detail)
            raise
        self.docs.finish_job(job.job_id, "done")
        return job

    def run_jobs(self) -> int:
        done = 0
        while self.run_next_job() is not None:
            done += 1
        return done

    def ingest(self, tenant: str, document_type: str, **kw: Any) -> Document:
        """Upload and process at once; the document as a reader sees it afterwards."""
        doc = self.upload(tenant, document_type, **kw)
        self.run_jobs()
        found = self.docs.get_document(tenant, doc.document_id)
        assert found is not None
        return found

    # ------------------------------------------------------------------ what a document left behind
    def leftovers(self, tenant: str, document_id: str) -> dict[str, Any]:
        """Everything stored for a document: chunks, images, index items, blobs (the original included)."""
        return {
            "chunks": self.docs.get_chunks(tenant, document_id),
            "images": self.docs.get_images(tenant, document_id),
            "items": self.index.item_ids(tenant, document_id),
            "blobs": self.blobs.list_keys(blob_paths.document_prefix(tenant, document_id)),
        }
