"""Document store, job table and API keys on DynamoDB (designs in tables.py), through the low-level client.

Items are written with a small codec instead of boto3's resource layer: numbers round-trip as int or float (no
Decimal), and free-form fields (metadata, stages, bbox ...) are JSON strings, so any value the local store accepts
fits and an item never nests deeper than DynamoDB allows.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import fields
from typing import Any

import boto3

from mmrag.adapters.aws import tables as t
from mmrag.core.models import ApiKey, Chunk, Document, ImageRecord, Job, utcnow

# ---------------------------------------------------------------------------------------------------- low level
Item = dict[str, Any]  # decoded: plain Python values
BATCH_WRITE = 25  # BatchWriteItem maximum
BATCH_GET = 100  # BatchGetItem maximum
_RETRIES = 8


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


def _backoff(attempt: int) -> None:
    if attempt >= _RETRIES:
        raise RuntimeError("DynamoDB kept returning unprocessed items; giving up")
    time.sleep(min(0.05 * 2**attempt, 2.0))


def batch_write(client: Any, table: str, requests: Sequence[dict[str, Any]]) -> None:
    """PutRequest / DeleteRequest dicts, 25 per call, retrying whatever DynamoDB hands back unprocessed."""
    for i in range(0, len(requests), BATCH_WRITE):
        pending = list(requests[i : i + BATCH_WRITE])
        attempt = 0
        while pending:
            resp = client.batch_write_item(RequestItems={table: pending})
            pending = resp.get("UnprocessedItems", {}).get(table, [])
            if pending:
                _backoff(attempt)
                attempt += 1


def put_requests(items: Iterable[Item]) -> list[dict[str, Any]]:
    return [{"PutRequest": {"Item": encode_item(item)}} for item in items]


def delete_requests(keys: Iterable[Item]) -> list[dict[str, Any]]:
    return [{"DeleteRequest": {"Key": encode_item(key)}} for key in keys]


def batch_get(client: Any, table: str, keys: Sequence[Item], attributes: Sequence[str] = ()) -> list[Item]:
    """Strongly consistent reads, 100 keys per call, retrying unprocessed keys. Order is not kept."""
    out: list[Item] = []
    unique = list({json.dumps(k, sort_keys=True): k for k in keys}.values())  # duplicates are a ValidationError
    for i in range(0, len(unique), BATCH_GET):
        request: dict[str, Any] = {"Keys": [encode_item(k) for k in unique[i : i + BATCH_GET]], "ConsistentRead": True}
        if attributes:
            request["ProjectionExpression"], request["ExpressionAttributeNames"] = projection(attributes)
        attempt = 0
        while request["Keys"]:
            resp = client.batch_get_item(RequestItems={table: request})
            out.extend(decode_item(raw) for raw in resp.get("Responses", {}).get(table, []))
            request = resp.get("UnprocessedKeys", {}).get(table) or {"Keys": []}
            if request["Keys"]:
                _backoff(attempt)
                attempt += 1
    return out


def query_all(client: Any, **kwargs: Any) -> Iterator[Item]:
    """Every item of a Query, following LastEvaluatedKey."""
    for page in client.get_paginator("query").paginate(**kwargs):
        for raw in page.get("Items", []):
            yield decode_item(raw)


def projection(attributes: Sequence[str]) -> tuple[str, dict[str, str]]:
    """A ProjectionExpression with every name aliased, so reserved words (status, source, position ...) are safe."""
    names = {f"#p{i}": a for i, a in enumerate(attributes)}
    return ", ".join(names), names


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
_SORTS = ("created_at", "updated_at", "title")
_LIST_STATUSES = ("processing", "completed", "failed", "archived")


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


def _sort_key(sort_by: str, item: Item) -> tuple:
    if sort_by == "title":  # as SQLite's 'title COLLATE NOCASE': missing titles first when ascending
        title = item.get("title")
        return (title is not None, (title or "").lower(), item["pk"])
    return (item.get(sort_by) or "", item["pk"])


# ---------------------------------------------------------------------------------------------------- documents
class DynamoDocumentStore:
    def __init__(self, tables: t.TableNames, client: Any = None):
        self.tables = tables
        self.client = client or boto3.client("dynamodb")

    # ------------------------------------------------------------------ documents
    def create_document(self, doc: Document, job: Job | None) -> None:
        put = {
            "TableName": self.tables.documents,
            "Item": encode_item(doc_item(doc)),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        if job is None:
            self.client.put_item(**put)
            return
        # one transaction, as the local store's: never a document without its job, nor a job without its document
        self.client.transact_write_items(
            TransactItems=[
                {"Put": put},
                {
                    "Put": {
                        "TableName": self.tables.jobs,
                        "Item": encode_item(job_item(job)),
                        "ConditionExpression": "attribute_not_exists(job_id)",
                    }
                },
            ]
        )

    def update_document(self, doc: Document) -> None:
        """Overwrite the row if it exists and belongs to doc.tenant; otherwise do nothing (as an SQL UPDATE)."""
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
            self.client.put_item(
                TableName=self.tables.documents,
                Item=encode_item(doc_item(doc)),
                ConditionExpression="attribute_exists(pk) AND tenant = :t",
                ExpressionAttributeValues={":t": to_av(doc.tenant)},
            )

    def _get_doc_item(self, tenant: str, document_id: str) -> Item | None:
        raw = self.client.get_item(
            TableName=self.tables.documents,
            Key=encode_item({"pk": document_id, "sk": DOC}),
            ConsistentRead=True,
        ).get("Item")
        if raw is None:
            return None
        item = decode_item(raw)
        return item if item.get("tenant") == tenant else None

    def get_document(self, tenant: str, document_id: str) -> Document | None:
        item = self._get_doc_item(tenant, document_id)
        return doc_from_item(item) if item else None

    def documents_by_id(self, tenant: str, document_ids: Sequence[str]) -> dict[str, Document]:
        items = batch_get(self.client, self.tables.documents, [{"pk": i, "sk": DOC} for i in document_ids])
        return {it["pk"]: doc_from_item(it) for it in items if it.get("tenant") == tenant}

    def existing_ids(self, document_ids: Sequence[str]) -> set[str]:
        keys = [{"pk": i, "sk": DOC} for i in document_ids]
        return {it["pk"] for it in batch_get(self.client, self.tables.documents, keys, ["pk"])}

    def documents_with_status(self, status: str) -> list[Document]:
        if status in PENDING_STATUSES:
            keys = query_all(
                self.client,
                TableName=self.tables.documents,
                IndexName=t.DOC_GSI_STATUS,
                KeyConditionExpression="pending_status = :s",
                ExpressionAttributeValues={":s": to_av(status)},
            )
            items = batch_get(self.client, self.tables.documents, [{"pk": k["pk"], "sk": DOC} for k in keys])
        else:
            # terminal statuses are not indexed (that would put the whole corpus under one key); the core only
            # asks for 'deleting', so this full scan is an operator's tool, not a request path
            items = self._scan(
                FilterExpression="sk = :doc AND #s = :s",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":doc": to_av(DOC), ":s": to_av(status)},
            )
        return sorted((doc_from_item(it) for it in items if it.get("status") == status), key=lambda d: d.updated_at)

    def _scan(self, **kwargs: Any) -> list[Item]:
        pages = self.client.get_paginator("scan").paginate(TableName=self.tables.documents, **kwargs)
        return [decode_item(raw) for page in pages for raw in page.get("Items", [])]

    def list_documents(
        self,
        tenant: str,
        *,
        document_type: str | None = None,
        category: str | None = None,
        tags: Sequence[str] = (),
        keyword: str | None = None,
        sort_by: str = "created_at",
        order: str = "desc",
        page: int = 1,
        page_size: int = 20,
        statuses: Sequence[str] = _LIST_STATUSES,
    ) -> tuple[int, list[Document]]:
        """Filters run in DynamoDB over the by_tenant index, which projects only the list attributes; the total
        needs every match anyway, so sorting and paging happen here, then one BatchGetItem reads the page."""
        if sort_by not in _SORTS:
            raise ValueError(f"cannot sort by {sort_by!r}")
        if not statuses:
            return 0, []
        names = {"#s": "status"}
        values: dict[str, Any] = {":t": to_av(tenant)}
        conditions = [f"#s IN ({', '.join(f':s{i}' for i in range(len(statuses)))})"]
        values.update({f":s{i}": to_av(s) for i, s in enumerate(statuses)})
        if document_type:
            conditions.append("document_type = :dt")
            values[":dt"] = to_av(document_type)
        if category:
            conditions.append("category = :cat")
            values[":cat"] = to_av(category)
        if tags:
            conditions.append("(" + " OR ".join(f"contains(tags, :tag{i})" for i in range(len(tags))) + ")")
            values.update({f":tag{i}": to_av(str(tag)) for i, tag in enumerate(tags)})
        rows = list(
            query_all(
                self.client,
                TableName=self.tables.documents,
                IndexName=t.DOC_GSI_TENANT,
                KeyConditionExpression="tenant = :t",
                FilterExpression=" AND ".join(conditions),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        )
        if keyword:
            rows = [r for r in rows if self._matches_keyword(tenant, r, keyword.lower())]
        rows.sort(key=lambda r: _sort_key(sort_by, r), reverse=order != "asc")
        start = (max(page, 1) - 1) * page_size
        wanted = [r["pk"] for r in rows[start : start + page_size]]
        found = self.documents_by_id(tenant, wanted)
        return len(rows), [found[i] for i in wanted if i in found]

    def _matches_keyword(self, tenant: str, row: Item, needle: str) -> bool:
        if needle in (row.get("title") or "").lower():
            return True
        # DynamoDB has no text search: this reads the chunk items of every candidate document (after the other
        # filters) until one matches, i.e. up to the tenant's whole chunk text in read units per call. Fine for
        # the admin document list at modest sizes; a large deployment should answer keywords from the search index.
        names = {"#c": "content", "#t": "tenant"}
        chunks = query_all(
            self.client,
            TableName=self.tables.documents,
            IndexName=t.DOC_GSI_DOCUMENT,
            KeyConditionExpression="document_id = :d AND begins_with(seq, :c)",
            FilterExpression="#t = :t",
            ProjectionExpression="#c",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={":d": to_av(row["pk"]), ":c": to_av("C#"), ":t": to_av(tenant)},
        )
        return any(needle in (c.get("content") or "").lower() for c in chunks)

    # ------------------------------------------------------------------ content
    def _content(self, tenant: str, document_id: str, kind: str = "", attributes: Sequence[str] = ()) -> list[Item]:
        """A document's chunk ('C') and/or image ('I') items in order, from the by_document index.

        The index is eventually consistent: items written a moment ago may be missing. The pipeline never replaces
        or deletes content that it wrote less than a processing run ago, so in practice nothing is missed."""
        kwargs: dict[str, Any] = {}
        if attributes:
            kwargs["ProjectionExpression"], names = projection(attributes)
            kwargs["ExpressionAttributeNames"] = {**names, "#t": "tenant"}
        else:
            kwargs["ExpressionAttributeNames"] = {"#t": "tenant"}
        condition = "document_id = :d" + (" AND begins_with(seq, :k)" if kind else "")
        values = {":d": to_av(document_id), ":t": to_av(tenant), **({":k": to_av(f"{kind}#")} if kind else {})}
        return list(
            query_all(
                self.client,
                TableName=self.tables.documents,
                IndexName=t.DOC_GSI_DOCUMENT,
                KeyConditionExpression=condition,
                FilterExpression="#t = :t",
                ExpressionAttributeValues=values,
                **kwargs,
            )
        )

    def replace_content(self, tenant: str, document_id: str, chunks: list[Chunk], images: list[ImageRecord]) -> None:
        """Write the new chunk and image items, then delete the old ones that were not rewritten.

        Not atomic (a document may have thousands of items; a transaction takes 100). Readers stay safe by order:
        the pipeline calls this while the document row still says 'processing' and marks it 'completed' only
        afterwards, and search only shows completed documents. A crash half-way leaves the document 'processing'
        and its job 'running'; the retried job calls this again, which converges on the new content."""
        if self._get_doc_item(tenant, document_id) is None:
            raise KeyError(document_id)
        old = self._content(tenant, document_id, attributes=["pk", "sk"])
        new = [chunk_item(tenant, document_id, c) for c in chunks] + [
            image_item(tenant, document_id, i) for i in images
        ]
        batch_write(self.client, self.tables.documents, put_requests(new))
        keep = {(it["pk"], it["sk"]) for it in new}
        stale = [{"pk": it["pk"], "sk": it["sk"]} for it in old if (it["pk"], it["sk"]) not in keep]
        batch_write(self.client, self.tables.documents, delete_requests(stale))

    def get_chunks(self, tenant: str, document_id: str) -> list[Chunk]:
        return [chunk_from_item(it) for it in self._content(tenant, document_id, "C")]

    def get_images(self, tenant: str, document_id: str) -> list[ImageRecord]:
        return [image_from_item(it) for it in self._content(tenant, document_id, "I")]

    def _by_id(self, tenant: str, ids: Sequence[str], sk: str) -> list[Item]:
        items = batch_get(self.client, self.tables.documents, [{"pk": i, "sk": sk} for i in ids])
        return [it for it in items if it.get("tenant") == tenant]

    def get_chunks_by_id(self, tenant: str, chunk_ids: Sequence[str]) -> dict[str, Chunk]:
        return {it["pk"]: chunk_from_item(it) for it in self._by_id(tenant, chunk_ids, CHUNK)}

    def get_images_by_id(self, tenant: str, image_ids: Sequence[str]) -> dict[str, ImageRecord]:
        return {it["pk"]: image_from_item(it) for it in self._by_id(tenant, image_ids, IMAGE)}

    def delete_document(self, tenant: str, document_id: str) -> tuple[int, int]:
        """Content and pending jobs first, the document row last: a crash leaves the row (status 'deleting') for
        finish_deletes to complete."""
        if self._get_doc_item(tenant, document_id) is None:
            return (0, 0)
        content = self._content(tenant, document_id, attributes=["pk", "sk"])
        batch_write(
            self.client, self.tables.documents, delete_requests({"pk": c["pk"], "sk": c["sk"]} for c in content)
        )
        self._drop_pending_jobs(document_id)
        self.client.delete_item(TableName=self.tables.documents, Key=encode_item({"pk": document_id, "sk": DOC}))
        n_chunks = sum(1 for c in content if c["sk"] == CHUNK)
        return n_chunks, len(content) - n_chunks

    # ------------------------------------------------------------------ jobs
    def _drop_pending_jobs(self, document_id: str) -> None:
        jobs = query_all(
            self.client,
            TableName=self.tables.jobs,
            IndexName=t.JOB_GSI_DOCUMENT,
            KeyConditionExpression="document_id = :d",
            ExpressionAttributeValues={":d": to_av(document_id)},
        )
        for job in jobs:
            # finished jobs fail the condition and stay, as history
            with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
                self.client.delete_item(
                    TableName=self.tables.jobs,
                    Key=encode_item({"job_id": job["job_id"]}),
                    ConditionExpression="#s IN (:q, :r)",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={":q": to_av("queued"), ":r": to_av("running")},
                )

    def enqueue(self, job: Job) -> None:
        self.client.put_item(
            TableName=self.tables.jobs,
            Item=encode_item(job_item(job)),
            ConditionExpression="attribute_not_exists(job_id)",
        )

    def _queue(self, status: str) -> Iterator[Item]:
        """Job keys in a queue status, oldest first. The index may lag: callers re-check with a condition."""
        return query_all(
            self.client,
            TableName=self.tables.jobs,
            IndexName=t.JOB_GSI_QUEUE,
            KeyConditionExpression="queue_status = :s",
            ExpressionAttributeValues={":s": to_av(status)},
            ScanIndexForward=True,
            PaginationConfig={"PageSize": 25},
        )

    def _move(self, job_id: str, src: str, dst: str, count_attempt: bool) -> Job | None:
        """The atomic state change: src -> dst only if the row is still in src. None if someone else won."""
        update = "SET #s = :dst, queue_status = :dst, updated_at = :now"
        values = {":src": to_av(src), ":dst": to_av(dst), ":now": to_av(utcnow())}
        if count_attempt:
            update += " ADD attempts :one"
            values[":one"] = to_av(1)
        try:
            resp = self.client.update_item(
                TableName=self.tables.jobs,
                Key=encode_item({"job_id": job_id}),
                UpdateExpression=update,
                ConditionExpression="#s = :src",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return None
        return job_from_item(decode_item(resp["Attributes"]))

    def claim_job_by_id(self, job_id: str) -> Job | None:
        """Claim one known job (on AWS an SQS message names it): queued -> running, attempts + 1, atomically."""
        return self._move(job_id, "queued", "running", count_attempt=True)

    def claim_job(self) -> Job | None:
        for key in self._queue("queued"):
            job = self.claim_job_by_id(key["job_id"])
            if job is not None:
                return job
        return None

    def finish_job(self, job_id: str, status: str, error: str | None = None) -> None:
        values: dict[str, Any] = {":st": to_av(status), ":now": to_av(utcnow())}
        sets = ["#s = :st", "updated_at = :now"]
        removes = []
        if status in QUEUE_STATUSES:
            sets.append("queue_status = :st")
        else:
            removes.append("queue_status")
        if error is None:
            removes.append("#e")
        else:
            sets.append("#e = :err")
            values[":err"] = to_av(error)
        update = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        # a job dropped with its document stays dropped: no update creates a row
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
            self.client.update_item(
                TableName=self.tables.jobs,
                Key=encode_item({"job_id": job_id}),
                UpdateExpression=update,
                ConditionExpression="attribute_exists(job_id)",
                ExpressionAttributeNames={"#s": "status", "#e": "error"},
                ExpressionAttributeValues=values,
            )

    def recover_jobs(self) -> int:
        """Jobs left 'running' go back to the queue. Only for a single worker fleet that knows it restarted; on
        AWS, SQS redelivery after the visibility timeout does this job instead."""
        return sum(1 for key in list(self._queue("running")) if self._move(key["job_id"], "running", "queued", False))

    def pending_jobs(self) -> int:
        total = 0
        for status in QUEUE_STATUSES:
            pages = self.client.get_paginator("query").paginate(
                TableName=self.tables.jobs,
                IndexName=t.JOB_GSI_QUEUE,
                KeyConditionExpression="queue_status = :s",
                ExpressionAttributeValues={":s": to_av(status)},
                Select="COUNT",
            )
            total += sum(page["Count"] for page in pages)
        return total

    def health(self) -> dict[str, Any]:
        try:
            self.client.get_item(TableName=self.tables.documents, Key=encode_item({"pk": "health", "sk": "health"}))
            return {"status": "ok", "backend": "dynamodb", "pending_jobs": self.pending_jobs()}
        except Exception as exc:  # noqa: BLE001 - health reports, never raises
            return {"status": "error", "backend": "dynamodb", "error": str(exc)}


# ---------------------------------------------------------------------------------------------------- API keys
class DynamoKeyStore:
    def __init__(self, table: str, client: Any = None):
        self.table = table
        self.client = client or boto3.client("dynamodb")

    def add_key(self, key: ApiKey) -> None:
        item = {name: getattr(key, name) for name in _KEY_FIELDS}
        self.client.put_item(
            TableName=self.table, Item=encode_item(item), ConditionExpression="attribute_not_exists(key_hash)"
        )

    def find_by_hash(self, key_hash: str) -> ApiKey | None:
        raw = self.client.get_item(
            TableName=self.table, Key=encode_item({"key_hash": key_hash}), ConsistentRead=True
        ).get("Item")
        return _key_from_item(decode_item(raw)) if raw else None

    def list_keys(self, tenant: str | None = None) -> list[ApiKey]:
        if tenant:
            items = query_all(
                self.client,
                TableName=self.table,
                IndexName=t.KEY_GSI_TENANT,
                KeyConditionExpression="tenant = :t",
                ExpressionAttributeValues={":t": to_av(tenant)},
            )
        else:  # every tenant's keys: an operator listing, and the table is small
            pages = self.client.get_paginator("scan").paginate(TableName=self.table)
            items = (decode_item(raw) for page in pages for raw in page.get("Items", []))
        return sorted((_key_from_item(it) for it in items), key=lambda k: (k.created_at, k.key_id))

    def revoke(self, key_id: str) -> bool:
        found = query_all(
            self.client,
            TableName=self.table,
            IndexName=t.KEY_GSI_KEY_ID,
            KeyConditionExpression="key_id = :k",
            ExpressionAttributeValues={":k": to_av(key_id)},
        )
        revoked = False
        for row in found:
            try:
                self.client.update_item(
                    TableName=self.table,
                    Key=encode_item({"key_hash": row["key_hash"]}),
                    UpdateExpression="SET revoked = :yes",
                    ConditionExpression="key_id = :k",
                    ExpressionAttributeValues={":yes": to_av(True), ":k": to_av(key_id)},
                )
                revoked = True
            except self.client.exceptions.ConditionalCheckFailedException:
                pass  # the index lagged behind a deletion
        return revoked


def _key_from_item(item: Item) -> ApiKey:
    return ApiKey(**{k: item[k] for k in _KEY_FIELDS if k in item})
