"""OCR on AWS with Amazon Textract: the twin of RapidOcrEngine for single images, plus the asynchronous PDF path.

Images go through the synchronous DetectDocumentText (as PNG, shrunk first when over its 10 MB / 10000 px limits).
Whole PDFs go through StartDocumentTextDetection, which reports completion to an SNS topic; collect_pdf_text then
reads the result, page by page. Both turn LINE blocks into text with the same reading order as the local engine
(lines_from_boxes: rows by vertical overlap, left to right within a row), so the two backends chunk alike.
"""

from __future__ import annotations

import io
import logging
import re
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError
from PIL import Image

from mmrag.adapters.local.ocr import lines_from_boxes
from mmrag.errors import ProcessingError, ServiceUnavailable

log = logging.getLogger(__name__)

SYNC_MAX_BYTES = 10 * 1000 * 1000  # "10 MB" read as decimal megabytes, the safe reading
MAX_SIDE = 10_000  # Textract reads images up to 10000 px on every side
MIN_TEXT_PX = 15  # Textract detects no text shorter than 15 px, so a smaller image cannot have any

_JOB_TAG = re.compile(r"^[a-zA-Z0-9_.\-:]{1,64}$")
_REQUEST_TOKEN = re.compile(r"^[a-zA-Z0-9\-_]{1,64}$")
# The request was understood but this document cannot be read: retrying will not help.
_UNREADABLE = frozenset(
    {
        "BadDocumentException",
        "UnsupportedDocumentException",
        "DocumentTooLargeException",
        "InvalidParameterException",
        "InvalidS3ObjectException",
        "InvalidJobIdException",
    }
)


def _code(exc: ClientError) -> tuple[str, str]:
    error = exc.response.get("Error", {})
    return error.get("Code", ""), error.get("Message", "")


def _unavailable(action: str, exc: Exception) -> ServiceUnavailable:
    if isinstance(exc, ClientError):
        code, message = _code(exc)
        if code in ("ThrottlingException", "ProvisionedThroughputExceededException"):
            reason = "Textract is throttling requests; retry later"
        elif code == "LimitExceededException":
            reason = "too many Textract jobs are running; retry later"
        else:
            reason = f"Textract failed ({code}: {message})"
        return ServiceUnavailable(f"{action}: {reason}", f"{code}: {message}")
    return ServiceUnavailable(f"{action}: cannot reach Textract ({type(exc).__name__})", str(exc))


# ------------------------------------------------------------------------------------------------ blocks to text
def _box(block: dict[str, Any], width: float, height: float) -> list[tuple[float, float]]:
    """The block's corners in pixels (Textract gives ratios of the page's width and height)."""
    geometry = block.get("Geometry") or {}
    polygon = geometry.get("Polygon") or []
    if polygon:
        return [(float(p["X"]) * width, float(p["Y"]) * height) for p in polygon]
    bb = geometry.get("BoundingBox") or {}
    left, top = float(bb.get("Left", 0.0)) * width, float(bb.get("Top", 0.0)) * height
    right, bottom = left + float(bb.get("Width", 0.0)) * width, top + float(bb.get("Height", 0.0)) * height
    return [(left, top), (right, top), (right, bottom), (left, bottom)]


def lines_text(blocks: Iterable[dict[str, Any]], width: float = 1.0, height: float = 1.0) -> str:
    """The text of a page's LINE blocks in reading order. Without the page size, ratios work as well: only the
    relative positions matter."""
    results = [
        (_box(b, width, height), b.get("Text", ""), b.get("Confidence", 0.0))
        for b in blocks
        if b.get("BlockType") == "LINE" and b.get("Text")
    ]
    return lines_from_boxes(results)


# ------------------------------------------------------------------------------------------------ synchronous OCR
def textract_png(image: Image.Image, max_bytes: int = SYNC_MAX_BYTES, max_side: int = MAX_SIDE) -> bytes:
    """PNG bytes within DetectDocumentText's limits: at most `max_side` px on every side and `max_bytes` long."""
    img = image
    if img.mode in ("RGBA", "LA", "P", "PA") or "transparency" in img.info:
        # transparent pixels often hide black RGB values: put them on white, as a page would be
        rgba = img.convert("RGBA")
        img = Image.new("RGB", rgba.size, (255, 255, 255))
        img.paste(rgba, mask=rgba.getchannel("A"))
    elif img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    if max(img.size) > max_side:
        scale = max_side / max(img.size)
        img = img.resize((max(1, int(img.width * scale)), max(1, int(img.height * scale))), Image.Resampling.LANCZOS)
    while True:
        buf = io.BytesIO()
        img.save(buf, format="PNG", optimize=False)
        data = buf.getvalue()
        if len(data) <= max_bytes:
            return data
        # PNG size grows roughly with the pixel count; aim a little below the limit
        scale = min(0.9, (max_bytes / len(data)) ** 0.5 * 0.95)
        img = img.resize((max(1, int(img.width * scale)), max(1, int(img.height * scale))), Image.Resampling.LANCZOS)


class TextractOcr:
    """OcrEngine on DetectDocumentText (synchronous, one image per call)."""

    name = "textract"

    def __init__(self, client: Any = None, *, max_bytes: int = SYNC_MAX_BYTES, max_side: int = MAX_SIDE):
        self.client = client or boto3.client("textract")
        self.max_bytes = max_bytes
        self.max_side = max_side
        self.state = "not loaded"

    def recognize(self, image: Image.Image) -> str:
        if min(image.size) < MIN_TEXT_PX:
            return ""
        data = textract_png(image, self.max_bytes, self.max_side)
        try:
            resp = self.client.detect_document_text(Document={"Bytes": data})
        except ClientError as exc:
            code, message = _code(exc)
            if code in _UNREADABLE:
                # one unreadable picture must not fail its whole document: it just has no OCR text
                log.warning("Textract could not read a %dx%d image: %s: %s", *image.size, code, message)
                return ""
            self.state = "error"
            raise _unavailable("OCR", exc) from exc
        except ParamValidationError:
            raise  # a bug in the call, not an outage
        except BotoCoreError as exc:
            self.state = "error"
            raise _unavailable("OCR", exc) from exc
        self.state = "loaded"
        # the geometry is relative to the image Textract saw; any scale keeps the order
        return lines_text(resp.get("Blocks") or [], image.width, image.height)

    def load(self) -> None:
        """Nothing to load: Textract is a service."""

    def health(self) -> dict[str, Any]:
        return {"engine": self.name, "state": self.state}


# ------------------------------------------------------------------------------------------------ asynchronous PDFs
class TextractJobPending(ServiceUnavailable):
    """The job has not finished yet: collect again after its SNS notification."""


def start_pdf_text_detection(
    client: Any,
    bucket: str,
    key: str,
    sns_topic_arn: str,
    role_arn: str,
    job_tag: str,
    *,
    client_request_token: str | None = None,
) -> str:
    """Start text detection of a PDF in S3 (same region as Textract); returns the JobId. Textract publishes the
    outcome to `sns_topic_arn` (assuming `role_arn` to do so) with `job_tag` in the message, so the listener knows
    which document it was. The same `client_request_token` within a few days returns the same job instead of a
    second one (safe retries)."""
    if not _JOB_TAG.match(job_tag):
        raise ValueError(f"job_tag {job_tag!r}: 1-64 characters of letters, digits and _ . - : only")
    params: dict[str, Any] = {
        "DocumentLocation": {"S3Object": {"Bucket": bucket, "Name": key}},
        "NotificationChannel": {"SNSTopicArn": sns_topic_arn, "RoleArn": role_arn},
        "JobTag": job_tag,
    }
    if client_request_token is not None:
        if not _REQUEST_TOKEN.match(client_request_token):
            raise ValueError(f"client_request_token {client_request_token!r}: 1-64 of letters, digits, - and _")
        params["ClientRequestToken"] = client_request_token
    try:
        return client.start_document_text_detection(**params)["JobId"]
    except ClientError as exc:
        code, message = _code(exc)
        if code in _UNREADABLE:
            raise ProcessingError(f"Textract cannot read s3://{bucket}/{key}: {message or code}") from exc
        raise _unavailable("PDF text detection", exc) from exc
    except BotoCoreError as exc:
        raise _unavailable("PDF text detection", exc) from exc


def collect_pdf_text(client: Any, job_id: str) -> dict[int, str]:
    """The text of every page of a finished job: {page number (1-based): text}, pages without text as ''.

    Pages through GetDocumentTextDetection with NextToken (a page's blocks may span two responses). A failed job
    raises ProcessingError; one still running raises TextractJobPending; a partly successful one returns what was
    read (Textract lists the pages it could not read in Warnings, which are logged).
    """
    by_page: dict[int, list[dict[str, Any]]] = defaultdict(list)
    pages = 0
    token: str | None = None
    while True:
        params: dict[str, Any] = {"JobId": job_id, "MaxResults": 1000}
        if token:
            params["NextToken"] = token
        try:
            resp = client.get_document_text_detection(**params)
        except ClientError as exc:
            code, message = _code(exc)
            if code in _UNREADABLE:
                raise ProcessingError(f"Textract job {job_id}: {message or code}") from exc
            raise _unavailable(f"Textract job {job_id}", exc) from exc
        except ParamValidationError:
            raise  # a bug in the call, not an outage
        except BotoCoreError as exc:
            raise _unavailable(f"Textract job {job_id}", exc) from exc
        status = resp.get("JobStatus")
        if status == "IN_PROGRESS":
            raise TextractJobPending(f"Textract job {job_id} is still running")
        if status == "FAILED":
            raise ProcessingError(f"Textract could not read the PDF: {resp.get('StatusMessage') or 'job failed'}")
        for warning in resp.get("Warnings") or []:
            log.warning("Textract job %s: %s on pages %s", job_id, warning.get("ErrorCode"), warning.get("Pages"))
        count = (resp.get("DocumentMetadata") or {}).get("Pages")
        if isinstance(count, int):
            pages = max(pages, count)
        for block in resp.get("Blocks") or []:
            if block.get("BlockType") == "LINE":
                by_page[int(block.get("Page") or 1)].append(block)
        token = resp.get("NextToken")
        if not token:
            break
    last = max([pages, *by_page])
    return {n: lines_text(by_page.get(n, [])) for n in range(1, last + 1)}
