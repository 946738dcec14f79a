"""VectorIndex on OpenSearch (Amazon OpenSearch Service, or any OpenSearch 2.9+ with the k-NN plugin) via opensearch-py.

One index holds every tenant. Each OpenSearch document is one IndexItem and carries the tenant, the item's fields and
its document's filter fields (type, category, tags, date), and only the vectors the item has (`vec_text`, `vec_clip`).
Every query this class sends is filtered by `tenant`, so a tenant only ever sees its own rows.

Lexical search is BM25 (OpenSearch's own scores) over `text` (a Chinese-capable analyzer) and `text.en` (English,
stemmed). Dense search is the knn query with its `filter` clause: the filter runs inside the k-NN search (efficient
filtering), so top-k is taken among the allowed rows, never by post-filtering. For `cosinesimil` OpenSearch scores a hit
(2 - d) / 2 with d = 1 - cos, i.e. (1 + cos) / 2, for both the lucene and faiss engines; we return cos = 2 * score - 1.

Unlike the embedded index, BM25 statistics (document frequencies, average lengths) are per shard, shared by all
tenants, and include deleted rows until segments merge: scores differ from the local twin's; rankings rarely do.

Writes use `refresh` ("wait_for" by default), so a search after a write sees it. OpenSearch Serverless has no refresh,
no `_delete_by_query`/`_update_by_query` and no custom ids in vector collections: construct the adapter with
refresh=False, by_query=False, custom_ids=False there (search + _bulk instead).
"""

from __future__ import annotations

import calendar
import contextlib
import hashlib
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any

import numpy as np
from opensearchpy import OpenSearch, TransportError, helpers
from opensearchpy.exceptions import RequestError

from mmrag.core.models import DocFilterMeta, Hit, IndexItem, SearchFilters
from mmrag.core.ranking import LEXICAL_WEIGHT, RRF_K
from mmrag.errors import InvalidParameter

DEFAULT_DIMS: Mapping[str, int] = MappingProxyType({"text": 384, "clip": 512})
ANALYZERS = ("smartcn", "icu", "standard")
ENGINES = ("lucene", "faiss")
MAX_WINDOW = 10_000  # index.max_result_window and the knn query's largest k
_PAGE = 1000
_SPACE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_CJK_TYPES = ["<IDEOGRAPHIC>", "<HIRAGANA>", "<KATAKANA>", "<HANGUL>"]
_DATE = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?)?)?"
    r"(?:Z|[+-]\d{2}(?::?\d{2})?)?$"
)

_META_SCRIPT = "; ".join(
    f"ctx._source.{name} = params.{name}" for name in ("document_type", "category", "tags", "date")
)


def _keyword() -> dict[str, Any]:
    return {"type": "keyword"}


def _date_parts(value: str) -> tuple[datetime, str] | None:
    """A date or date-time string as a naive wall-clock datetime and its precision (y, M, d, m, s, ms)."""
    m = _DATE.match(value.strip())
    if not m:
        return None
    year, month, day, hour, minute, second, frac = m.groups()
    precision = "ms" if frac else "s" if second else "m" if minute else "d" if day else "M" if month else "y"
    try:
        dt = datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((frac or "0")[:6].ljust(6, "0")),
        )
    except ValueError:
        return None
    return dt, precision


def _fmt(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}"


def stored_date(value: str) -> str | None:
    """The `date` field value. The time zone is dropped on purpose: the embedded index compares the wall-clock text
    of the date with the filter bounds, and so do we (bounds are treated the same way)."""
    parts = _date_parts(value)
    return _fmt(parts[0]) if parts else None


def _period_end(dt: datetime, precision: str) -> datetime:
    """The last millisecond of the period a bound names: '2024-12' ends at 2024-12-31T23:59:59.999."""
    if precision == "y":
        return dt.replace(month=12, day=31, hour=23, minute=59, second=59, microsecond=999_000)
    if precision == "M":
        last = calendar.monthrange(dt.year, dt.month)[1]
        return dt.replace(day=last, hour=23, minute=59, second=59, microsecond=999_000)
    if precision == "d":
        return dt.replace(hour=23, minute=59, second=59, microsecond=999_000)
    if precision == "m":
        return dt.replace(second=59, microsecond=999_000)
    if precision == "s":
        return dt.replace(microsecond=999_000)
    return dt


def date_bounds(start: str | None, end: str | None) -> dict[str, str]:
    """Range bounds with the embedded index's prefix semantics: an end bound includes the whole day (month, ...)."""
    out: dict[str, str] = {}
    for key, value in (("gte", start), ("lte", end)):
        if not value:
            continue
        parts = _date_parts(value)
        if parts is None:
            raise InvalidParameter(f"date_range bound {value!r} is not an ISO 8601 date or date-time")
        dt, precision = parts
        out[key] = _fmt(dt if key == "gte" else _period_end(dt, precision))
    return out


class OpenSearchVectorIndex:
    def __init__(
        self,
        client: OpenSearch,
        index: str = "mmrag-items",
        dims: Mapping[str, int] = DEFAULT_DIMS,
        refresh: bool | str = "wait_for",
        *,
        analyzer: str = "smartcn",
        engine: str = "lucene",
        hnsw_m: int = 16,
        ef_construction: int = 128,
        custom_ids: bool = True,
        by_query: bool = True,
    ):
        if analyzer not in ANALYZERS:
            raise ValueError(f"analyzer must be one of {ANALYZERS}, not {analyzer!r}")
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
        for space, dim in dims.items():
            if not _SPACE_NAME.match(space) or not 1 <= int(dim) <= 16_000:
                raise ValueError(f"bad vector space {space!r} of dimension {dim!r}")
        if refresh not in (True, False, "true", "false", "wait_for"):
            raise ValueError("refresh must be True, False or 'wait_for'")
        self.client = client
        self.index = index
        self.dims = {space: int(dim) for space, dim in dims.items()}
        self.refresh = refresh
        self.analyzer = analyzer
        self.engine = engine
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self.custom_ids = custom_ids
        # OpenSearch Serverless has no _delete_by_query / _update_by_query: page through the rows and use _bulk
        self.by_query = by_query
        self._index_seen = False

    # ------------------------------------------------------------------ definitions
    @staticmethod
    def vector_field(space: str) -> str:
        return f"vec_{space}"

    def analysis_settings(self) -> dict[str, Any]:
        en_stop = "mmrag_en_stop"
        text_analyzers = {
            # standard tokenizer (one token per ideograph) + overlapping CJK bigrams: needs no plugin
            "standard": {"tokenizer": "standard", "filter": ["cjk_width", "lowercase", "cjk_bigram", en_stop]},
            "smartcn": {"tokenizer": "smartcn_tokenizer", "filter": ["lowercase", "smartcn_stop", en_stop]},
            "icu": {"tokenizer": "icu_tokenizer", "filter": ["lowercase", en_stop]},
        }
        return {
            "filter": {
                en_stop: {"type": "stop", "stopwords": "_english_"},
                "mmrag_en_possessive": {"type": "stemmer", "language": "possessive_english"},
                "mmrag_en_stemmer": {"type": "stemmer", "language": "english"},
                # CJK text is the main field's job; single ideographs in text.en would match almost anything
                "mmrag_drop_cjk": {"type": "keep_types", "types": _CJK_TYPES, "mode": "exclude"},
            },
            "analyzer": {
                "mmrag_text": {"type": "custom", **text_analyzers[self.analyzer]},
                # the built-in `english` analyzer, rebuilt as documented, minus CJK tokens
                "mmrag_english": {
                    "type": "custom",
                    "tokenizer": "standard",
                    "filter": ["mmrag_en_possessive", "lowercase", "mmrag_drop_cjk", en_stop, "mmrag_en_stemmer"],
                },
            },
        }

    def mapping(self) -> dict[str, Any]:
        props: dict[str, Any] = {
            name: _keyword()
            for name in ("tenant", "item_id", "document_id", "kind", "image_id", "document_type", "category", "tags")
        }
        props["spaces"] = _keyword()  # which vectors the row has: counted by delete_document
        props["gen"] = _keyword()  # the upsert that wrote the row: older rows of the document are deleted
        props["page_number"] = {"type": "integer"}
        props["ordinal"] = {"type": "integer"}  # position in the document, for item_ids()
        props["date"] = {"type": "date"}
        props["text"] = {
            "type": "text",
            "analyzer": "mmrag_text",
            "fields": {"en": {"type": "text", "analyzer": "mmrag_english"}},
        }
        for space, dim in self.dims.items():
            props[self.vector_field(space)] = {
                "type": "knn_vector",
                "dimension": dim,
                "method": {
                    "name": "hnsw",
                    "engine": self.engine,
                    "space_type": "cosinesimil",
                    "parameters": {"m": self.hnsw_m, "ef_construction": self.ef_construction},
                },
            }
        return {"dynamic": "strict", "properties": props}

    def index_body(self) -> dict[str, Any]:
        return {"settings": {"index": {"knn": True, "analysis": self.analysis_settings()}}, "mappings": self.mapping()}

    @staticmethod
    def search_pipeline_body(
        technique: str = "min_max",
        weights: Sequence[float] = (LEXICAL_WEIGHT, 1 - LEXICAL_WEIGHT),
        rank_constant: int = RRF_K,
    ) -> dict[str, Any]:
        """A hybrid-search pipeline for a `hybrid` query of [lexical, dense] sub-queries (weights in that order).

        technique: min_max | l2 | z_score (normalization-processor, arithmetic_mean of the normalised scores), or
        rrf (score-ranker-processor, OpenSearch 2.19+). Our core fuses results itself; infra installs this for
        clients that query the index directly.
        """
        if technique == "rrf":
            processor = {
                "score-ranker-processor": {"combination": {"technique": "rrf", "rank_constant": rank_constant}}
            }
            return {
                "description": "mmrag hybrid search: reciprocal rank fusion",
                "phase_results_processors": [processor],
            }
        if technique not in ("min_max", "l2", "z_score"):
            raise ValueError(f"unknown normalization technique {technique!r}")
        total = float(sum(weights))
        if total <= 0 or any(w < 0 for w in weights):
            raise ValueError("weights must be non-negative and not all zero")
        normalized = [round(w / total, 6) for w in weights]
        normalized[-1] = round(1.0 - sum(normalized[:-1]), 6)  # OpenSearch wants them to sum to exactly 1.0
        processor = {
            "normalization-processor": {
                "normalization": {"technique": technique},
                "combination": {"technique": "arithmetic_mean", "parameters": {"weights": normalized}},
            }
        }
        return {
            "description": f"mmrag hybrid search: {technique} + arithmetic_mean",
            "phase_results_processors": [processor],
        }

    def ensure_index(self) -> bool:
        """Create the index if it is missing; True if this call created it."""
        if self.client.indices.exists(index=self.index):
            self._index_seen = True
            return False
        try:
            self.client.indices.create(index=self.index, body=self.index_body())
        except RequestError as exc:
            if exc.error != "resource_already_exists_exception":
                raise
            self._index_seen = True
            return False
        self._index_seen = True
        return True

    def put_search_pipeline(self, pipeline_id: str = "mmrag-hybrid", **kw: Any) -> None:
        self.client.search_pipeline.put(id=pipeline_id, body=self.search_pipeline_body(**kw))

    # ------------------------------------------------------------------ helpers
    def _require_index(self) -> None:
        # bulk into a missing index would auto-create it with dynamic mappings: no k-NN, wrong analyzers
        if not self._index_seen:
            if not self.client.indices.exists(index=self.index):
                raise RuntimeError(
                    f"OpenSearch index {self.index!r} does not exist: run ensure_index() or "
                    "infra/opensearch/create_index.py first"
                )
            self._index_seen = True

    def _doc_id(self, tenant: str, item_id: str) -> str:
        return hashlib.sha256(f"{tenant}\x00{item_id}".encode()).hexdigest()

    def _refresh_flag(self) -> bool:
        # _delete_by_query and _update_by_query take only true/false
        return self.refresh in (True, "true", "wait_for")

    def _bulk_refresh(self) -> str:
        if isinstance(self.refresh, bool):
            return "true" if self.refresh else "false"
        return self.refresh

    @staticmethod
    def _tenant(tenant: str) -> dict[str, Any]:
        return {"term": {"tenant": tenant}}

    def _document(self, tenant: str, document_id: str) -> list[dict[str, Any]]:
        return [self._tenant(tenant), {"term": {"document_id": document_id}}]

    def _filter(self, tenant: str, f: SearchFilters) -> dict[str, Any] | None:
        """The bool filter for the tenant and the search filters; None when nothing can match."""
        must: list[dict[str, Any]] = [self._tenant(tenant)]
        if f.document_ids is not None:
            if not f.document_ids:
                return None
            must.append({"terms": {"document_id": list(f.document_ids)}})
        if f.document_types:
            must.append({"terms": {"document_type": list(f.document_types)}})
        if f.category:
            must.append({"term": {"category": f.category}})
        if f.tags:
            must.append({"terms": {"tags": list(f.tags)}})
        if f.date_start or f.date_end:
            must.append({"range": {"date": date_bounds(f.date_start, f.date_end)}})
        if f.kinds:
            must.append({"terms": {"kind": list(f.kinds)}})
        body: dict[str, Any] = {"filter": must}
        if f.exclude_item_ids:
            body["must_not"] = [{"terms": {"item_id": list(f.exclude_item_ids)}}]
        return {"bool": body}

    def _count(self, query: dict[str, Any]) -> int:
        return int(self.client.count(index=self.index, body={"query": query})["count"])

    # ------------------------------------------------------------------ writes
    def upsert_document(self, tenant: str, meta: DocFilterMeta, items: list[IndexItem]) -> int:
        """Index the document's rows, then delete its rows from earlier upserts: no moment without the document."""
        self._require_index()
        gen = uuid.uuid4().hex
        doc_fields = {
            "document_type": meta.document_type,
            "category": meta.category,
            "tags": list(meta.tags),
            "date": stored_date(meta.date),  # unparseable (never from the API): no date, range filters skip it
        }
        actions: list[dict[str, Any]] = []
        n_vectors = 0
        for ordinal, it in enumerate(items):
            source: dict[str, Any] = {
                "tenant": tenant,
                "item_id": it.item_id,
                "document_id": meta.document_id,
                "kind": it.kind,
                "ordinal": ordinal,
                "gen": gen,
                "page_number": it.page_number,
                "image_id": it.image_id,
                **doc_fields,
            }
            if it.text.strip():
                source["text"] = it.text
            spaces = []
            for space, vec in it.vectors.items():
                if space not in self.dims:
                    raise ValueError(f"unknown vector space {space!r} (index has {sorted(self.dims)})")
                arr = np.asarray(vec, dtype=np.float32).ravel()
                if arr.shape[0] != self.dims[space]:
                    raise ValueError(f"{space} vector of {it.item_id} has {arr.shape[0]} dims, not {self.dims[space]}")
                if not np.any(arr):
                    continue  # cosine is undefined for a zero vector and OpenSearch rejects it
                source[self.vector_field(space)] = arr.tolist()
                spaces.append(space)
            source["spaces"] = spaces
            n_vectors += len(spaces)
            action: dict[str, Any] = {"_op_type": "index", "_index": self.index, "_source": source}
            if self.custom_ids:
                action["_id"] = self._doc_id(tenant, it.item_id)
            actions.append(action)
        if actions:
            helpers.bulk(self.client, actions, chunk_size=200, refresh=self._bulk_refresh())
        stale = {"bool": {"filter": self._document(tenant, meta.document_id), "must_not": [{"term": {"gen": gen}}]}}
        self._delete_matching(stale)
        return n_vectors

    def _rows(self, query: dict[str, Any], source: bool | list[str] = False) -> list[dict[str, Any]]:
        """Every hit of a query (with _id and, if asked, _source), paged with search_after on item_id."""
        out: list[dict[str, Any]] = []
        after: list[Any] | None = None
        while True:
            body: dict[str, Any] = {"size": _PAGE, "_source": source, "query": query, "sort": [{"item_id": "asc"}]}
            if after is not None:
                body["search_after"] = after
            hits = self.client.search(index=self.index, body=body)["hits"]["hits"]
            out.extend(hits)
            if len(hits) < _PAGE:
                return out
            after = hits[-1]["sort"]

    def _delete_matching(self, query: dict[str, Any]) -> None:
        if self.by_query:
            self.client.delete_by_query(
                index=self.index, body={"query": query}, refresh=self._refresh_flag(), conflicts="proceed"
            )
            return
        actions = [{"_op_type": "delete", "_index": self.index, "_id": h["_id"]} for h in self._rows(query)]
        if actions:
            helpers.bulk(self.client, actions, chunk_size=500, refresh=self._bulk_refresh())

    def delete_document(self, tenant: str, document_id: str) -> int:
        """Delete the document's rows; returns how many vectors they held."""
        rows = self._document(tenant, document_id)
        n_vectors = sum(self._count({"bool": {"filter": [*rows, {"term": {"spaces": space}}]}}) for space in self.dims)
        self._delete_matching({"bool": {"filter": rows}})
        return n_vectors

    def update_document_meta(self, tenant: str, meta: DocFilterMeta) -> None:
        script = {
            "lang": "painless",
            "source": _META_SCRIPT,
            "params": {
                "document_type": meta.document_type,
                "category": meta.category,
                "tags": list(meta.tags),
                "date": stored_date(meta.date),
            },
        }
        if not self.by_query:
            self._reindex_with(tenant, meta.document_id, script["params"])
            return
        # conflicts abort (the default): a concurrent write must fail loudly, not leave stale filter fields
        self.client.update_by_query(
            index=self.index,
            body={"query": {"bool": {"filter": self._document(tenant, meta.document_id)}}, "script": script},
            refresh=self._refresh_flag(),
        )

    def _reindex_with(self, tenant: str, document_id: str, fields: dict[str, Any]) -> None:
        """Without _update_by_query: write updated copies of the document's rows, then delete the old ones."""
        old = self._rows({"bool": {"filter": self._document(tenant, document_id)}}, source=True)
        gen = uuid.uuid4().hex
        actions = []
        for h in old:
            action: dict[str, Any] = {
                "_op_type": "index",
                "_index": self.index,
                "_source": {**h["_source"], **fields, "gen": gen},
            }
            if self.custom_ids:
                action["_id"] = self._doc_id(tenant, h["_source"]["item_id"])
            actions.append(action)
        if actions:
            helpers.bulk(self.client, actions, chunk_size=200, refresh=self._bulk_refresh())
        if not self.custom_ids:  # with custom ids the copies replaced the rows in place
            self._delete_matching(
                {"bool": {"filter": self._document(tenant, document_id), "must_not": [{"term": {"gen": gen}}]}}
            )

    # ------------------------------------------------------------------ reads
    def search_lexical(self, tenant: str, text: str, filters: SearchFilters, k: int) -> list[Hit]:
        if k <= 0 or not text.strip():
            return []
        query = self._filter(tenant, filters)
        if query is None:
            return []
        query["bool"]["must"] = [{"multi_match": {"query": text, "fields": ["text", "text.en"], "type": "best_fields"}}]
        body = {"size": min(k, MAX_WINDOW), "_source": ["item_id"], "query": query}
        hits = self.client.search(index=self.index, body=body)["hits"]["hits"]
        return [Hit(h["_source"]["item_id"], float(h["_score"])) for h in hits]

    def search_vector(self, tenant: str, space: str, vector: np.ndarray, filters: SearchFilters, k: int) -> list[Hit]:
        if k <= 0 or space not in self.dims:
            return []
        q = np.asarray(vector, dtype=np.float32).ravel()
        if q.shape[0] != self.dims[space]:
            raise ValueError(f"{space} query vector has {q.shape[0]} dims, not {self.dims[space]}")
        if not np.any(q):
            return []
        flt = self._filter(tenant, filters)
        if flt is None:
            return []
        k = min(k, MAX_WINDOW)
        knn = {self.vector_field(space): {"vector": q.tolist(), "k": k, "filter": flt}}
        body = {"size": k, "_source": ["item_id"], "query": {"knn": knn}}
        hits = self.client.search(index=self.index, body=body)["hits"]["hits"]
        return [Hit(h["_source"]["item_id"], 2.0 * float(h["_score"]) - 1.0) for h in hits]

    def get_vectors(self, tenant: str, space: str, item_ids: Sequence[str]) -> dict[str, np.ndarray]:
        if space not in self.dims or not item_ids:
            return {}
        field = self.vector_field(space)
        wanted = list(dict.fromkeys(item_ids))
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(wanted), _PAGE):
            part = wanted[start : start + _PAGE]
            query = {"bool": {"filter": [self._tenant(tenant), {"terms": {"item_id": part}}]}}
            body = {"size": len(part), "_source": ["item_id", field], "query": query}
            for h in self.client.search(index=self.index, body=body)["hits"]["hits"]:
                vec = h["_source"].get(field)
                if vec is not None:
                    found[h["_source"]["item_id"]] = np.asarray(vec, dtype=np.float32)
        return {item_id: found[item_id] for item_id in wanted if item_id in found}

    def item_ids(self, tenant: str, document_id: str) -> list[str]:
        out: list[str] = []
        after: list[Any] | None = None
        while True:
            body: dict[str, Any] = {
                "size": _PAGE,
                "_source": ["item_id"],
                "query": {"bool": {"filter": self._document(tenant, document_id)}},
                "sort": [{"ordinal": "asc"}, {"item_id": "asc"}],
            }
            if after is not None:
                body["search_after"] = after
            hits = self.client.search(index=self.index, body=body)["hits"]["hits"]
            out.extend(h["_source"]["item_id"] for h in hits)
            if len(hits) < _PAGE:
                return out
            after = hits[-1]["sort"]

    def count(self, tenant: str) -> int:
        return self._count({"bool": {"filter": [self._tenant(tenant)]}})

    def health(self) -> dict[str, Any]:
        out: dict[str, Any] = {"backend": "opensearch", "index": self.index}
        try:
            exists = bool(self.client.indices.exists(index=self.index))
        except Exception as exc:  # health reports, never raises
            return {**out, "status": "error", "error": f"{type(exc).__name__}: {exc}"[:300]}
        out["index_exists"] = exists
        with contextlib.suppress(TransportError):  # OpenSearch Serverless has no _cluster/health
            out["cluster_status"] = self.client.cluster.health()["status"]
        out["status"] = "ok" if exists and out.get("cluster_status") != "red" else "error"
        return out
