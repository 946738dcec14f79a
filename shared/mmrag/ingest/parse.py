"""Turn a document's bytes into page texts and pictures with their surrounding text.

Formats: text, HTML, PDF (pypdfium2), DOCX (python-docx), PPTX (python-pptx) and single images. Failures of the
underlying libraries surface as ProcessingError with a short message.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import io
import math
import re
import threading
import urllib.parse
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from bs4 import BeautifulSoup, CData, Comment, Declaration, Doctype, NavigableString, ProcessingInstruction, Tag
from docx import Document as open_docx
from pptx import Presentation
from pptx.shapes.group import GroupShape
from pptx.shapes.picture import Picture

from mmrag.errors import ProcessingError, UnsupportedFormat
from mmrag.ingest.images import check_pixels, ensure_rgb, image_size, open_image, to_png
from mmrag.ingest.sniff import IMAGE_FORMATS, decode_text, sniff
from mmrag.text.tokens import normalize_page_text

CONTEXT_CHARS = 300
_EMU_PER_POINT = 12700
_KEEP_ENCODING = frozenset({"png", "jpeg", "gif", "webp"})  # embedded pictures in other formats are re-encoded as PNG
_MAX_UNZIPPED_BYTES = 1 << 30
_LABELS = {"pdf": "PDF", "docx": "DOCX", "pptx": "PPTX", "html": "HTML", "text": "text file"}
# pdfium is not thread-safe: one document at a time in this process.
_PDFIUM_LOCK = threading.Lock()


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


@dataclass
class ParsedDocument:
    fmt: str
    pages: list[ParsedPage]
    images: list[ParsedImage]
    title: str | None = None  # from PDF/DOCX/PPTX core properties or HTML <title>, when present


@dataclass
class _Limits:
    extract_images: bool
    max_pixels: int
    min_image_side: int


def parse_document(
    data: bytes,
    fmt: str,
    *,
    extract_images: bool = True,
    ocr: bool = True,
    max_pages: int = 2000,
    max_pixels: int = 40_000_000,
    ocr_min_chars: int = 16,
    scan_dpi: int = 150,
    min_image_side: int = 32,
) -> ParsedDocument:
    """Parse `data` of sniffed format `fmt`; ProcessingError when the file cannot be processed."""
    limits = _Limits(extract_images, max_pixels, min_image_side)
    try:
        if fmt == "text":
            return ParsedDocument(fmt, [ParsedPage(None, normalize_page_text(decode_text(data), join_lines=False))], [])
        if fmt == "html":
            return _parse_html(data, limits)
        if fmt == "pdf":
            return _parse_pdf(
                data, limits, ocr=ocr, max_pages=max_pages, ocr_min_chars=ocr_min_chars, scan_dpi=scan_dpi
            )
        if fmt == "docx":
            return _parse_docx(data, limits)
        if fmt == "pptx":
            return _parse_pptx(data, limits, max_pages)
        if fmt in IMAGE_FORMATS:
            check_pixels(image_size(data), max_pixels)
            return ParsedDocument(fmt, [ParsedPage(None, "")], [ParsedImage(data, None, 0, None, "", "")])
    except ProcessingError:
        raise
    except Exception as exc:
        label = _LABELS.get(fmt, f"{fmt.upper()} image")
        raise ProcessingError(f"corrupt or unreadable {label}: {_short(exc)}") from exc
    raise UnsupportedFormat(f"cannot parse documents of format {fmt!r}")


# --- shared helpers ---------------------------------------------------------------------------------------------------


class _TextBuilder:
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
                text_before=_tail(text[max(0, offset - window) : offset]) or _tail(fallback),
                text_after=_head(text[offset : offset + window]),
            )
            for position, (offset, blob, fallback) in enumerate(self.anchors)
        ]


def _tail(text: str, limit: int = CONTEXT_CHARS) -> str:
    flat = " ".join(text[-4 * limit :].split())
    if len(flat) <= limit:
        return flat
    cut = flat[-limit:]
    space = cut.find(" ")
    return cut[space + 1 :] if 0 <= space < 40 else cut  # don't start with half a word


def _head(text: str, limit: int = CONTEXT_CHARS) -> str:
    flat = " ".join(text[: 4 * limit].split())
    if len(flat) <= limit:
        return flat
    cut = flat[:limit]
    space = cut.rfind(" ")
    return cut[:space] if space > limit - 40 else cut


def _short(exc: BaseException) -> str:
    message = " ".join(str(exc).split()) or type(exc).__name__
    return message[:200]


def _clean_title(title: object) -> str | None:
    if not isinstance(title, str):
        return None
    title = " ".join(title.split())
    return title or None


def _usable_picture(blob: bytes, limits: _Limits) -> bytes | None:
    """The picture to keep for an embedded image blob, or None if it is unusable, too small or too large.

    Only the header is read for PNG/JPEG/GIF/WebP, which are kept as they are; BMP/TIFF are decoded and re-encoded as
    PNG. EMF, WMF, SVG... are dropped.
    """
    fmt = sniff(blob)
    if fmt not in IMAGE_FORMATS:
        return None
    try:
        width, height = image_size(blob)
        if min(width, height) < limits.min_image_side or width * height > limits.max_pixels:
            return None
        return blob if fmt in _KEEP_ENCODING else to_png(open_image(blob, limits.max_pixels))
    except ProcessingError:
        return None


def _check_archive(data: bytes, label: str) -> None:
    """Refuse zip bombs: python-docx/python-pptx read every part fully into memory."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            expanded = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise ProcessingError(f"corrupt or unreadable {label}: {_short(exc)}") from exc
    if expanded > _MAX_UNZIPPED_BYTES:
        raise ProcessingError(
            f"the {label} expands to {expanded // 2**20} MiB, more than the limit of {_MAX_UNZIPPED_BYTES // 2**20} MiB"
        )


# --- HTML -------------------------------------------------------------------------------------------------------------

_HTML_DROP = frozenset(
    {"script", "style", "noscript", "template", "head", "svg", "iframe", "object", "embed", "canvas"}
)
_HTML_PARAGRAPH = frozenset(
    {
        "p",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "pre",
        "table",
        "ul",
        "ol",
        "dl",
        "figure",
        "section",
        "article",
        "header",
        "footer",
        "main",
        "aside",
        "nav",
        "hr",
        "address",
        "details",
        "form",
        "fieldset",
    }
)
_HTML_LINE = frozenset({"div", "li", "tr", "dt", "dd", "figcaption", "caption", "summary", "legend", "center"})
_HTML_SKIPPED_STRINGS = (Comment, CData, ProcessingInstruction, Declaration, Doctype)
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]{1,40})""", re.IGNORECASE)
_CHARSET_ALIASES = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
}
_WHITESPACE = re.compile(r"\s+")


def _parse_html(data: bytes, limits: _Limits) -> ParsedDocument:
    soup = BeautifulSoup(_decode_html(data), "lxml")
    title = _clean_title(soup.title.get_text()) if soup.title else None
    out = _TextBuilder()
    root = soup.body or soup
    stack: list[tuple[object, bool]] = [(root, False)]
    preformatted = 0
    while stack:
        node, closing = stack.pop()
        if isinstance(node, NavigableString):
            if not isinstance(node, _HTML_SKIPPED_STRINGS):
                out.write(str(node) if preformatted else _WHITESPACE.sub(" ", str(node)))
            continue
        if not isinstance(node, Tag):
            continue
        name = node.name
        if closing:
            if name == "pre":
                preformatted -= 1
            if name in _HTML_PARAGRAPH:
                out.separate("\n\n")
            elif name in _HTML_LINE:
                out.separate("\n")
            continue
        if name in _HTML_DROP or node.has_attr("hidden"):
            continue
        if name in _HTML_PARAGRAPH:
            out.separate("\n\n")
        elif name in _HTML_LINE:
            out.separate("\n")
        elif name == "br":
            out.write("\n")
        elif name in ("td", "th") and not out.at_line_start:
            out.write(" | ")
        elif name == "img" and limits.extract_images:
            _html_image(node, out, limits)
        if name == "pre":
            preformatted += 1
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(node.contents))
    text = normalize_page_text(out.text(), join_lines=False)
    return ParsedDocument("html", [ParsedPage(None, text)], out.images(), title)


def _decode_html(data: bytes) -> str:
    declared = _META_CHARSET.search(data[:4096])
    if declared and not data.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        name = declared.group(1).decode("ascii").lower()
        try:
            encoding = codecs.lookup(_CHARSET_ALIASES.get(name, name)).name
            if not encoding.startswith("utf-16"):  # a meta tag readable as ASCII cannot be UTF-16
                return data.decode(encoding)
        except (LookupError, UnicodeDecodeError):
            pass
    return decode_text(data)


def _html_image(node: Tag, out: _TextBuilder, limits: _Limits) -> None:
    src = node.get("src")
    if not isinstance(src, str) or src.lstrip()[:5].lower() != "data:":
        return  # remote pictures are never fetched
    blob = _data_uri(src.strip())
    picture = _usable_picture(blob, limits) if blob else None
    if picture is not None:
        alt = node.get("alt")
        out.anchors.append((out.size, picture, alt if isinstance(alt, str) else ""))


def _data_uri(uri: str) -> bytes | None:
    header, sep, payload = uri[5:].partition(",")
    if not sep:
        return None
    try:
        if header.lower().endswith(";base64"):
            return base64.b64decode("".join(payload.split()) + "==", validate=False)
        return urllib.parse.unquote_to_bytes(payload)
    except (binascii.Error, ValueError):
        return None


# --- PDF --------------------------------------------------------------------------------------------------------------


def _parse_pdf(
    data: bytes, limits: _Limits, *, ocr: bool, max_pages: int, ocr_min_chars: int, scan_dpi: int
) -> ParsedDocument:
    with _PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            if exc.err_code == pdfium_c.FPDF_ERR_PASSWORD:
                raise ProcessingError("encrypted PDF: a password is required to open it") from exc
            raise ProcessingError(f"corrupt or unreadable PDF: {_short(exc)}") from exc
        try:
            return _PdfReader(pdf, limits, ocr=ocr, ocr_min_chars=ocr_min_chars, scan_dpi=scan_dpi).read(max_pages)
        finally:
            pdf.close()


@dataclass
class _PdfReader:
    pdf: pdfium.PdfDocument
    limits: _Limits
    ocr: bool
    ocr_min_chars: int
    scan_dpi: int
    pages: list[ParsedPage] = field(default_factory=list)
    images: list[ParsedImage] = field(default_factory=list)
    previous_text: str = ""  # text of the last page that had some, for pictures at the top of a page
    waiting_for_text: list[ParsedImage] = field(default_factory=list)  # pictures at the bottom of a page

    def read(self, max_pages: int) -> ParsedDocument:
        count = len(self.pdf)
        if count > max_pages:
            raise ProcessingError(f"the PDF has {count} pages, more than the limit of {max_pages}")
        for index in range(count):
            page = self.pdf[index]
            try:
                self._read_page(page, index + 1)
            finally:
                page.close()
        return ParsedDocument("pdf", self.pages, self.images, _clean_title(self.pdf.get_metadata_value("Title")))

    def _read_page(self, page: pdfium.PdfPage, number: int) -> None:
        textpage = page.get_textpage()
        try:
            # get_text_range, unlike get_text_bounded, keeps all line breaks and text outside the crop box
            text = normalize_page_text(textpage.get_text_range())
            if text:
                for image in self.waiting_for_text:
                    image.text_after = _head(text)
                self.waiting_for_text = []
            scan = None
            if self.ocr and sum(not c.isspace() for c in text) < self.ocr_min_chars:
                scan = _render_page(page, self.scan_dpi, self.limits.max_pixels)
                width, height = page.get_size()
                self._add_image(
                    ParsedImage(
                        scan,
                        number,
                        len(self.images),
                        [0.0, 0.0, _pt(width), _pt(height)],
                        _tail(self.previous_text),
                        "",
                        is_page_scan=True,
                    )
                )
            elif self.limits.extract_images:
                self._extract_images(page, textpage, number)
        finally:
            textpage.close()
        self.pages.append(ParsedPage(number, text, scan))
        if text:
            self.previous_text = text

    def _add_image(self, image: ParsedImage) -> None:
        self.images.append(image)
        if not image.text_after:
            self.waiting_for_text.append(image)

    def _extract_images(self, page: pdfium.PdfPage, textpage: pdfium.PdfTextPage, number: int) -> None:
        left, bottom, right, top = page.get_bbox()
        for obj in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE]):
            picture = self._picture(obj)
            if picture is None:
                continue
            x0, y0, x1, y1 = _page_bounds(obj)
            above = textpage.get_text_bounded(left=left, bottom=y1, right=right, top=top) if y1 < top else ""
            below = textpage.get_text_bounded(left=left, bottom=bottom, right=right, top=y0) if y0 > bottom else ""
            bbox = [_pt(x0 - left), _pt(top - y1), _pt(x1 - left), _pt(top - y0)]
            before = _tail(normalize_page_text(above)) or _tail(self.previous_text)
            after = _head(normalize_page_text(below))
            self._add_image(ParsedImage(picture, number, len(self.images), bbox, before, after))

    def _picture(self, obj: pdfium.PdfImage) -> bytes | None:
        try:
            width, height = obj.get_px_size()
        except pdfium.PdfiumError:
            return None
        if min(width, height) < self.limits.min_image_side or width * height > self.limits.max_pixels:
            return None
        bitmap = None
        if _rendered_pixels(obj, width, height) <= self.limits.max_pixels:
            try:
                bitmap = obj.get_bitmap(render=True)  # applies the soft mask, decode arrays, flips
            except (pdfium.PdfiumError, ZeroDivisionError):
                bitmap = None
        if bitmap is None:
            try:
                bitmap = obj.get_bitmap(render=False)
            except pdfium.PdfiumError:
                return None
        if bitmap.width * bitmap.height > self.limits.max_pixels:
            return None
        return to_png(ensure_rgb(bitmap.to_pil()))


def _rendered_pixels(obj: pdfium.PdfImage, width: int, height: int) -> float:
    """Pixels get_bitmap(render=True) would allocate: it renders at native resolution along the most squashed axis, so
    an image drawn very distorted would be rendered huge."""
    try:
        left, bottom, right, top = obj.get_bounds()
    except pdfium.PdfiumError:
        return math.inf
    content_w, content_h = abs(right - left), abs(top - bottom)
    if content_w <= 0 or content_h <= 0:
        return math.inf
    if (width < height) != (content_w < content_h):
        width, height = height, width
    scale = max(width / content_w, height / content_h)
    return content_w * scale * content_h * scale


def _page_bounds(obj: pdfium.PdfObject) -> tuple[float, float, float, float]:
    """Bounds of a page object in page space, also for objects nested in Form XObjects."""
    left, bottom, right, top = obj.get_bounds()
    container = obj.container
    while container is not None:
        matrix = container.get_matrix()
        corners = [matrix.on_point(x, y) for x in (left, right) for y in (bottom, top)]
        xs, ys = [x for x, _ in corners], [y for _, y in corners]
        left, bottom, right, top = min(xs), min(ys), max(xs), max(ys)
        container = container.container
    return left, bottom, right, top


def _render_page(page: pdfium.PdfPage, dpi: int, max_pixels: int) -> bytes:
    width, height = page.get_size()
    scale = dpi / 72
    pixels = width * scale * height * scale
    if pixels > max_pixels:
        scale *= math.sqrt(max_pixels / pixels)
    while math.ceil(width * scale) * math.ceil(height * scale) > max_pixels and scale > 1e-3:
        scale *= 0.99  # pdfium rounds the bitmap size up
    bitmap = page.render(scale=scale)
    return to_png(ensure_rgb(bitmap.to_pil()))


def _pt(value: float) -> float:
    return round(value, 2)


# --- DOCX -------------------------------------------------------------------------------------------------------------

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
_V = "{urn:schemas-microsoft-com:vml}"
_MC = "{http://schemas.openxmlformats.org/markup-compatibility/2006}"
_R = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_DOCX_WRAPPERS = frozenset({f"{_W}sdt", f"{_W}sdtContent", f"{_W}customXml", f"{_W}smartTag"})
_DOCX_SKIP = frozenset(
    {f"{_MC}Fallback", f"{_W}pPr", f"{_W}rPr", f"{_W}sdtPr", f"{_W}tblPr", f"{_W}trPr", f"{_W}tcPr", f"{_W}sectPr"}
)


def _parse_docx(data: bytes, limits: _Limits) -> ParsedDocument:
    _check_archive(data, "DOCX")
    document = open_docx(io.BytesIO(data))
    related = document.part.related_parts
    out = _TextBuilder()
    pictures: list[tuple[int, str]] = []  # (text offset, relationship id)
    _docx_blocks(document.element.body, out, pictures)
    if limits.extract_images:
        for offset, rel_id in pictures:
            part = related.get(rel_id)
            picture = _usable_picture(part.blob, limits) if part is not None else None
            if picture is not None:
                out.anchors.append((offset, picture, ""))
    text = normalize_page_text(out.text(), join_lines=False)
    return ParsedDocument("docx", [ParsedPage(None, text)], out.images(), _clean_title(document.core_properties.title))


def _docx_content(element: Any) -> Iterator[Any]:
    for child in element:
        if child.tag in _DOCX_WRAPPERS:
            yield from _docx_content(child)
        elif isinstance(child.tag, str):
            yield child


def _docx_blocks(container: Any, out: _TextBuilder, pictures: list[tuple[int, str]]) -> None:
    for block in _docx_content(container):
        if block.tag == f"{_W}p":
            _docx_inline(block, out, pictures)
            out.separate("\n\n")
        elif block.tag == f"{_W}tbl":
            _docx_table(block, out, pictures)
            out.separate("\n\n")


def _docx_table(table: Any, out: _TextBuilder, pictures: list[tuple[int, str]]) -> None:
    for row in _docx_content(table):
        if row.tag != f"{_W}tr":
            continue
        out.separate("\n")
        first = True
        for cell in _docx_content(row):
            if cell.tag != f"{_W}tc":
                continue
            if not first:
                out.write(" | ")
            first = False
            cell_start = out.size
            for block in _docx_content(cell):
                if block.tag == f"{_W}p":
                    if out.size > cell_start and not out.at_line_start:
                        out.write(" ")  # between the paragraphs of one cell
                    _docx_inline(block, out, pictures)
                elif block.tag == f"{_W}tbl":
                    _docx_table(block, out, pictures)
        out.separate("\n")


def _docx_inline(element: Any, out: _TextBuilder, pictures: list[tuple[int, str]]) -> None:
    """Text, tabs, breaks and pictures of a paragraph in document order (text boxes included, fallbacks skipped)."""
    for child in element:
        tag = child.tag
        if not isinstance(tag, str) or tag in _DOCX_SKIP:
            continue
        if tag == f"{_W}t":
            out.write(child.text or "")
        elif tag == f"{_W}tab":
            out.write("\t")
        elif tag in (f"{_W}br", f"{_W}cr"):
            out.write("\n")
        elif tag == f"{_W}noBreakHyphen":
            out.write("-")
        elif tag == f"{_A}blip" and child.get(f"{_R}embed"):
            pictures.append((out.size, child.get(f"{_R}embed")))
        elif tag == f"{_V}imagedata" and child.get(f"{_R}id"):
            pictures.append((out.size, child.get(f"{_R}id")))
        elif tag == f"{_W}p":  # a paragraph inside a text box
            out.separate("\n")
            _docx_inline(child, out, pictures)
            out.separate("\n")
        else:
            _docx_inline(child, out, pictures)


# --- PPTX -------------------------------------------------------------------------------------------------------------


@dataclass
class _SlideItem:
    top: float  # points
    left: float
    bottom: float
    text: str = ""
    picture: bytes | None = None
    bbox: list[float] | None = None


def _parse_pptx(data: bytes, limits: _Limits, max_pages: int) -> ParsedDocument:
    _check_archive(data, "PPTX")
    presentation = Presentation(io.BytesIO(data))
    slides = list(presentation.slides)
    if len(slides) > max_pages:
        raise ProcessingError(f"the presentation has {len(slides)} slides, more than the limit of {max_pages}")
    pages: list[ParsedPage] = []
    images: list[ParsedImage] = []
    for number, slide in enumerate(slides, start=1):
        items = sorted(_slide_items(slide.shapes, (1.0, 1.0, 0.0, 0.0), limits), key=lambda i: (i.top, i.left))
        texts = [item for item in items if item.text]
        body = "\n\n".join(item.text for item in texts)
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = slide.notes_slide.notes_text_frame.text.strip()
            if notes:
                body = f"{body}\n\n{notes}" if body else notes
        pages.append(ParsedPage(number, normalize_page_text(body.replace("\v", "\n"), join_lines=False)))
        for item in items:
            if item.picture is None:
                continue
            middle = (item.top + item.bottom) / 2
            above = "\n".join(t.text for t in texts if (t.top + t.bottom) / 2 <= middle)
            below = "\n".join(t.text for t in texts if (t.top + t.bottom) / 2 > middle)
            images.append(ParsedImage(item.picture, number, len(images), item.bbox, _tail(above), _head(below)))
    return ParsedDocument("pptx", pages, images, _clean_title(presentation.core_properties.title))


def _slide_items(shapes: Any, transform: tuple[float, float, float, float], limits: _Limits) -> Iterator[_SlideItem]:
    """Texts and pictures of shapes, recursing into groups; `transform` maps group coordinates to slide EMUs."""
    scale_x, scale_y, shift_x, shift_y = transform
    for shape in shapes:
        x = (shape.left or 0) * scale_x + shift_x
        y = (shape.top or 0) * scale_y + shift_y
        width, height = (shape.width or 0) * scale_x, (shape.height or 0) * scale_y
        top, left, bottom = y / _EMU_PER_POINT, x / _EMU_PER_POINT, (y + height) / _EMU_PER_POINT
        if isinstance(shape, GroupShape):
            yield from _slide_items(shape.shapes, _group_transform(shape, transform), limits)
        elif isinstance(shape, Picture):
            if not limits.extract_images:
                continue
            try:
                blob = shape.image.blob
            except (KeyError, ValueError, AttributeError):
                continue  # linked, not embedded
            picture = _usable_picture(blob, limits)
            if picture is not None:
                bbox = [_pt(left), _pt(top), _pt((x + width) / _EMU_PER_POINT), _pt(bottom)]
                yield _SlideItem(top, left, bottom, picture=picture, bbox=bbox)
        else:
            text = _shape_text(shape)
            if text:
                yield _SlideItem(top, left, bottom, text=text)


def _shape_text(shape: Any) -> str:
    if getattr(shape, "has_text_frame", False):
        return "\n".join(p.text for p in shape.text_frame.paragraphs).strip()
    if getattr(shape, "has_table", False):
        rows = (" | ".join(cell.text.strip() for cell in row.cells) for row in shape.table.rows)
        return "\n".join(row for row in rows if row.strip(" |"))
    return ""


def _group_transform(group: GroupShape, outer: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    xfrm = group._element.grpSpPr.xfrm
    if xfrm is None or xfrm.off is None or xfrm.ext is None:
        return outer
    child_offset = xfrm.find(f"{_A}chOff")
    child_extent = xfrm.find(f"{_A}chExt")
    if child_offset is None or child_extent is None:
        return outer
    ch_x, ch_y = int(child_offset.get("x", 0)), int(child_offset.get("y", 0))
    ch_cx, ch_cy = int(child_extent.get("cx", 0)), int(child_extent.get("cy", 0))
    sx = xfrm.ext.cx / ch_cx if ch_cx else 1.0
    sy = xfrm.ext.cy / ch_cy if ch_cy else 1.0
    # group space -> parent space: x' = off + (x - chOff) * ext/chExt, then the outer transform
    scale_x, scale_y, shift_x, shift_y = outer
    return (
        sx * scale_x,
        sy * scale_y,
        (xfrm.off.x - ch_x * sx) * scale_x + shift_x,
        (xfrm.off.y - ch_y * sy) * scale_y + shift_y,
    )
