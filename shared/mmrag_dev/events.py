"""The event files of events/ and the Lambda events built from them or from a queue: API Gateway proxy events with
another body or path, SQS records, S3 notifications delivered through SQS, and the ids --seed puts in place of the
files' placeholders."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

from mmrag_dev.template import ACCOUNT, REGION, ROOT

EVENTS = ROOT / "events"


def load_event(name: str) -> dict[str, Any]:
    """An event file of events/ by its name, e.g. "search_text.json"."""
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


def api_event(event_file: str, body: Any = None, **path_params: str) -> dict[str, Any]:
    """An API event file with another JSON body and/or other path parameters (path and requestContext follow)."""
    event = load_event(event_file)
    if body is not None:
        event["body"] = json.dumps(body, ensure_ascii=False)
    for name, value in path_params.items():
        event["path"] = event["path"].replace(event["pathParameters"][name], value)
        event["requestContext"]["path"] = f"/{event['requestContext']['stage']}{event['path']}"
        event["pathParameters"][name] = value
    return event


def json_body(response: dict[str, Any]) -> Any:
    """The JSON body of an API response (base64 or not); None when there is none or it is not JSON."""
    body = response.get("body")
    if body is None:
        return None
    raw = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()
    try:
        return json.loads(raw)
    except ValueError:
        return None


def sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """A message from ReceiveMessage (AttributeNames=["All"]) as a record of the SQS event Lambda would get."""
    attrs = message.get("Attributes", {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {
            "ApproximateReceiveCount": attrs.get("ApproximateReceiveCount", "1"),
            "SentTimestamp": attrs.get("SentTimestamp", "0"),
            "SenderId": attrs.get("SenderId", ACCOUNT),
            "ApproximateFirstReceiveTimestamp": attrs.get("ApproximateFirstReceiveTimestamp", "0"),
        },
        "messageAttributes": {},
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def s3_via_sqs_event(bucket: str, key: str, version: str | None, queue_arn: str) -> dict[str, Any]:
    """The SQS event carrying S3's ObjectCreated notification for one object, as the ingest queue delivers it."""
    body = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": bucket},
                    "object": {"key": key, "versionId": version, "sequencer": "01"},
                },
            }
        ]
    }
    return {
        "Records": [
            {
                "messageId": "seed-1",
                "receiptHandle": "seed",
                "body": json.dumps(body),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "awsRegion": REGION,
                "eventSourceARN": queue_arn,
            }
        ]
    }


def with_textract_job(event: dict[str, Any], job_id: str) -> dict[str, Any]:
    """A Textract completion event (SNS-wrapped or raw, in SQS records) naming another JobId."""
    event = copy.deepcopy(event)
    for record in event.get("Records", []):
        envelope = json.loads(record["body"])
        notice = json.loads(envelope["Message"]) if "Message" in envelope else envelope
        notice["JobId"] = job_id
        if "Message" in envelope:
            envelope["Message"] = json.dumps(notice)
        record["body"] = json.dumps(envelope if "Message" in envelope else notice)
    return event


def with_ids(event: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    """The event with every placeholder id (a key of `ids`) replaced by the real one, wherever it appears."""
    text = json.dumps(event)
    for placeholder, real in ids.items():
        text = text.replace(placeholder, real)
    return json.loads(text)
