"""Registers OpenSearchVectorIndex for the VectorIndex contract, against the fake OpenSearch of tests/aws (one server
per test process on 127.0.0.1, a fresh index per test, deleted afterwards)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

CONTRACT_DIMS = {"text": 3, "clip": 3}  # the contract suite's vectors are 3-d


def _fake_module() -> ModuleType:
    """tests/aws/opensearch_fake.py under the name its own tests import it by, so both share one server."""
    module = sys.modules.get("opensearch_fake")
    if module is None:
        path = Path(__file__).resolve().parent.parent / "aws" / "opensearch_fake.py"
        spec = importlib.util.spec_from_file_location("opensearch_fake", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["opensearch_fake"] = module
        spec.loader.exec_module(module)
    return module


def vector_index(tmp_path, request, **options):
    from mmrag.adapters.aws.opensearch_client import make_local_client
    from mmrag.adapters.aws.opensearch_index import OpenSearchVectorIndex

    fake = _fake_module()
    client = make_local_client(fake.shared_server().url)
    name = fake.fresh_index_name()
    index = OpenSearchVectorIndex(client, name, dims=CONTRACT_DIMS, analyzer="standard", **options)
    index.ensure_index()
    request.addfinalizer(lambda: client.indices.delete(index=name))
    return index


def serverless_style(tmp_path, request):
    """As on OpenSearch Serverless: generated ids, no _delete_by_query / _update_by_query (search + _bulk instead)."""
    return vector_index(tmp_path, request, custom_ids=False, by_query=False)


FACTORIES = {"vector_index": {"opensearch": vector_index, "opensearch-serverless": serverless_style}}
