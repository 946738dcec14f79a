"""Int8 copies of the ONNX models: made once from a model folder, loaded by fastembed like the original, and close
to the fp32 vectors (the quality gate's measure, on real all-MiniLM-L6-v2 weights)."""

from __future__ import annotations

import numpy as np
import pytest

from mmrag.adapters.local.int8 import int8_copy
from mmrag.adapters.local.model_source import ModelSource
from mmrag.adapters.local.models import FastEmbedReranker, FastEmbedTextEmbedder
from mmrag.settings import Settings
from tests.conftest import MODELS, needs_models

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
SENTENCES = [
    "The relief valve opens at 93 kPa and must be inspected every six months.",
    "apt-get install installs a package together with everything it depends on.",
    "Use the passwd command to change a user's password.",
    "A short one.",
    "Debian keeps its configuration files under /etc, one folder per package, and dpkg asks before "
    "replacing a file that the administrator has changed since the package was installed.",
]


@needs_models
def test_int8_copy_is_made_once_and_mirrors_the_folder(tmp_path):
    src = MODELS / MINILM
    folder = int8_copy(src, "model.onnx", tmp_path)
    model = folder / "model.onnx"
    assert model.is_file() and model.stat().st_size < 0.85 * (src / "model.onnx").stat().st_size
    assert (folder / "tokenizer.json").resolve() == (src / "tokenizer.json").resolve()
    stamp = model.stat().st_mtime_ns
    assert int8_copy(src, "model.onnx", tmp_path) == folder
    assert model.stat().st_mtime_ns == stamp  # reused, not made again


@needs_models
def test_int8_text_model_stays_within_the_quality_gate(tmp_path):
    fp32 = FastEmbedTextEmbedder(MINILM, ModelSource(MODELS, tmp_path / "a"))
    int8 = FastEmbedTextEmbedder(MINILM, ModelSource(MODELS, tmp_path / "b", int8=[MINILM]))
    a, b = fp32.embed_texts(SENTENCES), int8.embed_texts(SENTENCES)
    assert not np.array_equal(a, b)  # really another model
    assert (a * b).sum(axis=1).min() >= 0.99
    q = int8.embed_query("how often is the valve inspected")
    assert int(np.argmax(b @ q)) == 0
    assert (tmp_path / "b" / "int8").is_dir() and not (tmp_path / "a" / "int8").exists()


@needs_models
def test_int8_reranker_loads_and_scores(tmp_path):
    name = "Xenova/ms-marco-MiniLM-L-6-v2"
    reranker = FastEmbedReranker(name, ModelSource(MODELS, tmp_path, int8=[name]))
    scores = reranker.score("valve", ["the valve opens", "x " * 2000])  # the long one is cut, not refused
    assert len(scores) == 2 and all(np.isfinite(scores))
    assert (tmp_path / "int8").is_dir()


def test_int8_roles_are_checked():
    assert Settings(int8="text, rerank").int8
    assert Settings(int8="").int8 == ""
    with pytest.raises(ValueError, match="unknown int8 model role"):
        Settings(int8="text,gpu")


@needs_models
def test_model_sessions_do_not_spin(tmp_path):
    name = "Xenova/ms-marco-MiniLM-L-6-v2"
    one = FastEmbedReranker(name, ModelSource(MODELS, tmp_path, threads=2, int8=[name]), replicas=1)
    two = FastEmbedReranker(name, ModelSource(MODELS, tmp_path, threads=2, int8=[name]))  # one copy per core
    for reranker, threads in ((one, 2), (two, 1)):
        reranker.load()
        for copy in reranker._replicas.copies:
            opts = copy.get().model.model.get_session_options()
            assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
            assert opts.get_session_config_entry("session.inter_op.allow_spinning") == "0"
            assert opts.intra_op_num_threads == threads
    docs = [f"the valve opens at {n} kPa" for n in range(11)] + ["nothing about it"]
    assert two.score("valve", docs) == pytest.approx(one.score("valve", docs), abs=1e-3)  # same scores, same order
    assert two.score("valve", []) == []


@needs_models
def test_text_passages_spread_over_model_copies_keep_their_order(tmp_path):
    one = FastEmbedTextEmbedder(MINILM, ModelSource(MODELS, tmp_path, threads=2), replicas=1)
    two = FastEmbedTextEmbedder(MINILM, ModelSource(MODELS, tmp_path, threads=2), batch_size=2)
    texts = SENTENCES * 3
    assert len(two._replicas.copies) == 2
    assert np.allclose(one.embed_texts(texts), two.embed_texts(texts), atol=1e-4)


@needs_models
def test_int8_copies_of_two_model_folders_live_side_by_side(tmp_path):
    other = tmp_path / "other" / "sentence-transformers" / "all-MiniLM-L6-v2"
    other.mkdir(parents=True)
    for f in (MODELS / MINILM).iterdir():
        (other / f.name).symlink_to(f.resolve()) if f.name != "model.onnx" else (other / f.name).write_bytes(
            f.read_bytes()
        )
    a = int8_copy(MODELS / MINILM, "model.onnx", tmp_path / "cache")
    b = int8_copy(other, "model.onnx", tmp_path / "cache")
    assert a != b and a.parent == b.parent and (a / "model.onnx").is_file() and (b / "model.onnx").is_file()
    assert int8_copy(MODELS / MINILM, "model.onnx", tmp_path / "cache") == a  # still there: no rebuild
