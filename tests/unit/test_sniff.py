from __future__ import annotations

import io
import random
import zipfile

import docx
import pptx
import pytest
from PIL import Image

from mmrag.errors import UnsupportedFormat
from mmrag.ingest.sniff import FORMATS_BY_TYPE, check_declared, decode_text, sniff

ZH = "人工智能正在改变我们的生活方式。检索增强生成结合了搜索和大语言模型。"
RANDOM = random.Random(1234)
ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(8) + b"\x02\x00\x3e\x00\x01\x00\x00\x00" + bytes(200)


def _image(fmt: str, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (40, 30), "red" if mode == "RGB" else 1).save(buf, fmt)
    return buf.getvalue()


def _docx() -> bytes:
    buf = io.BytesIO()
    document = docx.Document()
    document.add_paragraph("hello")
    document.save(buf)
    return buf.getvalue()


def _pptx() -> bytes:
    buf = io.BytesIO()
    pptx.Presentation().save(buf)
    return buf.getvalue()


def _zip(name: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr(name, "data")
    return buf.getvalue()


@pytest.mark.parametrize(
    "fmt, pil_format",
    [("png", "PNG"), ("jpeg", "JPEG"), ("gif", "GIF"), ("webp", "WEBP"), ("bmp", "BMP"), ("tiff", "TIFF")],
)
def test_sniff_images(fmt: str, pil_format: str) -> None:
    assert sniff(_image(pil_format)) == fmt


def test_sniff_documents() -> None:
    assert sniff(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n") == "pdf"
    assert sniff(b"\r\n%PDF-1.4\n...") == "pdf"  # junk before the header is tolerated
    assert sniff(_docx()) == "docx"
    assert sniff(_pptx()) == "pptx"
    assert sniff(_zip("content.xml")) == "unknown"
    assert sniff(b"PK\x03\x04 truncated zip") == "unknown"


@pytest.mark.parametrize(
    "data",
    [
        b"<!DOCTYPE html><html><body><p>x</p></body></html>",
        b"\xef\xbb\xbf  <!-- generated -->\n<!doctype HTML>\n<title>t</title>",
        b"<?xml version='1.0'?>\n<html xmlns='http://www.w3.org/1999/xhtml'><body/></html>",
        b"\n<HTML>\n<p>legacy</p>",
        b"<meta charset='utf-8'><title>t</title><body><p>fragment</p></body>",
        "\ufeff<html><body>中文</body></html>".encode("utf-16-le"),
    ],
)
def test_sniff_html(data: bytes) -> None:
    assert sniff(data) == "html"


@pytest.mark.parametrize(
    "data",
    [
        b"Plain English text.\nSecond line.\n",
        b"BMW makes cars; this text starts with BM.",
        b"Use the <body> tag in HTML documents.",
        ZH.encode("utf-8"),
        ZH.encode("gb18030"),
        b"\xef\xbb\xbf" + ZH.encode("utf-8"),
        (ZH + "\nEnglish too.").encode("utf-16"),  # with BOM
        (ZH + "\tcolumns\r\n").encode("utf-8"),
    ],
)
def test_sniff_text(data: bytes) -> None:
    assert sniff(data) == "text"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        ELF,
        RANDOM.randbytes(4096),
        b"\x00\x01\x02\x03" * 100,
        b"MZ\x90\x00" + bytes(100),
        b"\x1f\x8b\x08\x00" + RANDOM.randbytes(200),
    ],
)
def test_sniff_unknown(data: bytes) -> None:
    assert sniff(data) == "unknown"


def test_check_declared_accepts() -> None:
    assert check_declared("pdf", b"%PDF-1.7\n") == "pdf"
    assert check_declared("image", _image("PNG")) == "png"
    assert check_declared("text", b"<!doctype html><p>hi</p>") == "html"
    assert check_declared("text", ZH.encode("gb18030")) == "text"
    assert check_declared("mixed", _docx()) == "docx"
    assert check_declared("mixed", _pptx()) == "pptx"
    assert FORMATS_BY_TYPE["mixed"] == {"pdf", "docx", "pptx", "html"}


@pytest.mark.parametrize(
    "declared, data, described",
    [
        ("pdf", ELF, "ELF/unknown binary"),
        ("pdf", b"", "empty"),
        ("image", b"%PDF-1.4\n", "pdf"),
        ("text", ELF, "ELF/unknown binary"),
        ("pdf", b"\x89PNG\r\n\x1a\n" + bytes(30), "png"),
        ("mixed", b"just some text", "text"),
        ("image", _zip("a.txt"), "ZIP"),
    ],
)
def test_check_declared_mismatch(declared: str, data: bytes, described: str) -> None:
    with pytest.raises(UnsupportedFormat) as info:
        check_declared(declared, data)
    message = info.value.message
    assert f"declared document_type '{declared}'" in message
    assert described in message
    assert f"{declared} accepts: " in message


def test_check_declared_message_example() -> None:
    with pytest.raises(
        UnsupportedFormat, match="^declared document_type 'pdf' but the bytes are ELF/unknown binary; pdf accepts: pdf$"
    ):
        check_declared("pdf", ELF)


def test_check_declared_unknown_type() -> None:
    with pytest.raises(UnsupportedFormat, match="unknown document_type"):
        check_declared("video", b"%PDF-1.4")


def test_decode_text() -> None:
    assert decode_text(ZH.encode("utf-8")) == ZH
    assert decode_text(ZH.encode("gb18030")) == ZH
    assert decode_text(b"\xef\xbb\xbfhello") == "hello"
    assert decode_text(("\ufeff" + ZH).encode("utf-16-le")) == ZH
    assert decode_text(ZH.encode("utf-16")) == ZH
    assert decode_text(b"\xfe\xff" + "€ and ½".encode("utf-16-be")) == "€ and ½"
    assert isinstance(decode_text(b"\xff\xfe\xfd" * 3 + b"\x81"), str)  # never raises
