"""TextractCompleteFunction: Textract's completion notices (Textract -> SNS -> SQS) -> the rest of the document.

The ingest function started `StartDocumentTextDetection` for a PDF with scanned pages and left a small record at
`textract-jobs/<JobId>.json` in the blob store (tenant, document, job). For each notice this function:

- looks the record up (an unknown JobId is logged and dropped: not ours, or already finished);
- on SUCCEEDED (or PARTIAL_SUCCESS) pages through GetDocumentTextDetection (collect_pdf_text) and runs the document's
  pipeline with that page text standing in for the OCR of the scanned pages
  (mmrag.adapters.aws.ingest_jobs.run_with_page_text);
- on FAILED / ERROR marks the document failed with Textract's reason;
- removes the record.

Records that raise (Textract throttling, a service down) are retried through the queue and end in its dead-letter
queue after maxReceiveCount. Idempotent per JobId (Powertools, DynamoDB persistence).
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from mmrag.adapters.aws.ingest_jobs import JobRef, fail_document, run_with_page_text, textract_record_key
from mmrag.lambda_handlers import runtime

logger = Logger()
metrics = Metrics()
tracer = Tracer()  # X-Ray subsegments for every boto3 / HTTP call (the API functions skip it: +0.9 s at init)
processor = BatchProcessor(event_type=EventType.SQS)

SUCCEEDED = ("SUCCEEDED", "PARTIAL_SUCCESS")


def textract_notice(body: str) -> dict[str, Any]:
    """Textract's JSON notice from an SQS body: an SNS envelope ({"Type": "Notification", "Message": "..."}) or, with
    raw message delivery, the notice itself."""
    data = json.loads(body)
    if isinstance(data, dict) and data.get("Type") == "Notification" and isinstance(data.get("Message"), str):
        data = json.loads(data["Message"])
    if not isinstance(data, dict) or not data.get("JobId"):
        raise ValueError(f"not a Textract completion notice: {body[:200]!r}")
    return data


def complete(notice: dict[str, Any]) -> dict[str, Any]:
    from mmrag.adapters.aws.textract_ocr import collect_pdf_text
    from mmrag.errors import ProcessingError

    c = runtime.container()
    job_id, status = str(notice["JobId"]), str(notice.get("Status", ""))
    record_key = textract_record_key(job_id)
    raw = c.blobs.get(record_key)
    if raw is None:
        logger.warning("no record of this Textract job", extra={"textract_job_id": job_id, "tag": notice.get("JobTag")})
        return {"textract_job_id": job_id, "result": "unknown_job"}
    record = json.loads(raw)
    ref = JobRef(record["job_id"], record["tenant"], record["document_id"])
    if status in SUCCEEDED:
        try:
            page_text = collect_pdf_text(c.textract_client, job_id)
        except ProcessingError as exc:
            fail_document(c, ref.tenant, ref.document_id, str(exc))
            c.store.finish_job(ref.job_id, "done")
            result: dict[str, Any] = {"result": "failed", "error": str(exc)}
        else:
            result = run_with_page_text(c, ref, page_text)
    else:
        reason = f"Textract could not read the PDF (status {status or 'unknown'})"
        fail_document(c, ref.tenant, ref.document_id, reason)
        c.store.finish_job(ref.job_id, "done")
        result = {"result": "failed", "error": reason}
    c.blobs.delete(record_key)
    out = {"textract_job_id": job_id, "document_id": ref.document_id, **result}
    logger.info("textract job completed", extra=out)
    metrics.add_metric(name="TextractJobsCompleted", unit=MetricUnit.Count, value=1)
    return out


NOTICE_KEY = "JobId"  # Textract's job id: one completion per job, however often SNS/SQS deliver it


def record_handler(record: SQSRecord) -> None:
    runtime.idempotency(NOTICE_KEY).wrap(complete, "notice")(notice=textract_notice(record.body))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(raise_on_empty_metrics=False)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    runtime.idempotency(NOTICE_KEY).config.register_lambda_context(context)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
