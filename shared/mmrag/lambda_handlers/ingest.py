"""IngestFunction: the ingest queue's SQS batches -> documents.

Two kinds of message arrive on the queue:

- S3 event notifications for objects created under `incoming/<tenant>/` (files dropped into the bucket, or PUT to a
  presigned URL from POST /api/v1/documents/upload-url). For each object: read its type and metadata (the
  `x-amz-meta-mmrag` header the upload URL signs, or plain `x-amz-meta-document-type`, `-title`, `-category`,
  `-tags`, `-author` headers; else the type is sniffed from the bytes and the title is the file name), create the
  document with DocumentService.upload(raw=..., wait=False) with `s3://bucket/key` as its source, then run its job
  right here. `<tenant>` is the first key segment, percent-decoded.
- job messages `{"mmrag_job": {...}}` from uploads through the API (mmrag.adapters.aws.ingest_jobs): run the job.

Batches use Powertools' BatchProcessor with partial failures: a record that raises is reported in
`batchItemFailures`, SQS delivers only it again, and after the queue's maxReceiveCount it lands in the dead-letter
queue (alarmed). A file that cannot become a document (unsupported bytes, too large) fails its record that way; a
document that fails while processing (corrupt PDF...) is recorded on the document (status failed), and its record
succeeds.

Idempotency (Powertools, DynamoDB persistence): creating the document is keyed on bucket/key/versionId (the object's
sequencer when the bucket has no versioning), running a job on its job id. A redelivered S3 message therefore never
creates a second document, and a message delivered twice at once runs once (the second waits for a retry).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.exceptions import ClientError

from mmrag.adapters.aws.incoming import document_type_for, parse_incoming_key, read_attributes
from mmrag.adapters.aws.ingest_jobs import JobRef, process_job
from mmrag.lambda_handlers import runtime

logger = Logger()
metrics = Metrics()
tracer = Tracer()  # X-Ray subsegments for every boto3 / HTTP call (the API functions skip it: +0.9 s at init)
processor = BatchProcessor(event_type=EventType.SQS)


# ---------------------------------------------------------------------------------------------------- the work
def create_document_for_object(obj: dict[str, Any]) -> dict[str, Any]:
    """Create the document for one S3 object; returns its job (or why there is none). Idempotent per object."""
    from mmrag.errors import FileTooLarge

    c = runtime.container()
    bucket, key = obj["bucket"], obj["key"]
    parsed = parse_incoming_key(c.config.incoming_prefix, key)
    if parsed is None:
        return {"skipped": "not under the incoming prefix"}
    tenant, _rest = parsed
    s3 = c.client("s3")
    version = {"VersionId": obj["version_id"]} if obj.get("version_id") else {}
    try:
        head = s3.head_object(Bucket=bucket, Key=key, **version)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NoSuchVersion", "NotFound"):
            return {"skipped": "the object is gone"}
        raise
    limit = c.documents.max_upload_bytes
    if int(head.get("ContentLength", 0)) > limit:
        raise FileTooLarge(f"s3://{bucket}/{key} is larger than the {limit // (1024 * 1024)} MB limit")
    data = s3.get_object(Bucket=bucket, Key=key, **version)["Body"].read()
    document_type, meta, options = read_attributes(head.get("Metadata") or {}, key, bucket)
    jobs: list[Any] = []
    svc = c.document_service(jobs.append)
    doc = svc.upload(
        tenant,
        document_type or document_type_for(data),
        raw=data,
        metadata=meta,
        processing_options=options,
        wait=False,
    )
    logger.info("document created", extra={"tenant": tenant, "document_id": doc.document_id, "key": key})
    metrics.add_metric(name="DocumentsCreated", unit=MetricUnit.Count, value=1)
    ref = JobRef.of(jobs[0])
    return {"job_id": ref.job_id, "tenant": ref.tenant, "document_id": ref.document_id}


def run_job(job: dict[str, Any], receive_count: int = 1) -> dict[str, Any]:
    """Run one job. Idempotent per job id."""
    c = runtime.container()
    ref = JobRef(job["job_id"], job["tenant"], job["document_id"])
    result = process_job(c, ref, receive_count=receive_count, max_attempts=c.settings.max_job_attempts)
    logger.info("job processed", extra=result)
    metrics.add_metric(name="JobsProcessed", unit=MetricUnit.Count, value=1)
    return result


def s3_objects(body: Any) -> list[dict[str, Any]] | None:
    """The created objects of an S3 event notification, or None if the body is not one."""
    if not isinstance(body, dict) or not isinstance(body.get("Records"), list):
        return None
    out = []
    for rec in body["Records"]:
        if rec.get("eventSource") != "aws:s3" or not str(rec.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = rec["s3"]
        obj = s3["object"]
        out.append(
            {
                "bucket": s3["bucket"]["name"],
                "key": unquote_plus(obj["key"]),
                # the object's identity for idempotency: its version, or (bucket without versioning) the sequencer,
                # which is unique per PUT of a key and the same in every delivery of its notification
                "version_id": obj.get("versionId") or "",
                "sequencer": "" if obj.get("versionId") else obj.get("sequencer") or "",
            }
        )
    return out


def record_handler(record: SQSRecord) -> None:
    body = json.loads(record.body)
    receive_count = int(record.attributes.approximate_receive_count or 1)
    idem = runtime.idempotency()
    run_once = idem.wrap(run_job, "job")
    ref = JobRef.from_message(body)
    if ref is not None:
        run_once(
            job={"job_id": ref.job_id, "tenant": ref.tenant, "document_id": ref.document_id},
            receive_count=receive_count,
        )
        return
    objects = s3_objects(body)
    if objects is None:
        if isinstance(body, dict) and body.get("Event") == "s3:TestEvent":
            return  # sent once when the bucket notification is configured
        raise ValueError(f"not an S3 notification nor an mmrag job: {record.body[:200]!r}")
    for obj in objects:
        created = idem.wrap(create_document_for_object, "obj")(obj=obj)
        if "job_id" in created:
            run_once(job=created, receive_count=receive_count)
        else:
            logger.info("object skipped", extra={"key": obj["key"], "reason": created.get("skipped")})


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(raise_on_empty_metrics=False)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    runtime.idempotency().config.register_lambda_context(context)
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    failures = len(response.get("batchItemFailures", []))
    if failures:
        metrics.add_metric(name="IngestRecordFailures", unit=MetricUnit.Count, value=failures)
    return response
