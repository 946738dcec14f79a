"""DynamoDB table designs, as data, and a helper that creates them (tests, bootstrap scripts). All PAY_PER_REQUEST.

documents — one table for documents, chunks and images, told apart by the sort key `sk` (DOC | CHUNK | IMAGE).
    The partition key `pk` is the item's own id. Why: the hot path is the search path, which resolves hit ids to
    chunks and images by id only (get_chunks_by_id / get_images_by_id); with the id as the key that is a strongly
    consistent BatchGetItem of 100 keys per call. One table (not three) because chunks and images share the
    per-document access pattern, and one table is one set of alarms, backups and IAM statements.
    GSIs:
      by_tenant   tenant / created_at   doc items only (chunks carry `tenant` but no `created_at`); projects the
                  list/filter attributes so list_documents counts, filters and sorts without reading metadata.
      by_document document_id / seq     chunk and image items only ('C#<chunk_index>', 'I#<position>'): the
                  content of one document in order.
      by_status   pending_status / updated_at   sparse: set only while a document is 'processing' or 'deleting',
                  so the index holds in-flight documents, not the whole corpus, and has no hot 'completed' key.
      by_content  tenant / content_hash   doc items only (chunks carry no hash): a tenant's copies of one file,
                  for the upload's duplicate check.
jobs — pk job_id. GSIs: by_queue (queue_status / created_at, sparse: only queued and running jobs, which is what
    claim_job and recover_jobs look for) and by_document (document_id) to drop a deleted document's jobs.
sessions — pk '<len(tenant)>:<tenant>/<session id>' (unambiguous for any tenant or id), sk 'META' or
    'MSG#<seq>'; TTL attribute `expires_at` (epoch seconds) on every item.
    GSI: by_tenant (tenant / updated_at), sparse: only META items carry `tenant`; projects what the session list
    shows, so listing a tenant's sessions is one Query.
api_keys — pk key_hash, so authentication (and seeing a revocation) is one strongly consistent GetItem.
    GSIs: by_key_id (key_id, for revoke) and by_tenant (tenant / created_at).

GSI reads are eventually consistent (usually well under a second behind); where that matters it is noted at the
call site in dynamo_documents.py, dynamo_jobs.py and dynamo_keys.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DOC_GSI_TENANT = "by_tenant"
DOC_GSI_DOCUMENT = "by_document"
DOC_GSI_STATUS = "by_status"
DOC_GSI_CONTENT = "by_content"
JOB_GSI_QUEUE = "by_queue"
JOB_GSI_DOCUMENT = "by_document"
KEY_GSI_KEY_ID = "by_key_id"
KEY_GSI_TENANT = "by_tenant"
SESSION_TTL_ATTRIBUTE = "expires_at"
SESSION_GSI_TENANT = "by_tenant"
SESSION_LIST_ATTRIBUTES = ["session_id", "created_at", "message_count", "first_question", SESSION_TTL_ATTRIBUTE]

# what list_documents needs from every document of a tenant; the rest (metadata JSON, stages ...) stays behind
LIST_ATTRIBUTES = ["document_type", "category", "tags", "title", "updated_at", "status"]


@dataclass(frozen=True)
class TableNames:
    documents: str = "mmrag-documents"
    jobs: str = "mmrag-jobs"
    sessions: str = "mmrag-sessions"
    api_keys: str = "mmrag-api-keys"

    @classmethod
    def with_prefix(cls, prefix: str) -> TableNames:
        return cls(f"{prefix}documents", f"{prefix}jobs", f"{prefix}sessions", f"{prefix}api-keys")


@dataclass(frozen=True)
class TableSpec:
    key: tuple[str, ...]  # partition key, then the sort key if any
    attributes: dict[str, str]  # every key attribute of the table and its GSIs: name -> S | N | B
    gsis: dict[str, tuple[tuple[str, ...], str, tuple[str, ...]]]  # name -> (key, projection type, included attrs)
    ttl_attribute: str | None = None

    def create_args(self, table_name: str) -> dict[str, Any]:
        args: dict[str, Any] = {
            "TableName": table_name,
            "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": _key_schema(self.key),
            "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t} for n, t in self.attributes.items()],
        }
        if self.gsis:
            args["GlobalSecondaryIndexes"] = [
                {
                    "IndexName": name,
                    "KeySchema": _key_schema(key),
                    "Projection": {"ProjectionType": kind, **({"NonKeyAttributes": list(extra)} if extra else {})},
                }
                for name, (key, kind, extra) in self.gsis.items()
            ]
        return args


def _key_schema(key: tuple[str, ...]) -> list[dict[str, str]]:
    return [{"AttributeName": n, "KeyType": t} for n, t in zip(key, ("HASH", "RANGE"), strict=False)]


SPECS: dict[str, TableSpec] = {
    "documents": TableSpec(
        key=("pk", "sk"),
        attributes={
            "pk": "S",
            "sk": "S",
            "tenant": "S",
            "created_at": "S",
            "document_id": "S",
            "seq": "S",
            "pending_status": "S",
            "updated_at": "S",
            "content_hash": "S",
        },
        gsis={
            DOC_GSI_TENANT: (("tenant", "created_at"), "INCLUDE", tuple(LIST_ATTRIBUTES)),
            DOC_GSI_DOCUMENT: (("document_id", "seq"), "ALL", ()),
            DOC_GSI_STATUS: (("pending_status", "updated_at"), "KEYS_ONLY", ()),
            DOC_GSI_CONTENT: (("tenant", "content_hash"), "KEYS_ONLY", ()),
        },
    ),
    "jobs": TableSpec(
        key=("job_id",),
        attributes={"job_id": "S", "queue_status": "S", "created_at": "S", "document_id": "S"},
        gsis={
            JOB_GSI_QUEUE: (("queue_status", "created_at"), "KEYS_ONLY", ()),
            JOB_GSI_DOCUMENT: (("document_id",), "KEYS_ONLY", ()),
        },
    ),
    "sessions": TableSpec(
        key=("pk", "sk"),
        attributes={"pk": "S", "sk": "S", "tenant": "S", "updated_at": "S"},
        gsis={SESSION_GSI_TENANT: (("tenant", "updated_at"), "INCLUDE", tuple(SESSION_LIST_ATTRIBUTES))},
        ttl_attribute=SESSION_TTL_ATTRIBUTE,
    ),
    "api_keys": TableSpec(
        key=("key_hash",),
        attributes={"key_hash": "S", "key_id": "S", "tenant": "S", "created_at": "S"},
        gsis={
            KEY_GSI_KEY_ID: (("key_id",), "KEYS_ONLY", ()),
            KEY_GSI_TENANT: (("tenant", "created_at"), "ALL", ()),
        },
    ),
}


def create_tables(client: Any, names: TableNames, wait: bool = True) -> None:
    """Create whichever of the four tables do not exist yet, and turn on the sessions TTL. Idempotent."""
    created = []
    for role, spec in SPECS.items():
        table = getattr(names, role)
        try:
            client.create_table(**spec.create_args(table))
            created.append(table)
        except client.exceptions.ResourceInUseException:
            pass
    if wait:
        waiter = client.get_waiter("table_exists")
        for table in created:
            waiter.wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    for role, spec in SPECS.items():
        if spec.ttl_attribute:
            _enable_ttl(client, getattr(names, role), spec.ttl_attribute)


def _enable_ttl(client: Any, table: str, attribute: str) -> None:
    current = client.describe_time_to_live(TableName=table).get("TimeToLiveDescription", {})
    if current.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") and current.get("AttributeName") == attribute:
        return
    client.update_time_to_live(TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute})
