"""Lexical analysis shared by indexing, querying and highlighting.

English: lower-cased words, Snowball-stemmed, stop words dropped. Chinese: jieba's search-mode segmentation (words and
their overlapping sub-words, so "冷却液" also matches "冷却"). Other scripts fall back to whole words.
"""

from __future__ import annotations

import html
import logging
import re
import threading
from collections.abc import Iterable
from functools import lru_cache

import Stemmer

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_RUN = re.compile(rf"([{_CJK}]+)|([^\W_{_CJK}]+)", re.UNICODE)
_CJK_RE = re.compile(rf"[{_CJK}]")

EN_STOP = frozenset(
    """a an and are as at be but by for from has have how i if in into is it its of on or so such that the their
    then there these they this to was were what when where which who why will with do does did can could should would
    my your our me you we he she them his her not no yes about also any""".split()
)
ZH_STOP = frozenset(
    "的 了 是 在 和 与 或 及 等 也 就 都 而 被 把 对 从 为 以 之 其 这 那 个 吗 呢 吧 啊 么".split()
    + "什么 怎么 如何 哪些 哪个".split()
)

_stemmer_local = threading.local()
_jieba_lock = threading.Lock()
_jieba_ready = False


def _stem(word: str) -> str:
    stemmer = getattr(_stemmer_local, "s", None)
    if stemmer is None:
        stemmer = _stemmer_local.s = Stemmer.Stemmer("english")
    return stemmer.stemWord(word)


def _jieba():
    global _jieba_ready
    import jieba

    if not _jieba_ready:
        with _jieba_lock:
            if not _jieba_ready:
                jieba.setLogLevel(logging.WARNING)
                jieba.initialize()
                _jieba_ready = True
    return jieba


def warm_up() -> None:
    """Load jieba's dictionary now rather than on the first Chinese request."""
    _jieba()


@lru_cache(maxsize=4096)
def _cjk_words(run: str) -> tuple[str, ...]:
    return tuple(w for w in _jieba().cut_for_search(run) if w.strip())


def tokens(text: str) -> list[str]:
    """Index/query terms of a text, in order, stop words removed."""
    out: list[str] = []
    for m in _RUN.finditer(text.lower()):
        cjk, word = m.group(1), m.group(2)
        if cjk:
            out.extend(w for w in _cjk_words(cjk) if w not in ZH_STOP)
        elif word not in EN_STOP:
            out.append(_stem(word))
    return out


def has_cjk(text: str) -> bool:
    return bool(_CJK_RE.search(text))


def fts_query(text: str) -> str | None:
    """An FTS5 MATCH expression: any of the query's terms (BM25 ranks the documents that have more of them)."""
    terms = sorted(set(tokens(text)))
    if not terms:
        return None
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


def _spans(content: str, query_terms: set[str], cjk_terms: Iterable[str]) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    lowered = content.lower()
    for m in _RUN.finditer(lowered):
        if m.group(2) and _stem(m.group(2)) in query_terms:
            spans.append(m.span())
    for term in cjk_terms:
        start = lowered.find(term)
        while start != -1:
            spans.append((start, start + len(term)))
            start = lowered.find(term, start + len(term))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def highlight(content: str, query: str) -> str:
    """The content, HTML-escaped, with the query's matching terms wrapped in <em>…</em>."""
    q_terms = set(tokens(query))
    cjk_terms = [t for t in q_terms if has_cjk(t)]
    out, last = [], 0
    for s, e in _spans(content, q_terms, cjk_terms):
        out.append(html.escape(content[last:s]))
        out.append("<em>" + html.escape(content[s:e]) + "</em>")
        last = e
    out.append(html.escape(content[last:]))
    return "".join(out)
