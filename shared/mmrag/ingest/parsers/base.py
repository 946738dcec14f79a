"""What every parser shares: the records a parse produces, the options, the text builder that remembers where pictures
sit, the context-text helpers, and the checks for embedded pictures and Office archives.

No parsing library is imported here: this module is loaded by `mmrag.ingest.parsers` whatever the format.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field

from mmrag.errors import ProcessingError
from mmrag.ingest.images import image_size, open_image, to_png
from mmrag.ingest.sniff import IMAGE_FORMATS, sniff

CONTEXT_CHARS = 300
MAX_UNZIPPED_BYTES = 1 << 30
_KEEP_ENCODING = frozenset({"png", "jpeg", "gif", "webp"})  # embedded pictures in other formats are re-encoded as PNG


@dataclass
class ParsedImage:
    # encoded image: PNG for extracted bitmaps and page scans; the original bytes for image documents and for PNG/JPEG/
    # GIF/WebP pictures embedded in DOCX, PPTX and HTML (other embedded formats are re-encoded as PNG)
    data: bytes
    page_number: int | None  # 1-based page/slide, None when the source has no pages
    position: int  # 0-based order of the picture in the document
    bbox: list[float] | None  # [x0, y0, x1, y1] in points from the page's top-left, when known
    text_before: str  # up to ~300 chars of document text just before the picture
    text_after: str  # up to ~300 chars just after
    is_page_scan: bool = False  # True for a whole PDF page rendered for OCR


@dataclass
class ParsedPage:
    number: int | None  # 1-based page (PDF) or slide (PPTX); None for unpaged sources (text, HTML, DOCX, image)
    text: str  # normalize_page_text'ed text layer
    scan: bytes | None = None  # PNG of the rendered page when the page has no usable text layer and OCR is wanted
    section: str | None = None  # heading path of a section page ("Setup > Network"), for formats with headings (DOCX)
    paragraphs: list[tuple[int, int]] = field(default_factory=list)  # (offset in text, 1-based paragraph number)


@dataclass
class ParsedDocument:
    fmt: str
    pages: list[ParsedPage]
    images: list[ParsedImage]
    title: str | None = None  # from PDF/DOCX/PPTX core properties or HTML <title>, when present


@dataclass(frozen=True)
class ParseOptions:
    """parse_document's keyword arguments, as one value every format's `parse(data, fmt, options)` receives."""

    extract_images: bool = True
    ocr: bool = True
    max_pages: int = 2000
    max_pixels: int = 40_000_000
    ocr_min_chars: int = 16
    scan_dpi: int = 150
    min_image_side: int = 32


class TextBuilder:
    """Accumulates document text and remembers where pictures sit in it."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self.size = 0
        self._tail = ""
        self.anchors: list[tuple[int, bytes, str]] = []  # (offset, encoded image, fallback text_before)

    def write(self, text: str) -> None:
        if text:
            self._parts.append(text)
            self.size += len(text)
            self._tail = (self._tail + text)[-2:]

    def separate(self, separator: str) -> None:
        """End the current line ("\\n") or paragraph ("\\n\\n") unless the text is empty or already ends so."""
        if self.size and not self._tail.endswith(separator):
            self.write("\n" if self._tail.endswith("\n") else separator)

    @property
    def at_line_start(self) -> bool:
        return not self.size or self._tail.endswith("\n")

    def text(self) -> str:
        return "".join(self._parts)

    def images(self, page_number: int | None = None) -> list[ParsedImage]:
        text = self.text()
        window = 4 * CONTEXT_CHARS
        return [
            ParsedImage(
                data=blob,
                page_number=page_number,
                position=position,
                bbox=None,
                text_before=tail(text[max(0, offset - window) : offset]) or tail(fallback),
                text_after=head(text[offset : offset + window]),
            )
            for position, (offset, blob, fallback) in enumerate(self.anchors)
        ]


def tail(text: str, limit: int = CONTEXT_CHARS) -> str:
    """The last `limit` characters of `text` with whitespace collapsed, not starting with half a word."""
    flat = " ".join(text[-4 * limit :].split())
    if len(flat) <= limit:
        return flat
    cut = flat[-limit:]
    space = cut.find(" ")
    return cut[space + 1 :] if 0 <= space < 40 else cut  # don't start with half a word


def head(text: str, limit: int = CONTEXT_CHARS) -> str:
    """The first `limit` characters of `text` with whitespace collapsed, not ending with half a word."""
    flat = " ".join(text[: 4 * limit].split())
    if len(flat) <= limit:
        return flat
    cut = flat[:limit]
    space = cut.rfind(" ")
    return cut[:space] if space > limit - 40 else cut


def short_message(exc: BaseException) -> str:
    message = " ".join(str(exc).split()) or type(exc).__name__
    return message[:200]


def clean_title(title: object) -> str | None:
    if not isinstance(title, str):
        return None
    title = " ".join(title.split())
    return title or None


def pt(value: float) -> float:
    """A coordinate in points, as stored in a bbox."""
    return round(value, 2)


def usable_picture(blob: bytes, options: ParseOptions) -> bytes | None:
    """The picture to keep for an embedded image blob, or None if it is unusable, too small or too large.

    Only the header is read for PNG/JPEG/GIF/WebP, which are kept as they are; BMP/TIFF are decoded and re-encoded as
    PNG. EMF, WMF, SVG... are dropped.
    """
    fmt = sniff(blob)
    if fmt not in IMAGE_FORMATS:
        return None
    try:
        width, height = image_size(blob)
        if min(width, height) < options.min_image_side or width * height > options.max_pixels:
            return None
        return blob if fmt in _KEEP_ENCODING else to_png(open_image(blob, options.max_pixels))
    except ProcessingError:
        return None


def check_archive(data: bytes, label: str) -> None:
    """Refuse zip bombs: python-docx/python-pptx read every part fully into memory."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            expanded = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise ProcessingError(f"corrupt or unreadable {label}: {short_message(exc)}") from exc
    if expanded > MAX_UNZIPPED_BYTES:
        raise ProcessingError(
            f"the {label} expands to {expanded // 2**20} MiB, more than the limit of {MAX_UNZIPPED_BYTES // 2**20} MiB"
        )
