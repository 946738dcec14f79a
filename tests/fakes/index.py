"""An in-memory VectorIndex: BM25 over the analyzer's terms, exact cosine per space, filters before ranking.

BM25 is SQLite FTS5's: k1 = 1.2, b = 0.75, IDF = ln((N − n + 0.5) / (n + 0.5)) floored at 1e-6, statistics over all of
the tenant's rows that have terms (filters choose among the scored rows, they do not change the statistics), each
distinct query term counted once (the query is an OR of its terms). Scores are positive, higher is better.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from mmrag.core.models import DocFilterMeta, Hit, IndexItem, SearchFilters
from mmrag.text.analyzer import tokens

K1, B = 1.2, 0.75


@dataclass
class _Row:
    item_id: str
    document_id: str
    kind: str
    terms: Counter
    length: int
    vectors: dict[str, np.ndarray]


@dataclass
class _Tenant:
    docs: dict[str, DocFilterMeta] = field(default_factory=dict)
    rows: dict[str, _Row] = field(default_factory=dict)  # item id → row, in insertion order


def _allowed(meta: DocFilterMeta | None, f: SearchFilters) -> bool:
    if meta is None:
        return False
    if f.document_ids is not None and meta.document_id not in f.document_ids:
        return False
    if f.document_types and meta.document_type not in f.document_types:
        return False
    if f.category and meta.category != f.category:
        return False
    if f.tags and not set(f.tags) & set(meta.tags):
        return False
    # dates compare on the filter's precision: "2024-03" matches any day of March
    if f.date_start and meta.date[: len(f.date_start)] < f.date_start:
        return False
    return not (f.date_end and meta.date[: len(f.date_end)] > f.date_end)


class MemoryVectorIndex:
    def __init__(self) -> None:
        self._tenants: dict[str, _Tenant] = {}
        self._lock = threading.RLock()

    def _t(self, tenant: str) -> _Tenant:
        return self._tenants.setdefault(tenant, _Tenant())

    # ------------------------------------------------------------------ writes
    def upsert_document(self, tenant: str, meta: DocFilterMeta, items: list[IndexItem]) -> int:
        with self._lock:
            t = self._t(tenant)
            self._delete_rows(t, meta.document_id)
            t.docs[meta.document_id] = replace(meta, tags=list(meta.tags))
            n_vectors = 0
            for it in items:
                terms = tokens(it.text) if it.text.strip() else []
                vectors = {s: np.array(v, dtype=np.float32).reshape(-1) for s, v in it.vectors.items()}
                t.rows[it.item_id] = _Row(it.item_id, it.document_id, it.kind, Counter(terms), len(terms), vectors)
                n_vectors += len(vectors)
            return n_vectors

    @staticmethod
    def _delete_rows(t: _Tenant, document_id: str) -> int:
        gone = [r for r in t.rows.values() if r.document_id == document_id]
        for r in gone:
            del t.rows[r.item_id]
        return sum(len(r.vectors) for r in gone)

    def delete_document(self, tenant: str, document_id: str) -> int:
        with self._lock:
            t = self._t(tenant)
            t.docs.pop(document_id, None)
            return self._delete_rows(t, document_id)

    def update_document_meta(self, tenant: str, meta: DocFilterMeta) -> None:
        with self._lock:
            t = self._t(tenant)
            if meta.document_id in t.docs:
                t.docs[meta.document_id] = replace(meta, tags=list(meta.tags))

    # ------------------------------------------------------------------ reads
    def _candidates(self, t: _Tenant, f: SearchFilters) -> list[_Row]:
        excluded = set(f.exclude_item_ids or ())
        kinds = set(f.kinds) if f.kinds else None
        return [
            r
            for r in t.rows.values()
            if r.item_id not in excluded
            and (kinds is None or r.kind in kinds)
            and _allowed(t.docs.get(r.document_id), f)
        ]

    def search_lexical(self, tenant: str, text: str, filters: SearchFilters, k: int) -> list[Hit]:
        query = set(tokens(text))
        if not query or k <= 0:
            return []
        with self._lock:
            t = self._t(tenant)
            scored_rows = [r for r in t.rows.values() if r.length]  # the rows FTS5 holds
            if not scored_rows:
                return []
            n_rows = len(scored_rows)
            avgdl = sum(r.length for r in scored_rows) / n_rows
            idf = {}
            for term in query:
                n = sum(1 for r in scored_rows if term in r.terms)
                idf[term] = max(math.log((n_rows - n + 0.5) / (n + 0.5)), 0.0) or 1e-6
            hits = []
            for r in self._candidates(t, filters):
                matched = query & r.terms.keys()
                if not matched:
                    continue
                norm = K1 * (1 - B + B * r.length / avgdl)
                score = sum(idf[q] * r.terms[q] * (K1 + 1) / (r.terms[q] + norm) for q in matched)
                hits.append(Hit(r.item_id, score, r.kind))
        hits.sort(key=lambda h: -h.score)  # stable: equal scores keep insertion order
        return hits[:k]

    def search_vector(self, tenant: str, space: str, vector: np.ndarray, filters: SearchFilters, k: int) -> list[Hit]:
        if k <= 0:
            return []
        q = np.asarray(vector, dtype=np.float32).reshape(-1)
        q = q / max(float(np.linalg.norm(q)), 1e-12)
        with self._lock:
            rows = [r for r in self._candidates(self._t(tenant), filters) if space in r.vectors]
            hits = []
            for r in rows:
                v = r.vectors[space]
                hits.append(Hit(r.item_id, float(v @ q) / max(float(np.linalg.norm(v)), 1e-12), r.kind))
        hits.sort(key=lambda h: -h.score)
        return hits[:k]

    def get_vectors(self, tenant: str, space: str, item_ids: Sequence[str]) -> dict[str, np.ndarray]:
        with self._lock:
            t = self._t(tenant)
            rows = [t.rows.get(i) for i in item_ids]
            return {r.item_id: r.vectors[space].copy() for r in rows if r is not None and space in r.vectors}

    def item_ids(self, tenant: str, document_id: str) -> list[str]:
        with self._lock:
            return [r.item_id for r in self._t(tenant).rows.values() if r.document_id == document_id]

    def count(self, tenant: str) -> int:
        with self._lock:
            return len(self._t(tenant).rows)

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "backend": "memory", "tenants_loaded": len(self._tenants)}
