"""How records become DynamoDB items and back (table designs in tables.py).

Items are written with this small codec instead of boto3's resource layer: numbers round-trip as int or float (no
Decimal), and free-form fields (metadata, stages, bbox ...) are JSON strings, so any value the local store accepts
fits and an item never nests deeper than DynamoDB allows. An `Item` is the decoded form (plain Python values);
encode_item / decode_item turn it into DynamoDB's attribute values and back.
"""

from __future__ import annotations

import json
import math
from dataclasses import fields
from typing import Any

from mmrag.core.models import ApiKey, Chunk, Document, ImageRecord, Job

# ---------------------------------------------------------------------------------------------------- attribute values
Item = dict[str, Any]  # decoded: plain Python values


def to_av(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"DynamoDB cannot store {value}")
        return {"N": repr(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, list | tuple):
        return {"L": [to_av(v) for v in value]}
    if isinstance(value, dict):
        return {"M": {str(k): to_av(v) for k, v in value.items()}}
    raise TypeError(f"cannot store {type(value).__name__} in DynamoDB")


def from_av(av: dict[str, Any]) -> Any:
    (kind, value), *_ = av.items()
    if kind == "N":
        try:
            return int(value)
        except ValueError:
            return float(value)
    if kind == "L":
        return [from_av(v) for v in value]
    if kind == "M":
        return {k: from_av(v) for k, v in value.items()}
    if kind == "NULL":
        return None
    return value  # S, BOOL, B


def encode_item(item: Item) -> dict[str, Any]:
    """None-valued attributes are left out: smaller items, and readers fall back to the dataclass defaults."""
    return {k: to_av(v) for k, v in item.items() if v is not None}


def decode_item(raw: dict[str, Any]) -> Item:
    return {k: from_av(v) for k, v in raw.items()}


# ---------------------------------------------------------------------------------------------------- records
DOC, CHUNK, IMAGE = "DOC", "CHUNK", "IMAGE"
PENDING_STATUSES = ("processing", "deleting")  # the statuses the sparse by_status index holds
QUEUE_STATUSES = ("queued", "running")  # the job statuses the sparse by_queue index holds
_DOC_JSON = ("metadata", "processing_options", "stages")
_DOC_FIELDS = [f.name for f in fields(Document)]
_CHUNK_FIELDS = [f.name for f in fields(Chunk)]
_IMAGE_FIELDS = [f.name for f in fields(ImageRecord)]
_JOB_FIELDS = [f.name for f in fields(Job)]
_KEY_FIELDS = [f.name for f in fields(ApiKey)]


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def doc_item(doc: Document) -> Item:
    item: Item = {name: getattr(doc, name) for name in _DOC_FIELDS}
    for name in _DOC_JSON:
        item[name] = json.dumps(item[name], ensure_ascii=False)
    tags = doc.metadata.get("tags") or []
    item.update(
        pk=doc.document_id,
        sk=DOC,
        title=_text(doc.metadata.get("title")),
        category=_text(doc.metadata.get("category")),
        tags=[str(x) for x in (tags if isinstance(tags, list | tuple) else [tags])],
        pending_status=doc.status if doc.status in PENDING_STATUSES else None,
        content_hash=doc.content_hash or None,  # a key of the by_content index: never an empty string
    )
    return item


def doc_from_item(item: Item) -> Document:
    d = {k: item[k] for k in _DOC_FIELDS if k in item}
    for name in _DOC_JSON:
        d[name] = json.loads(d[name]) if d.get(name) else {}
    return Document(**d)


def chunk_item(tenant: str, document_id: str, chunk: Chunk) -> Item:
    item: Item = {name: getattr(chunk, name) for name in _CHUNK_FIELDS}
    item.update(pk=chunk.chunk_id, sk=CHUNK, document_id=document_id, tenant=tenant, seq=f"C#{chunk.chunk_index:012d}")
    return item


def chunk_from_item(item: Item) -> Chunk:
    return Chunk(**{k: item[k] for k in _CHUNK_FIELDS if k in item})


def image_item(tenant: str, document_id: str, image: ImageRecord) -> Item:
    item: Item = {name: getattr(image, name) for name in _IMAGE_FIELDS}
    item.update(
        pk=image.image_id,
        sk=IMAGE,
        document_id=document_id,
        tenant=tenant,
        seq=f"I#{image.position:012d}",
        bbox=json.dumps(image.bbox) if image.bbox else None,
    )
    return item


def image_from_item(item: Item) -> ImageRecord:
    d = {k: item[k] for k in _IMAGE_FIELDS if k in item}
    d["bbox"] = json.loads(d["bbox"]) if d.get("bbox") else None
    return ImageRecord(**d)


def job_item(job: Job) -> Item:
    item: Item = {name: getattr(job, name) for name in _JOB_FIELDS}
    item["queue_status"] = job.status if job.status in QUEUE_STATUSES else None
    return item


def job_from_item(item: Item) -> Job:
    return Job(**{k: item[k] for k in _JOB_FIELDS if k in item})


def key_item(key: ApiKey) -> Item:
    return {name: getattr(key, name) for name in _KEY_FIELDS}


def key_from_item(item: Item) -> ApiKey:
    return ApiKey(**{k: item[k] for k in _KEY_FIELDS if k in item})
