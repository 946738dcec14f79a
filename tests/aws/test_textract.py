"""Textract OCR: DetectDocumentText for images and the asynchronous PDF path, against moto in-process (whose answers
are the blocks set on TextractBackend.BLOCKS: moto has no results API for Textract and no paging), plus botocore's
Stubber on a real client for NextToken paging, job states and errors. Any socket that is not 127.0.0.1 fails."""

from __future__ import annotations

import io
import itertools
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.aws.offline import loopback_only, offline_aws_env

pytest.importorskip("moto")
import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.stub import ANY, Stubber  # noqa: E402
from moto import mock_aws  # noqa: E402
from moto.textract.models import TextractBackend  # noqa: E402

from mmrag.adapters.aws.textract_ocr import (  # noqa: E402
    TextractJobPending,
    TextractOcr,
    collect_pdf_text,
    lines_text,
    start_pdf_text_detection,
    textract_png,
)
from mmrag.errors import ProcessingError, ServiceUnavailable  # noqa: E402

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/textract-sns"
_ids = itertools.count(1)


@pytest.fixture(autouse=True)
def offline_aws(monkeypatch) -> Iterator[None]:
    offline_aws_env(monkeypatch)
    loopback_only(monkeypatch)
    with mock_aws():  # a fresh moto state per test
        yield


@pytest.fixture(scope="module")
def clients() -> Iterator[dict[str, Any]]:
    """Clients are made once per module (making one costs ~0.1 s); moto intercepts them whenever a mock is active."""
    with pytest.MonkeyPatch.context() as mp:
        offline_aws_env(mp)
        yield {
            "moto": boto3.client("textract", region_name=REGION),
            # for Stubber: no retries, botocore would back off and retry throttling before giving up
            "stub": boto3.client("textract", region_name=REGION, config=Config(retries={"total_max_attempts": 1})),
        }


@pytest.fixture
def client(clients) -> Any:
    return clients["moto"]


@pytest.fixture
def stubbed(clients) -> Any:
    return clients["stub"]


@pytest.fixture
def params_of(client) -> Iterator[Callable[[str], list[dict[str, Any]]]]:
    """params_of("DetectDocumentText"): the API parameters of each such call, as the caller passed them."""
    hooks: list[tuple[str, Callable[..., None]]] = []

    def record(operation: str) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        event = f"before-parameter-build.textract.{operation}"

        def hook(params: dict[str, Any], **_: Any) -> None:
            seen.append(params)

        client.meta.events.register(event, hook)
        hooks.append((event, hook))
        return seen

    yield record
    for event, hook in hooks:
        client.meta.events.unregister(event, hook)


# --------------------------------------------------------------------------------- realistic Textract JSON blocks
def line(text: str, left: float, top: float, width: float, height: float, page: int = 1) -> list[dict[str, Any]]:
    """A LINE block and its WORD children, shaped as Textract returns them (ratios of the page size)."""

    def geometry(x: float, y: float, w: float, h: float) -> dict[str, Any]:
        return {
            "BoundingBox": {"Width": w, "Height": h, "Left": x, "Top": y},
            "Polygon": [{"X": x, "Y": y}, {"X": x + w, "Y": y}, {"X": x + w, "Y": y + h}, {"X": x, "Y": y + h}],
        }

    words = text.split() or [text]
    step = width / len(words)
    word_blocks = [
        {
            "BlockType": "WORD",
            "Confidence": 99.1,
            "Text": word,
            "TextType": "PRINTED",
            "Geometry": geometry(left + i * step, top, step * 0.9, height),
            "Id": f"w-{next(_ids)}",
            "Page": page,
        }
        for i, word in enumerate(words)
    ]
    line_block = {
        "BlockType": "LINE",
        "Confidence": 99.3,
        "Text": text,
        "Geometry": geometry(left, top, width, height),
        "Id": f"l-{next(_ids)}",
        "Relationships": [{"Type": "CHILD", "Ids": [w["Id"] for w in word_blocks]}],
        "Page": page,
    }
    return [line_block, *word_blocks]


def page_block(page: int = 1) -> dict[str, Any]:
    return {
        "BlockType": "PAGE",
        "Geometry": {"BoundingBox": {"Width": 1.0, "Height": 1.0, "Left": 0.0, "Top": 0.0}, "Polygon": []},
        "Id": f"p-{next(_ids)}",
        "Page": page,
    }


def invoice_blocks(page: int = 1) -> list[dict[str, Any]]:
    # listed out of reading order on purpose; "Total:" and "42.00 EUR" sit on one row, as separate LINE blocks
    return [
        page_block(page),
        *line("42.00 EUR", 0.70, 0.501, 0.15, 0.03, page),
        *line("Invoice 2024-117", 0.10, 0.10, 0.40, 0.04, page),
        *line("Total:", 0.10, 0.50, 0.10, 0.03, page),
        *line("ACME Corp, Berlin", 0.10, 0.20, 0.45, 0.03, page),
    ]


INVOICE_TEXT = "Invoice 2024-117\nACME Corp, Berlin\nTotal: 42.00 EUR"


def noise(size: tuple[int, int], seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8), "RGB")


# --------------------------------------------------------------------------------- block assembly
def test_lines_in_reading_order_rows_and_cjk() -> None:
    blocks = [
        *line("第二行", 0.1, 0.30, 0.2, 0.05),
        *line("右", 0.5, 0.101, 0.1, 0.05),
        *line("左边", 0.1, 0.10, 0.2, 0.05),
        *line("world", 0.5, 0.60, 0.2, 0.05),
        *line("hello", 0.1, 0.602, 0.2, 0.05),
    ]
    assert lines_text(blocks) == "左边右\n第二行\nhello world"  # CJK joins without a space
    assert lines_text(blocks, 2480, 3508) == lines_text(blocks)  # pixels or ratios: the same order
    assert lines_text([page_block()]) == ""


def test_bounding_box_is_enough_without_polygon() -> None:
    blocks = [b | {"Geometry": {"BoundingBox": b["Geometry"]["BoundingBox"]}} for b in invoice_blocks()]
    assert lines_text(blocks, 1000, 1400) == INVOICE_TEXT


# --------------------------------------------------------------------------------- synchronous OCR (moto)
def test_recognize_with_moto(monkeypatch, client, params_of) -> None:
    monkeypatch.setattr(TextractBackend, "BLOCKS", invoice_blocks())
    sent = params_of("DetectDocumentText")
    ocr = TextractOcr(client)

    assert ocr.recognize(Image.new("RGB", (800, 1100), "white")) == INVOICE_TEXT

    png = sent[0]["Document"]["Bytes"]
    assert png.startswith(b"\x89PNG") and Image.open(io.BytesIO(png)).size == (800, 1100)
    assert ocr.health() == {"engine": "textract", "state": "loaded"}


def test_no_lines_no_text_and_tiny_images_are_not_sent(client, params_of) -> None:
    sent = params_of("DetectDocumentText")
    ocr = TextractOcr(client)
    assert ocr.recognize(Image.new("RGB", (300, 200), "white")) == ""  # moto's default: no blocks
    assert ocr.recognize(Image.new("RGB", (400, 12), "white")) == ""  # lower than any text Textract can read
    assert len(sent) == 1


def test_images_over_the_sync_limits_are_downscaled(monkeypatch, client, params_of) -> None:
    monkeypatch.setattr(TextractBackend, "BLOCKS", invoice_blocks())
    sent = params_of("DetectDocumentText")

    tall = Image.new("L", (400, 12_500), 255)
    assert TextractOcr(client).recognize(tall) == INVOICE_TEXT
    assert Image.open(io.BytesIO(sent[0]["Document"]["Bytes"])).size == (320, 10_000)

    busy = noise((900, 700), seed=1)  # random pixels: about 1.9 MB of PNG
    assert TextractOcr(client, max_bytes=300_000).recognize(busy) == INVOICE_TEXT
    png = sent[1]["Document"]["Bytes"]
    assert len(png) <= 300_000
    w, h = Image.open(io.BytesIO(png)).size
    assert w < 900 and abs(w / h - 900 / 700) < 0.02


def test_textract_png_limits_and_transparency() -> None:
    data = textract_png(Image.new("L", (12_000, 300), 255))
    assert Image.open(io.BytesIO(data)).size == (10_000, 250)
    # transparent pixels whose colour is black must not become a black page
    rgba = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    rgba.paste((0, 0, 0, 255), (10, 10, 20, 20))
    out = Image.open(io.BytesIO(textract_png(rgba))).convert("RGB")
    assert out.getpixel((0, 0)) == (255, 255, 255) and out.getpixel((15, 15)) == (0, 0, 0)
    palette = Image.new("P", (30, 30), 0)
    palette.info["transparency"] = 0
    assert Image.open(io.BytesIO(textract_png(palette))).convert("RGB").getpixel((5, 5)) == (255, 255, 255)


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("ProvisionedThroughputExceededException", "throttling"),
        ("ThrottlingException", "throttling"),
        ("InternalServerError", "Textract failed"),
        ("AccessDeniedException", "AccessDeniedException"),
    ],
)
def test_service_errors_are_service_unavailable(stubbed, code, words) -> None:
    client = stubbed
    with Stubber(client) as stub:
        stub.add_client_error(
            "detect_document_text", service_error_code=code, service_message="slow down", http_status_code=400
        )
        ocr = TextractOcr(client)
        with pytest.raises(ServiceUnavailable, match=words) as info:
            ocr.recognize(Image.new("RGB", (100, 100), "white"))
    assert info.value.message.startswith("OCR: ") and code in info.value.detail
    assert ocr.health()["state"] == "error"


@pytest.mark.parametrize("code", ["BadDocumentException", "UnsupportedDocumentException", "InvalidParameterException"])
def test_an_unreadable_picture_has_no_text(stubbed, code, caplog) -> None:
    client = stubbed
    with Stubber(client) as stub, caplog.at_level(logging.WARNING):
        stub.add_client_error("detect_document_text", service_error_code=code, service_message="nope")
        assert TextractOcr(client).recognize(Image.new("RGB", (100, 100), "white")) == ""
    assert code in caplog.text


# --------------------------------------------------------------------------------- asynchronous PDFs (moto)
def test_pdf_job_with_moto_notifies_sns_and_collects_pages(monkeypatch, client, params_of) -> None:
    blocks = [*invoice_blocks(1), page_block(2), *line("Terms and conditions", 0.1, 0.1, 0.5, 0.03, 2), page_block(3)]
    blocks += line("Page three", 0.1, 0.9, 0.3, 0.03, 3)
    monkeypatch.setattr(TextractBackend, "BLOCKS", blocks)
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="docs")
    s3.put_object(Bucket="docs", Key="t/a/doc_1/original.pdf", Body=b"%PDF-1.7")
    sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
    topic = sns.create_topic(Name="textract-done")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="textract-done")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    started = params_of("StartDocumentTextDetection")

    job_id = start_pdf_text_detection(client, "docs", "t/a/doc_1/original.pdf", topic, ROLE, "doc_1")

    assert started == [
        {
            "DocumentLocation": {"S3Object": {"Bucket": "docs", "Name": "t/a/doc_1/original.pdf"}},
            "NotificationChannel": {"SNSTopicArn": topic, "RoleArn": ROLE},
            "JobTag": "doc_1",
        }
    ]
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    note = json.loads(json.loads(messages[0]["Body"])["Message"])
    assert note["JobId"] == job_id and note["Status"] == "SUCCEEDED"
    assert note["API"] == "StartDocumentTextDetection"
    assert note["DocumentLocation"] == {"S3Bucket": "docs", "S3ObjectName": "t/a/doc_1/original.pdf"}

    assert collect_pdf_text(client, job_id) == {1: INVOICE_TEXT, 2: "Terms and conditions", 3: "Page three"}


def test_pdf_job_arguments_are_checked(client) -> None:
    with pytest.raises(ValueError, match="job_tag"):
        start_pdf_text_detection(
            client, "docs", "k.pdf", "arn:aws:sns:us-east-1:123456789012:t", ROLE, "doc 1/with spaces"
        )
    with pytest.raises(ValueError, match="job_tag"):
        start_pdf_text_detection(client, "docs", "k.pdf", "arn:aws:sns:us-east-1:123456789012:t", ROLE, "x" * 65)
    with pytest.raises(ValueError, match="client_request_token"):
        start_pdf_text_detection(
            client, "docs", "k.pdf", "arn:aws:sns:us-east-1:123456789012:t", ROLE, "doc_1", client_request_token="a:b"
        )
    with pytest.raises(ProcessingError, match="Textract job"):
        collect_pdf_text(client, "no-such-job")  # moto: InvalidJobIdException


# --------------------------------------------------------------------------------- asynchronous PDFs (Stubber)
def _page(blocks: list[dict[str, Any]], token: str | None, pages: int = 3, status: str = "SUCCEEDED", **extra) -> dict:
    resp: dict[str, Any] = {
        "DocumentMetadata": {"Pages": pages},
        "JobStatus": status,
        "Blocks": blocks,
        "DetectDocumentTextModelVersion": "1.0",
        **extra,
    }
    if token:
        resp["NextToken"] = token
    return resp


def test_collect_pages_through_next_token(stubbed) -> None:
    page2 = [page_block(2), *line("Second page, first line", 0.1, 0.1, 0.6, 0.03, 2)]
    page2_rest = line("Second page, last line", 0.1, 0.8, 0.6, 0.03, 2)  # the same page, in the next response
    client = stubbed
    with Stubber(client) as stub:
        stub.add_response(
            "get_document_text_detection", _page(invoice_blocks(1), "t1"), {"JobId": "job-1", "MaxResults": 1000}
        )
        stub.add_response(
            "get_document_text_detection", _page(page2, "t2"), {"JobId": "job-1", "MaxResults": 1000, "NextToken": "t1"}
        )
        stub.add_response(
            "get_document_text_detection",
            _page([*page2_rest, page_block(3)], None),
            {"JobId": "job-1", "MaxResults": 1000, "NextToken": "t2"},
        )
        text = collect_pdf_text(client, "job-1")
        stub.assert_no_pending_responses()
    assert text == {1: INVOICE_TEXT, 2: "Second page, first line\nSecond page, last line", 3: ""}


def test_job_states(stubbed) -> None:
    client = stubbed
    with Stubber(client) as stub:
        stub.add_response(
            "get_document_text_detection", _page([], None, status="IN_PROGRESS"), {"JobId": "j", "MaxResults": ANY}
        )
        with pytest.raises(TextractJobPending, match="still running"):
            collect_pdf_text(client, "j")
        failed = _page([], None, status="FAILED", StatusMessage="The document is password protected")
        stub.add_response("get_document_text_detection", failed, {"JobId": "j", "MaxResults": ANY})
        with pytest.raises(ProcessingError, match="password protected"):
            collect_pdf_text(client, "j")


def test_partial_success_returns_what_was_read(stubbed, caplog) -> None:
    client = stubbed
    partial = _page(
        invoice_blocks(1), None, pages=2, status="PARTIAL_SUCCESS", Warnings=[{"ErrorCode": "BAD_PAGE", "Pages": [2]}]
    )
    with Stubber(client) as stub, caplog.at_level(logging.WARNING):
        stub.add_response("get_document_text_detection", partial, {"JobId": "j", "MaxResults": ANY})
        assert collect_pdf_text(client, "j") == {1: INVOICE_TEXT, 2: ""}
    assert "BAD_PAGE" in caplog.text


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("LimitExceededException", ServiceUnavailable),
        ("ProvisionedThroughputExceededException", ServiceUnavailable),
        ("InvalidS3ObjectException", ProcessingError),
        ("UnsupportedDocumentException", ProcessingError),
    ],
)
def test_start_errors(stubbed, code, error) -> None:
    client = stubbed
    with Stubber(client) as stub:
        stub.add_client_error("start_document_text_detection", service_error_code=code, service_message="no")
        with pytest.raises(error):
            start_pdf_text_detection(
                client,
                "docs",
                "k.pdf",
                "arn:aws:sns:us-east-1:123456789012:t",
                ROLE,
                "doc_1",
                client_request_token="r-1",
            )


def test_client_request_token_is_passed_on(stubbed) -> None:
    client = stubbed
    topic = "arn:aws:sns:us-east-1:123456789012:t"
    expected = {
        "DocumentLocation": {"S3Object": {"Bucket": "docs", "Name": "k.pdf"}},
        "NotificationChannel": {"SNSTopicArn": topic, "RoleArn": ROLE},
        "JobTag": "doc_1",
        "ClientRequestToken": "doc_1-attempt-1",
    }
    with Stubber(client) as stub:
        stub.add_response("start_document_text_detection", {"JobId": "j-9"}, expected)
        assert (
            start_pdf_text_detection(
                client, "docs", "k.pdf", topic, ROLE, "doc_1", client_request_token="doc_1-attempt-1"
            )
            == "j-9"
        )
