"""Fast tests of the core (search, answers, ingestion, documents) on the in-memory fakes of tests/fakes: no server, no
database, no model. `make test-core` runs them alone in a few seconds.

Nothing here may load a model runtime: while a module of this folder runs, importing one fails at the import, and a
runtime that appeared in sys.modules during the module fails it at the end."""

from __future__ import annotations

import importlib.abc
import sys

import pytest

from tests.fakes import CoreServices

MODEL_RUNTIMES = ("fastembed", "onnxruntime", "onnx", "rapidocr_onnxruntime", "torch", "transformers", "tokenizers")


def _runtime(name: str) -> str | None:
    top = name.split(".")[0]
    return top if top in MODEL_RUNTIMES else None


class _NoModelRuntimes(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if _runtime(fullname):
            raise ImportError(f"the core tests must not load a model runtime ({fullname})")
        return None


@pytest.fixture(autouse=True, scope="module")
def no_model_runtime():
    before = {r for r in map(_runtime, list(sys.modules)) if r}
    guard = _NoModelRuntimes()
    sys.meta_path.insert(0, guard)
    try:
        yield
    finally:
        sys.meta_path.remove(guard)
    loaded = {r for r in map(_runtime, list(sys.modules)) if r} - before
    assert not loaded, f"a core test loaded {sorted(loaded)}"


@pytest.fixture
def services() -> CoreServices:
    return CoreServices()
