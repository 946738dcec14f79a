"""PDF through pypdfium2: each page's text layer, the pictures drawn on it with their bbox and the text above and below
them, and a rendered scan of each page whose text layer is too thin, for OCR."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from mmrag.errors import ProcessingError
from mmrag.ingest.images import ensure_rgb, to_png
from mmrag.ingest.parsers.base import (
    ParsedDocument,
    ParsedImage,
    ParsedPage,
    ParseOptions,
    clean_title,
    head,
    pt,
    short_message,
    tail,
)
from mmrag.text.tokens import normalize_page_text

# pdfium is not thread-safe: one document at a time in this process.
_PDFIUM_LOCK = threading.Lock()


def parse(data: bytes, fmt: str, options: ParseOptions) -> ParsedDocument:
    with _PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            if exc.err_code == pdfium_c.FPDF_ERR_PASSWORD:
                raise ProcessingError("encrypted PDF: a password is required to open it") from exc
            raise ProcessingError(f"corrupt or unreadable PDF: {short_message(exc)}") from exc
        try:
            return _PdfReader(pdf, options).read()
        finally:
            pdf.close()


def needs_ocr(page_text: str, min_chars: int) -> bool:
    """The one rule for which PDF pages are OCR'd (locally by rendering them, on AWS by Textract): a text layer with
    fewer than `min_chars` non-space characters (MMRAG_OCR_MIN_CHARS)."""
    return sum(not c.isspace() for c in page_text) < min_chars


def pages_needing_ocr(data: bytes, min_chars: int, max_pages: int) -> list[int]:
    """1-based numbers of the pages `parse` would render for OCR. Reads the text layer only: no rendering."""
    pages: list[int] = []
    with _PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError:
            return []  # the pipeline reports the unreadable PDF
        try:
            if len(pdf) > max_pages:
                return []  # the pipeline fails it with the page limit
            for index in range(len(pdf)):
                page = pdf[index]
                textpage = page.get_textpage()
                try:
                    if needs_ocr(normalize_page_text(textpage.get_text_range()), min_chars):
                        pages.append(index + 1)
                finally:
                    textpage.close()
                    page.close()
        finally:
            pdf.close()
    return pages


@dataclass
class _PdfReader:
    pdf: pdfium.PdfDocument
    options: ParseOptions
    pages: list[ParsedPage] = field(default_factory=list)
    images: list[ParsedImage] = field(default_factory=list)
    previous_text: str = ""  # text of the last page that had some, for pictures at the top of a page
    waiting_for_text: list[ParsedImage] = field(default_factory=list)  # pictures at the bottom of a page

    def read(self) -> ParsedDocument:
        count, max_pages = len(self.pdf), self.options.max_pages
        if count > max_pages:
            raise ProcessingError(f"the PDF has {count} pages, more than the limit of {max_pages}")
        for index in range(count):
            page = self.pdf[index]
            try:
                self._read_page(page, index + 1)
            finally:
                page.close()
        return ParsedDocument("pdf", self.pages, self.images, clean_title(self.pdf.get_metadata_value("Title")))

    def _read_page(self, page: pdfium.PdfPage, number: int) -> None:
        textpage = page.get_textpage()
        try:
            # get_text_range, unlike get_text_bounded, keeps all line breaks and text outside the crop box
            text = normalize_page_text(textpage.get_text_range())
            if text:
                for image in self.waiting_for_text:
                    image.text_after = head(text)
                self.waiting_for_text = []
            scan = None
            if self.options.ocr and needs_ocr(text, self.options.ocr_min_chars):
                scan = _render_page(page, self.options.scan_dpi, self.options.max_pixels)
                width, height = page.get_size()
                self._add_image(
                    ParsedImage(
                        scan,
                        number,
                        len(self.images),
                        [0.0, 0.0, pt(width), pt(height)],
                        tail(self.previous_text),
                        "",
                        is_page_scan=True,
                    )
                )
            elif self.options.extract_images:
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
            bbox = [pt(x0 - left), pt(top - y1), pt(x1 - left), pt(top - y0)]
            before = tail(normalize_page_text(above)) or tail(self.previous_text)
            after = head(normalize_page_text(below))
            self._add_image(ParsedImage(picture, number, len(self.images), bbox, before, after))

    def _picture(self, obj: pdfium.PdfImage) -> bytes | None:
        try:
            width, height = obj.get_px_size()
        except pdfium.PdfiumError:
            return None
        if min(width, height) < self.options.min_image_side or width * height > self.options.max_pixels:
            return None
        bitmap = None
        if _rendered_pixels(obj, width, height) <= self.options.max_pixels:
            try:
                bitmap = obj.get_bitmap(render=True)  # applies the soft mask, decode arrays, flips
            except (pdfium.PdfiumError, ZeroDivisionError):
                bitmap = None
        if bitmap is None:
            try:
                bitmap = obj.get_bitmap(render=False)
            except pdfium.PdfiumError:
                return None
        if bitmap.width * bitmap.height > self.options.max_pixels:
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
