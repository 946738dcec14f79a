"""Registers the in-memory fakes of tests/fakes (the ones the fast core tests in tests/core run on) under every port's
contract, so that a fake cannot drift from what the real adapters do."""

from __future__ import annotations


def blob_store(tmp_path, request):
    from tests.fakes import MemoryBlobStore

    return MemoryBlobStore()


def document_store(tmp_path, request):
    from tests.fakes import MemoryDocumentStore

    return MemoryDocumentStore()


def session_store(tmp_path, request):
    from tests.fakes import MemorySessionStore

    return MemorySessionStore()


def key_store(tmp_path, request):
    from tests.fakes import MemoryKeyStore

    return MemoryKeyStore()


def vector_index(tmp_path, request):
    from tests.fakes import MemoryVectorIndex

    return MemoryVectorIndex()


FACTORIES = {
    port: {"memory": factory}
    for port, factory in {
        "blob_store": blob_store,
        "document_store": document_store,
        "session_store": session_store,
        "key_store": key_store,
        "vector_index": vector_index,
    }.items()
}
