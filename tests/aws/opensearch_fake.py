"""A fake OpenSearch for tests: a real HTTP server on 127.0.0.1 speaking the subset of the REST API that
mmrag.adapters.aws.opensearch_index uses, strictly.

Implemented: PUT/HEAD/GET/DELETE <index> (settings incl. custom analysis, mappings validated), _bulk (NDJSON),
_search (bool/filter/must/should/must_not, term, terms, range, exists, match, multi_match, match_all, knn with
vector/k/filter; size/from, _source filtering, sort, search_after), _count, _delete_by_query, _update_by_query
(painless limited to `ctx._source.<field> = params.<name>` statements), _mget, _doc/<id>, _refresh,
_cluster/health, _search/pipeline/<id> (normalization-processor, score-ranker-processor).

Semantics kept from the real engine: near-real-time visibility (a write is searchable after a refresh: the
`refresh` parameter, _refresh, or index.refresh_interval elapsing), _delete_by_query/_update_by_query work on a
snapshot and report version conflicts, BM25 (k1=1.2, b=0.75, with the (k1 + 1) factor of OpenSearch's legacy BM25)
over analysed text, knn scores as OpenSearch returns them (cosinesimil: (2 - (1 - cos)) / 2), efficient k-NN
filtering (the filter narrows the candidates before the top k are taken), default size 10, max_result_window.

Rejected with 400 and an OpenSearch-shaped error body: unknown keys and query types, knn without k, wrong vector
dimensions, zero vectors under cosinesimil, filters in the wrong place, unknown analyzers/tokenizers/filters/settings,
strict-mapping violations, bad refresh values, malformed NDJSON. Where real OpenSearch would accept something the
fake does not model it answers `fake_unsupported_exception`, and where the fake is deliberately stricter than
OpenSearch (knn_vector fields without an explicit method, scripts not built from params) `fake_policy_exception`:
never a silent guess. Analysis is a faithful-enough model (standard tokenizer by Unicode script, cjk_bigram, english
stop words, Porter stemming); plugin analyzers (smartcn, icu) exist only when the server is started with the plugin
and are approximated with jieba.
"""

from __future__ import annotations

import atexit
import fnmatch
import gzip
import json
import math
import re
import secrets
import threading
import time
import unicodedata
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
import Stemmer

UNSUPPORTED = "fake_unsupported_exception"
POLICY = "fake_policy_exception"
MAX_DIMENSION = 16_000
MAX_K = 10_000
K1, B = 1.2, 0.75


class ApiError(Exception):
    def __init__(self, status: int, type_: str, reason: str, **extra: Any):
        super().__init__(f"{status} {type_}: {reason}")
        self.status, self.type, self.reason, self.extra = status, type_, reason, extra

    def body(self) -> dict[str, Any]:
        cause = {"type": self.type, "reason": self.reason, **self.extra}
        return {"error": {"root_cause": [cause], **cause}, "status": self.status}


def bad(type_: str, reason: str, **extra: Any) -> ApiError:
    return ApiError(400, type_, reason, **extra)


def unsupported(what: str) -> ApiError:
    return bad(UNSUPPORTED, f"the fake OpenSearch does not implement {what}")


def policy(what: str) -> ApiError:
    return bad(POLICY, f"the fake OpenSearch requires {what}")


def index_not_found(name: str) -> ApiError:
    return ApiError(
        404,
        "index_not_found_exception",
        f"no such index [{name}]",
        index=name,
        **{"resource.type": "index_or_alias", "resource.id": name, "index_uuid": "_na_"},
    )


def _token_kind(value: Any) -> str:
    """The JSON token OpenSearch's parser names in 'Unknown key for a ... in [...]' errors."""
    if isinstance(value, dict):
        return "START_OBJECT"
    if isinstance(value, list):
        return "START_ARRAY"
    if isinstance(value, bool):
        return "VALUE_BOOLEAN"
    if isinstance(value, (int, float)):
        return "VALUE_NUMBER"
    if value is None:
        return "VALUE_NULL"
    return "VALUE_STRING"


# ====================================================================== analysis
_CJK_CLASS = (
    "\u1100-\u11ff\u3040-\u309f\u30a0-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f"
)
_STANDARD = re.compile(
    r"(?P<ideo>[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff])"
    r"|(?P<hira>[\u3040-\u309f])"
    r"|(?P<kata>[\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f]+)"
    r"|(?P<hang>[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]+)"
    rf"|(?P<word>[^\W_{_CJK_CLASS}]+(?:['\u2019.,][^\W_{_CJK_CLASS}]+)*)"
)
_TYPES = {"ideo": "<IDEOGRAPHIC>", "hira": "<HIRAGANA>", "kata": "<KATAKANA>", "hang": "<HANGUL>"}
CJK_TYPES = frozenset(_TYPES.values())
ENGLISH_STOP = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these they "
    "this to was will with".split()
)
CJK_STOP = ENGLISH_STOP | {"s", "t", "www"}
_local = threading.local()


@dataclass
class Token:
    term: str
    type: str
    start: int
    end: int


TokenFilter = Callable[[list[Token]], list[Token]]
Tokenizer = Callable[[str], list[Token]]


def standard_tokenizer(text: str) -> list[Token]:
    out = []
    for m in _STANDARD.finditer(text):
        kind = m.lastgroup or "word"
        if kind == "word":
            ttype = "<NUM>" if m.group().replace(".", "").replace(",", "").isdigit() else "<ALPHANUM>"
        else:
            ttype = _TYPES[kind]
        out.append(Token(m.group(), ttype, m.start(), m.end()))
    return out


def whitespace_tokenizer(text: str) -> list[Token]:
    return [Token(m.group(), "word", m.start(), m.end()) for m in re.finditer(r"\S+", text)]


def keyword_tokenizer(text: str) -> list[Token]:
    return [Token(text, "word", 0, len(text))] if text else []


def letter_tokenizer(text: str) -> list[Token]:
    return [Token(m.group(), "word", m.start(), m.end()) for m in re.finditer(r"[^\W\d_]+", text)]


def _jieba_words(text: str) -> list[tuple[str, int, int]]:
    import jieba

    if not getattr(_local, "jieba_quiet", False):
        import logging

        jieba.setLogLevel(logging.WARNING)
        _local.jieba_quiet = True
    return [(w, s, e) for w, s, e in jieba.tokenize(text)]


def smartcn_tokenizer(text: str) -> list[Token]:
    """Approximates Lucene's HMM Chinese tokenizer with jieba; punctuation comes out as tokens, as in smartcn."""
    return [Token(w, "word", s, e) for w, s, e in _jieba_words(text) if w.strip()]


_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def icu_tokenizer(text: str) -> list[Token]:
    """Approximates ICU word breaking: dictionary (jieba) segmentation for Han runs, standard rules elsewhere."""
    out: list[Token] = []
    for m in re.finditer(
        r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+|[^\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+", text
    ):
        if _HAN.match(m.group()):
            out.extend(Token(w, "<IDEOGRAPHIC>", m.start() + s, m.start() + e) for w, s, e in _jieba_words(m.group()))
        else:
            out.extend(
                Token(t.term, t.type, t.start + m.start(), t.end + m.start()) for t in standard_tokenizer(m.group())
            )
    return out


def _porter(term: str) -> str:
    stemmer = getattr(_local, "porter", None)
    if stemmer is None:
        stemmer = _local.porter = Stemmer.Stemmer("porter")
    return stemmer.stemWord(term)


def f_lowercase(tokens: list[Token]) -> list[Token]:
    return [Token(t.term.lower(), t.type, t.start, t.end) for t in tokens]


def f_cjk_width(tokens: list[Token]) -> list[Token]:
    return [Token(unicodedata.normalize("NFKC", t.term), t.type, t.start, t.end) for t in tokens]


def f_asciifolding(tokens: list[Token]) -> list[Token]:
    def fold(s: str) -> str:
        return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))

    return [Token(fold(t.term), t.type, t.start, t.end) for t in tokens]


def f_icu_folding(tokens: list[Token]) -> list[Token]:
    return f_asciifolding([Token(t.term.casefold(), t.type, t.start, t.end) for t in tokens])


def f_porter(tokens: list[Token]) -> list[Token]:
    return [Token(_porter(t.term), t.type, t.start, t.end) if t.type not in CJK_TYPES else t for t in tokens]


def f_possessive(tokens: list[Token]) -> list[Token]:
    out = []
    for t in tokens:
        term = t.term
        if len(term) > 2 and term[-2] in "'\u2019" and term[-1] in "sS":
            term = term[:-2]
        out.append(Token(term, t.type, t.start, t.end))
    return out


def f_smartcn_stop(tokens: list[Token]) -> list[Token]:
    return [t for t in tokens if any(c.isalnum() for c in t.term)]


def make_stop(words: frozenset[str], ignore_case: bool = False) -> TokenFilter:
    def stop(tokens: list[Token]) -> list[Token]:
        return [t for t in tokens if (t.term.lower() if ignore_case else t.term) not in words]

    return stop


def make_keep_types(types: Iterable[str], mode: str) -> TokenFilter:
    keep = frozenset(types)

    def keep_types(tokens: list[Token]) -> list[Token]:
        return [t for t in tokens if (t.type in keep) == (mode == "include")]

    return keep_types


def f_cjk_bigram(tokens: list[Token]) -> list[Token]:
    """Lucene's CJKBigramFilter: adjacent CJK characters become overlapping bigrams, a lone one a unigram."""
    out: list[Token] = []
    run: list[Token] = []

    def flush() -> None:
        if len(run) == 1:
            out.append(Token(run[0].term, "<SINGLE>", run[0].start, run[0].end))
        else:
            out.extend(Token(a.term + b.term, "<DOUBLE>", a.start, b.end) for a, b in zip(run, run[1:], strict=False))
        run.clear()

    for t in tokens:
        if t.type in CJK_TYPES:
            for i, ch in enumerate(t.term):
                start = t.start + i
                if run and run[-1].end != start:
                    flush()
                run.append(Token(ch, t.type, start, start + 1))
        else:
            if run:
                flush()
            out.append(t)
    if run:
        flush()
    return out


@dataclass
class Analyzer:
    tokenizer: Tokenizer
    filters: list[TokenFilter] = field(default_factory=list)

    def terms(self, text: str) -> list[str]:
        tokens = self.tokenizer(text)
        for f in self.filters:
            tokens = f(tokens)
        return [t.term for t in tokens if t.term]


_stop_en = make_stop(ENGLISH_STOP)
BUILTIN_TOKENIZERS: dict[str, Tokenizer] = {
    "standard": standard_tokenizer,
    "whitespace": whitespace_tokenizer,
    "keyword": keyword_tokenizer,
    "letter": letter_tokenizer,
}
BUILTIN_FILTERS: dict[str, TokenFilter] = {
    "lowercase": f_lowercase,
    "cjk_width": f_cjk_width,
    "cjk_bigram": f_cjk_bigram,
    "porter_stem": f_porter,
    "stop": _stop_en,
    "asciifolding": f_asciifolding,
}
BUILTIN_ANALYZERS: dict[str, Analyzer] = {
    "standard": Analyzer(standard_tokenizer, [f_lowercase]),
    "simple": Analyzer(letter_tokenizer, [f_lowercase]),
    "whitespace": Analyzer(whitespace_tokenizer),
    "keyword": Analyzer(keyword_tokenizer),
    "stop": Analyzer(letter_tokenizer, [f_lowercase, _stop_en]),
    "english": Analyzer(standard_tokenizer, [f_possessive, f_lowercase, _stop_en, f_porter]),
    "cjk": Analyzer(standard_tokenizer, [f_cjk_width, f_lowercase, f_cjk_bigram, make_stop(CJK_STOP)]),
}
PLUGINS: dict[str, dict[str, dict[str, Any]]] = {
    "analysis-smartcn": {
        "tokenizer": {"smartcn_tokenizer": smartcn_tokenizer},
        "filter": {"smartcn_stop": f_smartcn_stop},
        "analyzer": {"smartcn": Analyzer(smartcn_tokenizer, [f_lowercase, f_porter, f_smartcn_stop])},
    },
    "analysis-icu": {
        "tokenizer": {"icu_tokenizer": icu_tokenizer},
        "filter": {"icu_folding": f_icu_folding, "icu_normalizer": f_icu_folding},
        "analyzer": {"icu_analyzer": Analyzer(icu_tokenizer, [f_icu_folding])},
    },
}


def _stopwords(spec: Any, where: str) -> frozenset[str]:
    if spec in (None, "_english_"):
        return ENGLISH_STOP
    if spec == "_none_":
        return frozenset()
    if isinstance(spec, list) and all(isinstance(w, str) for w in spec):
        return frozenset(spec)
    raise unsupported(f"stopwords {spec!r} in [{where}]")


def _custom_filter(name: str, spec: Any) -> TokenFilter:
    if not isinstance(spec, dict) or "type" not in spec:
        raise bad(
            "illegal_argument_exception", f"token filter [{name}] must specify either an analyzer type, or a tokenizer"
        )
    kind = spec["type"]
    allowed = {"type", "version"}
    if kind == "stop":
        allowed |= {"stopwords", "ignore_case", "remove_trailing"}
        made = make_stop(_stopwords(spec.get("stopwords"), name), bool(spec.get("ignore_case", False)))
    elif kind == "stemmer":
        allowed |= {"language", "name"}
        lang = spec.get("language", spec.get("name", "english"))
        if lang in ("english", "porter"):
            made = f_porter
        elif lang == "possessive_english":
            made = f_possessive
        else:
            raise unsupported(f"stemmer language [{lang}]")
    elif kind == "keep_types":
        allowed |= {"types", "mode"}
        types, mode = spec.get("types"), spec.get("mode", "include")
        if not isinstance(types, list) or not types:
            raise bad("illegal_argument_exception", "keep_types requires `types` to be configured")
        if mode not in ("include", "exclude"):
            raise bad("illegal_argument_exception", "`mode` parameter must be one of [include, exclude]")
        made = make_keep_types(types, mode)
    elif kind in ("lowercase", "cjk_width", "porter_stem", "asciifolding"):
        made = BUILTIN_FILTERS[kind]
    elif kind == "cjk_bigram":
        allowed |= {"ignored_scripts", "output_unigrams"}
        if spec.get("ignored_scripts") or spec.get("output_unigrams"):
            raise unsupported("cjk_bigram options")
        made = f_cjk_bigram
    else:
        raise bad("illegal_argument_exception", f"Unknown filter type [{kind}] for [{name}]")
    extra = set(spec) - allowed
    if extra:
        raise bad("illegal_argument_exception", f"unknown parameter [{sorted(extra)[0]}] on token filter [{name}]")
    return made


def build_analysis(analysis: Any, plugins: Iterable[str]) -> dict[str, Analyzer]:
    """The analyzers an index can use: built-in, plugin-provided, and its own custom ones."""
    tokenizers = dict(BUILTIN_TOKENIZERS)
    filters = dict(BUILTIN_FILTERS)
    analyzers = dict(BUILTIN_ANALYZERS)
    for plugin in plugins:
        tokenizers.update(PLUGINS[plugin]["tokenizer"])
        filters.update(PLUGINS[plugin]["filter"])
        analyzers.update(PLUGINS[plugin]["analyzer"])
    if analysis is None:
        return analyzers
    if not isinstance(analysis, dict):
        raise bad("settings_exception", "Failed to load settings: [index.analysis] must be an object")
    unknown = set(analysis) - {"analyzer", "filter", "tokenizer", "char_filter", "normalizer"}
    if unknown:
        raise bad("illegal_argument_exception", f"unknown setting [index.analysis.{sorted(unknown)[0]}]")
    if analysis.get("tokenizer") or analysis.get("char_filter") or analysis.get("normalizer"):
        raise unsupported("custom tokenizers, char filters and normalizers")
    for name, spec in (analysis.get("filter") or {}).items():
        filters[name] = _custom_filter(name, spec)
    for name, spec in (analysis.get("analyzer") or {}).items():
        if not isinstance(spec, dict):
            raise bad("illegal_argument_exception", f"analyzer [{name}] must be an object")
        kind = spec.get("type", "custom" if "tokenizer" in spec else None)
        if kind is None:
            raise bad(
                "illegal_argument_exception", f"analyzer [{name}] must specify either an analyzer type, or a tokenizer"
            )
        if kind != "custom":
            if kind not in BUILTIN_ANALYZERS or set(spec) - {"type", "stopwords"}:
                raise unsupported(f"analyzer type [{kind}] with {sorted(spec)}")
            base = BUILTIN_ANALYZERS[kind]
            if "stopwords" in spec:
                stop = make_stop(_stopwords(spec["stopwords"], name))
                base = Analyzer(base.tokenizer, [f for f in base.filters if f is not _stop_en] + [stop])
            analyzers[name] = base
            continue
        extra = set(spec) - {"type", "tokenizer", "filter", "char_filter", "position_increment_gap"}
        if extra:
            raise bad("illegal_argument_exception", f"Custom Analyzer [{name}] does not support [{sorted(extra)[0]}]")
        if spec.get("char_filter"):
            raise unsupported("char filters")
        tok = spec.get("tokenizer")
        if tok not in tokenizers:
            raise bad(
                "illegal_argument_exception", f"Custom Analyzer [{name}] failed to find tokenizer under name [{tok}]"
            )
        chain = []
        for fname in spec.get("filter") or []:
            if fname not in filters:
                raise bad(
                    "illegal_argument_exception", f"Custom Analyzer [{name}] failed to find filter under name [{fname}]"
                )
            chain.append(filters[fname])
        analyzers[name] = Analyzer(tokenizers[tok], chain)
    return analyzers


# ====================================================================== values
_DATE_RE = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?)?)?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?$"
)


def parse_date(value: Any) -> int:
    """strict_date_optional_time||epoch_millis, as epoch milliseconds. Raises ValueError."""
    if isinstance(value, bool):
        raise ValueError("boolean")
    if isinstance(value, (int, float)):
        return int(value)
    if not isinstance(value, str):
        raise ValueError("not a string")
    m = _DATE_RE.match(value)
    if not m:
        if re.fullmatch(r"-?\d+", value):
            return int(value)
        raise ValueError(value)
    year, month, day, hour, minute, second, frac, zone = m.groups()
    dt = datetime(
        int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0), int(second or 0), tzinfo=UTC
    )
    ms = int((frac or "0")[:3].ljust(3, "0"))
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        dt -= sign * offset
    return int(dt.timestamp() * 1000) + ms


def _keyword_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise ValueError("not a scalar")


def _integer_value(value: Any, kind: str) -> int:
    if isinstance(value, bool):
        raise ValueError("boolean")
    if isinstance(value, str):
        value = float(value)
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError("not a number")
    number = int(value)
    limit = 2**31 if kind == "integer" else 2**63
    if not -limit <= number < limit:
        raise ValueError("out of range")
    return number


def _boolean_value(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise ValueError("not a boolean")


# ====================================================================== mappings
FIELD_PARAMS = {
    "keyword": {"ignore_above", "doc_values", "index", "store", "null_value", "fields"},
    "text": {"analyzer", "search_analyzer", "fields", "index", "norms", "index_options", "store"},
    "date": {"format", "doc_values", "index", "store", "null_value", "ignore_malformed"},
    "integer": {"doc_values", "index", "store", "null_value", "coerce"},
    "long": {"doc_values", "index", "store", "null_value", "coerce"},
    "float": {"doc_values", "index", "store", "null_value", "coerce"},
    "double": {"doc_values", "index", "store", "null_value", "coerce"},
    "boolean": {"doc_values", "index", "store", "null_value"},
    "knn_vector": {"dimension", "method", "space_type", "data_type", "mode", "compression_level", "model_id"},
}
ENGINE_SPACES = {"lucene": {"l2", "cosinesimil", "innerproduct"}, "faiss": {"l2", "innerproduct", "cosinesimil"}}
ENGINE_PARAMS = {"lucene": {"m", "ef_construction"}, "faiss": {"m", "ef_construction", "ef_search", "encoder"}}


@dataclass
class FieldSpec:
    path: str
    type: str
    analyzer: Analyzer | None = None
    search_analyzer: Analyzer | None = None
    dimension: int = 0
    space_type: str = ""
    subfields: list[FieldSpec] = field(default_factory=list)


def _mapping_error(reason: str) -> ApiError:
    return bad("mapper_parsing_exception", reason)


def parse_field(path: str, spec: Any, analyzers: dict[str, Analyzer], knn_enabled: bool) -> FieldSpec:
    if not isinstance(spec, dict):
        raise _mapping_error(f"Expected map for property [fields] on field [{path}] but got a class java.lang.String")
    if "type" not in spec:
        if "properties" in spec:
            raise unsupported(f"object fields ([{path}])")
        raise _mapping_error(f"No type specified for field [{path}]")
    kind = spec["type"]
    if kind not in FIELD_PARAMS:
        raise _mapping_error(f"No handler for type [{kind}] declared on field [{path}]")
    for param in spec:
        if param != "type" and param not in FIELD_PARAMS[kind]:
            raise _mapping_error(f"unknown parameter [{param}] on mapper [{path}] of type [{kind}]")
    out = FieldSpec(path, kind)
    if kind == "text":
        for key in ("analyzer", "search_analyzer"):
            name = spec.get(key, spec.get("analyzer", "standard"))
            if name not in analyzers:
                raise _mapping_error(
                    f"Failed to parse mapping [_doc]: analyzer [{name}] has not been configured in mappings"
                )
            setattr(out, key, analyzers[name])
    if kind == "date" and spec.get("format") not in (None, "strict_date_optional_time||epoch_millis"):
        raise unsupported(f"date format [{spec.get('format')}]")
    if kind == "knn_vector":
        _parse_knn(out, spec, knn_enabled)
    subfields = spec.get("fields") or {}
    if not isinstance(subfields, dict):
        raise _mapping_error(f"Expected map for property [fields] on field [{path}]")
    for name, sub in subfields.items():
        out.subfields.append(parse_field(f"{path}.{name}", sub, analyzers, knn_enabled))
    return out


def _parse_knn(out: FieldSpec, spec: dict[str, Any], knn_enabled: bool) -> None:
    path = out.path
    if "model_id" in spec or spec.get("mode") or spec.get("compression_level"):
        raise unsupported("trained models and on-disk/compressed k-NN modes")
    if spec.get("data_type", "float") != "float":
        raise unsupported(f"data_type [{spec['data_type']}]")
    dim = spec.get("dimension")
    if dim is None:
        raise _mapping_error(f"Dimension value missing for vector: {path}")
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise _mapping_error(f"Unable to parse [dimension] from provided value [{dim}] for vector [{path}]")
    if dim <= 0:
        raise _mapping_error(f"Dimension value must be greater than 0 for vector: {path}")
    if dim > MAX_DIMENSION:
        raise _mapping_error(f"Dimension value cannot be greater than {MAX_DIMENSION} for vector: {path}")
    method = spec.get("method")
    if not isinstance(method, dict) or "engine" not in method or "space_type" not in method:
        raise policy(f"knn_vector field [{path}] to declare a method with engine and space_type")
    if not knn_enabled:
        raise _mapping_error("Cannot set modelId or method parameters when index.knn setting is false")
    unknown = set(method) - {"name", "engine", "space_type", "parameters"}
    if unknown:
        raise _mapping_error(f"Validation Failed: 1: Unknown parameters: [{', '.join(sorted(unknown))}];")
    name, engine, space = method.get("name"), method["engine"], method["space_type"]
    if name == "ivf":
        raise unsupported("ivf (it needs a trained model)")
    if name != "hnsw":
        raise _mapping_error(f"Invalid method name: {name}")
    if engine == "nmslib":
        raise _mapping_error("nmslib engine is deprecated in OpenSearch and cannot be used for new index creation")
    if engine not in ENGINE_SPACES:
        raise _mapping_error(f"Invalid engine type: {engine}")
    if space not in ENGINE_SPACES[engine]:
        raise _mapping_error(f"Validation Failed: 1: {engine} does not support space type: {space};")
    if "space_type" in spec and spec["space_type"] != space:
        raise _mapping_error(
            'Space type in "method" and top level space type should be same or one of them should be defined '
            f"for vector [{path}]"
        )
    params = method.get("parameters") or {}
    if not isinstance(params, dict):
        raise _mapping_error("Unable to parse parameters for the method")
    unknown = set(params) - ENGINE_PARAMS[engine]
    if unknown:
        raise _mapping_error(f"Validation Failed: 1: Unknown parameters: [{', '.join(sorted(unknown))}];")
    for key in ("m", "ef_construction", "ef_search"):
        if key in params and (not isinstance(params[key], int) or isinstance(params[key], bool) or params[key] < 1):
            raise _mapping_error(f"Validation Failed: 1: Parameter [{key}] must be a positive integer;")
    if "encoder" in params:
        raise unsupported("faiss encoders")
    out.dimension, out.space_type = dim, space


# ====================================================================== documents
@dataclass
class Doc:
    id: str
    source: dict[str, Any]
    version: int
    seq_no: int
    order: int
    values: dict[str, list[Any]] = field(default_factory=dict)
    terms: dict[str, tuple[Counter, int]] = field(default_factory=dict)
    vectors: dict[str, np.ndarray] = field(default_factory=dict)


def _settings_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise bad("illegal_argument_exception", f"Failed to parse value [{value}] as only [true] or [false] are allowed.")


def _time_value(value: Any, key: str) -> float | None:
    m = re.fullmatch(r"(-?\d+)(ms|s|m)?", str(value))
    if not m:
        raise bad("illegal_argument_exception", f"failed to parse setting [{key}] with value [{value}] as a time value")
    number = int(m.group(1))
    if number < 0:
        return None
    return number * {"ms": 0.001, "s": 1.0, "m": 60.0, None: 0.001}[m.group(2)]


SCALAR_SETTINGS = {
    "index.knn",
    "index.number_of_shards",
    "index.number_of_replicas",
    "index.refresh_interval",
    "index.max_result_window",
    "index.knn.algo_param.ef_search",
    "index.search.default_pipeline",
    "index.mapping.total_fields.limit",
}


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, sub in value.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(sub, dict):
            out.update(_flatten(sub, path))
        else:
            out[path] = sub
    return out


class FakeIndex:
    def __init__(self, name: str, body: dict[str, Any], plugins: Iterable[str]):
        unknown = set(body) - {"settings", "mappings", "aliases"}
        if unknown:
            key = sorted(unknown)[0]
            raise bad("parse_exception", f"unknown key [{key}] for create index")
        if body.get("aliases"):
            raise unsupported("aliases")
        settings = body.get("settings") or {}
        if not isinstance(settings, dict):
            raise bad("settings_exception", "Failed to load settings")
        settings = json.loads(json.dumps(settings))
        index_part = settings.pop("index", {}) if isinstance(settings.get("index"), dict) else {}
        analysis = index_part.pop("analysis", None) or settings.pop("analysis", None)
        flat = {(k if k.startswith("index.") else f"index.{k}"): v for k, v in _flatten(settings, "").items()}
        flat.update({f"index.{k}": v for k, v in _flatten(index_part, "").items()})
        for key in flat:
            if key.startswith("index.analysis."):
                raise unsupported("flat index.analysis.* settings (use the nested form)")
            if key not in SCALAR_SETTINGS:
                raise bad(
                    "illegal_argument_exception",
                    f"unknown setting [{key}] please check that any required plugins are installed, "
                    "or check the breaking changes documentation for removed settings",
                )
        self.name = name
        self.uuid = secrets.token_urlsafe(16)[:22]
        self.settings = flat
        self.knn = _settings_bool(flat.get("index.knn", False), "index.knn")
        self.refresh_interval = _time_value(flat.get("index.refresh_interval", "1s"), "index.refresh_interval")
        self.max_result_window = int(flat.get("index.max_result_window", 10_000))
        self.analysis = analysis
        self.analyzers = build_analysis(analysis, plugins)
        mappings = body.get("mappings") or {}
        if not isinstance(mappings, dict):
            raise _mapping_error("Failed to parse mapping [_doc]: Expected map for property [mappings]")
        unknown = set(mappings) - {"properties", "dynamic", "_source", "_meta", "date_detection", "numeric_detection"}
        if unknown:
            key = sorted(unknown)[0]
            raise _mapping_error(f"Root mapping definition has unsupported parameters:  [{key} : {mappings[key]}]")
        dynamic = mappings.get("dynamic", True)
        if dynamic not in (True, False, "true", "false", "strict"):
            raise _mapping_error(f"Could not convert [dynamic] to boolean or [strict]: [{dynamic}]")
        self.dynamic = str(dynamic).lower()
        self.mappings = mappings
        self.fields: dict[str, FieldSpec] = {}
        for name_, spec in (mappings.get("properties") or {}).items():
            self.fields[name_] = parse_field(name_, spec, self.analyzers, self.knn)
        self.paths: dict[str, FieldSpec] = {}
        for spec in self.fields.values():
            self.paths[spec.path] = spec
            for sub in spec.subfields:
                self.paths[sub.path] = sub
        self.live: dict[str, Doc] = {}
        self.searchable: dict[str, Doc] = {}
        self.seq = 0
        self.order = 0
        self.dirty = False
        self.last_refresh = time.monotonic()

    # -------------------------------------------------------------- visibility
    def refresh(self) -> None:
        self.searchable = dict(self.live)
        self.dirty = False
        self.last_refresh = time.monotonic()

    def snapshot(self) -> dict[str, Doc]:
        interval = self.refresh_interval
        if self.dirty and interval is not None and time.monotonic() - self.last_refresh >= interval:
            self.refresh()
        return self.searchable

    # -------------------------------------------------------------- documents
    def build_doc(self, doc_id: str, source: Any) -> Doc:
        if not isinstance(source, dict):
            raise _mapping_error("failed to parse: the document source must be an object")
        doc = Doc(doc_id, source, 0, 0, 0)
        for key, value in source.items():
            spec = self.fields.get(key)
            if spec is None:
                if self.dynamic == "strict":
                    raise bad(
                        "strict_dynamic_mapping_exception",
                        f"mapping set to strict, dynamic introduction of [{key}] within [_doc] is not allowed",
                    )
                if self.dynamic == "true":
                    raise unsupported(f"dynamic mapping of new field [{key}]")
                continue
            self._index_value(doc, spec, value)
        return doc

    def _index_value(self, doc: Doc, spec: FieldSpec, value: Any) -> None:
        if value is None:
            return

        def fail(why: str = "") -> ApiError:
            preview = json.dumps(value)[:50]
            return _mapping_error(
                f"failed to parse field [{spec.path}] of type [{spec.type}] in document with id '{doc.id}'. "
                f"Preview of field's value: '{preview}'" + (f" ({why})" if why else "")
            )

        if spec.type == "knn_vector":
            if not isinstance(value, list) or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in value
            ):
                raise fail("a knn_vector is an array of numbers")
            if len(value) != spec.dimension:
                raise _mapping_error(f"Vector dimension mismatch. Expected: {spec.dimension}, Given: {len(value)}")
            arr = np.asarray(value, dtype=np.float32)
            if not np.all(np.isfinite(arr)):
                raise _mapping_error("KNN vector values cannot be NaN or Infinity")
            if spec.space_type == "cosinesimil" and not np.any(arr):
                raise _mapping_error(f"zero vector is not supported when space type is [{spec.space_type}]")
            doc.vectors[spec.path] = arr
            return
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, (dict, list)):
                raise fail()
        values = [v for v in values if v is not None]
        try:
            if spec.type == "keyword":
                normalized = [_keyword_value(v) for v in values]
            elif spec.type == "date":
                normalized = [parse_date(v) for v in values]
            elif spec.type in ("integer", "long"):
                normalized = [_integer_value(v, spec.type) for v in values]
            elif spec.type in ("float", "double"):
                normalized = [float(v) for v in values if not isinstance(v, bool)]
            elif spec.type == "boolean":
                normalized = [_boolean_value(v) for v in values]
            else:  # text
                normalized = [_keyword_value(v) for v in values]
        except ValueError as exc:
            raise fail(str(exc)) from None
        doc.values[spec.path] = normalized
        if spec.type == "text":
            self._analyze(doc, spec, normalized)
        for sub in spec.subfields:
            if sub.type == "text":
                self._analyze(doc, sub, [_keyword_value(v) for v in values])
            else:
                self._index_value(doc, sub, value)

    def _analyze(self, doc: Doc, spec: FieldSpec, texts: list[str]) -> None:
        assert spec.analyzer is not None
        terms: list[str] = []
        for text in texts:
            terms.extend(spec.analyzer.terms(text))
        doc.terms[spec.path] = (Counter(terms), len(terms))

    def put(self, doc: Doc) -> tuple[Doc, bool]:
        old = self.live.get(doc.id)
        self.seq += 1
        self.order += 1
        doc.version = old.version + 1 if old else 1
        doc.seq_no, doc.order = self.seq, self.order
        self.live[doc.id] = doc
        self.dirty = True
        return doc, old is None

    def remove(self, doc_id: str) -> Doc | None:
        old = self.live.pop(doc_id, None)
        if old is not None:
            self.seq += 1
            self.dirty = True
        return old


# ====================================================================== queries
@dataclass
class Ctx:
    index: FakeIndex
    docs: dict[str, Doc]


Query = Callable[[Ctx], dict[str, float]]
KNOWN_ELSEWHERE = {
    "hybrid",
    "neural",
    "neural_sparse",
    "nested",
    "query_string",
    "simple_query_string",
    "prefix",
    "wildcard",
    "regexp",
    "fuzzy",
    "ids",
    "constant_score",
    "dis_max",
    "function_score",
    "script_score",
    "match_phrase",
    "match_phrase_prefix",
    "match_bool_prefix",
    "geo_distance",
    "script",
}


def _single_field(kind: str, body: Any, extra: set[str] = frozenset()) -> tuple[str, Any, dict[str, Any]]:
    if not isinstance(body, dict):
        raise bad("parsing_exception", f"[{kind}] query malformed, no start_object after query name")
    fields = [k for k in body if k not in extra]
    opts = {k: body[k] for k in body if k in extra}
    if len(fields) != 1:
        if not fields:
            raise bad("parsing_exception", f"[{kind}] query requires a field")
        raise bad(
            "parsing_exception",
            f"[{kind}] query doesn't support multiple fields, found [{fields[0]}] and [{fields[1]}]",
        )
    return fields[0], body[fields[0]], opts


def _check_keys(kind: str, body: dict[str, Any], allowed: set[str]) -> None:
    for key in body:
        if key not in allowed:
            raise bad("parsing_exception", f"[{kind}] query does not support [{key}]")


def _coerce(spec: FieldSpec | None, value: Any, kind: str) -> Any:
    if spec is None:
        return value
    try:
        if spec.type == "date":
            return parse_date(value)
        if spec.type in ("integer", "long"):
            return _integer_value(value, spec.type)
        if spec.type in ("float", "double"):
            return float(value)
        if spec.type == "boolean":
            return _boolean_value(value)
        return _keyword_value(value)
    except ValueError:
        if spec.type == "date":
            raise bad(
                "parse_exception",
                f"failed to parse date field [{value}] with format [strict_date_optional_time||epoch_millis]",
            ) from None
        raise bad(
            "query_shard_exception", f"failed to create query: [{kind}] cannot parse [{value}] for field [{spec.path}]"
        ) from None


def _reject_knn_field(index: FakeIndex, path: str, kind: str) -> FieldSpec | None:
    spec = index.paths.get(path)
    if spec is not None and spec.type == "knn_vector":
        raise bad(
            "query_shard_exception",
            f"failed to create query: Field [{path}] of type [knn_vector] does not support [{kind}] queries",
        )
    if spec is not None and spec.type == "text" and kind in ("range",):
        raise unsupported("range queries on text fields")
    return spec


def compile_query(index: FakeIndex, q: Any) -> Query:
    if not isinstance(q, dict):
        raise bad("parsing_exception", f"[_na] query malformed, must start with start_object, found [{_token_kind(q)}]")
    if len(q) != 1:
        if not q:
            raise bad("parsing_exception", "query malformed, empty clause found")
        keys = list(q)
        raise bad("parsing_exception", f"[{keys[0]}] malformed query, expected [END_OBJECT] but found [FIELD_NAME]")
    kind, body = next(iter(q.items()))
    builder = BUILDERS.get(kind)
    if builder is None:
        if kind in KNOWN_ELSEWHERE:
            raise unsupported(f"the [{kind}] query")
        raise bad("parsing_exception", f"unknown query [{kind}]", line=1, col=len(kind) + 4)
    return builder(index, body)


def _boost(opts: dict[str, Any]) -> float:
    boost = opts.get("boost", 1.0)
    if not isinstance(boost, (int, float)) or isinstance(boost, bool):
        raise bad("parsing_exception", "[boost] must be a number")
    return float(boost)


def build_match_all(index: FakeIndex, body: Any) -> Query:
    if not isinstance(body, dict):
        raise bad("parsing_exception", "[match_all] query malformed, no start_object after query name")
    _check_keys("match_all", body, {"boost", "_name"})
    boost = _boost(body)
    return lambda ctx: {d: boost for d in ctx.docs}


def _clauses(kind: str, value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return value
    raise bad("parsing_exception", f"[bool] query does not support [{kind}]")


def build_bool(index: FakeIndex, body: Any) -> Query:
    if not isinstance(body, dict):
        raise bad("parsing_exception", "[bool] query malformed, no start_object after query name")
    _check_keys("bool", body, {"must", "filter", "should", "must_not", "minimum_should_match", "boost", "_name"})
    must = [compile_query(index, c) for c in _clauses("must", body.get("must", []))]
    flt = [compile_query(index, c) for c in _clauses("filter", body.get("filter", []))]
    should = [compile_query(index, c) for c in _clauses("should", body.get("should", []))]
    must_not = [compile_query(index, c) for c in _clauses("must_not", body.get("must_not", []))]
    msm_raw = body.get("minimum_should_match")
    if msm_raw is None:
        msm = 1 if should and not must and not flt else 0
    elif isinstance(msm_raw, int) and not isinstance(msm_raw, bool):
        msm = msm_raw
    else:
        raise unsupported(f"minimum_should_match [{msm_raw}]")
    boost = _boost(body)

    def run(ctx: Ctx) -> dict[str, float]:
        ids: set[str] | None = None
        scores: dict[str, float] = {}
        for clause in must:
            hits = clause(ctx)
            ids = set(hits) if ids is None else ids & set(hits)
            for d, s in hits.items():
                scores[d] = scores.get(d, 0.0) + s
        for clause in flt:
            hits = clause(ctx)
            ids = set(hits) if ids is None else ids & set(hits)
        if ids is None:
            ids = set(ctx.docs)
        for clause in must_not:
            ids -= set(clause(ctx))
        matched: Counter = Counter()
        for clause in should:
            for d, s in clause(ctx).items():
                if d in ids:
                    matched[d] += 1
                    scores[d] = scores.get(d, 0.0) + s
        if msm:
            ids = {d for d in ids if matched[d] >= msm}
        return {d: scores.get(d, 0.0) * boost for d in ids}

    return run


def build_term(index: FakeIndex, body: Any) -> Query:
    path, value, _ = _single_field("term", body)
    opts: dict[str, Any] = {}
    if isinstance(value, dict):
        _check_keys("term", value, {"value", "boost", "case_insensitive", "_name"})
        if "value" not in value:
            raise bad("parsing_exception", "[term] query requires a value")
        if value.get("case_insensitive"):
            raise unsupported("case_insensitive term queries")
        opts, value = value, value["value"]
    if isinstance(value, (dict, list)) or value is None:
        raise bad("parsing_exception", "[term] query does not support array of values")
    spec = _reject_knn_field(index, path, "term")
    target = _coerce(spec, value, "term")
    boost = _boost(opts)

    def run(ctx: Ctx) -> dict[str, float]:
        if spec is not None and spec.type == "text":
            return {d: boost for d, doc in ctx.docs.items() if path in doc.terms and str(target) in doc.terms[path][0]}
        return {d: boost for d, doc in ctx.docs.items() if target in doc.values.get(path, ())}

    return run


def build_terms(index: FakeIndex, body: Any) -> Query:
    path, values, opts = _single_field("terms", body, {"boost", "_name"})
    if not isinstance(values, list):
        raise bad("parsing_exception", f"[terms] query does not support [{path}]")
    if any(isinstance(v, (dict, list)) or v is None for v in values):
        raise bad("parsing_exception", "[terms] query does not support objects or null values")
    spec = _reject_knn_field(index, path, "terms")
    if spec is not None and spec.type == "text":
        raise unsupported("terms queries on text fields")
    targets = {_coerce(spec, v, "terms") for v in values}
    boost = _boost(opts)

    def run(ctx: Ctx) -> dict[str, float]:
        return {d: boost for d, doc in ctx.docs.items() if any(v in targets for v in doc.values.get(path, ()))}

    return run


def build_range(index: FakeIndex, body: Any) -> Query:
    path, spec_body, _ = _single_field("range", body)
    if not isinstance(spec_body, dict):
        raise bad("parsing_exception", "[range] query malformed, after field missing start_object")
    _check_keys("range", spec_body, {"gte", "gt", "lte", "lt", "boost", "format", "_name"})
    if "format" in spec_body:
        raise unsupported("range formats")
    spec = _reject_knn_field(index, path, "range")
    bounds = {}
    for op in ("gte", "gt", "lte", "lt"):
        if spec_body.get(op) is not None:
            raw = spec_body[op]
            if isinstance(raw, str) and ("||" in raw or raw.startswith("now")):
                raise unsupported("date math")
            bounds[op] = _coerce(spec, raw, "range")
    boost = _boost(spec_body)

    def ok(v: Any) -> bool:
        try:
            return (
                ("gte" not in bounds or v >= bounds["gte"])
                and ("gt" not in bounds or v > bounds["gt"])
                and ("lte" not in bounds or v <= bounds["lte"])
                and ("lt" not in bounds or v < bounds["lt"])
            )
        except TypeError:
            return False

    def run(ctx: Ctx) -> dict[str, float]:
        return {d: boost for d, doc in ctx.docs.items() if any(ok(v) for v in doc.values.get(path, ()))}

    return run


def build_exists(index: FakeIndex, body: Any) -> Query:
    if not isinstance(body, dict) or not isinstance(body.get("field"), str):
        raise bad("parsing_exception", "[exists] must be provided with a [field]")
    _check_keys("exists", body, {"field", "boost", "_name"})
    path = body["field"]
    boost = _boost(body)

    def run(ctx: Ctx) -> dict[str, float]:
        return {
            d: boost
            for d, doc in ctx.docs.items()
            if doc.values.get(path) or path in doc.vectors or (path in doc.terms and doc.terms[path][1])
        }

    return run


def _bm25(ctx: Ctx, path: str, terms: list[str], operator: str, boost: float) -> dict[str, float]:
    if not terms:
        return {}
    with_field = [(d, doc.terms[path]) for d, doc in ctx.docs.items() if path in doc.terms and doc.terms[path][1]]
    if not with_field:
        return {}
    n_docs = len(with_field)
    avgdl = sum(length for _, (_, length) in with_field) / n_docs
    unique = set(terms)
    df = {t: sum(1 for _, (counts, _) in with_field if t in counts) for t in unique}
    out: dict[str, float] = {}
    for d, (counts, length) in with_field:
        present = {t for t in unique if counts.get(t)}
        if not present or (operator == "and" and present != unique):
            continue
        score = 0.0
        norm = K1 * (1 - B + B * length / avgdl)
        for t in terms:  # a repeated query term is a repeated should clause
            freq = counts.get(t, 0)
            if freq:
                idf = math.log(1 + (n_docs - df[t] + 0.5) / (df[t] + 0.5))
                score += idf * freq * (K1 + 1) / (freq + norm)
        out[d] = score * boost
    return out


def _match_field(index: FakeIndex, path: str, text: str, operator: str, boost: float) -> Query:
    spec = _reject_knn_field(index, path, "match")
    if spec is None:
        return lambda ctx: {}
    if spec.type != "text":
        target = _coerce(spec, text, "match")
        return lambda ctx: {d: boost for d, doc in ctx.docs.items() if target in doc.values.get(path, ())}
    assert spec.search_analyzer is not None
    terms = spec.search_analyzer.terms(text)
    return lambda ctx: _bm25(ctx, path, terms, operator, boost)


def _operator(value: Any) -> str:
    op = str(value or "or").lower()
    if op not in ("or", "and"):
        raise bad(
            "illegal_argument_exception", f"No enum constant org.opensearch.index.query.Operator.{str(value).upper()}"
        )
    return op


def build_match(index: FakeIndex, body: Any) -> Query:
    path, value, _ = _single_field("match", body)
    opts: dict[str, Any] = {}
    if isinstance(value, dict):
        _check_keys("match", value, {"query", "operator", "boost", "_name"})
        if "query" not in value:
            raise bad("parsing_exception", "No text specified for text query")
        opts, value = value, value["query"]
    if isinstance(value, (dict, list)) or value is None:
        raise bad("parsing_exception", "[match] unknown token [START_ARRAY] after [query]")
    return _match_field(index, path, str(value), _operator(opts.get("operator")), _boost(opts))


def build_multi_match(index: FakeIndex, body: Any) -> Query:
    if not isinstance(body, dict):
        raise bad("parsing_exception", "[multi_match] query malformed, no start_object after query name")
    _check_keys("multi_match", body, {"query", "fields", "type", "operator", "tie_breaker", "boost", "_name"})
    if "query" not in body or isinstance(body["query"], (dict, list)):
        raise bad("parsing_exception", "No text specified for multi_match query")
    fields = body.get("fields")
    if not isinstance(fields, list) or not fields or not all(isinstance(f, str) for f in fields):
        raise unsupported("multi_match without an explicit list of fields")
    kind = body.get("type", "best_fields")
    if kind not in ("best_fields", "most_fields"):
        if kind in ("cross_fields", "phrase", "phrase_prefix", "bool_prefix"):
            raise unsupported(f"multi_match type [{kind}]")
        raise bad("parsing_exception", f"failed to parse [multi_match] query type [{kind}]. unknown type.")
    tie = float(body.get("tie_breaker", 0.0 if kind == "best_fields" else 1.0))
    operator, boost = _operator(body.get("operator")), _boost(body)
    per_field = []
    for f in fields:
        name, _, weight = f.partition("^")
        per_field.append(_match_field(index, name, str(body["query"]), operator, float(weight or 1.0)))

    def run(ctx: Ctx) -> dict[str, float]:
        collected: dict[str, list[float]] = {}
        for q in per_field:
            for d, s in q(ctx).items():
                collected.setdefault(d, []).append(s)
        out = {}
        for d, scores in collected.items():
            best = max(scores)
            out[d] = (best + tie * (sum(scores) - best)) * boost
        return out

    return run


def _knn_score(space: str, doc_vec: np.ndarray, q: np.ndarray) -> float:
    if space == "cosinesimil":
        cos = np.float32(np.dot(doc_vec, q) / (np.linalg.norm(doc_vec) * np.linalg.norm(q)))
        return float(np.float32((np.float32(2) - (np.float32(1) - cos)) / np.float32(2)))
    if space == "l2":
        return float(np.float32(1) / (np.float32(1) + np.float32(np.sum((doc_vec - q) ** 2))))
    dot = float(np.dot(doc_vec, q))
    return 1.0 + dot if dot > 0 else 1.0 / (1.0 - dot)


def build_knn(index: FakeIndex, body: Any) -> Query:
    if not isinstance(body, dict) or not body:
        raise bad("parsing_exception", "[knn] malformed query, expected a field name")
    if len(body) != 1:
        names = list(body)
        raise bad(
            "parsing_exception", f"[knn] query doesn't support multiple fields, found [{names[0]}] and [{names[1]}]"
        )
    path, spec_body = next(iter(body.items()))
    if not isinstance(spec_body, dict):
        raise bad("parsing_exception", f"[knn] unknown token [{_token_kind(spec_body)}] after [{path}]")
    for key in spec_body:
        if key not in {
            "vector",
            "k",
            "filter",
            "boost",
            "_name",
            "max_distance",
            "min_score",
            "method_parameters",
            "rescore",
            "expand_nested_docs",
        }:
            raise bad("parsing_exception", f"[knn] unknown token [{_token_kind(spec_body[key])}] after [{key}]")
    for key in ("max_distance", "min_score", "method_parameters", "rescore", "expand_nested_docs"):
        if key in spec_body:
            raise unsupported(f"knn [{key}]")
    if "k" not in spec_body:
        raise bad("illegal_argument_exception", "[knn] requires exactly one of k, distance or score to be set")
    k = spec_body["k"]
    if not isinstance(k, int) or isinstance(k, bool) or not 0 < k <= MAX_K:
        raise bad("illegal_argument_exception", f"[knn] requires k to be in the range (0, {MAX_K}]")
    vector = spec_body.get("vector")
    if (
        not isinstance(vector, list)
        or not vector
        or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in vector)
    ):
        raise bad("illegal_argument_exception", "[knn] requires query vector")
    spec = index.paths.get(path)
    if spec is None or spec.type != "knn_vector":
        raise bad("query_shard_exception", f"failed to create query: Field '{path}' is not knn_vector type.")
    if len(vector) != spec.dimension:
        raise bad(
            "query_shard_exception",
            f"failed to create query: Query vector has invalid dimension: {len(vector)}. "
            f"Dimension should be: {spec.dimension}",
        )
    q = np.asarray(vector, dtype=np.float32)
    if not np.all(np.isfinite(q)):
        raise bad("illegal_argument_exception", "KNN vector values cannot be NaN or Infinity")
    if spec.space_type == "cosinesimil" and not np.any(q):
        raise bad("illegal_argument_exception", f"zero vector is not supported when space type is [{spec.space_type}]")
    flt = compile_query(index, spec_body["filter"]) if spec_body.get("filter") is not None else None
    boost = _boost(spec_body)

    def run(ctx: Ctx) -> dict[str, float]:
        allowed = flt(ctx).keys() if flt is not None else ctx.docs.keys()
        scored = [
            (_knn_score(spec.space_type, ctx.docs[d].vectors[path], q), -ctx.docs[d].order, d)
            for d in allowed
            if path in ctx.docs[d].vectors
        ]
        scored.sort(reverse=True)
        return {d: s * boost for s, _, d in scored[:k]}

    return run


BUILDERS: dict[str, Callable[[FakeIndex, Any], Query]] = {
    "match_all": build_match_all,
    "bool": build_bool,
    "term": build_term,
    "terms": build_terms,
    "range": build_range,
    "exists": build_exists,
    "match": build_match,
    "multi_match": build_multi_match,
    "knn": build_knn,
}


# ====================================================================== scripts
_ASSIGN = re.compile(r"^ctx\._source\.([A-Za-z_][A-Za-z0-9_]*)\s*=\s*params\.([A-Za-z_][A-Za-z0-9_]*)$")


def compile_script(script: Any) -> list[tuple[str, str]]:
    if not isinstance(script, dict):
        raise policy("scripts as objects with `source`, `lang` and `params` (no inline strings)")
    unknown = set(script) - {"source", "lang", "params", "options"}
    if unknown:
        raise bad("parsing_exception", f"[script] unknown field [{sorted(unknown)[0]}]")
    if "id" in script:
        raise unsupported("stored scripts")
    if script.get("lang", "painless") != "painless":
        raise bad("illegal_argument_exception", f"script_lang not supported [{script.get('lang')}]")
    source = script.get("source")
    if not isinstance(source, str) or not source.strip():
        raise bad("parsing_exception", "must specify either [source] for an inline script or [id] for a stored script")
    params = script.get("params") or {}
    if not isinstance(params, dict):
        raise bad("parsing_exception", "[script] params must be an object")
    assignments = []
    for statement in source.split(";"):
        statement = statement.strip()
        if not statement:
            continue
        m = _ASSIGN.match(statement)
        if not m:
            if re.match(r"^ctx\._source\.[A-Za-z_][A-Za-z0-9_]*\s*=\s*\S", statement):
                raise policy(
                    f"script values to come from params (`ctx._source.<field> = params.<name>`), got [{statement[:80]}]"
                )
            raise bad("script_exception", f"compile error: [{statement[:80]}] is not a supported painless statement")
        if m.group(2) not in params:
            raise policy(f"every script value to be passed in params: params.{m.group(2)} is missing")
        assignments.append((m.group(1), m.group(2)))
    return assignments


# ====================================================================== the server
PIPELINE_NORMALIZATION = {"min_max", "l2", "z_score"}
PIPELINE_COMBINATION = {"arithmetic_mean", "geometric_mean", "harmonic_mean"}


def validate_pipeline(body: Any) -> None:
    if not isinstance(body, dict):
        raise bad("parse_exception", "request body is required")
    unknown = set(body) - {
        "description",
        "request_processors",
        "response_processors",
        "phase_results_processors",
        "version",
    }
    if unknown:
        raise bad("parse_exception", f"unexpected property [{sorted(unknown)[0]}] in search pipeline")
    if body.get("request_processors") or body.get("response_processors"):
        raise unsupported("request and response search processors")
    processors = body.get("phase_results_processors") or []
    if not isinstance(processors, list):
        raise bad("parse_exception", "[phase_results_processors] must be a list")
    for proc in processors:
        if not isinstance(proc, dict) or len(proc) != 1:
            raise bad("parse_exception", "a processor must be an object with a single processor type")
        kind, conf = next(iter(proc.items()))
        if not isinstance(conf, dict):
            raise bad("parse_exception", f"[{kind}] configuration must be an object")
        common = {"tag", "description", "ignore_failure"}
        if kind == "normalization-processor":
            if set(conf) - common - {"normalization", "combination"}:
                raise bad(
                    "parse_exception",
                    f"processor [{kind}] doesn't support one or more provided configuration parameters",
                )
            technique = (conf.get("normalization") or {}).get("technique", "min_max")
            if technique not in PIPELINE_NORMALIZATION:
                raise bad(
                    "illegal_argument_exception", f"provided normalization technique [{technique}] is not supported"
                )
            combination = conf.get("combination") or {}
            combo = combination.get("technique", "arithmetic_mean")
            if combo not in PIPELINE_COMBINATION:
                raise bad("illegal_argument_exception", f"provided combination technique [{combo}] is not supported")
            weights = (combination.get("parameters") or {}).get("weights")
            if weights is not None:
                if not isinstance(weights, list) or not all(
                    isinstance(w, (int, float)) and 0 <= w <= 1 for w in weights
                ):
                    raise bad("illegal_argument_exception", "all weights must be numbers in range [0.0 - 1.0]")
                if abs(sum(weights) - 1.0) > 1e-6:
                    raise bad("illegal_argument_exception", "sum of weights for combination must be equal to 1.0")
        elif kind == "score-ranker-processor":
            combination = conf.get("combination") or {}
            if combination.get("technique") != "rrf":
                raise bad(
                    "illegal_argument_exception",
                    f"provided combination technique [{combination.get('technique')}] is not supported",
                )
            rank_constant = combination.get("rank_constant", 60)
            if not isinstance(rank_constant, int) or rank_constant < 1:
                raise bad("illegal_argument_exception", "rank constant must be >= 1")
        else:
            raise bad("parse_exception", f"Invalid processor type {kind}")


ENDPOINT_PARAMS = {
    "bulk": {"refresh", "timeout", "wait_for_active_shards", "routing", "pipeline", "require_alias", "_source"},
    "search": {
        "size",
        "from",
        "_source",
        "_source_includes",
        "_source_excludes",
        "track_total_hits",
        "timeout",
        "preference",
        "routing",
        "request_cache",
        "search_pipeline",
        "rest_total_hits_as_int",
        "typed_keys",
        "allow_no_indices",
        "ignore_unavailable",
        "expand_wildcards",
    },
    "count": {"routing", "preference", "allow_no_indices", "ignore_unavailable", "expand_wildcards"},
    "by_query": {
        "refresh",
        "conflicts",
        "slices",
        "wait_for_completion",
        "scroll_size",
        "timeout",
        "max_docs",
        "requests_per_second",
        "routing",
        "scroll",
    },
    "create": {"wait_for_active_shards", "timeout", "cluster_manager_timeout"},
    "mget": {"refresh", "realtime", "_source", "_source_includes", "_source_excludes", "routing", "preference"},
    "health": {
        "level",
        "local",
        "timeout",
        "wait_for_status",
        "wait_for_nodes",
        "wait_for_active_shards",
        "cluster_manager_timeout",
    },
}
COMMON_PARAMS = {"pretty", "human", "error_trace", "filter_path"}


@dataclass
class Recorded:
    method: str
    path: str
    params: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class FakeOpenSearch:
    """The server. `plugins` picks plugin analysis ("analysis-smartcn", "analysis-icu"); none by default."""

    def __init__(self, plugins: Iterable[str] = ()):
        self.plugins = tuple(plugins)
        for plugin in self.plugins:
            if plugin not in PLUGINS:
                raise ValueError(f"unknown plugin {plugin!r}")
        self.indices: dict[str, FakeIndex] = {}
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.requests: deque[Recorded] = deque(maxlen=2000)
        self.lock = threading.RLock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> FakeOpenSearch:
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-opensearch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeOpenSearch:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -------------------------------------------------------------- dispatch
    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        parts = urlsplit(raw_path)
        params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        segs = [unquote(s) for s in parts.path.split("/") if s]
        with self.lock:
            self.requests.append(Recorded(method, parts.path, params, body))
            if body:
                ctype = headers.get("content-type", "").split(";")[0].strip().lower()
                if ctype not in ("application/json", "application/x-ndjson"):
                    return 406, {
                        "error": f"Content-Type header [{headers.get('content-type', '')}] is not supported",
                        "status": 406,
                    }
            try:
                return self._route(method, parts.path, segs, params, body)
            except ApiError as exc:
                return exc.status, exc.body()

    def _route(self, method: str, path: str, segs: list[str], params: dict[str, str], body: bytes) -> tuple[int, Any]:
        def allow(*methods: str) -> None:
            if method not in methods:
                raise _MethodNotAllowed(path, method, methods)

        try:
            if not segs:
                allow("GET", "HEAD")
                return 200, self._info()
            head = segs[0]
            if head == "_bulk" and len(segs) == 1:
                allow("POST", "PUT")
                return self._bulk(None, params, body)
            if head == "_cluster" and segs[1:2] == ["health"] and len(segs) <= 3:
                allow("GET")
                self._params(params, "health")
                return 200, self._health()
            if head == "_search" and segs[1:2] == ["pipeline"] and len(segs) == 3:
                allow("GET", "PUT", "DELETE")
                return self._pipeline(method, segs[2], body)
            if head == "_mget" and len(segs) == 1:
                allow("GET", "POST")
                return self._mget(None, params, body)
            if head.startswith("_"):
                return 400, {"error": f"no handler found for uri [{path}] and method [{method}]", "status": 400}
            if len(segs) == 1:
                allow("PUT", "HEAD", "GET", "DELETE")
                return self._index_op(method, head, params, body)
            action = segs[1]
            if len(segs) == 2 and action in ENDPOINTS_2:
                allow(*ENDPOINTS_2[action])
                return getattr(self, "_" + action.lstrip("_"))(head, params, body)
            if len(segs) == 3 and action == "_doc":
                allow("GET", "HEAD")
                return self._get_doc(head, segs[2], method)
            if len(segs) == 2 and action in ("_doc", "_create", "_update"):
                raise unsupported(f"{action} (use _bulk)")
            return 400, {"error": f"no handler found for uri [{path}] and method [{method}]", "status": 400}
        except _MethodNotAllowed as exc:
            return 405, {
                "error": f"Incorrect HTTP method for uri [{exc.path}] and method [{exc.method}], "
                f"allowed: {list(exc.allowed)}",
                "status": 405,
            }

    # -------------------------------------------------------------- helpers
    def _params(self, params: dict[str, str], endpoint: str) -> None:
        for key in params:
            if key not in ENDPOINT_PARAMS[endpoint] and key not in COMMON_PARAMS:
                raise bad("illegal_argument_exception", f"request contains unrecognized parameter: [{key}]")

    def _index(self, name: str) -> FakeIndex:
        index = self.indices.get(name)
        if index is None:
            raise index_not_found(name)
        return index

    @staticmethod
    def _json(body: bytes, required: bool = True) -> Any:
        if not body:
            if required:
                raise bad("parse_exception", "request body is required")
            return None
        try:
            return json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise bad("json_parse_exception", f"Unexpected character: {exc}") from None

    @staticmethod
    def _refresh_param(params: dict[str, str], allow_wait_for: bool) -> bool:
        value = params.get("refresh")
        if value is None:
            return False
        if value in ("", "true"):
            return True
        if value == "false":
            return False
        if value == "wait_for" and allow_wait_for:
            return True  # the fake refreshes at once: waiting for the next refresh would end the same way
        if not allow_wait_for:
            raise bad(
                "illegal_argument_exception", f"Failed to parse value [{value}] as only [true] or [false] are allowed."
            )
        raise bad("illegal_argument_exception", f"Unknown value for refresh: [{value}].")

    def _info(self) -> dict[str, Any]:
        return {
            "name": "fake-node",
            "cluster_name": "fake-opensearch",
            "cluster_uuid": "fake",
            "version": {"distribution": "opensearch", "number": "2.19.0", "lucene_version": "9.12.1"},
            "tagline": "The OpenSearch Project: https://opensearch.org/",
        }

    def _health(self) -> dict[str, Any]:
        n = len(self.indices)
        return {
            "cluster_name": "fake-opensearch",
            "status": "green",
            "timed_out": False,
            "number_of_nodes": 1,
            "number_of_data_nodes": 1,
            "active_primary_shards": n,
            "active_shards": n,
            "relocating_shards": 0,
            "initializing_shards": 0,
            "unassigned_shards": 0,
            "delayed_unassigned_shards": 0,
            "number_of_pending_tasks": 0,
            "number_of_in_flight_fetch": 0,
            "task_max_waiting_in_queue_millis": 0,
            "active_shards_percent_as_number": 100.0,
        }

    # -------------------------------------------------------------- index APIs
    @staticmethod
    def _check_name(name: str) -> None:
        if name != name.lower():
            raise bad("invalid_index_name_exception", f"Invalid index name [{name}], must be lowercase", index=name)
        if name.startswith(("_", "-", "+")):
            raise bad(
                "invalid_index_name_exception",
                f"Invalid index name [{name}], must not start with '_', '-', or '+'",
                index=name,
            )
        if any(c in name for c in '\\/*?"<>| ,#:'):
            raise bad(
                "invalid_index_name_exception",
                f"Invalid index name [{name}], must not contain the following characters "
                '[ , ", *, \\, <, |, ,, >, /, ?]',
                index=name,
            )

    def _index_op(self, method: str, name: str, params: dict[str, str], body: bytes) -> tuple[int, Any]:
        if method == "HEAD":
            return (200 if name in self.indices else 404), None
        if method == "GET":
            index = self._index(name)
            settings = {"index": {k[len("index.") :]: v for k, v in index.settings.items()}}
            if index.analysis:
                settings["index"]["analysis"] = index.analysis
            return 200, {name: {"aliases": {}, "mappings": index.mappings, "settings": settings}}
        if method == "DELETE":
            self._index(name)
            del self.indices[name]
            return 200, {"acknowledged": True}
        self._params(params, "create")
        self._check_name(name)
        if name in self.indices:
            raise bad(
                "resource_already_exists_exception",
                f"index [{name}/{self.indices[name].uuid}] already exists",
                index=name,
                index_uuid=self.indices[name].uuid,
            )
        spec = self._json(body, required=False) or {}
        if not isinstance(spec, dict):
            raise bad("parse_exception", "request body must be an object")
        self.indices[name] = FakeIndex(name, spec, self.plugins)
        return 200, {"acknowledged": True, "shards_acknowledged": True, "index": name}

    def _refresh(self, name: str, params: dict[str, str], body: bytes) -> tuple[int, Any]:
        self._index(name).refresh()
        return 200, {"_shards": {"total": 1, "successful": 1, "failed": 0}}

    def _mapping(self, name: str, params: dict[str, str], body: bytes) -> tuple[int, Any]:
        return 200, {name: {"mappings": self._index(name).mappings}}

    def _pipeline(self, method: str, pipeline_id: str, body: bytes) -> tuple[int, Any]:
        if method == "PUT":
            spec = self._json(body)
            validate_pipeline(spec)
            self.pipelines[pipeline_id] = spec
            return 200, {"acknowledged": True}
        if pipeline_id not in self.pipelines:
            return 404, {}
        if method == "DELETE":
            del self.pipelines[pipeline_id]
            return 200, {"acknowledged": True}
        return 200, {pipeline_id: self.pipelines[pipeline_id]}

    # -------------------------------------------------------------- documents
    def _get_doc(self, name: str, doc_id: str, method: str) -> tuple[int, Any]:
        doc = self._index(name).live.get(doc_id)
        if doc is None:
            return 404, {"_index": name, "_id": doc_id, "found": False}
        return 200, self._doc_json(name, doc, True)

    @staticmethod
    def _doc_json(name: str, doc: Doc, source: Any) -> dict[str, Any]:
        out: dict[str, Any] = {
            "_index": name,
            "_id": doc.id,
            "_version": doc.version,
            "_seq_no": doc.seq_no,
            "_primary_term": 1,
            "found": True,
        }
        filtered = _filter_source(doc.source, source)
        if filtered is not None:
            out["_source"] = filtered
        return out

    def _mget(self, name: str | None, params: dict[str, str], body: bytes) -> tuple[int, Any]:
        self._params(params, "mget")
        spec = self._json(body)
        if not isinstance(spec, dict) or set(spec) - {"docs", "ids"} or not spec:
            raise bad("parse_exception", "unknown key in mget request, expected [docs] or [ids]")
        source = _source_param(params)
        wanted: list[tuple[str, str, Any]] = []
        if "ids" in spec:
            if name is None:
                raise bad("action_request_validation_exception", "Validation Failed: 1: index is missing for doc 0;")
            wanted = [(name, str(i), source) for i in spec["ids"]]
        for n, d in enumerate(spec.get("docs") or []):
            index_name = d.get("_index", name)
            if index_name is None:
                raise bad("action_request_validation_exception", f"Validation Failed: 1: index is missing for doc {n};")
            wanted.append((index_name, str(d["_id"]), d.get("_source", source)))
        docs = []
        for index_name, doc_id, src in wanted:
            index = self.indices.get(index_name)
            if index is None:
                docs.append({"_index": index_name, "_id": doc_id, "error": index_not_found(index_name).body()["error"]})
                continue
            doc = index.live.get(doc_id)
            docs.append(
                self._doc_json(index_name, doc, src) if doc else {"_index": index_name, "_id": doc_id, "found": False}
            )
        return 200, {"docs": docs}

    def _bulk(self, name: str | None, params: dict[str, str], body: bytes) -> tuple[int, Any]:
        self._params(params, "bulk")
        refresh = self._refresh_param(params, allow_wait_for=True)
        if params.get("pipeline"):
            raise unsupported("ingest pipelines")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise bad("illegal_argument_exception", "The bulk request must be UTF-8") from None
        if not text:
            raise bad("action_request_validation_exception", "Validation Failed: 1: no requests added;")
        if not text.endswith("\n"):
            raise bad("illegal_argument_exception", "The bulk request must be terminated by a newline [\\n]")
        lines = text.split("\n")[:-1]
        ops: list[tuple[str, dict[str, Any], Any]] = []
        i = 0
        while i < len(lines):
            line_no = i + 1
            if not lines[i].strip():
                i += 1
                continue
            try:
                action = json.loads(lines[i])
            except json.JSONDecodeError:
                raise bad(
                    "illegal_argument_exception",
                    f"Malformed action/metadata line [{line_no}], expected START_OBJECT but found [VALUE_STRING]",
                ) from None
            if not isinstance(action, dict) or len(action) != 1:
                raise bad(
                    "illegal_argument_exception",
                    f"Malformed action/metadata line [{line_no}], expected START_OBJECT or END_OBJECT "
                    f"but found [{_token_kind(action)}]",
                )
            op, meta = next(iter(action.items()))
            if op not in ("index", "create", "delete", "update"):
                raise bad(
                    "illegal_argument_exception",
                    f"Malformed action/metadata line [{line_no}], expected field [create], [delete], [index] "
                    f"or [update] but found [{op}]",
                )
            if not isinstance(meta, dict):
                raise bad(
                    "illegal_argument_exception",
                    f"Malformed action/metadata line [{line_no}], "
                    f"expected START_OBJECT but found [{_token_kind(meta)}]",
                )
            allowed = {
                "_index",
                "_id",
                "routing",
                "if_seq_no",
                "if_primary_term",
                "version",
                "version_type",
                "pipeline",
                "require_alias",
            }
            if op == "update":
                allowed |= {"retry_on_conflict"}
            for key in meta:
                if key not in allowed:
                    raise bad(
                        "illegal_argument_exception",
                        f"Action/metadata line [{line_no}] contains an unknown parameter [{key}]",
                    )
            if "_id" in meta and len(str(meta["_id"]).encode()) > 512:
                raise bad(
                    "action_request_validation_exception",
                    f"Validation Failed: 1: id [{meta['_id']}] is too long, must be no longer than 512 bytes "
                    f"but was: {len(str(meta['_id']).encode())};",
                )
            if not (meta.get("_index") or name):
                raise bad("action_request_validation_exception", "Validation Failed: 1: index is missing;")
            if op in ("update", "delete") and "_id" not in meta:
                raise bad("action_request_validation_exception", "Validation Failed: 1: id is missing;")
            source = None
            if op != "delete":
                i += 1
                if i >= len(lines):
                    raise bad("illegal_argument_exception", "The bulk request must be terminated by a newline [\\n]")
                try:
                    source = json.loads(lines[i])
                except json.JSONDecodeError:
                    raise bad(
                        "mapper_parsing_exception", f"failed to parse: malformed source on line [{i + 1}]"
                    ) from None
            ops.append((op, meta, source))
            i += 1
        items = []
        errors = False
        touched: set[str] = set()
        for op, meta, source in ops:
            index_name = meta.get("_index") or name
            result = self._bulk_item(op, str(index_name), meta, source)
            if "error" in result:
                errors = True
            else:
                touched.add(str(index_name))
            items.append({op: result})
        if refresh:
            for index_name in touched:
                self.indices[index_name].refresh()
        return 200, {"took": 1, "errors": errors, "items": items}

    def _bulk_item(self, op: str, index_name: str, meta: dict[str, Any], source: Any) -> dict[str, Any]:
        base = {"_index": index_name, "_id": str(meta.get("_id", ""))}
        index = self.indices.get(index_name)
        try:
            if index is None:
                raise index_not_found(index_name)
            doc_id = str(meta["_id"]) if "_id" in meta else secrets.token_urlsafe(15)[:20]
            base["_id"] = doc_id
            current = index.live.get(doc_id)
            conditional = "if_seq_no" in meta or "if_primary_term" in meta
            if conditional and (
                current is None or current.seq_no != meta.get("if_seq_no") or meta.get("if_primary_term") != 1
            ):
                raise ApiError(
                    409,
                    "version_conflict_engine_exception",
                    f"[{doc_id}]: version conflict, required seqNo [{meta.get('if_seq_no')}]",
                )
            if op == "delete":
                old = index.remove(doc_id)
                if old is None:
                    return {**base, "_version": 1, "result": "not_found", "status": 404, "_shards": _SHARDS}
                return {
                    **base,
                    "_version": old.version + 1,
                    "result": "deleted",
                    "status": 200,
                    "_shards": _SHARDS,
                    "_seq_no": index.seq,
                    "_primary_term": 1,
                }
            if op == "create" and current is not None:
                raise ApiError(
                    409,
                    "version_conflict_engine_exception",
                    f"[{doc_id}]: version conflict, document already exists (current version [{current.version}])",
                )
            if op == "update":
                if current is None:
                    raise ApiError(404, "document_missing_exception", f"[{doc_id}]: document missing")
                if not isinstance(source, dict) or set(source) != {"doc"} or not isinstance(source["doc"], dict):
                    raise unsupported('bulk updates other than {"doc": {...}}')
                source = {**current.source, **source["doc"]}
            doc, created = index.put(index.build_doc(doc_id, source))
            result = "created" if created else "updated"
            return {
                **base,
                "_version": doc.version,
                "result": result,
                "status": 201 if created else 200,
                "_shards": _SHARDS,
                "_seq_no": doc.seq_no,
                "_primary_term": 1,
            }
        except ApiError as exc:
            return {**base, "status": exc.status, "error": exc.body()["error"]}

    # -------------------------------------------------------------- search
    def _search(self, name: str, params: dict[str, str], body: bytes) -> tuple[int, Any]:
        self._params(params, "search")
        index = self._index(name)
        spec = self._json(body, required=False) or {}
        if not isinstance(spec, dict):
            raise bad("parsing_exception", "Expected [START_OBJECT] but found [START_ARRAY]")
        allowed = {
            "query",
            "size",
            "from",
            "_source",
            "sort",
            "search_after",
            "track_total_hits",
            "min_score",
            "timeout",
        }
        for key, value in spec.items():
            if key not in allowed:
                if key in (
                    "aggs",
                    "aggregations",
                    "highlight",
                    "post_filter",
                    "collapse",
                    "suggest",
                    "rescore",
                    "ext",
                    "script_fields",
                    "docvalue_fields",
                    "stored_fields",
                    "explain",
                ):
                    raise unsupported(f"[{key}] in search requests")
                raise bad("parsing_exception", f"Unknown key for a {_token_kind(value)} in [{key}].", line=1, col=1)
        if params.get("search_pipeline"):
            raise unsupported("search pipelines at query time")
        size = _int_param(spec.get("size", params.get("size", 10)), "size")
        offset = _int_param(spec.get("from", params.get("from", 0)), "from")
        if size + offset > index.max_result_window:
            raise bad(
                "illegal_argument_exception",
                f"Result window is too large, from + size must be less than or equal to: [{index.max_result_window}] "
                f"but was [{size + offset}]. See the scroll api for a more efficient way to request large data sets. "
                "This limit can be set by changing the [index.max_result_window] index level setting.",
            )
        query = compile_query(index, spec.get("query", {"match_all": {}}))
        sort = _parse_sort(index, spec.get("sort"))
        search_after = spec.get("search_after")
        if search_after is not None:
            if not sort:
                raise bad("illegal_argument_exception", "[search_after] requires a sort")
            if not isinstance(search_after, list) or len(search_after) != len(sort):
                raise bad(
                    "illegal_argument_exception",
                    f"search_after has {len(search_after) if isinstance(search_after, list) else 1} value(s) "
                    f"but sort has {len(sort)}.",
                )
        source = spec.get("_source", _source_param(params))
        ctx = Ctx(index, index.snapshot())
        scores = query(ctx)
        min_score = spec.get("min_score")
        if min_score is not None:
            scores = {d: s for d, s in scores.items() if s >= float(min_score)}
        docs = ctx.docs
        if sort:
            keyed = [(d, _sort_key(sort, docs[d], scores[d])) for d in scores]
            keyed.sort(key=lambda x: (_SortKey(x[1], sort), docs[x[0]].order))
            if search_after is not None:
                after = _SortKey([_coerce_after(s, v) for s, v in zip(sort, search_after, strict=True)], sort)
                keyed = [x for x in keyed if after < _SortKey(x[1], sort)]
            ordered = [(d, key) for d, key in keyed]
        else:
            ordered = [(d, None) for d in sorted(scores, key=lambda d: (-scores[d], docs[d].order))]
        page = ordered[offset : offset + size]
        hits = []
        for d, key in page:
            doc = docs[d]
            hit: dict[str, Any] = {
                "_index": name,
                "_id": d,
                "_score": None if sort and not _has_score(sort) else scores[d],
            }
            filtered = _filter_source(doc.source, source)
            if filtered is not None:
                hit["_source"] = filtered
            if key is not None:
                hit["sort"] = [v for v in key]
            hits.append(hit)
        total = len(scores)
        scored = [scores[d] for d, _ in ordered] if not sort or _has_score(sort) else []
        return 200, {
            "took": 1,
            "timed_out": False,
            "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            "hits": {
                "total": {"value": min(total, 10_000), "relation": "eq" if total <= 10_000 else "gte"},
                "max_score": max(scored) if scored else None,
                "hits": hits,
            },
        }

    def _count(self, name: str, params: dict[str, str], body: bytes) -> tuple[int, Any]:
        self._params(params, "count")
        index = self._index(name)
        spec = self._json(body, required=False) or {}
        if not isinstance(spec, dict):
            raise bad("parsing_exception", "Expected [START_OBJECT]")
        for key in spec:
            if key != "query":
                raise bad("parsing_exception", f"request does not support [{key}]")
        query = compile_query(index, spec.get("query", {"match_all": {}}))
        return 200, {
            "count": len(query(Ctx(index, index.snapshot()))),
            "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        }

    def _by_query_setup(
        self, name: str, params: dict[str, str], body: bytes, allowed: set[str]
    ) -> tuple[FakeIndex, dict[str, Any], bool, str]:
        self._params(params, "by_query")
        refresh = self._refresh_param(params, allow_wait_for=False)
        conflicts = params.get("conflicts", "abort")
        if conflicts not in ("abort", "proceed"):
            raise bad("illegal_argument_exception", f'conflicts may only be "proceed" or "abort" but was [{conflicts}]')
        if params.get("wait_for_completion") == "false" or params.get("slices") not in (None, "1"):
            raise unsupported("asynchronous or sliced by-query requests")
        index = self._index(name)
        spec = self._json(body, required=False) or {}
        if not isinstance(spec, dict):
            raise bad("parsing_exception", "Expected [START_OBJECT]")
        for key, value in spec.items():
            if key not in allowed:
                raise bad("parsing_exception", f"Unknown key for a {_token_kind(value)} in [{key}].")
        if "max_docs" in spec:
            raise unsupported("max_docs")
        return index, spec, refresh, spec.get("conflicts", conflicts)

    @staticmethod
    def _by_query_response(total: int, done: int, conflicts: int, key: str, failures: list[Any]) -> dict[str, Any]:
        return {
            "took": 1,
            "timed_out": False,
            "total": total,
            "updated": done if key == "updated" else 0,
            "deleted": done if key == "deleted" else 0,
            "batches": 1 if total else 0,
            "version_conflicts": conflicts,
            "noops": 0,
            "retries": {"bulk": 0, "search": 0},
            "throttled_millis": 0,
            "requests_per_second": -1.0,
            "throttled_until_millis": 0,
            "failures": failures,
        }

    def _delete_by_query(self, name: str, params: dict[str, str], body: bytes) -> tuple[int, Any]:
        index, spec, refresh, conflicts = self._by_query_setup(name, params, body, {"query", "max_docs", "conflicts"})
        if "query" not in spec:
            raise bad("action_request_validation_exception", "Validation Failed: 1: query is missing;")
        query = compile_query(index, spec["query"])
        snapshot = index.snapshot()
        matched = query(Ctx(index, snapshot))
        deleted, conflicted, failures = 0, 0, []
        for d in sorted(matched, key=lambda d: snapshot[d].order):
            live = index.live.get(d)
            if live is None or live.seq_no != snapshot[d].seq_no:
                conflicted += 1
                failure = {
                    "index": name,
                    "id": d,
                    "cause": {"type": "version_conflict_engine_exception", "reason": f"[{d}]: version conflict"},
                    "status": 409,
                }
                if conflicts == "abort":
                    failures.append(failure)
                    break
                continue
            index.remove(d)
            deleted += 1
        if refresh:
            index.refresh()
        status = 409 if failures else 200
        return status, self._by_query_response(len(matched), deleted, conflicted, "deleted", failures)

    def _update_by_query(self, name: str, params: dict[str, str], body: bytes) -> tuple[int, Any]:
        index, spec, refresh, conflicts = self._by_query_setup(
            name, params, body, {"query", "script", "max_docs", "conflicts"}
        )
        if "script" not in spec:
            raise unsupported("update_by_query without a script")
        assignments = compile_script(spec["script"])
        script_params = spec["script"].get("params") or {}
        for field_name, _ in assignments:
            if field_name not in index.fields and index.dynamic == "strict":
                raise bad(
                    "strict_dynamic_mapping_exception",
                    f"mapping set to strict, dynamic introduction of [{field_name}] within [_doc] is not allowed",
                )
        query = compile_query(index, spec.get("query", {"match_all": {}}))
        snapshot = index.snapshot()
        matched = query(Ctx(index, snapshot))
        updated, conflicted, failures = 0, 0, []
        for d in sorted(matched, key=lambda d: snapshot[d].order):
            live = index.live.get(d)
            if live is None or live.seq_no != snapshot[d].seq_no:
                conflicted += 1
                if conflicts == "abort":
                    failures.append(
                        {
                            "index": name,
                            "id": d,
                            "cause": {
                                "type": "version_conflict_engine_exception",
                                "reason": f"[{d}]: version conflict",
                            },
                            "status": 409,
                        }
                    )
                    break
                continue
            source = json.loads(json.dumps(live.source))
            for field_name, param in assignments:
                source[field_name] = script_params[param]
            index.put(index.build_doc(d, source))
            updated += 1
        if refresh:
            index.refresh()
        status = 409 if failures else 200
        return status, self._by_query_response(len(matched), updated, conflicted, "updated", failures)


_SHARDS = {"total": 1, "successful": 1, "failed": 0}
ENDPOINTS_2 = {
    "_bulk": ("POST", "PUT"),
    "_search": ("GET", "POST"),
    "_count": ("GET", "POST"),
    "_delete_by_query": ("POST",),
    "_update_by_query": ("POST",),
    "_mget": ("GET", "POST"),
    "_refresh": ("GET", "POST"),
    "_mapping": ("GET",),
}


class _MethodNotAllowed(Exception):
    def __init__(self, path: str, method: str, allowed: tuple[str, ...]):
        self.path, self.method, self.allowed = path, method, allowed


def _int_param(value: Any, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise bad("parsing_exception", f"[{name}] must be an integer") from None
    if number < 0:
        raise bad("illegal_argument_exception", f"[{name}] parameter cannot be negative, found [{number}]")
    return number


def _source_param(params: dict[str, str]) -> Any:
    if "_source_includes" in params or "_source_excludes" in params:
        return {
            "includes": [s for s in params.get("_source_includes", "").split(",") if s],
            "excludes": [s for s in params.get("_source_excludes", "").split(",") if s],
        }
    if "_source" in params:
        value = params["_source"]
        if value in ("true", "false"):
            return value == "true"
        return value.split(",")
    return True


def _filter_source(source: dict[str, Any], spec: Any) -> dict[str, Any] | None:
    if spec is True or spec is None:
        return source
    if spec is False:
        return None
    if isinstance(spec, str):
        spec = [spec]
    if isinstance(spec, list):
        includes, excludes = spec, []
    elif isinstance(spec, dict):
        unknown = set(spec) - {"includes", "excludes", "include", "exclude"}
        if unknown:
            raise bad("parsing_exception", f"Unknown key for a START_ARRAY in [{sorted(unknown)[0]}].")
        includes = spec.get("includes", spec.get("include", []))
        excludes = spec.get("excludes", spec.get("exclude", []))
        includes = [includes] if isinstance(includes, str) else includes
        excludes = [excludes] if isinstance(excludes, str) else excludes
    else:
        raise bad("parsing_exception", "[_source] must be a boolean, a string, an array or an object")
    out = {}
    for key, value in source.items():
        if includes and not any(fnmatch.fnmatchcase(key, pattern) for pattern in includes):
            continue
        if any(fnmatch.fnmatchcase(key, pattern) for pattern in excludes):
            continue
        out[key] = value
    return out


@dataclass
class _Sort:
    field: str
    order: str
    spec: FieldSpec | None


def _parse_sort(index: FakeIndex, spec: Any) -> list[_Sort]:
    if spec is None:
        return []
    items = spec if isinstance(spec, list) else [spec]
    out = []
    for item in items:
        if isinstance(item, str):
            name, order = item, "desc" if item == "_score" else "asc"
        elif isinstance(item, dict) and len(item) == 1:
            name, value = next(iter(item.items()))
            if isinstance(value, str):
                order = value
            elif isinstance(value, dict):
                unknown = set(value) - {"order", "missing", "unmapped_type"}
                if unknown:
                    raise bad("parsing_exception", f"[field_sort] unknown field [{sorted(unknown)[0]}]")
                if value.get("missing", "_last") != "_last":
                    raise unsupported("sort missing values other than _last")
                order = value.get("order", "desc" if name == "_score" else "asc")
            else:
                raise bad("parsing_exception", f"[sort] malformed for [{name}]")
        else:
            raise bad("parsing_exception", "[sort] malformed, expected a field name or an object with one field")
        if order not in ("asc", "desc"):
            raise bad("illegal_argument_exception", f"Unknown SortOrder [{order}]")
        if name in ("_score", "_doc"):
            out.append(_Sort(name, order, None))
            continue
        field_spec = index.paths.get(name)
        if field_spec is None:
            raise bad("query_shard_exception", f"No mapping found for [{name}] in order to sort on", index=index.name)
        if field_spec.type in ("text", "knn_vector"):
            raise bad(
                "illegal_argument_exception",
                f"Text fields are not optimised for operations that require per-document field data like aggregations "
                f"and sorting, so these operations are disabled by default. Please use a keyword field instead. "
                f"Alternatively, set fielddata=true on [{name}] in order to load field data by uninverting "
                "the inverted index.",
            )
        out.append(_Sort(name, order, field_spec))
    return out


def _sort_key(sort: list[_Sort], doc: Doc, score: float) -> list[Any]:
    key = []
    for s in sort:
        if s.field == "_score":
            key.append(score)
        elif s.field == "_doc":
            key.append(doc.order)
        else:
            values = doc.values.get(s.field) or []
            key.append((min(values) if s.order == "asc" else max(values)) if values else None)
    return key


def _has_score(sort: list[_Sort]) -> bool:
    return any(s.field == "_score" for s in sort)


def _coerce_after(sort: _Sort, value: Any) -> Any:
    if value is None or sort.spec is None:
        return value
    return _coerce(sort.spec, value, "search_after")


class _SortKey:
    """Orders hits by the sort spec: missing values last in either direction."""

    def __init__(self, values: list[Any], sort: list[_Sort]):
        self.values, self.sort = values, sort

    def __lt__(self, other: _SortKey) -> bool:
        for a, b, s in zip(self.values, other.values, self.sort, strict=True):
            if a == b:
                continue
            if a is None:
                return False
            if b is None:
                return True
            return a < b if s.order == "asc" else a > b
        return False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body leave in one segment: no 40 ms Nagle / delayed-ACK stall on keep-alive connections
    disable_nagle_algorithm = True
    wbufsize = 1 << 16
    server_fake: FakeOpenSearch

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("Content-Encoding", "").lower() == "gzip" and body:
            body = gzip.decompress(body)
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            status, payload = self.server_fake.handle(self.command, self.path, headers, body)
        except Exception as exc:  # a bug in the fake: say so loudly, in OpenSearch's shape
            status, payload = 500, ApiError(500, "fake_internal_error", f"{type(exc).__name__}: {exc}").body()
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve  # noqa: N815


_shared: FakeOpenSearch | None = None
_shared_lock = threading.Lock()


def shared_server() -> FakeOpenSearch:
    """One server per test process, stopped at exit; tests isolate themselves with fresh index names."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = FakeOpenSearch().start()
            atexit.register(_shared.stop)
        return _shared


def fresh_index_name(prefix: str = "mmrag-test") -> str:
    return f"{prefix}-{secrets.token_hex(6)}"
