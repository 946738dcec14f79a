"""Objects under incoming/<tenant>/ in the bucket: their keys, and the document type and metadata they carry.

Shared by the ingest function (which reads them) and the upload-url route (which signs them); no Powertools, no
boto3 here, so the API functions can import it cheaply.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote, unquote

from mmrag.ingest.sniff import DOCUMENT_TYPE_FOR_FORMAT

MAX_ATTRIBUTES_HEADER = 1800  # S3 allows 2 KB of user metadata in all
_SAFE_NAME = re.compile(r"[^\w.\-]+")


def safe_file_name(name: str) -> str:
    """A file name for an S3 key: the last path segment, no separators or control characters, at most 150 chars."""
    base = re.split(r"[\\/]", name.strip())[-1]
    cleaned = _SAFE_NAME.sub("_", base).strip("._") or "file"
    return cleaned[:150]


def incoming_key(prefix: str, tenant: str, rest: str) -> str:
    return f"{prefix}{quote(tenant, safe='')}/{rest}"


def parse_incoming_key(prefix: str, key: str) -> tuple[str, str] | None:
    """(tenant, rest of the key) for incoming/<tenant>/<rest>; None for anything else (folders, other prefixes)."""
    if not key.startswith(prefix):
        return None
    tenant, sep, rest = key[len(prefix) :].partition("/")
    tenant = unquote(tenant)
    if not sep or not tenant.strip() or not rest or rest.endswith("/"):
        return None
    return tenant, rest


def pack_attributes(attributes: dict[str, Any]) -> str:
    """document_type, metadata and processing_options as one ASCII header value (x-amz-meta-mmrag)."""
    from mmrag.errors import InvalidParameter

    packed = quote(json.dumps(attributes, ensure_ascii=False, separators=(",", ":")), safe="")
    if len(packed) > MAX_ATTRIBUTES_HEADER:
        raise InvalidParameter(
            f"metadata and processing_options are too long for an upload URL (at most ~{MAX_ATTRIBUTES_HEADER} bytes)"
        )
    return packed


def read_attributes(
    metadata: dict[str, str], key: str, bucket: str
) -> tuple[str | None, dict[str, Any], dict[str, Any]]:
    """(document_type or None, document metadata, processing_options) of an object from its user metadata."""
    meta = {k.lower(): v for k, v in (metadata or {}).items()}
    document_type: str | None = None
    doc_meta: dict[str, Any] = {}
    options: dict[str, Any] = {}
    if "mmrag" in meta:
        packed = json.loads(unquote(meta["mmrag"]))
        document_type = packed.get("document_type")
        doc_meta = dict(packed.get("metadata") or {})
        options = dict(packed.get("processing_options") or {})
    else:
        document_type = meta.get("document-type") or None
        for field in ("title", "category", "author"):
            if meta.get(field):
                doc_meta[field] = unquote(meta[field])
        if meta.get("tags"):
            doc_meta["tags"] = [t.strip() for t in unquote(meta["tags"]).split(",") if t.strip()]
        if meta.get("processing-options"):
            options = json.loads(unquote(meta["processing-options"]))
    doc_meta.setdefault("title", unquote(key.rsplit("/", 1)[-1]))
    doc_meta["source"] = f"s3://{bucket}/{key}"
    return document_type, doc_meta, options


def document_type_for(data: bytes) -> str:
    from mmrag.errors import UnsupportedFormat
    from mmrag.ingest.sniff import describe, sniff

    fmt = sniff(data)
    if fmt not in DOCUMENT_TYPE_FOR_FORMAT:
        raise UnsupportedFormat(f"cannot ingest {describe(fmt, data)}")
    return DOCUMENT_TYPE_FOR_FORMAT[fmt]
