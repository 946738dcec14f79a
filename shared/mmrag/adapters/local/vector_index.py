"""The embedded index: BM25 (SQLite FTS5 over our own analyzer's terms) and exact dense search (NumPy), per tenant.

Each tenant has its own SQLite file, so BM25 statistics and vectors never mix tenants. Vectors are persisted in
SQLite and mirrored in memory in append-only arrays: a search reads a snapshot (the arrays and a row count), so
writers never block readers, and a delete clears the row's 'alive' flag in place, visible to the next search at once.
Filters are document-level (type, category, tags, date, ids) and item-level (kind), applied as a mask before ranking.

Dense search stays exact, but a large space is not scanned in float32: each row also has an int8 copy (one scale per
row), the int8 rows are scored against an int8 copy of the query by onnxruntime's integer matrix product (a quarter of
the memory traffic), and only the rows that could still be in the top k are scored again in float32. "Could" is decided
by a proven bound on the int8 scores' error (Cauchy-Schwarz on both quantisation residuals), so the returned hits and
their scores are those of the exact float32 scan. Without onnxruntime, or for small spaces, the float32 scan runs.
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
from mmrag.core.blob_paths import tenant_slug
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
QUANTIZED_MIN_ROWS = 4096  # below this the float32 scan takes well under a millisecond
ROWID_LIST_MAX_SHARE = 0.25  # a lexical filter letting fewer rows through hands FTS5 the list of allowed rowids
RESCORE_MAX_SHARE = 0.25  # if more rows than this share could still be in the top k, scan them all in float32


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _pb(field: int, value: int | str | bytes) -> bytes:
    """One protobuf field: an int as a varint, a str or bytes as a length-delimited record."""
    if isinstance(value, int):
        return _varint(field << 3) + _varint(value)
    raw = value.encode() if isinstance(value, str) else value
    return _varint(field << 3 | 2) + _varint(len(raw)) + raw


def int8_scan_model() -> bytes:
    """The ONNX model Y = MatMulInteger(A, B, A_zero): A (n x d) uint8 row codes with zero point A_zero (128),
    B (d x 1) int8 query codes, Y (n x 1) int32 exact dot products. Written by hand (ModelProto field numbers from
    onnx.proto) so that the `onnx` package is not needed at run time."""
    uint8, int8, int32 = 2, 3, 6

    def tensor(name: str, elem_type: int, dims: list[int | str]) -> bytes:
        shape = b"".join(_pb(1, _pb(1, d) if isinstance(d, int) else _pb(2, d)) for d in dims)
        return _pb(1, name) + _pb(2, _pb(1, _pb(1, elem_type) + _pb(2, shape)))

    node = _pb(1, "A") + _pb(1, "B") + _pb(1, "A_zero") + _pb(2, "Y") + _pb(4, "MatMulInteger")
    graph = (
        _pb(1, node)
        + _pb(2, "int8_scan")
        + _pb(11, tensor("A", uint8, ["n", "d"]))
        + _pb(11, tensor("B", int8, ["d", 1]))
        + _pb(11, tensor("A_zero", uint8, []))
        + _pb(12, tensor("Y", int32, ["n", 1]))
    )
    return _pb(1, 7) + _pb(7, graph) + _pb(8, _pb(1, "") + _pb(2, 13))  # IR version 7, opset 13


class _Int8Product:
    """rows (uint8 codes, zero point 128) @ query (int8) -> int32, on one onnxruntime thread that never spins (the
    search's other channel and the query encoders need the other core)."""

    _ZERO = np.array(128, dtype=np.uint8)

    def __init__(self) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self.session = ort.InferenceSession(int8_scan_model(), opts, providers=["CPUExecutionProvider"])

    def __call__(self, codes: np.ndarray, q8: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {"A": codes, "B": q8.reshape(-1, 1), "A_zero": self._ZERO})[0]
        return out.reshape(-1)


def _dot(rows: np.ndarray, q: np.ndarray) -> np.ndarray:
    """rows @ q on this thread. Not BLAS when quantized: a multithreaded BLAS call waits for a worker thread, which on
    2 busy cores can take a scheduler slice (milliseconds) for a product of a fraction of a millisecond."""
    return np.einsum("ij,j->i", rows, q) if len(rows) <= 65_536 else rows @ q


_INT8: list[_Int8Product | None] = []
_INT8_LOCK = threading.Lock()


def int8_product() -> _Int8Product | None:
    """The shared integer product, or None when onnxruntime is not installed (then every scan is float32)."""
    if not _INT8:
        with _INT8_LOCK:
            if not _INT8:
                try:
                    _INT8.append(_Int8Product())
                except Exception:  # noqa: BLE001 - no onnxruntime, or one that cannot run the model
                    _INT8.append(None)
    return _INT8[0]


def quantize_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Symmetric int8 codes, one scale per row (stored as uint8 = code + 128), the row's 1/scale, the residual's
    norm |row - code/scale| and the norm of code/scale. The last two bound the error of a score from the codes."""
    rows = np.asarray(rows, dtype=np.float32)
    peak = np.abs(rows).max(axis=1) if rows.size else np.zeros(len(rows), dtype=np.float32)
    inv_scale = np.where(peak > 0, peak / np.float32(127.0), np.float32(1.0)).astype(np.float32)
    codes = rows / inv_scale[:, None]
    np.rint(codes, out=codes)
    np.clip(codes, -127, 127, out=codes)
    diff = codes * inv_scale[:, None]
    code_norm = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    np.subtract(rows, diff, out=diff)
    residual = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    codes += 128
    return codes.astype(np.uint8), inv_scale, residual, code_norm


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
        self.codes = np.zeros((capacity, dim), dtype=np.uint8)  # int8 copy of matrix (+128), see quantize_rows
        self.inv_scale = np.zeros(capacity, dtype=np.float32)
        self.alive = np.zeros(capacity, dtype=bool)
        self.doc_slot = np.zeros(capacity, dtype=np.int32)
        self.kind = np.zeros(capacity, dtype=np.int8)
        self.item_ids: list[str] = []
        self.row_of: dict[str, int] = {}
        # largest residual norm and norm of a decoded row so far (they only grow): the int8 scores' error bound
        self.max_residual = 0.0
        self.max_code_norm = 0.0

    def _grow(self, need: int) -> None:
        cap = max(need, 2 * len(self.alive))
        for name in ("matrix", "codes", "inv_scale", "alive", "doc_slot", "kind"):
            old = getattr(self, name)
            new = np.zeros((cap, *old.shape[1:]), dtype=old.dtype)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)

    def write_rows(self, start: int, vecs: np.ndarray) -> None:
        """Rows start.. of the float32 matrix and their int8 codes (not yet published: n is unchanged)."""
        end = start + len(vecs)
        self.matrix[start:end] = vecs
        codes, inv_scale, residual, code_norm = quantize_rows(self.matrix[start:end])
        self.codes[start:end] = codes
        self.inv_scale[start:end] = inv_scale
        if end > start:
            self.max_residual = max(self.max_residual, float(residual.max()))
            self.max_code_norm = max(self.max_code_norm, float(code_norm.max()))

    def append(self, item_ids: list[str], vecs: np.ndarray, doc_slot: int, kinds: list[int]) -> None:
        need = self.n + len(item_ids)
        if need > len(self.alive):
            self._grow(need)
        start = self.n
        self.write_rows(start, vecs)
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


class _LexRows:
    """The items that have terms in FTS5: rowid, document slot and kind, append-only like _Space. A selective filter
    becomes the list of the allowed rowids, so that FTS5 scores (bm25(), the costly part) only those rows."""

    def __init__(self, capacity: int = 1024):
        self.n = 0
        self.rowid = np.zeros(capacity, dtype=np.int64)
        self.slot = np.zeros(capacity, dtype=np.int32)
        self.kind = np.zeros(capacity, dtype=np.int8)
        self.alive = np.zeros(capacity, dtype=bool)

    def append(self, rowids: Sequence[int], slots: Sequence[int] | int, kinds: Sequence[int]) -> None:
        """Rows of new items (a rowid comes back only after its item was deleted, so it is never alive twice)."""
        need = self.n + len(rowids)
        if need > len(self.alive):
            cap = max(need, 2 * len(self.alive))
            for name in ("rowid", "slot", "kind", "alive"):
                old = getattr(self, name)
                new = np.zeros(cap, dtype=old.dtype)
                new[: self.n] = old[: self.n]
                setattr(self, name, new)
        start = self.n
        self.rowid[start:need] = rowids
        self.slot[start:need] = slots
        self.kind[start:need] = kinds
        self.alive[start:need] = True
        self.n = need  # published last

    def remove(self, rowids: Sequence[int]) -> None:
        """One pass over the rowids (a document's delete), no per-row map kept in memory."""
        if len(rowids):
            n = self.n
            self.alive[:n] &= ~np.isin(self.rowid[:n], np.asarray(rowids, dtype=np.int64))


class _TenantIndex:
    def __init__(self, path: Path):
        self.db = SqliteDb(path, SCHEMA)
        self.lock = threading.RLock()
        self.docs: dict[str, _DocMeta] = {}
        self.slot_docs: list[str] = []
        self.spaces: dict[str, _Space] = {}
        self.lex = _LexRows()
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
                sp.write_rows(row, np.frombuffer(b"".join(b[3] for b in block), dtype=np.float32).reshape(-1, sp.dim))
                sp.doc_slot[row:end] = [self.docs[b[1]].slot for b in block]
                sp.kind[row:end] = [KINDS.index(b[2]) for b in block]
                sp.alive[row:end] = True
                for offset, b in enumerate(block):
                    sp.row_of[b[0]] = row + offset
                sp.item_ids.extend(b[0] for b in block)
                row = end
            sp.n = row
        # terms_docsize (FTS5's own table) has a row for each row of terms, without its text
        n_lex = self.db.query("SELECT count(*) FROM terms_docsize")[0][0]
        lex = _LexRows(max(1024, n_lex))
        cursor = self.db.conn().execute(
            "SELECT d.id, i.document_id, i.kind FROM terms_docsize d JOIN items i ON i.rowid = d.id ORDER BY d.id"
        )
        while block := cursor.fetchmany(4096):
            lex.append([b[0] for b in block], [self.docs[b[1]].slot for b in block], [KINDS.index(b[2]) for b in block])
        self.lex = lex

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
    def __init__(
        self,
        root: Path,
        *,
        quantized: bool = True,
        quantized_min_rows: int = QUANTIZED_MIN_ROWS,
        rescore_max_share: float = RESCORE_MAX_SHARE,
    ):
        """quantized=False: always the float32 scan (same results, more memory traffic). The other two options are
        for tests: the int8 scan for any number of rows, and re-scoring however many rows remain."""
        self.quantized = quantized
        self.quantized_min_rows = quantized_min_rows
        self.rescore_max_share = rescore_max_share
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
                lex_rowids, lex_kinds = [], []
                for it in items:
                    cur = conn.execute(
                        "INSERT INTO items (item_id, document_id, kind, page_number, image_id) VALUES (?,?,?,?,?)",
                        (it.item_id, it.document_id, it.kind, it.page_number, it.image_id),
                    )
                    rowid = cur.lastrowid
                    if it.text.strip():
                        terms = analyzer.tokens(it.text)
                        if terms:
                            conn.execute("INSERT INTO terms (rowid, body) VALUES (?, ?)", (rowid, " ".join(terms)))
                            lex_rowids.append(rowid)
                            lex_kinds.append(KINDS.index(it.kind))
                    for space, vec in it.vectors.items():
                        arr = np.asarray(vec, dtype=np.float32)
                        conn.execute(
                            "INSERT INTO vectors (item_rowid, space, vec) VALUES (?,?,?)", (rowid, space, arr.tobytes())
                        )
                        n_vectors += 1
            dm = t._set_doc(meta)
            t.lex.append(lex_rowids, dm.slot, lex_kinds)
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
            t.lex.remove(rowids)
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
        """BM25 top k. Scoring a matching row (bm25()) is what costs, not finding it, so: without a filter, or with one
        that lets most rows through, FTS5 ranks alone (no join for each of the maybe tens of thousands of matching
        rows), more rows the more the filter removes, and the best ones are checked; with a selective filter FTS5 is
        given the list of the allowed rowids (from memory) and scores only those. Should that leave fewer than k hits
        while more rows matched, the query with every filter joined in SQL decides."""
        t = self._t(tenant, fresh=True)
        match = analyzer.fts_query(text)
        if not match or k <= 0:
            return []
        f = filters
        if f.document_ids is not None and not f.document_ids:
            return []
        excluded = set(f.exclude_item_ids or ())
        kinds = set(f.kinds) if f.kinds else None
        allowed = t.allowed_slots(f) if has_doc_filter(f) else None
        share = 1.0
        if allowed is not None or (kinds is not None and not kinds >= set(KINDS)):
            lex = t.lex
            n = lex.n
            ok = lex.alive[:n].copy()
            total = int(ok.sum())
            if allowed is not None:
                ok &= allowed[lex.slot[:n]]
            if kinds is not None:
                ok &= np.isin(lex.kind[:n], [KINDS.index(x) for x in kinds])
            count = int(ok.sum())
            if count == 0:
                return []
            share = count / max(total, 1)
            if share < ROWID_LIST_MAX_SHARE:
                limit = k + len(excluded)
                rows = t.db.query(
                    "SELECT rowid, bm25(terms) AS s FROM terms WHERE terms MATCH ? "
                    "AND +rowid IN (SELECT value FROM json_each(?)) ORDER BY s LIMIT ?",  # +: not an FTS5 lookup
                    (match, json.dumps(lex.rowid[:n][ok].tolist()), limit),
                )
                return self._checked_hits(t, rows, limit, k, excluded, kinds, allowed, match, f)
        limit = int(2 * k / share) + len(excluded) + 16
        rows = t.db.query(
            "SELECT rowid, bm25(terms) AS s FROM terms WHERE terms MATCH ? ORDER BY s LIMIT ?", (match, limit)
        )
        return self._checked_hits(t, rows, limit, k, excluded, kinds, allowed, match, f)

    def _checked_hits(
        self,
        t: _TenantIndex,
        rows: list[Any],
        limit: int,
        k: int,
        excluded: set[str],
        kinds: set[str] | None,
        allowed: np.ndarray | None,
        match: str,
        filters: SearchFilters,
    ) -> list[Hit]:
        """The first k of FTS5's ranked rows that pass the filters (their items looked up together)."""
        if not rows:
            return []
        items = {
            r[0]: r
            for r in t.db.query(
                "SELECT i.rowid, i.item_id, i.kind, i.document_id FROM items i "
                "JOIN docs dm ON dm.document_id = i.document_id WHERE i.rowid IN (SELECT value FROM json_each(?))",
                (json.dumps([r[0] for r in rows]),),
            )
        }
        hits: list[Hit] = []
        for rowid, score in rows:
            it = items.get(rowid)
            if it is None or it[1] in excluded or (kinds is not None and it[2] not in kinds):
                continue
            if allowed is not None:
                dm = t.docs.get(it[3])
                if dm is None or not allowed[dm.slot]:
                    continue
            hits.append(Hit(it[1], -float(score), it[2]))
            if len(hits) == k:
                return hits
        if len(rows) < limit:  # every matching row was seen
            return hits
        return self._lexical_joined(t, match, filters, k)

    @staticmethod
    def _lexical_joined(t: _TenantIndex, match: str, filters: SearchFilters, k: int) -> list[Hit]:
        """BM25 top k with every filter joined in SQL: exact for any filter, but joins each matching row."""
        where, params = ["terms MATCH ?"], [match]
        f = filters
        if f.document_ids is not None:
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
        # one snapshot: rows below n never change but for 'alive', arrays are replaced (not resized) when they grow
        n, matrix, codes, inv_scale = sp.n, sp.matrix, sp.codes, sp.inv_scale
        alive, doc_slot, kind = sp.alive, sp.doc_slot, sp.kind
        mask = alive[:n].copy()
        if has_doc_filter(filters):
            mask &= t.allowed_slots(filters)[doc_slot[:n]]
        if filters.kinds:
            kinds = [KINDS.index(x) for x in filters.kinds]
            mask &= kind[:n] == kinds[0] if len(kinds) == 1 else np.isin(kind[:n], kinds)
        if filters.exclude_item_ids:
            for item_id in filters.exclude_item_ids:
                row = sp.row_of.get(item_id)
                if row is not None and row < n:
                    mask[row] = False
        candidates = np.flatnonzero(mask)
        if candidates.size == 0:
            return []
        q = np.asarray(vector, dtype=np.float32).reshape(-1)
        k = min(k, candidates.size)
        product = int8_product() if self.quantized and candidates.size >= self.quantized_min_rows else None
        rows = None
        if product is not None:
            rows = self._rows_to_rescore(sp, n, codes, inv_scale, mask, candidates, q, k, product)
            if rows is not None and rows.size > self.rescore_max_share * candidates.size:
                rows = None
        if rows is not None:  # the int8 scan ruled out every other row: exact float32 scores for these only
            scores = _dot(matrix[rows], q)
        elif candidates.size * 4 >= n:  # most rows qualify: one product over all, then mask (no copy of the matrix)
            rows = np.arange(n)
            scores = _dot(matrix[:n], q)
            scores[~mask] = -np.inf
        else:  # a selective filter: score only the candidates
            rows = candidates
            scores = _dot(matrix[candidates], q)
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [
            Hit(sp.item_ids[rows[i]], float(scores[i]), KINDS[kind[rows[i]]]) for i in top if np.isfinite(scores[i])
        ]

    @staticmethod
    def _rows_to_rescore(
        sp: _Space,
        n: int,
        codes: np.ndarray,
        inv_scale: np.ndarray,
        mask: np.ndarray,
        candidates: np.ndarray,
        q: np.ndarray,
        k: int,
        product: _Int8Product,
    ) -> np.ndarray | None:
        """The rows whose exact score may reach the top k, from the int8 scores (None: scan in float32 instead).

        approx = codes·q8 / (scale·t) differs from the exact row·q by at most
        |decoded row|·|q - q8/t| + |row - decoded row|·|q| <= bound (Cauchy-Schwarz). The k best approximate rows
        score at least kth - bound exactly; a row with approx < kth - 2·bound scores less than that, so it cannot be
        in the top k. A tiny slack covers float32 rounding of the approximate scores."""
        peak = float(np.abs(q).max()) if q.size else 0.0
        if not np.isfinite(peak) or peak == 0.0 or q.size != sp.dim:
            return None
        scale = 127.0 / peak
        q8 = np.clip(np.rint(q * scale), -127, 127).astype(np.int8)
        q_norm = float(np.linalg.norm(q))
        q_residual = float(np.linalg.norm(q - q8.astype(np.float32) / np.float32(scale)))
        bound = sp.max_code_norm * q_residual + sp.max_residual * q_norm
        slack = 1e-5 * (sp.max_code_norm + sp.max_residual) * q_norm  # |row| <= |decoded row| + |residual|
        if candidates.size * 4 >= n:  # most rows qualify: all rows (no copy of the codes), masked afterwards
            approx = product(codes[:n], q8).astype(np.float32) * (inv_scale[:n] / np.float32(scale))
            approx[~mask] = -np.inf
            pool = None
        else:
            pool = candidates
            approx = product(codes[candidates], q8).astype(np.float32) * (inv_scale[candidates] / np.float32(scale))
        kth = np.partition(approx, approx.size - k)[approx.size - k]
        keep = np.flatnonzero(approx >= kth - 2.0 * bound - slack)
        return keep if pool is None else pool[keep]

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
