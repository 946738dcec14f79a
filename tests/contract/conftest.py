"""Adapters under contract: each port's suite runs against every adapter listed here (AWS ones join later)."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["local"])
def blob_store(request, tmp_path):
    from mmrag.adapters.local.blobs import FileBlobStore

    return FileBlobStore(tmp_path / "blobs")


@pytest.fixture(params=["local"])
def document_store(request, tmp_path):
    from mmrag.adapters.local.sqlite_store import SqliteDocumentStore

    return SqliteDocumentStore(tmp_path / "docs.sqlite")


@pytest.fixture(params=["local"])
def vector_index(request, tmp_path):
    from mmrag.adapters.local.vector_index import EmbeddedVectorIndex

    return EmbeddedVectorIndex(tmp_path / "index")
