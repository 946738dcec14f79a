"""A single picture (PNG, JPEG, WebP, GIF, BMP, TIFF): an empty page and the picture as it is, after the pixel check."""

from __future__ import annotations

from mmrag.ingest.images import check_pixels, image_size
from mmrag.ingest.parsers.base import ParsedDocument, ParsedImage, ParsedPage, ParseOptions


def parse(data: bytes, fmt: str, options: ParseOptions) -> ParsedDocument:
    check_pixels(image_size(data), options.max_pixels)
    return ParsedDocument(fmt, [ParsedPage(None, "")], [ParsedImage(data, None, 0, None, "", "")])
