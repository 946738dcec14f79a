"""DOCX through python-docx: paragraphs and tables (cells joined by " | ") in document order, text boxes included, and
the embedded pictures at the place they sit in the text."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from docx import Document as open_docx

from mmrag.ingest.parsers.base import (
    ParsedDocument,
    ParsedPage,
    ParseOptions,
    TextBuilder,
    check_archive,
    clean_title,
    usable_picture,
)
from mmrag.text.tokens import normalize_page_text

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
_V = "{urn:schemas-microsoft-com:vml}"
_MC = "{http://schemas.openxmlformats.org/markup-compatibility/2006}"
_R = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_DOCX_WRAPPERS = frozenset({f"{_W}sdt", f"{_W}sdtContent", f"{_W}customXml", f"{_W}smartTag"})
_DOCX_SKIP = frozenset(
    {f"{_MC}Fallback", f"{_W}pPr", f"{_W}rPr", f"{_W}sdtPr", f"{_W}tblPr", f"{_W}trPr", f"{_W}tcPr", f"{_W}sectPr"}
)


def parse(data: bytes, fmt: str, options: ParseOptions) -> ParsedDocument:
    check_archive(data, "DOCX")
    document = open_docx(io.BytesIO(data))
    related = document.part.related_parts
    out = TextBuilder()
    pictures: list[tuple[int, str]] = []  # (text offset, relationship id)
    _docx_blocks(document.element.body, out, pictures)
    if options.extract_images:
        for offset, rel_id in pictures:
            part = related.get(rel_id)
            picture = usable_picture(part.blob, options) if part is not None else None
            if picture is not None:
                out.anchors.append((offset, picture, ""))
    text = normalize_page_text(out.text(), join_lines=False)
    return ParsedDocument("docx", [ParsedPage(None, text)], out.images(), clean_title(document.core_properties.title))


def _docx_content(element: Any) -> Iterator[Any]:
    for child in element:
        if child.tag in _DOCX_WRAPPERS:
            yield from _docx_content(child)
        elif isinstance(child.tag, str):
            yield child


def _docx_blocks(container: Any, out: TextBuilder, pictures: list[tuple[int, str]]) -> None:
    for block in _docx_content(container):
        if block.tag == f"{_W}p":
            _docx_inline(block, out, pictures)
            out.separate("\n\n")
        elif block.tag == f"{_W}tbl":
            _docx_table(block, out, pictures)
            out.separate("\n\n")


def _docx_table(table: Any, out: TextBuilder, pictures: list[tuple[int, str]]) -> None:
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


def _docx_inline(element: Any, out: TextBuilder, pictures: list[tuple[int, str]]) -> None:
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
