"""Detect a document's real format from its bytes and check it against the declared document type."""

from __future__ import annotations

import codecs
import io
import re
import zipfile

from mmrag.errors import UnsupportedFormat

FORMATS_BY_TYPE: dict[str, set[str]] = {
    "text": {"text", "html"},
    "image": {"png", "jpeg", "gif", "webp", "bmp", "tiff"},
    "pdf": {"pdf"},
    "mixed": {"pdf", "docx", "pptx", "html"},
}
IMAGE_FORMATS = frozenset(FORMATS_BY_TYPE["image"])
# The document_type a file of each format is ingested as when nobody declared one (bulk ingest, S3 drops).
DOCUMENT_TYPE_FOR_FORMAT: dict[str, str] = {
    "text": "text",
    "html": "text",
    "pdf": "pdf",
    "docx": "mixed",
    "pptx": "mixed",
    **dict.fromkeys(IMAGE_FORMATS, "image"),
}

_BOMS = (  # longest first: the UTF-32-LE BOM starts with the UTF-16-LE one
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),  # BigTIFF
    (b"MM\x00+", "tiff"),
)
_BMP_HEADER_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})
_TEXT_SNIFF_BYTES = 1 << 20
_HTML_SNIFF_CHARS = 4096
_MAX_CONTROL_RATIO = 0.02
# C0/C1 controls except \t \n \v \f \r and ESC (colour codes in logs)
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f-\x9f]")
_HTML_PREAMBLE = re.compile(r"\s*(?:<!--.*?-->\s*|<\?xml[^>]*\?>\s*)*", re.DOTALL)
_HTML_START = re.compile(r"<!doctype\s+html|<html[\s>]", re.IGNORECASE)
_HTML_BODY = re.compile(r"<(?:head|body)[\s>]", re.IGNORECASE)


def sniff(data: bytes) -> str:
    """Return "pdf", an image format, "docx", "pptx", "html", "text" or "unknown" (empty, executable, other binary)."""
    if not data:
        return "unknown"
    head = data[:64]
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    if b"%PDF-" in data[:1024]:  # readers accept junk before the header
        return "pdf"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    if _is_bmp(head):
        return "bmp"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _sniff_zip(data)
    if head.startswith(b"\x7fELF"):
        return "unknown"
    if _looks_like_html(data):
        return "html"
    return "text" if _is_text(data) else "unknown"


def check_declared(document_type: str, data: bytes) -> str:
    """The sniffed format if `document_type` accepts it, else UnsupportedFormat naming what the bytes really are."""
    accepted = FORMATS_BY_TYPE.get(document_type)
    if accepted is None:
        raise UnsupportedFormat(
            f"unknown document_type {document_type!r}; expected one of: {', '.join(FORMATS_BY_TYPE)}"
        )
    fmt = sniff(data)
    if fmt not in accepted:
        raise UnsupportedFormat(
            f"declared document_type {document_type!r} but the bytes are {describe(fmt, data)}; "
            f"{document_type} accepts: {', '.join(sorted(accepted))}"
        )
    return fmt


def describe(fmt: str, data: bytes) -> str:
    """Human description of sniffed bytes, for error messages."""
    if fmt != "unknown":
        return fmt
    if not data:
        return "empty"
    if data.startswith(b"\x7fELF"):
        return "ELF/unknown binary"
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "a ZIP archive that is neither DOCX nor PPTX"
    return "unknown binary"


def decode_text(data: bytes) -> str:
    """Decode text bytes: BOM first, then UTF-8, then GB18030; never raises (undecodable bytes become U+FFFD)."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(encoding, errors="replace")
    for encoding in ("utf-8", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            pass
    return data.decode("utf-8", errors="replace")


def _is_bmp(head: bytes) -> bool:
    # "BM" alone also starts ordinary text, so require a known DIB header size too
    return len(head) >= 26 and head.startswith(b"BM") and int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES


def _sniff_zip(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        return "unknown"
    if "word/document.xml" in names:
        return "docx"
    if "ppt/presentation.xml" in names:
        return "pptx"
    return "unknown"


def _decode_prefix(data: bytes) -> str | None:
    """Strictly decode (up to) the first MiB, or None if it is not text in a supported encoding."""
    prefix, final = data[:_TEXT_SNIFF_BYTES], len(data) <= _TEXT_SNIFF_BYTES
    for bom, encoding in _BOMS:
        if prefix.startswith(bom):
            candidates: tuple[str, ...] = (encoding,)
            prefix = prefix[len(bom) :]
            break
    else:
        if b"\x00" in prefix:
            return None
        candidates = ("utf-8", "gb18030")
    for encoding in candidates:
        try:
            return codecs.getincrementaldecoder(encoding)("strict").decode(prefix, final=final)
        except UnicodeDecodeError:
            continue
    return None


def _is_text(data: bytes) -> bool:
    text = _decode_prefix(data)
    if text is None or "\x00" in text:
        return False
    return len(_CONTROL.findall(text)) <= _MAX_CONTROL_RATIO * len(text)


def _looks_like_html(data: bytes) -> bool:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            head = data[len(bom) : len(bom) + 4 * _HTML_SNIFF_CHARS].decode(encoding, errors="ignore")
            break
    else:
        if b"\x00" in data[:_HTML_SNIFF_CHARS]:
            return False
        head = data[:_HTML_SNIFF_CHARS].decode("latin-1")
    preamble = _HTML_PREAMBLE.match(head)
    if preamble:
        head = head[preamble.end() :]
    if _HTML_START.match(head):
        return True
    return head.startswith("<") and bool(_HTML_BODY.search(head))
