"""Reranking: a cross-encoder reorders the first stage's head; a failing, slow or missing one degrades to the
first-stage order with `rerank_error` (or a 503 with fail_strategy "error"); an unknown model is a 400 before any
work."""

from __future__ import annotations

import threading

import pytest

from mmrag.core.models import SearchFilters
from mmrag.core.search import RerankOptions, _sigmoid
from mmrag.errors import InvalidParameter, ServiceUnavailable
from tests.fakes import CoreServices, TermOverlapReranker, fake_rerankers, term_overlap

T = "t1"  # the tenant

QUERY = "how to replace the pump seal gasket"
TEXTS = {
    # the first stage prefers the short texts dense with the query's words; the cross-encoder (term overlap) the one
    # that has every word of the question
    "decoy": "Replace, replace, replace!",
    "answer": "Replace the worn pump seal and the cracked gasket before the next long season starts.",
    "kits": "Pump seal kits and gasket sets.",
    "prices": "Gasket and pump seal prices rose.",
}


def corpus(reranker: TermOverlapReranker | None = None, **kw) -> CoreServices:
    s = CoreServices(rerankers=fake_rerankers(reranker or TermOverlapReranker(), **kw))
    for title, text in TEXTS.items():
        s.ingest(T, "text", content=text, metadata={"title": title})
    return s


def order(outcome) -> list[str]:
    return [r.document.metadata["title"] for r in outcome.results]


def search(s: CoreServices, **options):
    return s.search.text(T, QUERY, 3, SearchFilters(), rerank=RerankOptions(enabled=True, **options))


def test_the_reranker_reorders_the_first_stage():
    s = corpus()
    first = s.search.text(T, QUERY, 3, SearchFilters())
    assert order(first)[0] != "answer" and not first.reranked
    out = search(s)
    assert out.reranked and out.rerank_error is None and order(out)[0] == "answer"
    for r in out.results:
        want = _sigmoid(8 * term_overlap(QUERY, r.chunk.content) - 4)
        assert r.rerank_score == pytest.approx(want) and r.scores["rerank"] == r.rerank_score
        assert r.scores["fused"] == r.score  # the first-stage score stays alongside
    assert [r.rerank_score for r in out.results] == sorted((r.rerank_score for r in out.results), reverse=True)
    assert "rerank" in out.timings


def test_rerank_reads_the_input_limit_and_each_candidate_best_window():
    reranker = TermOverlapReranker()
    s = corpus(reranker, passage_tokens=8)
    filler = " ".join(f"Sentence {i} is about nothing at all." for i in range(12))
    long_text = f"{filler} Replace the pump seal gasket like this. {filler}"
    s.ingest(T, "text", content=long_text, metadata={"title": "long"})
    search(s, input_limit=2)
    ((query, texts),) = reranker.seen
    assert query == QUERY and len(texts) == 2  # only the first `input_limit` candidates are read
    reranker.seen.clear()
    search(s, input_limit=10)
    ((_, texts),) = reranker.seen
    assert len(texts) == 5
    # of a long candidate the reranker reads the whole sentences (at most passage_tokens) holding most query terms
    assert "Replace the pump seal gasket like this." in texts
    assert all(len(t.split()) <= 8 for t in texts)


def test_rerank_score_threshold_drops_weak_candidates():
    out = search(corpus(), score_threshold=0.9)
    assert order(out) == ["answer"]


def test_a_failing_reranker_degrades_to_the_first_stage_order():
    reranker = TermOverlapReranker()
    reranker.fail = RuntimeError("CUDA is on fire")
    s = corpus(reranker)
    first = s.search.text(T, QUERY, 3, SearchFilters())
    out = search(s)
    assert not out.reranked and order(out) == order(first)
    assert out.rerank_error.startswith("reranker fake/term-overlap failed: RuntimeError: CUDA is on fire")
    assert all(r.rerank_score is None and "rerank" not in r.scores for r in out.results)
    assert [r.score for r in out.results] == [r.score for r in first.results]
    with pytest.raises(ServiceUnavailable) as err:
        search(s, fail_strategy="error")
    assert "CUDA is on fire" in err.value.detail


def test_a_slow_reranker_times_out_to_the_first_stage_order():
    reranker = TermOverlapReranker()
    reranker.block = threading.Event()  # scoring waits until the test lets it go
    s = corpus(reranker)
    try:
        first = s.search.text(T, QUERY, 3, SearchFilters())
        out = search(s, timeout_ms=30)
        assert out.rerank_error == "reranker fake/term-overlap timed out after 30 ms"
        assert order(out) == order(first) and not out.reranked
        with pytest.raises(ServiceUnavailable):
            search(s, timeout_ms=30, fail_strategy="error")
    finally:
        reranker.block.set()


def test_a_model_that_cannot_load_degrades_and_is_not_retried_at_once():
    s = corpus(unloadable=["fake/missing"])
    loads = []
    factory = s.rerankers.factory
    s.rerankers.factory = lambda name: loads.append(name) or factory(name)
    out = search(s, model="fake/missing")
    assert out.rerank_error == (
        "reranker fake/missing failed: RuntimeError: model fake/missing is not available: "
        "FileNotFoundError: no model files for fake/missing"
    )
    assert search(s, model="fake/missing").rerank_error == out.rerank_error
    assert loads == ["fake/missing"]  # one failed load, not one per request
    assert search(s).reranked  # the default model is unaffected


def test_an_unknown_model_is_invalid_before_any_work():
    s = corpus()
    calls = len(s.text_embedder.calls)
    with pytest.raises(InvalidParameter, match="unknown rerank_model 'no-such-model'"):
        search(s, model="no-such-model")
    assert len(s.text_embedder.calls) == calls  # refused before the query was even encoded
    assert s.search.text(T, QUERY, 3, SearchFilters(), rerank=RerankOptions(model="no-such-model")).results



def test_top_k_beyond_input_limit_keeps_the_first_stage_tail():
    """The reranker reads the first input_limit candidates; a larger top_k still gets all its results, the rest in
    their first-stage order behind the reranked ones (but a rerank score_threshold only passes reranked ones)."""
    s = corpus()
    first = s.search.text(T, QUERY, 4, SearchFilters())
    out = s.search.text(T, QUERY, 4, SearchFilters(), rerank=RerankOptions(enabled=True, input_limit=2))
    assert len(first.results) == len(out.results) == 4 and out.reranked
    assert all(r.rerank_score is not None for r in out.results[:2])
    assert all(r.rerank_score is None for r in out.results[2:])
    assert order(out)[2:] == [t for t in order(first) if t not in order(out)[:2]]
    limited = s.search.text(
        T, QUERY, 4, SearchFilters(), rerank=RerankOptions(enabled=True, input_limit=2, score_threshold=0.0)
    )
    assert len(limited.results) == 2
