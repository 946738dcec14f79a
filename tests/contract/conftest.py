"""Adapters under contract: each port's suite runs against every adapter registered for it.

Adapters register in `adapters_<platform>.py` files beside this one: each defines
`FACTORIES = {"<port>": {"<adapter name>": factory}}` where a factory takes (tmp_path, request) and returns the
adapter (and may use request.addfinalizer). Ports: blob_store, document_store, session_store, key_store,
vector_index.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest

Factory = Callable[[Path, pytest.FixtureRequest], object]


def _local_factories() -> dict[str, dict[str, Factory]]:
    def blob_store(tmp_path, request):
        from mmrag.adapters.local.blobs import FileBlobStore

        return FileBlobStore(tmp_path / "blobs")

    def document_store(tmp_path, request):
        from mmrag.adapters.local.sqlite_store import SqliteDocumentStore

        return SqliteDocumentStore(tmp_path / "docs.sqlite")

    def session_store(tmp_path, request):
        from mmrag.adapters.local.sqlite_sessions import SqliteSessionStore

        return SqliteSessionStore(tmp_path / "sessions.sqlite")

    def key_store(tmp_path, request):
        from mmrag.adapters.local.sqlite_store import SqliteDocumentStore, SqliteKeyStore

        return SqliteKeyStore(SqliteDocumentStore(tmp_path / "keys.sqlite").db)

    def vector_index(tmp_path, request):
        from mmrag.adapters.local.vector_index import EmbeddedVectorIndex

        return EmbeddedVectorIndex(tmp_path / "index")

    return {"blob_store": {"local": blob_store}, "document_store": {"local": document_store},
            "session_store": {"local": session_store}, "key_store": {"local": key_store},
            "vector_index": {"local": vector_index}}


def _registry() -> dict[str, dict[str, Factory]]:
    registry = _local_factories()
    for path in sorted(Path(__file__).parent.glob("adapters_*.py")):
        spec = importlib.util.spec_from_file_location(f"contract_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for port, factories in getattr(module, "FACTORIES", {}).items():
            registry.setdefault(port, {}).update(factories)
    return registry


REGISTRY = _registry()


def _port_fixture(port: str):
    @pytest.fixture(params=sorted(REGISTRY[port]), name=port)
    def fixture(request, tmp_path):
        return REGISTRY[port][request.param](tmp_path, request)

    return fixture


blob_store = _port_fixture("blob_store")
document_store = _port_fixture("document_store")
session_store = _port_fixture("session_store")
key_store = _port_fixture("key_store")
vector_index = _port_fixture("vector_index")
