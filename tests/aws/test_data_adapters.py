"""What only the AWS data adapters have to get right: S3 paging and encryption, DynamoDB batch limits and retries,
session TTLs, and queries (not scans) on request paths. Runs against moto in-process; any socket that is not
127.0.0.1 fails the test."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from mmrag.adapters.aws.dynamo_documents import DynamoDocumentStore
from mmrag.adapters.aws.dynamo_keys import DynamoKeyStore
from mmrag.adapters.aws.dynamo_sessions import DynamoSessionStore
from mmrag.adapters.aws.s3_blobs import S3BlobStore
from mmrag.adapters.aws.tables import TableNames, create_tables
from mmrag.core.models import ApiKey, Chunk, Document, ImageRecord, Job, SessionMessage
from tests.aws.offline import loopback_only, offline_aws_env

mock_aws = pytest.importorskip("moto").mock_aws

REGION = "us-east-1"
BUCKET = "mmrag-test"
NAMES = TableNames.with_prefix("test-")


@pytest.fixture(autouse=True)
def offline_aws(monkeypatch) -> Iterator[None]:
    offline_aws_env(monkeypatch)
    loopback_only(monkeypatch)
    with mock_aws():
        yield


class Calls:
    """What a real boto3 client sent, collected by botocore hooks: operation names from 'before-call' (the request
    is on its way), and the API parameters of each from 'before-parameter-build'."""

    def __init__(self, client: Any):
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self._params: list[dict[str, Any]] = []
        client.meta.events.register("before-parameter-build.*.*", self._keep_params)
        client.meta.events.register("before-call.*.*", self._record)

    def _keep_params(self, params: dict[str, Any], **_: Any) -> None:
        self._params.append(dict(params))

    def _record(self, model, **_: Any) -> None:
        self.seen.append((model.name, self._params.pop()))

    def ops(self) -> list[str]:
        return [name for name, _ in self.seen]

    def params(self, op: str) -> list[dict[str, Any]]:
        return [params for name, params in self.seen if name == op]

    def clear(self) -> None:
        self.seen.clear()


def bucket_store(**kw: Any) -> tuple[S3BlobStore, Any]:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    return S3BlobStore(BUCKET, client=s3, **kw), s3


def dynamo() -> Any:
    ddb = boto3.client("dynamodb", region_name=REGION)
    create_tables(ddb, NAMES)
    return ddb


def doc(doc_id: str = "doc_1", tenant: str = "t1", **kw: Any) -> Document:
    return Document(document_id=doc_id, tenant=tenant, document_type="pdf", metadata={"title": doc_id}, **kw)


# ---------------------------------------------------------------------------------------------------- S3
def test_delete_prefix_pages_past_1000_objects_and_batches_deletes():
    store, s3 = bucket_store()
    n = 1001  # with the original, one key more than a ListObjectsV2 / DeleteObjects page holds
    for i in range(n):
        s3.put_object(Bucket=BUCKET, Key=f"t/a/doc_2/derived/p{i:05d}.png", Body=b"x")
    store.put("t/a/doc_2/original", b"o")
    store.put("t/a/doc_22/original", b"neighbour")
    calls = Calls(s3)
    assert len(store.list_keys("t/a/doc_2")) == n + 1
    assert calls.ops().count("ListObjectsV2") == 2, "1001+ keys take a second page"
    calls.clear()
    assert store.delete_prefix("t/a/doc_2/") == n + 1
    deletes = calls.ops().count("DeleteObjects")
    assert deletes == 2 and calls.ops().count("DeleteObject") == 0
    assert store.list_keys("t/a/doc_2") == []
    assert store.get("t/a/doc_22/original") == b"neighbour"


def test_prefix_may_name_a_single_object():
    store, _ = bucket_store()
    store.put("t/a/doc_3/original", b"o")
    assert store.list_keys("t/a/doc_3/original") == ["t/a/doc_3/original"]
    assert store.delete_prefix("t/a/doc_3/original") == 1
    assert store.get("t/a/doc_3/original") is None


def test_base_prefix_is_kept_out_of_keys():
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    store = S3BlobStore(BUCKET, prefix="/env/blobs/", client=s3)
    store.put("t/a/doc_1/original", b"o")
    assert s3.get_object(Bucket=BUCKET, Key="env/blobs/t/a/doc_1/original")["Body"].read() == b"o"
    assert store.list_keys("t/a") == ["t/a/doc_1/original"]
    with pytest.raises(ValueError):
        store.delete_prefix("")  # never the whole store


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _sent_headers(client: Any) -> list[dict[str, str]]:
    """Headers of every PutObject as sent on the wire (hook runs before moto answers)."""
    sent: list[dict[str, str]] = []
    client.meta.events.register_first(
        "before-send.s3.PutObject",
        lambda request, **_: sent.append({k.lower(): _text(v) for k, v in request.headers.items()}),
    )
    return sent


def test_put_sends_sse_s3_by_default_and_content_type():
    store, s3 = bucket_store()
    sent = _sent_headers(s3)
    store.put("t/a/doc_1/original", b"%PDF", "application/pdf")
    assert sent[0]["x-amz-server-side-encryption"] == "AES256"
    head = s3.head_object(Bucket=BUCKET, Key="t/a/doc_1/original")
    assert head["ServerSideEncryption"] == "AES256" and head["ContentType"] == "application/pdf"


def test_put_sends_sse_kms_with_the_key():
    key_id = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["KeyId"]
    store, s3 = bucket_store(kms_key_id=key_id)
    sent = _sent_headers(s3)
    store.put("t/a/doc_1/original", b"x")
    assert sent[0]["x-amz-server-side-encryption"] == "aws:kms"
    assert sent[0]["x-amz-server-side-encryption-aws-kms-key-id"] == key_id
    assert s3.head_object(Bucket=BUCKET, Key="t/a/doc_1/original")["ServerSideEncryption"] == "aws:kms"


def test_blob_health_reports_a_missing_bucket():
    s3 = boto3.client("s3", region_name=REGION)
    assert S3BlobStore("no-such-bucket", client=s3).health()["status"] == "error"


# ---------------------------------------------------------------------------------------------------- DynamoDB
def _chunks(n: int, prefix: str = "chunk") -> list[Chunk]:
    return [Chunk(f"{prefix}_{i}", "doc_1", i, f"text {prefix} {i} " + "lorem " * 200, 200) for i in range(n)]


def test_replace_content_batches_writes_by_25_and_reads_by_100():
    ddb = dynamo()
    store = DynamoDocumentStore(NAMES, client=ddb)
    store.create_document(doc(), None)
    calls = Calls(ddb)
    first = _chunks(130)
    images = [ImageRecord(f"img_{i}", "doc_1", i, f"k{i}", f"kt{i}", 10, 20) for i in range(5)]
    store.replace_content("t1", "doc_1", first, images)
    writes = [len(body["RequestItems"][NAMES.documents]) for body in calls.params("BatchWriteItem")]
    assert sum(writes) == 135 and max(writes) == 25
    assert [c.chunk_id for c in store.get_chunks("t1", "doc_1")] == [c.chunk_id for c in first]
    assert [i.image_id for i in store.get_images("t1", "doc_1")] == [f"img_{i}" for i in range(5)]

    calls.clear()
    got = store.get_chunks_by_id("t1", [c.chunk_id for c in first] + ["chunk_missing"])
    assert len(got) == 130
    reads = [len(body["RequestItems"][NAMES.documents]["Keys"]) for body in calls.params("BatchGetItem")]
    assert reads == [100, 31]

    second = _chunks(40, prefix="new")
    store.replace_content("t1", "doc_1", second, [])
    assert [c.chunk_id for c in store.get_chunks("t1", "doc_1")] == [c.chunk_id for c in second]
    assert store.get_chunks_by_id("t1", [c.chunk_id for c in first]) == {}
    assert store.get_images("t1", "doc_1") == []
    assert store.delete_document("t1", "doc_1") == (40, 0)
    assert ddb.scan(TableName=NAMES.documents)["Count"] == 0


def _throttle_first_call(client: Any, op: str, split: Callable[[dict], tuple[dict, dict]]) -> list[int]:
    """Make the first `op` call behave as if DynamoDB throttled part of it: a 'provide-client-params' hook sends
    only part of the request, an 'after-call' hook hands the rest back as unprocessed. Returns the call count."""
    state: dict[str, Any] = {"held": None}
    count = [0]

    def trim(params: dict, **_: Any) -> dict | None:
        count[0] += 1
        if count[0] == 1:
            sent, state["held"] = split(params)
            return sent
        return None

    def hand_back(parsed: dict, **_: Any) -> None:
        if state["held"] is not None:
            parsed.update(state["held"])
            state["held"] = None

    client.meta.events.register(f"provide-client-params.dynamodb.{op}", trim)
    client.meta.events.register(f"after-call.dynamodb.{op}", hand_back)
    return count


def test_unprocessed_items_and_keys_are_retried():
    ddb = dynamo()
    store = DynamoDocumentStore(NAMES, client=ddb)
    store.create_document(doc(), None)

    def split_writes(params: dict) -> tuple[dict, dict]:
        requests = params["RequestItems"][NAMES.documents]
        return {**params, "RequestItems": {NAMES.documents: requests[:10]}}, {
            "UnprocessedItems": {NAMES.documents: requests[10:]}
        }

    writes = _throttle_first_call(ddb, "BatchWriteItem", split_writes)
    chunks = _chunks(20)
    store.replace_content("t1", "doc_1", chunks, [])
    assert writes[0] == 2 and len(store.get_chunks("t1", "doc_1")) == 20

    def split_reads(params: dict) -> tuple[dict, dict]:
        req = params["RequestItems"][NAMES.documents]
        sent = {**params, "RequestItems": {NAMES.documents: {**req, "Keys": req["Keys"][:5]}}}
        return sent, {"UnprocessedKeys": {NAMES.documents: {**req, "Keys": req["Keys"][5:]}}}

    reads = _throttle_first_call(ddb, "BatchGetItem", split_reads)
    assert len(store.get_chunks_by_id("t1", [c.chunk_id for c in chunks])) == 20 and reads[0] == 2


def test_values_round_trip_without_decimals():
    ddb = dynamo()
    store = DynamoDocumentStore(NAMES, client=ddb)
    d = doc(processing_time=1.25, stages={"parse": {"status": "completed", "seconds": 0.5}})
    d.metadata = {"title": "报告 ü", "nested": {"a": [1, 2.5, None, True]}, "": "empty key"}
    store.create_document(d, None)
    got = store.get_document("t1", "doc_1")
    assert got == d
    assert isinstance(got.processing_time, float) and isinstance(got.chunks_count, int)


def test_list_documents_keyword_reads_chunks_only_of_filtered_candidates():
    ddb = dynamo()
    store = DynamoDocumentStore(NAMES, client=ddb)
    for i, kind in enumerate(["pdf", "text", "text"], 1):
        store.create_document(
            Document(f"doc_{i}", "t1", kind, {"title": f"Doc {i}", "category": "c"}, created_at=f"2024-01-0{i}"),
            None,
        )
        store.replace_content("t1", f"doc_{i}", [Chunk(f"c{i}", f"doc_{i}", 0, f"needle {i}", 1)], [])
    calls = Calls(ddb)
    total, docs = store.list_documents("t1", document_type="text", keyword="NEEDLE")
    assert total == 2 and [x.document_id for x in docs] == ["doc_3", "doc_2"]
    chunk_queries = [p for op, p in calls.seen if op == "Query" and p.get("IndexName") == "by_document"]
    assert len(chunk_queries) == 2, "the pdf was filtered out before its chunks were read"


def test_claim_is_conditional_and_finished_jobs_leave_the_queue():
    ddb = dynamo()
    store = DynamoDocumentStore(NAMES, client=ddb)
    other = DynamoDocumentStore(NAMES, client=ddb)  # a second worker
    store.create_document(doc(), Job("job_1", "t1", "doc_1"))
    assert store.claim_job_by_id("job_1").attempts == 1
    assert other.claim_job_by_id("job_1") is None and other.claim_job() is None
    store.finish_job("job_1", "failed", "boom")
    raw = ddb.get_item(TableName=NAMES.jobs, Key={"job_id": {"S": "job_1"}})["Item"]
    assert raw["status"]["S"] == "failed" and raw["error"]["S"] == "boom" and "queue_status" not in raw
    store.finish_job("job_gone", "done")  # no row: no phantom row either
    assert "Item" not in ddb.get_item(TableName=NAMES.jobs, Key={"job_id": {"S": "job_gone"}})
    assert store.health()["status"] == "ok"


def test_deleting_documents_are_found_through_the_sparse_index():
    ddb = dynamo()
    store = DynamoDocumentStore(NAMES, client=ddb)
    store.create_document(doc("doc_1"), None)
    store.create_document(doc("doc_2", tenant="t2"), None)
    d = store.get_document("t1", "doc_1")
    d.status = "deleting"
    store.update_document(d)
    assert [x.document_id for x in store.documents_with_status("deleting")] == ["doc_1"]
    assert {x.document_id for x in store.documents_with_status("processing")} == {"doc_2"}
    d.status = "completed"
    store.update_document(d)
    assert store.documents_with_status("deleting") == []
    assert [x.document_id for x in store.documents_with_status("completed")] == ["doc_1"]


def test_session_items_carry_the_ttl_and_expired_sessions_read_as_gone():
    ddb = dynamo()
    ttl = ddb.describe_time_to_live(TableName=NAMES.sessions)["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "ENABLED" and ttl["AttributeName"] == "expires_at"
    store = DynamoSessionStore(NAMES.sessions, ttl_days=7, client=ddb)
    before = int(time.time())
    store.append_messages("t1", "s1", [SessionMessage("m1", "user", "q"), SessionMessage("m2", "assistant", "a")])
    items = ddb.scan(TableName=NAMES.sessions)["Items"]
    assert len(items) == 3
    for item in items:
        assert before + 7 * 86400 <= int(item["expires_at"]["N"]) <= int(time.time()) + 7 * 86400

    # TTL deletion is lazy: an expired session must read as absent before DynamoDB gets round to removing it
    for item in items:
        ddb.update_item(
            TableName=NAMES.sessions,
            Key={"pk": item["pk"], "sk": item["sk"]},
            UpdateExpression="SET expires_at = :past",
            ExpressionAttributeValues={":past": {"N": str(before - 1)}},
        )
    assert store.get_session("t1", "s1") is None and store.delete_session("t1", "s1") is None
    fresh = store.append_messages("t1", "s1", [SessionMessage("m3", "user", "again")])
    assert [m.message_id for m in fresh.messages] == ["m3"]
    assert ddb.scan(TableName=NAMES.sessions)["Count"] == 2


def test_session_ids_cannot_collide_across_tenants():
    store = DynamoSessionStore(NAMES.sessions, client=dynamo())
    store.append_messages("a/b", "c", [SessionMessage("m1", "user", "one")])
    store.append_messages("a", "b/c", [SessionMessage("m2", "user", "two")])
    assert [m.content for m in store.get_session("a/b", "c").messages] == ["one"]
    assert [m.content for m in store.get_session("a", "b/c").messages] == ["two"]


def test_request_paths_query_and_never_scan():
    ddb = dynamo()
    docs = DynamoDocumentStore(NAMES, client=ddb)
    sessions = DynamoSessionStore(NAMES.sessions, client=ddb)
    keys = DynamoKeyStore(NAMES.api_keys, client=ddb)
    calls = Calls(ddb)

    docs.create_document(doc(), Job("job_1", "t1", "doc_1"))
    docs.enqueue(Job("job_2", "t1", "doc_1"))
    docs.replace_content("t1", "doc_1", _chunks(3), [ImageRecord("img_1", "doc_1", 0, "k", "kt", 1, 1)])
    d = docs.get_document("t1", "doc_1")
    docs.update_document(d)
    docs.list_documents("t1", category="c", tags=["x"], keyword="lorem", sort_by="title", order="asc")
    docs.get_chunks("t1", "doc_1")
    docs.get_images("t1", "doc_1")
    docs.get_chunks_by_id("t1", ["chunk_0"])
    docs.get_images_by_id("t1", ["img_1"])
    docs.documents_by_id("t1", ["doc_1"])
    docs.existing_ids(["doc_1", "doc_9"])
    docs.documents_with_status("deleting")
    job = docs.claim_job()
    docs.recover_jobs()
    docs.claim_job()
    docs.finish_job(job.job_id, "done")
    docs.health()
    docs.delete_document("t1", "doc_1")
    sessions.append_messages("t1", "s1", [SessionMessage("m1", "user", "q")])
    sessions.get_session("t1", "s1")
    sessions.delete_session("t1", "s1")
    keys.add_key(ApiKey("key_1", "t1", "h1"))
    keys.find_by_hash("h1")
    keys.list_keys("t1")
    keys.revoke("key_1")

    ops = Counter(calls.ops())
    assert ops["Scan"] == 0, ops
    assert ops["Query"] > 0 and ops["BatchGetItem"] > 0
    list_queries = [p.get("IndexName") for op, p in calls.seen if op == "Query"]
    assert "by_tenant" in list_queries and "by_queue" in list_queries and "by_key_id" in list_queries
