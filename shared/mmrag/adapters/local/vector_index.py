"""The embedded index: BM25 (SQLite FTS5 over our own analyzer's terms) and exact dense search (NumPy), per tenant.

Each tenant has its own SQLite file, so BM25 statistics and vectors never mix tenants. Vectors are persisted in
SQLite and mirrored in memory in append-only arrays: a search reads a snapshot (the arrays and a row count), so
writers never block readers, and a delete clears the row's 'alive' flag in place, visible to the next search at once.
Filters are document-level (type, category, tags, date, ids) and item-level (kind), applied as a mask before ranking.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmrag.adapters.local.sqlite_db import SqliteDb
from mmrag.core.keys import tenant_slug
from mmrag.core.models import DocFilterMeta, Hit, IndexItem, SearchFilters
from mmrag.text import analyzer

SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    document_id TEXT PRIMARY KEY,
    document_type TEXT NOT NULL,
    category TEXT,
    tags TEXT NOT NULL,
    date TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    rowid INTEGER PRIMARY KEY,
    item_id TEXT NOT NULL UNIQUE,
    document_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    page_number INTEGER,
    image_id TEXT
);
CREATE INDEX IF NOT EXISTS items_document ON items(document_id);
CREATE TABLE IF NOT EXISTS vectors (
    item_rowid INTEGER NOT NULL,
    space TEXT NOT NULL,
    vec BLOB NOT NULL,
    PRIMARY KEY (item_rowid, space)
);
CREATE TABLE IF NOT EXISTS generation (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL);
INSERT OR IGNORE INTO generation (id, value) VALUES (1, 0);
CREATE VIRTUAL TABLE IF NOT EXISTS terms USING fts5(body, tokenize = 'unicode61 remove_diacritics 0');
"""

KINDS = ("chunk", "image")


@dataclass
class _DocMeta:
    slot: int
    document_type: str
    category: str | None
    tags: frozenset[str]
    date: str


class _Space:
    """Append-only vectors of one space, with parallel arrays for filtering."""

    def __init__(self, dim: int, capacity: int = 1024):
        self.dim = dim
        self.n = 0
        self.matrix = np.zeros((capacity, dim), dtype=np.float32)
        self.alive = np.zeros(capacity, dtype=bool)
        self.doc_slot = np.zeros(capacity, dtype=np.int32)
        self.kind = np.zeros(capacity, dtype=np.int8)
        self.item_ids: list[str] = []
        self.row_of: dict[str, int] = {}

    def append(self, item_ids: list[str], vecs: np.ndarray, doc_slot: int, kinds: list[int]) -> None:
        need = self.n + len(item_ids)
        if need > len(self.alive):
            cap = max(need, 2 * len(self.alive))
            matrix = np.zeros((cap, self.dim), dtype=np.float32)
            matrix[: self.n] = self.matrix[: self.n]
            alive = np.zeros(cap, dtype=bool)
            alive[: self.n] = self.alive[: self.n]
            doc_slot_arr = np.zeros(cap, dtype=np.int32)
            doc_slot_arr[: self.n] = self.doc_slot[: self.n]
            kind = np.zeros(cap, dtype=np.int8)
            kind[: self.n] = self.kind[: self.n]
            self.matrix, self.alive, self.doc_slot, self.kind = matrix, alive, doc_slot_arr, kind
        start = self.n
        self.matrix[start:need] = vecs
        self.doc_slot[start:need] = doc_slot
        self.kind[start:need] = kinds
        self.alive[start:need] = True
        for offset, item_id in enumerate(item_ids):
            old = self.row_of.get(item_id)
            if old is not None:
                self.alive[old] = False
            self.row_of[item_id] = start + offset
        self.item_ids.extend(item_ids)
        self.n = need  # published last: readers never see a half-written row

    def remove(self, item_ids: Sequence[str]) -> None:
        for item_id in item_ids:
            row = self.row_of.pop(item_id, None)
            if row is not None:
                self.alive[row] = False


class _TenantIndex:
    def __init__(self, path: Path):
        self.db = SqliteDb(path, SCHEMA)
        self.lock = threading.RLock()
        self.docs: dict[str, _DocMeta] = {}
        self.slot_docs: list[str] = []
        self.spaces: dict[str, _Space] = {}
        self.generation = -1
        self._doc_version = 0
        self._arrays: dict[str, Any] | None = None
        self._load()

    def stored_generation(self) -> int:
        return self.db.query("SELECT value FROM generation WHERE id = 1")[0][0]

    def bump(self, conn) -> None:
        """Called inside every write transaction: another process writing the same file is noticed by readers."""
        conn.execute("UPDATE generation SET value = value + 1 WHERE id = 1")
        self.generation = conn.execute("SELECT value FROM generation WHERE id = 1").fetchone()[0]

    def refresh_if_stale(self) -> None:
        if self.stored_generation() != self.generation:
            with self.lock:
                if self.stored_generation() != self.generation:
                    self._load()

    def _load(self) -> None:
        self.docs, self.slot_docs, self.spaces = {}, [], {}
        self.generation = self.stored_generation()
        for r in self.db.query("SELECT * FROM docs"):
            self._set_doc(
                DocFilterMeta(r["document_id"], r["document_type"], r["category"], json.loads(r["tags"]), r["date"])
            )
        # one space at a time, straight from the cursor into preallocated arrays: no per-row objects kept around
        spaces = self.db.query("SELECT space, count(*) AS n, max(length(vec)) AS b FROM vectors GROUP BY space")
        for sr in spaces:
            sp = self.spaces[sr["space"]] = _Space(sr["b"] // 4, capacity=max(1024, sr["n"]))
            cursor = self.db.conn().execute(
                "SELECT i.item_id, i.document_id, i.kind, v.vec FROM vectors v JOIN items i ON i.rowid = v.item_rowid "
                "WHERE v.space = ? ORDER BY i.rowid",
                (sr["space"],),
            )
            row = 0
            while block := cursor.fetchmany(4096):
                end = row + len(block)
                sp.matrix[row:end] = np.frombuffer(b"".join(b[3] for b in block), dtype=np.float32).reshape(-1, sp.dim)
                sp.doc_slot[row:end] = [self.docs[b[1]].slot for b in block]
                sp.kind[row:end] = [KINDS.index(b[2]) for b in block]
                sp.alive[row:end] = True
                for offset, b in enumerate(block):
                    sp.row_of[b[0]] = row + offset
                sp.item_ids.extend(b[0] for b in block)
                row = end
            sp.n = row

    def _set_doc(self, meta: DocFilterMeta) -> _DocMeta:
        existing = self.docs.get(meta.document_id)
        slot = existing.slot if existing else len(self.slot_docs)
        if not existing:
            self.slot_docs.append(meta.document_id)
        dm = _DocMeta(slot, meta.document_type, meta.category, frozenset(meta.tags), meta.date)
        self.docs[meta.document_id] = dm
        self._doc_version += 1
        return dm

    def _filter_arrays(self) -> dict[str, Any]:
        """Per-slot metadata as arrays, rebuilt after writes, so a filter is a few vectorised comparisons."""
        if self._arrays is None or self._arrays["version"] != self._doc_version:
            size = len(self.slot_docs) + 1
            live = np.zeros(size, dtype=bool)
            types = np.full(size, "", dtype=object)
            cats = np.full(size, None, dtype=object)
            dates = np.full(size, "", dtype=object)
            tags: dict[str, np.ndarray] = {}
            for m in list(self.docs.values()):
                live[m.slot], types[m.slot], cats[m.slot], dates[m.slot] = True, m.document_type, m.category, m.date
                for tag in m.tags:
                    tags.setdefault(tag, np.zeros(size, dtype=bool))[m.slot] = True
            self._arrays = {
                "version": self._doc_version,
                "live": live,
                "types": types,
                "cats": cats,
                "dates": dates,
                "tags": tags,
            }
        return self._arrays

    def allowed_slots(self, f: SearchFilters) -> np.ndarray:
        a = self._filter_arrays()
        allowed = a["live"].copy()
        if f.document_ids is not None:
            ids = np.zeros_like(allowed)
            for doc_id in f.document_ids:
                m = self.docs.get(doc_id)
                if m is not None:
                    ids[m.slot] = True
            allowed &= ids
        if f.document_types:
            allowed &= np.isin(a["types"], list(f.document_types))
        if f.category:
            allowed &= a["cats"] == f.category
        if f.tags:
            any_tag = np.zeros_like(allowed)
            for tag in f.tags:
                if tag in a["tags"]:
                    any_tag |= a["tags"][tag]
            allowed &= any_tag
        if f.date_start:
            allowed &= np.array([d[: len(f.date_start)] >= f.date_start for d in a["dates"]], dtype=bool)
        if f.date_end:
            allowed &= np.array([d[: len(f.date_end)] <= f.date_end for d in a["dates"]], dtype=bool)
        return allowed


def has_doc_filter(f: SearchFilters) -> bool:
    return bool(f.document_ids is not None or f.document_types or f.category or f.tags or f.date_start or f.date_end)


class EmbeddedVectorIndex:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._tenants: dict[str, _TenantIndex] = {}
        self._lock = threading.Lock()

    def _t(self, tenant: str, fresh: bool = False) -> _TenantIndex:
        t = self._tenants.get(tenant)
        if t is None:
            with self._lock:
                t = self._tenants.get(tenant)
                if t is None:
                    t = self._tenants[tenant] = _TenantIndex(self.root / f"{tenant_slug(tenant)}.sqlite")
        elif fresh:
            t.refresh_if_stale()
        return t

    # ------------------------------------------------------------------ writes
    def upsert_document(self, tenant: str, meta: DocFilterMeta, items: list[IndexItem]) -> int:
        t = self._t(tenant)
        with t.lock:
            self._delete_rows(t, meta.document_id)
            n_vectors = 0
            with t.db.tx() as conn:
                t.bump(conn)
                conn.execute(
                    "INSERT OR REPLACE INTO docs (document_id, document_type, category, tags, date) VALUES (?,?,?,?,?)",
                    (meta.document_id, meta.document_type, meta.category, json.dumps(meta.tags), meta.date),
                )
                rowids = []
                for it in items:
                    cur = conn.execute(
                        "INSERT INTO items (item_id, document_id, kind, page_number, image_id) VALUES (?,?,?,?,?)",
                        (it.item_id, it.document_id, it.kind, it.page_number, it.image_id),
                    )
                    rowid = cur.lastrowid
                    rowids.append(rowid)
                    if it.text.strip():
                        terms = analyzer.tokens(it.text)
                        if terms:
                            conn.execute("INSERT INTO terms (rowid, body) VALUES (?, ?)", (rowid, " ".join(terms)))
                    for space, vec in it.vectors.items():
                        arr = np.asarray(vec, dtype=np.float32)
                        conn.execute(
                            "INSERT INTO vectors (item_rowid, space, vec) VALUES (?,?,?)", (rowid, space, arr.tobytes())
                        )
                        n_vectors += 1
            dm = t._set_doc(meta)
            by_space: dict[str, list[IndexItem]] = {}
            for it in items:
                for space in it.vectors:
                    by_space.setdefault(space, []).append(it)
            for space, its in by_space.items():
                vecs = np.stack([np.asarray(it.vectors[space], dtype=np.float32) for it in its])
                sp = t.spaces.get(space)
                if sp is None:
                    sp = t.spaces[space] = _Space(vecs.shape[1])
                sp.append([it.item_id for it in its], vecs, dm.slot, [KINDS.index(it.kind) for it in its])
            return n_vectors

    def _delete_rows(self, t: _TenantIndex, document_id: str) -> int:
        rows = t.db.query("SELECT rowid, item_id FROM items WHERE document_id = ?", (document_id,))
        n_vectors = 0
        if rows:
            rowids = [r["rowid"] for r in rows]
            item_ids = [r["item_id"] for r in rows]
            for sp in t.spaces.values():
                sp.remove(item_ids)
            with t.db.tx() as conn:
                t.bump(conn)
                for i in range(0, len(rowids), 500):
                    part = rowids[i : i + 500]
                    marks = ",".join("?" * len(part))
                    n_vectors += conn.execute(f"DELETE FROM vectors WHERE item_rowid IN ({marks})", part).rowcount
                    conn.execute(f"DELETE FROM terms WHERE rowid IN ({marks})", part)
                    conn.execute(f"DELETE FROM items WHERE rowid IN ({marks})", part)
        return n_vectors

    def delete_document(self, tenant: str, document_id: str) -> int:
        t = self._t(tenant)
        with t.lock:
            n = self._delete_rows(t, document_id)
            with t.db.tx() as conn:
                t.bump(conn)
                conn.execute("DELETE FROM docs WHERE document_id = ?", (document_id,))
            t.docs.pop(document_id, None)  # its slot stays unused: rows pointing at it are dead
            t._doc_version += 1
            return n

    def update_document_meta(self, tenant: str, meta: DocFilterMeta) -> None:
        t = self._t(tenant)
        with t.lock:
            if meta.document_id not in t.docs:
                return
            with t.db.tx() as conn:
                t.bump(conn)
                conn.execute(
                    "UPDATE docs SET document_type = ?, category = ?, tags = ?, date = ? WHERE document_id = ?",
                    (meta.document_type, meta.category, json.dumps(meta.tags), meta.date, meta.document_id),
                )
            t._set_doc(meta)

    # ------------------------------------------------------------------ reads
    def search_lexical(self, tenant: str, text: str, filters: SearchFilters, k: int) -> list[Hit]:
        t = self._t(tenant, fresh=True)
        match = analyzer.fts_query(text)
        if not match or k <= 0:
            return []
        where, params = ["terms MATCH ?"], [match]
        f = filters
        if f.document_ids is not None:
            if not f.document_ids:
                return []
            where.append(f"i.document_id IN ({','.join('?' * len(f.document_ids))})")
            params.extend(f.document_ids)
        if f.document_types:
            where.append(f"dm.document_type IN ({','.join('?' * len(f.document_types))})")
            params.extend(f.document_types)
        if f.category:
            where.append("dm.category = ?")
            params.append(f.category)
        if f.tags:
            where.append(
                f"EXISTS (SELECT 1 FROM json_each(dm.tags) WHERE json_each.value IN ({','.join('?' * len(f.tags))}))"
            )
            params.extend(f.tags)
        if f.date_start:
            where.append("substr(dm.date, 1, ?) >= ?")
            params.extend([len(f.date_start), f.date_start])
        if f.date_end:
            where.append("substr(dm.date, 1, ?) <= ?")
            params.extend([len(f.date_end), f.date_end])
        if filters.kinds:
            where.append(f"i.kind IN ({','.join('?' * len(filters.kinds))})")
            params.extend(filters.kinds)
        if filters.exclude_item_ids:
            where.append(f"i.item_id NOT IN ({','.join('?' * len(filters.exclude_item_ids))})")
            params.extend(filters.exclude_item_ids)
        rows = t.db.query(
            f"SELECT i.item_id, i.kind, bm25(terms) AS s FROM terms JOIN items i ON i.rowid = terms.rowid "
            f"JOIN docs dm ON dm.document_id = i.document_id "
            f"WHERE {' AND '.join(where)} ORDER BY s LIMIT ?",
            [*params, k],
        )
        return [Hit(r["item_id"], -float(r["s"]), r["kind"]) for r in rows]

    def search_vector(self, tenant: str, space: str, vector: np.ndarray, filters: SearchFilters, k: int) -> list[Hit]:
        t = self._t(tenant, fresh=True)
        sp = t.spaces.get(space)
        if sp is None or sp.n == 0 or k <= 0:
            return []
        n, matrix, alive, doc_slot, kind = sp.n, sp.matrix, sp.alive, sp.doc_slot, sp.kind
        mask = alive[:n].copy()
        if has_doc_filter(filters):
            mask &= t.allowed_slots(filters)[doc_slot[:n]]
        if filters.kinds:
            mask &= np.isin(kind[:n], [KINDS.index(x) for x in filters.kinds])
        if filters.exclude_item_ids:
            for item_id in filters.exclude_item_ids:
                row = sp.row_of.get(item_id)
                if row is not None and row < n:
                    mask[row] = False
        candidates = np.flatnonzero(mask)
        if candidates.size == 0:
            return []
        q = np.asarray(vector, dtype=np.float32)
        if candidates.size * 4 >= n:  # most rows qualify: one product over all, then mask (no copy of the matrix)
            scores = matrix[:n] @ q
            scores[~mask] = -np.inf
        else:  # a selective filter: score only the candidates
            scores = np.full(n, -np.inf, dtype=np.float32)
            scores[candidates] = matrix[candidates] @ q
        k = min(k, candidates.size)
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [Hit(sp.item_ids[i], float(scores[i]), KINDS[kind[i]]) for i in top if np.isfinite(scores[i])]

    def get_vectors(self, tenant: str, space: str, item_ids: Sequence[str]) -> dict[str, np.ndarray]:
        sp = self._t(tenant, fresh=True).spaces.get(space)
        if sp is None:
            return {}
        out = {}
        for item_id in item_ids:
            row = sp.row_of.get(item_id)
            if row is not None and sp.alive[row]:
                out[item_id] = sp.matrix[row].copy()
        return out

    def item_ids(self, tenant: str, document_id: str) -> list[str]:
        rows = self._t(tenant).db.query(
            "SELECT item_id FROM items WHERE document_id = ? ORDER BY rowid", (document_id,)
        )
        return [r["item_id"] for r in rows]

    def count(self, tenant: str) -> int:
        return self._t(tenant).db.query("SELECT count(*) FROM items")[0][0]

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.root.is_dir() else "error",
            "backend": "embedded",
            "tenants_loaded": len(self._tenants),
        }
