"""In-memory BlobStore, DocumentStore (with the job table), KeyStore and SessionStore.

They keep what the real adapters keep and answer what they answer (the contract suites in tests/contract run them next
to the SQLite, file and DynamoDB/S3 adapters): records are copied in and out, as a database would serialise them, so a
caller that changes a returned object changes nothing stored; writes are atomic under one lock per store.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from typing import Any

from mmrag.core.blob_paths import validate_key
from mmrag.core.models import (
    SESSION_QUESTION_CHARS,
    ApiKey,
    Chunk,
    Document,
    ImageRecord,
    Job,
    Session,
    SessionMessage,
    SessionSummary,
    utcnow,
)

LISTED_STATUSES = ("processing", "completed", "failed", "archived")  # "deleting" documents are never listed


class MemoryBlobStore:
    def __init__(self) -> None:
        self.blobs: dict[str, tuple[bytes, str]] = {}
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        validate_key(key)
        with self._lock:
            self.blobs[key] = (bytes(data), content_type)

    def get(self, key: str) -> bytes | None:
        validate_key(key)
        with self._lock:
            found = self.blobs.get(key)
        return found[0] if found else None

    def delete(self, key: str) -> None:
        validate_key(key)
        with self._lock:
            self.blobs.pop(key, None)

    def _under(self, prefix: str) -> list[str]:
        """A prefix is a folder (or one key), never a string prefix: "doc_2" does not hold "doc_22/…"."""
        folder = validate_key(prefix.rstrip("/"))
        return sorted(k for k in self.blobs if k == folder or k.startswith(folder + "/"))

    def delete_prefix(self, prefix: str) -> int:
        with self._lock:
            keys = self._under(prefix)
            for k in keys:
                del self.blobs[k]
        return len(keys)

    def list_keys(self, prefix: str) -> list[str]:
        with self._lock:
            return self._under(prefix)

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "backend": "memory"}


class MemoryDocumentStore:
    def __init__(self) -> None:
        self.documents: dict[str, Document] = {}  # document ids are unique across tenants, as in every adapter
        self.chunks: dict[str, list[Chunk]] = {}  # by document, in chunk_index order
        self.images: dict[str, list[ImageRecord]] = {}  # by document, in position order
        self.jobs: dict[str, Job] = {}  # in insertion order
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ documents
    def _owned(self, tenant: str, document_id: str) -> Document | None:
        doc = self.documents.get(document_id)
        return doc if doc is not None and doc.tenant == tenant else None

    def create_document(self, doc: Document, job: Job | None) -> None:
        with self._lock:
            if doc.document_id in self.documents:
                raise KeyError(f"document {doc.document_id} exists")
            if job is not None and job.job_id in self.jobs:
                raise KeyError(f"job {job.job_id} exists")
            self.documents[doc.document_id] = copy.deepcopy(doc)
            self.chunks[doc.document_id], self.images[doc.document_id] = [], []
            if job is not None:
                self.jobs[job.job_id] = copy.deepcopy(job)

    def get_document(self, tenant: str, document_id: str) -> Document | None:
        with self._lock:
            return copy.deepcopy(self._owned(tenant, document_id))

    def update_document(self, doc: Document) -> None:
        with self._lock:
            if self._owned(doc.tenant, doc.document_id) is not None:  # an UPDATE of a missing row changes nothing
                self.documents[doc.document_id] = copy.deepcopy(doc)

    def documents_by_id(self, tenant: str, document_ids: Sequence[str]) -> dict[str, Document]:
        with self._lock:
            found = {d: self._owned(tenant, d) for d in dict.fromkeys(document_ids)}
            return {d: copy.deepcopy(doc) for d, doc in found.items() if doc is not None}

    def list_documents(
        self,
        tenant: str,
        *,
        document_type: str | None = None,
        category: str | None = None,
        tags: Sequence[str] = (),
        keyword: str | None = None,
        sort_by: str = "created_at",
        order: str = "desc",
        page: int = 1,
        page_size: int = 20,
    ) -> tuple[int, list[Document]]:
        if sort_by not in ("created_at", "updated_at", "title"):
            raise KeyError(sort_by)
        with self._lock:
            docs = [d for d in self.documents.values() if d.tenant == tenant and d.status in LISTED_STATUSES]
            if document_type:
                docs = [d for d in docs if d.document_type == document_type]
            if category:
                docs = [d for d in docs if d.metadata.get("category") == category]
            if tags:
                wanted = set(tags)
                docs = [d for d in docs if wanted & {str(t) for t in d.metadata.get("tags") or []}]
            if keyword:
                kw = keyword.lower()
                docs = [
                    d
                    for d in docs
                    if kw in str(d.metadata.get("title") or "").lower()
                    or any(kw in c.content.lower() for c in self.chunks.get(d.document_id, []))
                ]

            def key(d: Document) -> tuple:
                if sort_by == "title":
                    title = d.metadata.get("title")
                    # SQL sorts NULL first; COLLATE NOCASE folds ASCII case
                    return (title is not None, str(title or "").lower(), d.document_id)
                return (getattr(d, sort_by), d.document_id)

            docs.sort(key=key, reverse=order != "asc")
            start = (page - 1) * page_size
            return len(docs), copy.deepcopy(docs[start : start + page_size])

    def documents_with_status(self, status: str) -> list[Document]:
        with self._lock:
            return [copy.deepcopy(d) for d in self.documents.values() if d.status == status]

    def documents_with_content(self, tenant: str, content_hash: str) -> list[Document]:
        with self._lock:
            found = [
                copy.deepcopy(d)
                for d in self.documents.values()
                if d.tenant == tenant and d.content_hash == content_hash and d.status != "deleting"
            ]
        return sorted(found, key=lambda d: (d.created_at, d.document_id))

    def existing_ids(self, document_ids: Sequence[str]) -> set[str]:
        with self._lock:
            return {d for d in document_ids if d in self.documents}

    # ------------------------------------------------------------------ content
    def replace_content(self, tenant: str, document_id: str, chunks: list[Chunk], images: list[ImageRecord]) -> None:
        with self._lock:
            if self._owned(tenant, document_id) is None:
                raise KeyError(document_id)
            stored_chunks = [copy.deepcopy(c) for c in chunks]
            stored_images = [copy.deepcopy(i) for i in images]
            for row in [*stored_chunks, *stored_images]:
                row.document_id = document_id
            self.chunks[document_id] = sorted(stored_chunks, key=lambda c: c.chunk_index)
            self.images[document_id] = sorted(stored_images, key=lambda i: i.position)

    def _all_of_tenant(self, tenant: str, table: dict[str, list]) -> list:
        return [row for doc_id, rows in table.items() if self._owned(tenant, doc_id) for row in rows]

    def get_chunks(self, tenant: str, document_id: str) -> list[Chunk]:
        with self._lock:
            return copy.deepcopy(self.chunks.get(document_id, [])) if self._owned(tenant, document_id) else []

    def get_chunks_by_id(self, tenant: str, chunk_ids: Sequence[str]) -> dict[str, Chunk]:
        wanted = set(chunk_ids)
        with self._lock:
            return {
                c.chunk_id: copy.deepcopy(c) for c in self._all_of_tenant(tenant, self.chunks) if c.chunk_id in wanted
            }

    def get_images(self, tenant: str, document_id: str) -> list[ImageRecord]:
        with self._lock:
            return copy.deepcopy(self.images.get(document_id, [])) if self._owned(tenant, document_id) else []

    def get_images_by_id(self, tenant: str, image_ids: Sequence[str]) -> dict[str, ImageRecord]:
        wanted = set(image_ids)
        with self._lock:
            return {
                i.image_id: copy.deepcopy(i) for i in self._all_of_tenant(tenant, self.images) if i.image_id in wanted
            }

    def delete_document(self, tenant: str, document_id: str) -> tuple[int, int]:
        with self._lock:
            if self._owned(tenant, document_id) is None:
                return (0, 0)
            del self.documents[document_id]
            n_chunks, n_images = len(self.chunks.pop(document_id, [])), len(self.images.pop(document_id, []))
            for job_id in [j.job_id for j in self.jobs.values() if j.document_id == document_id]:
                if self.jobs[job_id].status in ("queued", "running"):
                    del self.jobs[job_id]
            return n_chunks, n_images

    # ------------------------------------------------------------------ jobs
    def enqueue(self, job: Job) -> None:
        with self._lock:
            if job.job_id in self.jobs:
                raise KeyError(f"job {job.job_id} exists")
            self.jobs[job.job_id] = copy.deepcopy(job)

    def claim_job(self) -> Job | None:
        with self._lock:
            queued = [j for j in self.jobs.values() if j.status == "queued"]
            if not queued:
                return None
            job = min(queued, key=lambda j: j.created_at)  # min() keeps the first inserted of equal times
            job.status, job.attempts, job.updated_at = "running", job.attempts + 1, utcnow()
            return copy.deepcopy(job)

    def finish_job(self, job_id: str, status: str, error: str | None = None) -> None:
        with self._lock:
            job = self.jobs.get(job_id)
            if job is not None:
                job.status, job.error, job.updated_at = status, error, utcnow()

    def recover_jobs(self) -> int:
        """After a crash: jobs left 'running' go back to the queue."""
        with self._lock:
            running = [j for j in self.jobs.values() if j.status == "running"]
            for j in running:
                j.status, j.updated_at = "queued", utcnow()
            return len(running)

    def pending_jobs(self) -> int:
        with self._lock:
            return sum(1 for j in self.jobs.values() if j.status in ("queued", "running"))

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "backend": "memory", "pending_jobs": self.pending_jobs()}


class MemoryKeyStore:
    def __init__(self) -> None:
        self.keys: dict[str, ApiKey] = {}
        self._lock = threading.Lock()

    def add_key(self, key: ApiKey) -> None:
        with self._lock:
            if key.key_id in self.keys or any(k.key_hash == key.key_hash for k in self.keys.values()):
                raise KeyError(f"key {key.key_id} exists")
            self.keys[key.key_id] = copy.deepcopy(key)

    def find_by_hash(self, key_hash: str) -> ApiKey | None:
        with self._lock:
            return next((copy.deepcopy(k) for k in self.keys.values() if k.key_hash == key_hash), None)

    def list_keys(self, tenant: str | None = None) -> list[ApiKey]:
        with self._lock:
            found = [k for k in self.keys.values() if not tenant or k.tenant == tenant]
            return copy.deepcopy(sorted(found, key=lambda k: k.created_at))

    def revoke(self, key_id: str) -> bool:
        with self._lock:
            key = self.keys.get(key_id)
            if key is None:
                return False
            key.revoked = True
            return True


class MemorySessionStore:
    def __init__(self) -> None:
        self.sessions: dict[tuple[str, str], Session] = {}
        self._lock = threading.Lock()

    def get_session(self, tenant: str, session_id: str) -> Session | None:
        with self._lock:
            return copy.deepcopy(self.sessions.get((tenant, session_id)))

    def append_messages(self, tenant: str, session_id: str, messages: list[SessionMessage]) -> Session:
        now = utcnow()
        with self._lock:
            session = self.sessions.get((tenant, session_id))
            if session is None:
                session = self.sessions[(tenant, session_id)] = Session(session_id, tenant, created_at=now)
            session.updated_at = now
            session.messages.extend(copy.deepcopy(messages))
            return copy.deepcopy(session)

    def delete_session(self, tenant: str, session_id: str) -> int | None:
        with self._lock:
            session = self.sessions.pop((tenant, session_id), None)
            return None if session is None else len(session.messages)

    def list_sessions(self, tenant: str, *, page: int = 1, page_size: int = 20) -> tuple[int, list[SessionSummary]]:
        with self._lock:
            mine = [s for (t, _), s in self.sessions.items() if t == tenant]
        mine.sort(key=lambda s: (s.updated_at, s.session_id), reverse=True)
        start = (page - 1) * page_size
        return len(mine), [
            SessionSummary(
                session_id=s.session_id,
                created_at=s.created_at,
                updated_at=s.updated_at,
                message_count=len(s.messages),
                first_question=next((m.content for m in s.messages if m.role == "user"), "")[:SESSION_QUESTION_CHARS],
            )
            for s in mine[start : start + page_size]
        ]
