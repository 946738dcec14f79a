"""Document store, job table and API keys in one SQLite database (WAL)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmrag.adapters.local.sqlite_db import SqliteDb
from mmrag.core.models import ApiKey, Chunk, Document, ImageRecord, Job, utcnow
from mmrag.errors import InvalidParameter

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    document_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    document_type TEXT NOT NULL,
    title TEXT,
    category TEXT,
    metadata TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    file_format TEXT,
    file_size INTEGER,
    content_hash TEXT,
    blob_key TEXT,
    processing_options TEXT,
    stages TEXT,
    chunks_count INTEGER DEFAULT 0,
    images_count INTEGER DEFAULT 0,
    total_tokens INTEGER DEFAULT 0,
    summary TEXT,
    content_preview TEXT,
    processing_time REAL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_tenant ON documents(tenant, created_at);
CREATE INDEX IF NOT EXISTS documents_content ON documents(tenant, content_hash);
CREATE TABLE IF NOT EXISTS document_tags (
    document_id TEXT NOT NULL REFERENCES documents(document_id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    PRIMARY KEY (document_id, tag)
);
CREATE INDEX IF NOT EXISTS document_tags_tag ON document_tags(tag);
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id TEXT PRIMARY KEY,
    document_id TEXT NOT NULL REFERENCES documents(document_id) ON DELETE CASCADE,
    chunk_index INTEGER NOT NULL,
    content TEXT NOT NULL,
    token_count INTEGER NOT NULL,
    page_number INTEGER,
    source TEXT NOT NULL,
    image_id TEXT,
    char_start INTEGER,
    char_end INTEGER,
    section TEXT,
    paragraph INTEGER
);
CREATE INDEX IF NOT EXISTS chunks_document ON chunks(document_id, chunk_index);
CREATE TABLE IF NOT EXISTS images (
    image_id TEXT PRIMARY KEY,
    document_id TEXT NOT NULL REFERENCES documents(document_id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    blob_key TEXT NOT NULL,
    thumb_key TEXT NOT NULL,
    width INTEGER, height INTEGER, mime TEXT,
    page_number INTEGER,
    bbox TEXT,
    ocr_text TEXT, caption TEXT, text_before TEXT, text_after TEXT
);
CREATE INDEX IF NOT EXISTS images_document ON images(document_id, position);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    document_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, created_at);
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    label TEXT,
    created_at TEXT NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);
"""

_DOC_JSON = ("metadata", "processing_options", "stages")
_SORTS = {"created_at": "created_at", "updated_at": "updated_at", "title": "title COLLATE NOCASE"}
_MAX_SQL_INT = 2**63 - 1  # SQLite integers are signed 64-bit


def _doc_from_row(row) -> Document:
    d = dict(row)
    for key in _DOC_JSON:
        d[key] = json.loads(d[key]) if d[key] else {}
    d.pop("title", None)
    d.pop("category", None)
    return Document(**d)


def _chunk_from_row(row) -> Chunk:
    return Chunk(**dict(row))


def _image_from_row(row) -> ImageRecord:
    d = dict(row)
    d["bbox"] = json.loads(d["bbox"]) if d["bbox"] else None
    return ImageRecord(**d)


class SqliteDocumentStore:
    def __init__(self, path: Path):
        self.db = SqliteDb(path, SCHEMA)
        self._add_missing_columns("chunks", {"section": "TEXT", "paragraph": "INTEGER"})

    def _add_missing_columns(self, table: str, columns: dict[str, str]) -> None:
        """Data dirs made before a column existed get it (NULL in old rows) when they are opened."""
        with self.db.tx() as conn:
            have = {row["name"] for row in conn.execute(f"PRAGMA table_info({table})")}
            for name, kind in columns.items():
                if name not in have:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")

    # ------------------------------------------------------------------ documents
    def _write_doc(self, conn, doc: Document, insert: bool) -> None:
        meta = doc.metadata
        values = {
            "document_id": doc.document_id,
            "tenant": doc.tenant,
            "document_type": doc.document_type,
            "title": meta.get("title"),
            "category": meta.get("category"),
            "metadata": json.dumps(meta, ensure_ascii=False),
            "status": doc.status,
            "error": doc.error,
            "file_format": doc.file_format,
            "file_size": doc.file_size,
            "content_hash": doc.content_hash,
            "blob_key": doc.blob_key,
            "processing_options": json.dumps(doc.processing_options),
            "stages": json.dumps(doc.stages),
            "chunks_count": doc.chunks_count,
            "images_count": doc.images_count,
            "total_tokens": doc.total_tokens,
            "summary": doc.summary,
            "content_preview": doc.content_preview,
            "processing_time": doc.processing_time,
            "created_at": doc.created_at,
            "updated_at": doc.updated_at,
        }
        cols = ", ".join(values)
        marks = ", ".join(f":{k}" for k in values)
        if insert:
            conn.execute(f"INSERT INTO documents ({cols}) VALUES ({marks})", values)
        else:
            sets = ", ".join(f"{k} = :{k}" for k in values if k not in ("document_id", "tenant"))
            conn.execute(f"UPDATE documents SET {sets} WHERE document_id = :document_id AND tenant = :tenant", values)
            conn.execute("DELETE FROM document_tags WHERE document_id = ?", (doc.document_id,))
        tags = meta.get("tags") or []
        conn.executemany(
            "INSERT OR IGNORE INTO document_tags (document_id, tag) VALUES (?, ?)",
            [(doc.document_id, str(t)) for t in tags],
        )

    def create_document(self, doc: Document, job: Job | None) -> None:
        with self.db.tx() as conn:
            self._write_doc(conn, doc, insert=True)
            if job:
                self._insert_job(conn, job)

    def update_document(self, doc: Document) -> None:
        with self.db.tx() as conn:
            self._write_doc(conn, doc, insert=False)

    def get_document(self, tenant: str, document_id: str) -> Document | None:
        rows = self.db.query("SELECT * FROM documents WHERE document_id = ? AND tenant = ?", (document_id, tenant))
        return _doc_from_row(rows[0]) if rows else None

    def documents_by_id(self, tenant: str, document_ids: Sequence[str]) -> dict[str, Document]:
        ids = list(dict.fromkeys(document_ids))
        out: dict[str, Document] = {}
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            marks = ",".join("?" * len(part))
            for row in self.db.query(
                f"SELECT * FROM documents WHERE +tenant = ? AND document_id IN ({marks})", [tenant, *part]
            ):
                out[row["document_id"]] = _doc_from_row(row)
        return out

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
        statuses: Sequence[str] = ("processing", "completed", "failed", "archived"),
    ) -> tuple[int, list[Document]]:
        where = ["d.tenant = ?", f"d.status IN ({','.join('?' * len(statuses))})"]
        params: list[Any] = [tenant, *statuses]
        if document_type:
            where.append("d.document_type = ?")
            params.append(document_type)
        if category:
            where.append("d.category = ?")
            params.append(category)
        if tags:
            where.append(
                f"EXISTS (SELECT 1 FROM document_tags t WHERE t.document_id = d.document_id "
                f"AND t.tag IN ({','.join('?' * len(tags))}))"
            )
            params.extend(tags)
        if keyword:
            where.append(
                "(instr(lower(coalesce(d.title, '')), lower(?)) > 0 OR EXISTS (SELECT 1 FROM chunks c "
                "WHERE c.document_id = d.document_id AND instr(lower(c.content), lower(?)) > 0))"
            )
            params.extend([keyword, keyword])
        sql_where = " AND ".join(where)
        total = self.db.query(f"SELECT count(*) FROM documents d WHERE {sql_where}", params)[0][0]
        direction = "ASC" if order == "asc" else "DESC"
        offset = (page - 1) * page_size
        if offset > _MAX_SQL_INT:
            raise InvalidParameter(f"page {page} is past any list: its offset does not fit in 64 bits")
        rows = self.db.query(
            f"SELECT d.* FROM documents d WHERE {sql_where} ORDER BY {_SORTS[sort_by]} {direction}, "
            f"d.document_id {direction} LIMIT ? OFFSET ?",
            [*params, page_size, offset],
        )
        return total, [_doc_from_row(r) for r in rows]

    def documents_with_status(self, status: str) -> list[Document]:
        return [_doc_from_row(r) for r in self.db.query("SELECT * FROM documents WHERE status = ?", (status,))]

    def documents_with_content(self, tenant: str, content_hash: str) -> list[Document]:
        rows = self.db.query(
            "SELECT * FROM documents WHERE tenant = ? AND content_hash = ? AND status != 'deleting' "
            "ORDER BY created_at, document_id",
            (tenant, content_hash),
        )
        return [_doc_from_row(r) for r in rows]

    def existing_ids(self, document_ids: Sequence[str]) -> set[str]:
        ids = list(dict.fromkeys(document_ids))
        found: set[str] = set()
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            rows = self.db.query(
                f"SELECT document_id FROM documents WHERE document_id IN ({','.join('?' * len(part))})", part
            )
            found.update(r[0] for r in rows)
        return found

    # ------------------------------------------------------------------ content
    def replace_content(self, tenant: str, document_id: str, chunks: list[Chunk], images: list[ImageRecord]) -> None:
        with self.db.tx() as conn:
            owner = conn.execute(
                "SELECT 1 FROM documents WHERE document_id = ? AND tenant = ?", (document_id, tenant)
            ).fetchone()
            if not owner:
                raise KeyError(document_id)
            conn.execute("DELETE FROM chunks WHERE document_id = ?", (document_id,))
            conn.execute("DELETE FROM images WHERE document_id = ?", (document_id,))
            conn.executemany(
                "INSERT INTO chunks (chunk_id, document_id, chunk_index, content, token_count, page_number, source, "
                "image_id, char_start, char_end, section, paragraph) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        c.chunk_id,
                        document_id,
                        c.chunk_index,
                        c.content,
                        c.token_count,
                        c.page_number,
                        c.source,
                        c.image_id,
                        c.char_start,
                        c.char_end,
                        c.section,
                        c.paragraph,
                    )
                    for c in chunks
                ],
            )
            conn.executemany(
                "INSERT INTO images (image_id, document_id, position, blob_key, thumb_key, width, height, mime, "
                "page_number, bbox, ocr_text, caption, text_before, text_after) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        i.image_id,
                        document_id,
                        i.position,
                        i.blob_key,
                        i.thumb_key,
                        i.width,
                        i.height,
                        i.mime,
                        i.page_number,
                        json.dumps(i.bbox) if i.bbox else None,
                        i.ocr_text,
                        i.caption,
                        i.text_before,
                        i.text_after,
                    )
                    for i in images
                ],
            )

    def _owned(self, tenant: str, table: str, where: str, params: Sequence[Any], order: str = "") -> list:
        return self.db.query(
            # "+d.tenant": keep SQLite from starting at the tenant index (which walks every row of the tenant);
            # the id lookups should drive the join through the primary keys
            f"SELECT x.* FROM {table} x JOIN documents d ON d.document_id = x.document_id "
            f"WHERE +d.tenant = ? AND {where} {order}",
            [tenant, *params],
        )

    def get_chunks(self, tenant: str, document_id: str) -> list[Chunk]:
        rows = self._owned(tenant, "chunks", "x.document_id = ?", [document_id], "ORDER BY x.chunk_index")
        return [_chunk_from_row(r) for r in rows]

    def _owned_by_ids(self, tenant: str, table: str, id_column: str, ids: Sequence[str]) -> list:
        rows: list = []
        unique = list(dict.fromkeys(ids))
        for i in range(0, len(unique), 500):
            part = unique[i : i + 500]
            rows += self._owned(tenant, table, f"x.{id_column} IN ({','.join('?' * len(part))})", part)
        return rows

    def get_chunks_by_id(self, tenant: str, chunk_ids: Sequence[str]) -> dict[str, Chunk]:
        return {r["chunk_id"]: _chunk_from_row(r) for r in self._owned_by_ids(tenant, "chunks", "chunk_id", chunk_ids)}

    def get_images(self, tenant: str, document_id: str) -> list[ImageRecord]:
        rows = self._owned(tenant, "images", "x.document_id = ?", [document_id], "ORDER BY x.position")
        return [_image_from_row(r) for r in rows]

    def get_images_by_id(self, tenant: str, image_ids: Sequence[str]) -> dict[str, ImageRecord]:
        return {r["image_id"]: _image_from_row(r) for r in self._owned_by_ids(tenant, "images", "image_id", image_ids)}

    def delete_document(self, tenant: str, document_id: str) -> tuple[int, int]:
        with self.db.tx() as conn:
            if not conn.execute(
                "SELECT 1 FROM documents WHERE document_id = ? AND tenant = ?", (document_id, tenant)
            ).fetchone():
                return (0, 0)
            n_chunks = conn.execute("SELECT count(*) FROM chunks WHERE document_id = ?", (document_id,)).fetchone()[0]
            n_images = conn.execute("SELECT count(*) FROM images WHERE document_id = ?", (document_id,)).fetchone()[0]
            conn.execute("DELETE FROM documents WHERE document_id = ?", (document_id,))
            conn.execute("DELETE FROM jobs WHERE document_id = ? AND status IN ('queued', 'running')", (document_id,))
        return n_chunks, n_images

    # ------------------------------------------------------------------ jobs
    def _insert_job(self, conn, job: Job) -> None:
        conn.execute(
            "INSERT INTO jobs (job_id, tenant, document_id, kind, status, attempts, error, created_at, updated_at) "
            "VALUES (?,?,?,?,?,?,?,?,?)",
            (
                job.job_id,
                job.tenant,
                job.document_id,
                job.kind,
                job.status,
                job.attempts,
                job.error,
                job.created_at,
                job.updated_at,
            ),
        )

    def enqueue(self, job: Job) -> None:
        with self.db.tx() as conn:
            self._insert_job(conn, job)

    def claim_job(self) -> Job | None:
        with self.db.tx() as conn:
            row = conn.execute(
                "SELECT * FROM jobs WHERE status = 'queued' ORDER BY created_at, rowid LIMIT 1"
            ).fetchone()
            if not row:
                return None
            conn.execute(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, updated_at = ? WHERE job_id = ?",
                (utcnow(), row["job_id"]),
            )
        job = Job(**dict(row))
        job.status, job.attempts = "running", job.attempts + 1
        return job

    def finish_job(self, job_id: str, status: str, error: str | None = None) -> None:
        with self.db.tx() as conn:
            conn.execute(
                "UPDATE jobs SET status = ?, error = ?, updated_at = ? WHERE job_id = ?",
                (status, error, utcnow(), job_id),
            )

    def recover_jobs(self) -> int:
        """After a crash: jobs left 'running' go back to the queue (the pipeline redoes them from a clean slate)."""
        with self.db.tx() as conn:
            return conn.execute(
                "UPDATE jobs SET status = 'queued', updated_at = ? WHERE status = 'running'", (utcnow(),)
            ).rowcount

    def pending_jobs(self) -> int:
        return self.db.query("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")[0][0]

    def health(self) -> dict[str, Any]:
        try:
            self.db.query("SELECT 1")
            return {"status": "ok", "backend": "sqlite", "pending_jobs": self.pending_jobs()}
        except Exception as exc:  # noqa: BLE001 - health reports, never raises
            return {"status": "error", "backend": "sqlite", "error": str(exc)}


class SqliteKeyStore:
    def __init__(self, db: SqliteDb):
        self.db = db

    def add_key(self, key: ApiKey) -> None:
        with self.db.tx() as conn:
            conn.execute(
                "INSERT INTO api_keys (key_id, tenant, key_hash, label, created_at, revoked) VALUES (?,?,?,?,?,?)",
                (key.key_id, key.tenant, key.key_hash, key.label, key.created_at, int(key.revoked)),
            )

    def find_by_hash(self, key_hash: str) -> ApiKey | None:
        rows = self.db.query("SELECT * FROM api_keys WHERE key_hash = ?", (key_hash,))
        if not rows:
            return None
        d = dict(rows[0])
        d["revoked"] = bool(d["revoked"])
        return ApiKey(**d)

    def list_keys(self, tenant: str | None = None) -> list[ApiKey]:
        sql, params = "SELECT * FROM api_keys", ()
        if tenant:
            sql, params = sql + " WHERE tenant = ?", (tenant,)
        out = []
        for r in self.db.query(sql + " ORDER BY created_at", params):
            d = dict(r)
            d["revoked"] = bool(d["revoked"])
            out.append(ApiKey(**d))
        return out

    def revoke(self, key_id: str) -> bool:
        with self.db.tx() as conn:
            return conn.execute("UPDATE api_keys SET revoked = 1 WHERE key_id = ?", (key_id,)).rowcount > 0
