"""Smoke test of bench/search_bench.py: a 200-chunk corpus, the real server in a subprocess, 2 queries per endpoint."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import MODELS, needs_models

BENCH = Path(__file__).resolve().parents[2] / "bench" / "search_bench.py"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("search_bench", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class body runs
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@needs_models
def test_search_bench_runs_every_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMRAG_MODEL_DIR", str(MODELS))
    bench = load_bench()
    corpus = bench.build_corpus(tmp_path / "corpus", 200, log=lambda _: None)
    assert (corpus.n_chunks, corpus.n_documents, corpus.n_images) == (200, 20, 2)
    assert corpus.clip_vectors == "pictures" and corpus.n_clip == 4  # 2 pictures and their 2 OCR chunks
    again = bench.build_corpus(tmp_path / "corpus", 200)
    assert again.reused and again.chunk_refs == corpus.chunk_refs

    report = bench.run_size(corpus, n_queries=2, warmup=1, max_s=60, log_dir=tmp_path)

    assert len(report.series) == 9
    for s in report.series:
        assert len(s.server) == len(s.rtt) == 2, s.name
        assert all(0 < srv < rtt for srv, rtt in zip(s.server, s.rtt, strict=True)), s.name
        if s.name.startswith(("image, query_type=image", "multimodal")):
            assert len(s.timings["encode_image"]) == 2, s.name
        if "filter" not in s.name:  # a category may have no document in so small a corpus
            assert s.empty == 0, s.name
    assert report.memory["index loaded"] > 0 and report.memory["peak"] >= report.memory["end"]
    text = bench.format_report(report)
    assert "multimodal, rrf" in text and "server RSS" in text


@pytest.mark.slow
@needs_models
def test_corpus_shapes_differ_only_in_clip_vectors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMRAG_MODEL_DIR", str(MODELS))
    bench = load_bench()
    pictures = bench.build_corpus(tmp_path / "a", 200, log=lambda _: None)
    every = bench.build_corpus(tmp_path / "b", 200, log=lambda _: None, clip_vectors="every-chunk")
    assert every.n_clip == 202 and pictures.n_clip == 4
    with pytest.raises(SystemExit, match="different corpus"):  # a kept corpus of the other shape is not reused
        bench.build_corpus(tmp_path / "a", 200, clip_vectors="every-chunk")

    from mmrag.adapters.local.vector_index import EmbeddedVectorIndex
    from mmrag.core.models import SearchFilters

    def clip_rows_and_bm25(path: Path) -> tuple[int, list[float]]:
        index = EmbeddedVectorIndex(path / "index")
        hits = index.search_lexical(bench.TENANT, "pump oil the valve", SearchFilters(), 5)
        return index._t(bench.TENANT).spaces["clip"].n, [round(h.score, 6) for h in hits]

    n_a, bm25_a = clip_rows_and_bm25(tmp_path / "a")
    n_b, bm25_b = clip_rows_and_bm25(tmp_path / "b")
    assert (n_a, n_b) == (4, 202)
    assert len(bm25_a) == 5 and bm25_a == bm25_b  # the same texts (their ids are random)


@pytest.mark.slow
@needs_models
def test_search_bench_compares_with_a_baseline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--baseline: a second server (here: the same code) answers the same queries in turn."""
    monkeypatch.setenv("MMRAG_MODEL_DIR", str(MODELS))
    bench = load_bench()
    corpus = bench.build_corpus(tmp_path / "corpus", 200, log=lambda _: None)
    report = bench.run_size(
        corpus, n_queries=3, warmup=1, max_s=60, log_dir=tmp_path, baseline=BENCH.parents[1], only=["text"]
    )
    assert [s.name for s in report.series] == ["text", "text, category filter (~10%)"]
    assert report.baseline_series is not None and report.baseline_memory is not None
    for new, base in zip(report.series, report.baseline_series, strict=True):
        assert len(new.server) == len(base.server) == 3 and new.name == base.name
    text = bench.format_report(report)
    assert "  baseline" in text and "new/base" in text and "baseline: server RSS" in text
    assert (tmp_path / "server-200-baseline.log").is_file()
