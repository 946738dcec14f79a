"""Documents, their chunks and their images on DynamoDB: one table, told apart by the sort key (design in tables.py).

DynamoDocumentStore is the DocumentStore port; its job-queue half is DynamoJobQueue (dynamo_jobs.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from mmrag.adapters.aws import tables as t
from mmrag.adapters.aws.dynamo_codec import (
    CHUNK,
    DOC,
    IMAGE,
    PENDING_STATUSES,
    Item,
    chunk_from_item,
    chunk_item,
    decode_item,
    doc_from_item,
    doc_item,
    encode_item,
    image_from_item,
    image_item,
    to_av,
)
from mmrag.adapters.aws.dynamo_io import batch_get, batch_write, delete_requests, projection, put_requests, query_all
from mmrag.adapters.aws.dynamo_jobs import DynamoJobQueue
from mmrag.core.models import Chunk, Document, ImageRecord, Job

_SORTS = ("created_at", "updated_at", "title")
_LIST_STATUSES = ("processing", "completed", "failed", "archived")


def _sort_key(sort_by: str, item: Item) -> tuple:
    if sort_by == "title":  # as SQLite's 'title COLLATE NOCASE': missing titles first when ascending
        title = item.get("title")
        return (title is not None, (title or "").lower(), item["pk"])
    return (item.get(sort_by) or "", item["pk"])


class DynamoDocumentStore(DynamoJobQueue):
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
        self.client.transact_write_items(TransactItems=[{"Put": put}, {"Put": self._job_put(job)}])

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

    def documents_with_content(self, tenant: str, content_hash: str) -> list[Document]:
        """The by_content index (eventually consistent: a copy uploaded a moment ago may be missed), then a strongly
        consistent read of the rows it names."""
        keys = query_all(
            self.client,
            TableName=self.tables.documents,
            IndexName=t.DOC_GSI_CONTENT,
            KeyConditionExpression="tenant = :t AND content_hash = :h",
            ExpressionAttributeValues={":t": to_av(tenant), ":h": to_av(content_hash)},
        )
        ids = [k["pk"] for k in keys]
        found = self.documents_by_id(tenant, ids).values()
        live = [d for d in found if d.content_hash == content_hash and d.status != "deleting"]
        return sorted(live, key=lambda d: (d.created_at, d.document_id))

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

    def health(self) -> dict[str, Any]:
        try:
            self.client.get_item(TableName=self.tables.documents, Key=encode_item({"pk": "health", "sk": "health"}))
            return {"status": "ok", "backend": "dynamodb", "pending_jobs": self.pending_jobs()}
        except Exception as exc:  # noqa: BLE001 - health reports, never raises
            return {"status": "error", "backend": "dynamodb", "error": str(exc)}
