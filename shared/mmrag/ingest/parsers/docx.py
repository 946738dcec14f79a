"""DOCX through python-docx: paragraphs and tables (cells joined by " | ") in document order, text boxes included, and
the embedded pictures at the place they sit in the text.

Positions a reader can follow: each heading (a "Heading N" or "Title" style, or an outline level) starts a new section
— a page without a number whose `section` is the heading path ("Setup > Network") — and every page lists where its
paragraphs start with their 1-based number in the document (non-empty paragraphs and tables, as Word shows them)."""

from __future__ import annotations

import io
import re
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


_HEADING_STYLE = re.compile(r"heading\s*([1-9])", re.IGNORECASE)


def parse(data: bytes, fmt: str, options: ParseOptions) -> ParsedDocument:
    check_archive(data, "DOCX")
    document = open_docx(io.BytesIO(data))
    related = document.part.related_parts
    out = TextBuilder()
    pictures: list[tuple[int, str]] = []  # (text offset, relationship id)
    blocks: list[tuple[int, int, int | None]] = []  # (start, end, heading level) of each top-level block
    _docx_blocks(document.element.body, out, pictures, blocks, _heading_levels(document))
    if options.extract_images:
        for offset, rel_id in pictures:
            part = related.get(rel_id)
            picture = usable_picture(part.blob, options) if part is not None else None
            if picture is not None:
                out.anchors.append((offset, picture, ""))
    pages = _sections(out.text(), blocks)
    return ParsedDocument("docx", pages, out.images(), clean_title(document.core_properties.title))


def _sections(raw: str, blocks: list[tuple[int, int, int | None]]) -> list[ParsedPage]:
    """One page per heading section, with its heading path and where its paragraphs start."""
    pages: list[ParsedPage] = []
    path: list[tuple[int, str]] = []  # (level, heading) from the outermost heading in
    parts: list[str] = []
    starts: list[tuple[int, int]] = []
    size, number, has_body = 0, 0, False

    def flush() -> None:
        if parts:
            section = " > ".join(h for _, h in path) or None
            pages.append(ParsedPage(None, "\n\n".join(parts), section=section, paragraphs=list(starts)))
        parts.clear()
        starts.clear()

    for start, end, level in blocks:
        text = normalize_page_text(raw[start:end], join_lines=False)
        if not text:
            continue
        number += 1
        if level is not None:
            if has_body:  # a heading right under another one stays with it: no section of a title alone
                flush()
                size, has_body = 0, False
            while path and path[-1][0] >= level:
                path.pop()
            path.append((level, " ".join(text.split())[:200]))
        else:
            has_body = True
        starts.append((size, number))
        parts.append(text)
        size += len(text) + 2
    flush()
    return pages or [ParsedPage(None, "")]


def _heading_levels(document: Any) -> dict[str, int]:
    """style id -> heading level: "Title" is 0, "Heading N" is N, else the style's outline level + 1."""
    levels: dict[str, int] = {}
    for style in document.styles:
        style_id, name = getattr(style, "style_id", None), (getattr(style, "name", "") or "")
        if not style_id:
            continue
        m = _HEADING_STYLE.fullmatch(name.strip())
        if name.strip().lower() == "title":
            levels[style_id] = 0
        elif m:
            levels[style_id] = int(m.group(1))
        else:
            outline = _outline_level(style.element.find(f"{_W}pPr"))
            if outline is not None:
                levels[style_id] = outline
    return levels


def _outline_level(ppr: Any) -> int | None:
    node = ppr.find(f"{_W}outlineLvl") if ppr is not None else None
    value = node.get(f"{_W}val") if node is not None else None
    # level 9 is Word's "body text"
    return int(value) + 1 if value is not None and value.isdigit() and int(value) < 9 else None


def _paragraph_level(paragraph: Any, levels: dict[str, int]) -> int | None:
    ppr = paragraph.find(f"{_W}pPr")
    own = _outline_level(ppr)
    if own is not None:
        return own
    style = ppr.find(f"{_W}pStyle") if ppr is not None else None
    return levels.get(style.get(f"{_W}val")) if style is not None else None


def _docx_content(element: Any) -> Iterator[Any]:
    for child in element:
        if child.tag in _DOCX_WRAPPERS:
            yield from _docx_content(child)
        elif isinstance(child.tag, str):
            yield child


def _docx_blocks(
    container: Any,
    out: TextBuilder,
    pictures: list[tuple[int, str]],
    blocks: list[tuple[int, int, int | None]],
    levels: dict[str, int],
) -> None:
    for block in _docx_content(container):
        start = out.size
        if block.tag == f"{_W}p":
            _docx_inline(block, out, pictures)
            blocks.append((start, out.size, _paragraph_level(block, levels)))
            out.separate("\n\n")
        elif block.tag == f"{_W}tbl":
            _docx_table(block, out, pictures)
            blocks.append((start, out.size, None))
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
