"""Turn a document's bytes into page texts and pictures with their surrounding text.

One module per format: `text`, `html` (BeautifulSoup), `pdf` (pypdfium2), `docx` (python-docx), `pptx` (python-pptx)
and `image` (single pictures); what they share is in `base`. Each module has `parse(data, fmt, options)` and imports
its library at its top, so this package imports a format's module only when a document of that format is parsed: the
API functions on Lambda, which only sniff uploads, never load pdfium, python-docx, python-pptx or BeautifulSoup.
Failures of the underlying libraries surface as ProcessingError with a short message.
"""

from __future__ import annotations

import importlib

from mmrag.errors import ProcessingError, UnsupportedFormat
from mmrag.ingest.parsers.base import ParsedDocument, ParsedImage, ParsedPage, ParseOptions, short_message
from mmrag.ingest.sniff import IMAGE_FORMATS

__all__ = ["ParseOptions", "ParsedDocument", "ParsedImage", "ParsedPage", "parse_document"]

# sniffed format -> the module of this package that parses it
_MODULES = {"text": "text", "html": "html", "pdf": "pdf", "docx": "docx", "pptx": "pptx"} | dict.fromkeys(
    IMAGE_FORMATS, "image"
)
_LABELS = {"pdf": "PDF", "docx": "DOCX", "pptx": "PPTX", "html": "HTML", "text": "text file"}


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
    module = _MODULES.get(fmt)
    if module is None:
        raise UnsupportedFormat(f"cannot parse documents of format {fmt!r}")
    parser = importlib.import_module(f"{__name__}.{module}")
    options = ParseOptions(extract_images, ocr, max_pages, max_pixels, ocr_min_chars, scan_dpi, min_image_side)
    try:
        return parser.parse(data, fmt, options)
    except ProcessingError:
        raise
    except Exception as exc:
        label = _LABELS.get(fmt, f"{fmt.upper()} image")
        raise ProcessingError(f"corrupt or unreadable {label}: {short_message(exc)}") from exc
