"""HTML: the visible text with block structure kept as line and paragraph breaks, and the pictures embedded as data:
URIs (remote pictures are never fetched). The encoding comes from a <meta charset> when there is one."""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import urllib.parse

from bs4 import BeautifulSoup, CData, Comment, Declaration, Doctype, NavigableString, ProcessingInstruction, Tag

from mmrag.ingest.parsers.base import (
    ParsedDocument,
    ParsedPage,
    ParseOptions,
    TextBuilder,
    clean_title,
    usable_picture,
)
from mmrag.ingest.sniff import decode_text
from mmrag.text.tokens import normalize_page_text

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


def parse(data: bytes, fmt: str, options: ParseOptions) -> ParsedDocument:
    soup = BeautifulSoup(_decode_html(data), "lxml")
    title = clean_title(soup.title.get_text()) if soup.title else None
    out = TextBuilder()
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
        elif name == "img" and options.extract_images:
            _html_image(node, out, options)
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


def _html_image(node: Tag, out: TextBuilder, options: ParseOptions) -> None:
    src = node.get("src")
    if not isinstance(src, str) or src.lstrip()[:5].lower() != "data:":
        return  # remote pictures are never fetched
    blob = _data_uri(src.strip())
    picture = usable_picture(blob, options) if blob else None
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
