"""Registers the embedded index with its int8 prefilter on for any number of rows (normally from 4096) and re-scoring
however many rows the error bound leaves, so that the whole contract suite runs through the quantized scan."""

from __future__ import annotations


def vector_index(tmp_path, request):
    from mmrag.adapters.local.vector_index import EmbeddedVectorIndex, int8_product

    if int8_product() is None:
        import pytest

        pytest.skip("onnxruntime is not installed: the embedded index scans in float32 only")
    return EmbeddedVectorIndex(tmp_path / "index", quantized_min_rows=0, rescore_max_share=1.0)


FACTORIES = {"vector_index": {"local-int8": vector_index}}
