"""Sample data for a sandbox. seed_for creates what an event refers to (--seed): a text document and a picture for
the doc_/img_ placeholders, a chat session for session_demo_1, a Textract job for a completion event; and returns the
event with the real ids. ensure_objects creates the objects an S3-via-SQS event names, when they are missing."""

from __future__ import annotations

import base64
import copy
import io
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from mmrag_dev import events
from mmrag_dev.fakes import SCANNED_TEXT

if TYPE_CHECKING:
    from mmrag_dev.sandbox import Sandbox

PLACEHOLDER_DOC = "doc_0123456789abcdef"
PLACEHOLDER_IMG = "img_0123456789abcdef"


def sample_bytes(key: str) -> bytes:
    """Content for an object an S3 event names, by its extension."""
    from PIL import Image, ImageDraw

    ext = key.rsplit(".", 1)[-1].lower()
    if ext in ("txt", "md"):
        return (
            "The relief valve opens at 93 kPa. It must be inspected every six months.\n安全阀每六个月检查一次。\n"
        ).encode()
    if ext in ("png", "jpg", "jpeg", "pdf"):
        img = Image.new("RGB", (400, 300) if ext != "pdf" else (850, 1100), "white")
        draw = ImageDraw.Draw(img)
        for i, line in enumerate(SCANNED_TEXT):
            draw.text((40, 60 + 40 * i), line, fill="black")
        buf = io.BytesIO()
        img.save(buf, {"png": "PNG", "pdf": "PDF"}.get(ext, "JPEG"))
        return buf.getvalue()
    return b"\x7fELF\x02\x01\x01" + bytes(4089)  # an executable: not a document


def ensure_objects(sandbox: Sandbox, event: dict[str, Any]) -> dict[str, Any]:
    """Create the objects an S3-via-SQS event names (when missing) and put their real versions in the event."""
    event = copy.deepcopy(event)
    s3 = sandbox.client("s3")
    for record in event.get("Records", []):
        try:
            body = json.loads(record.get("body", ""))
        except ValueError:
            continue
        changed = False
        for rec in body.get("Records", []) if isinstance(body, dict) else []:
            if rec.get("eventSource") != "aws:s3":
                continue
            obj, bucket = rec["s3"]["object"], rec["s3"]["bucket"]["name"]
            key = unquote_plus(obj["key"])
            try:
                head = s3.head_object(Bucket=bucket, Key=key)
            except s3.exceptions.ClientError:
                data = sample_bytes(key)
                s3.put_object(Bucket=bucket, Key=key, Body=data)
                head = s3.head_object(Bucket=bucket, Key=key)
            obj["size"] = head["ContentLength"]
            if head.get("VersionId") and head["VersionId"] != "null":
                obj["versionId"] = head["VersionId"]
            else:
                obj.pop("versionId", None)
            changed = True
        if changed:
            record["body"] = json.dumps(body)
    return event


def seed_documents(sandbox: Sandbox) -> dict[str, str]:
    """Upload a text document and a picture through the API, ingest them; placeholder -> real id."""
    text = sandbox.api("documents_upload.json")["json"]["data"]["document_id"]
    picture = sample_bytes("label.png")
    image = sandbox.api(
        "documents_upload.json",
        body={
            "document_type": "image",
            "file": base64.b64encode(picture).decode(),
            "metadata": {"title": "Gauge label", "category": "manuals", "tags": ["ops"]},
        },
    )["json"]["data"]["document_id"]
    sandbox.drain()
    detail = sandbox.api("documents_get.json", document_id=image)["json"]["data"]
    ids = {PLACEHOLDER_DOC: text, "image_document": image}
    if detail.get("images"):
        ids[PLACEHOLDER_IMG] = detail["images"][0]["image_id"]
    return ids


def seed_textract_job(sandbox: Sandbox) -> str:
    """Drop a scanned PDF into the bucket and ingest it: ingestion starts a Textract job, whose id is returned."""
    s3 = sandbox.client("s3")
    key = "incoming/tenant-a/scanned-boiler-manual.pdf"
    s3.put_object(Bucket=sandbox.bucket(), Key=key, Body=sample_bytes(key))
    version = s3.head_object(Bucket=sandbox.bucket(), Key=key).get("VersionId")
    queue_arn = sandbox.stack.physical["IngestQueue"]["Arn"]
    sandbox.invoke(sandbox.ingest_function(), events.s3_via_sqs_event(sandbox.bucket(), key, version, queue_arn))
    pending = sandbox.queued_event("TextractQueue")  # moto's Textract finished at once and told the topic
    if pending is None:
        raise RuntimeError("Textract did not report a job (is MMRAG_OCR_ENGINE textract?)")
    envelope = json.loads(pending["Records"][0]["body"])
    return json.loads(envelope["Message"])["JobId"]


def seed_for(sandbox: Sandbox, event: dict[str, Any]) -> dict[str, Any]:
    """Create what `event` refers to and return it with the real ids (unchanged if it refers to nothing)."""
    text = json.dumps(event)
    if "Textract" in text and "JobId" in text:
        return events.with_textract_job(event, seed_textract_job(sandbox))
    if PLACEHOLDER_DOC in text or PLACEHOLDER_IMG in text or "session_demo_1" in text:
        ids = seed_documents(sandbox)
        if "session_demo_1" in text:
            sandbox.api("qa_chat.json")
        return events.with_ids(event, ids)
    return event
