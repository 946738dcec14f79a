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
