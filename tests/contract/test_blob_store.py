"""BlobStore contract."""

from __future__ import annotations

import pytest


def test_put_get_delete(blob_store):
    blob_store.put("t/a/doc_1/original", b"hello")
    assert blob_store.get("t/a/doc_1/original") == b"hello"
    blob_store.put("t/a/doc_1/original", b"replaced")
    assert blob_store.get("t/a/doc_1/original") == b"replaced"
    blob_store.delete("t/a/doc_1/original")
    assert blob_store.get("t/a/doc_1/original") is None
    blob_store.delete("t/a/doc_1/original")  # idempotent


def test_prefix_listing_and_deletion(blob_store):
    for name in ("original", "derived/images/img_1.png", "derived/images/img_1.thumb.png"):
        blob_store.put(f"t/a/doc_2/{name}", name.encode())
    blob_store.put("t/a/doc_22/original", b"neighbour")
    assert blob_store.list_keys("t/a/doc_2/derived") == [
        "t/a/doc_2/derived/images/img_1.png",
        "t/a/doc_2/derived/images/img_1.thumb.png",
    ]
    assert blob_store.delete_prefix("t/a/doc_2/derived") == 2
    assert blob_store.list_keys("t/a/doc_2") == ["t/a/doc_2/original"]
    assert blob_store.delete_prefix("t/a/doc_2") == 1
    assert blob_store.get("t/a/doc_22/original") == b"neighbour", "a prefix is a folder, not a string prefix"
    assert blob_store.delete_prefix("t/a/nothing") == 0


@pytest.mark.parametrize("key", ["../escape", "t/../../etc/passwd", "/abs", "t//x", "t/a b", ""])
def test_keys_cannot_escape(blob_store, key):
    with pytest.raises(ValueError):
        blob_store.put(key, b"x")


def test_health(blob_store):
    assert blob_store.health()["status"] == "ok"
