"""In-memory fakes of mmrag's ports, faithful enough to pass the same contract suites as the real adapters
(tests/contract/adapters_memory.py registers them), and the core services wired to them (`CoreServices`), for fast
tests of the core without a server, a database or a model.

    from tests.fakes import CoreServices, FakeOcr
"""

from .index import MemoryVectorIndex
from .models import (
    FakeOcr,
    HashingClip,
    HashingTextEmbedder,
    ScriptedGenerator,
    TermOverlapReranker,
    colour_name,
    fake_rerankers,
    image_key,
    image_key_of,
    term_overlap,
)
from .services import CoreServices
from .stores import MemoryBlobStore, MemoryDocumentStore, MemoryKeyStore, MemorySessionStore

__all__ = [
    "CoreServices",
    "FakeOcr",
    "HashingClip",
    "HashingTextEmbedder",
    "MemoryBlobStore",
    "MemoryDocumentStore",
    "MemoryKeyStore",
    "MemorySessionStore",
    "MemoryVectorIndex",
    "ScriptedGenerator",
    "TermOverlapReranker",
    "colour_name",
    "fake_rerankers",
    "image_key",
    "image_key_of",
    "term_overlap",
]
