"""Records the core stores and passes between ports."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DOCUMENT_TYPES = ("text", "image", "pdf", "mixed")


def utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


@dataclass
class Document:
    document_id: str
    tenant: str
    document_type: str
    metadata: dict[str, Any]
    status: str = "processing"  # processing | completed | failed | deleting
    error: str | None = None
    file_format: str = ""
    file_size: int = 0
    content_hash: str = ""
    blob_key: str = ""
    processing_options: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    chunks_count: int = 0
    images_count: int = 0
    total_tokens: int = 0
    summary: str | None = None
    content_preview: str = ""
    processing_time: float | None = None
    created_at: str = field(default_factory=utcnow)
    updated_at: str = field(default_factory=utcnow)


@dataclass
class Chunk:
    chunk_id: str
    document_id: str
    chunk_index: int
    content: str
    token_count: int
    page_number: int | None = None
    source: str = "text"  # text | ocr | caption
    image_id: str | None = None
    char_start: int = 0
    char_end: int = 0
    section: str | None = None  # heading path where the chunk sits ("Setup > Network"), for DOCX
    paragraph: int | None = None  # 1-based paragraph of the document where the chunk starts, for DOCX


@dataclass
class ImageRecord:
    image_id: str
    document_id: str
    position: int
    blob_key: str
    thumb_key: str
    width: int
    height: int
    mime: str = "image/png"
    page_number: int | None = None
    bbox: list[float] | None = None
    ocr_text: str = ""
    caption: str = ""
    text_before: str = ""
    text_after: str = ""


@dataclass
class Job:
    job_id: str
    tenant: str
    document_id: str
    kind: str = "ingest"  # ingest | delete
    status: str = "queued"  # queued | running | done | failed
    attempts: int = 0
    error: str | None = None
    created_at: str = field(default_factory=utcnow)
    updated_at: str = field(default_factory=utcnow)


@dataclass
class DocFilterMeta:
    """What the vector index keeps per document so that filters run inside the index."""

    document_id: str
    document_type: str
    category: str | None
    tags: list[str]
    date: str  # ISO date used by date_range: metadata.created_at if given, else the upload time


@dataclass
class IndexItem:
    """One searchable row: a chunk (text) or an image. Vectors by space: 'text' (text model), 'clip'."""

    item_id: str
    document_id: str
    kind: str  # chunk | image
    text: str = ""
    vectors: dict[str, Any] = field(default_factory=dict)
    page_number: int | None = None
    image_id: str | None = None


@dataclass
class SearchFilters:
    document_ids: list[str] | None = None
    document_types: list[str] | None = None
    category: str | None = None
    tags: list[str] | None = None
    date_start: str | None = None
    date_end: str | None = None
    kinds: list[str] | None = None  # chunk | image
    exclude_item_ids: list[str] | None = None


@dataclass
class Hit:
    item_id: str
    score: float
    kind: str | None = None  # chunk | image, when the index knows it


@dataclass
class ApiKey:
    key_id: str
    tenant: str
    key_hash: str
    created_at: str = field(default_factory=utcnow)
    revoked: bool = False
    label: str = ""


@dataclass
class SessionMessage:
    message_id: str
    role: str  # user | assistant
    content: str
    images: list[dict[str, Any]] = field(default_factory=list)  # {"image_id", "blob_key", "mime"} or stored refs
    sources: list[dict[str, Any]] = field(default_factory=list)
    timestamp: str = field(default_factory=utcnow)


@dataclass
class SessionSummary:
    """One line of a tenant's session list: the session without its messages."""

    session_id: str
    created_at: str
    updated_at: str
    message_count: int
    first_question: str  # the first user message (stores may keep only its first SESSION_QUESTION_CHARS)
    title: str = ""  # set by the core: the first question, shortened for a list


SESSION_QUESTION_CHARS = 200


@dataclass
class Session:
    session_id: str
    tenant: str
    created_at: str = field(default_factory=utcnow)
    updated_at: str = field(default_factory=utcnow)
    messages: list[SessionMessage] = field(default_factory=list)


@dataclass
class DirectUpload:
    """A signed request the client sends the file with (exactly `size` bytes), valid for `expires_in` seconds."""

    upload_id: str
    key: str
    url: str
    method: str
    headers: dict[str, str]
    expires_in: int
    size: int
