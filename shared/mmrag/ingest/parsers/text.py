"""Plain text (and Markdown): one unpaged page, decoded from whatever encoding the bytes are in."""

from __future__ import annotations

from mmrag.ingest.parsers.base import ParsedDocument, ParsedPage, ParseOptions
from mmrag.ingest.sniff import decode_text
from mmrag.text.tokens import normalize_page_text


def parse(data: bytes, fmt: str, options: ParseOptions) -> ParsedDocument:
    return ParsedDocument("text", [ParsedPage(None, normalize_page_text(decode_text(data), join_lines=False))], [])
