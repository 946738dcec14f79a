"""HTML: the main content's visible text with block structure kept as line and paragraph breaks, and the pictures
embedded as data: URIs (remote pictures are never fetched). The encoding comes from a <meta charset> when there is one.

Main content only: the page's <main> (or its one <article>) when it has one; navigation, asides, page headers and
footers (by tag, ARIA role, or a class/id such as "navbar" or "site-footer"), and link lists ("Home | Products |
Contact") are left out, and so is a DOCTYPE with an internal subset, whose "]>" lxml would otherwise keep as text."""

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
_DECLARATIONS = re.compile(r"<\?xml[^>]*>|<!DOCTYPE(?:[^\[>]|\[.*?\])*>", re.IGNORECASE | re.DOTALL)
_BOILERPLATE_TAGS = frozenset({"nav", "aside", "menu"})
_SECTIONING = frozenset({"article", "main", "section"})
_BOILERPLATE_ROLES = frozenset(
    {"navigation", "banner", "contentinfo", "complementary", "search", "menu", "menubar", "toolbar"}
)
_BOILERPLATE_NAME = re.compile(
    r"(?:^|[-_])(?:nav|navbar|navigation|menu|menubar|breadcrumbs?|sidebar|site-header|site-footer|footer|masthead"
    r"|cookies?|cookie-banner|skip-link|share|social)(?:$|[-_])",
    re.IGNORECASE,
)
_NAMED_CONTAINERS = frozenset({"div", "section", "ul", "ol", "p", "span", "table", "header", "footer"})
_LINK_LIST_CHARS = 200  # a run of links longer than this is content (a reference list), not a menu


def parse(data: bytes, fmt: str, options: ParseOptions) -> ParsedDocument:
    soup = BeautifulSoup(_DECLARATIONS.sub("", _decode_html(data), count=2), "lxml")
    title = clean_title(soup.title.get_text()) if soup.title else None
    if title is None and soup.h1 is not None:
        title = clean_title(soup.h1.get_text(" "))
    out = TextBuilder()
    root = _main_content(soup)
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
        if name in _HTML_DROP or node.has_attr("hidden") or (node is not root and _boilerplate(node)):
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


def _main_content(soup: BeautifulSoup) -> Tag | BeautifulSoup:
    """The page's main content: its one <main> (or role="main"), else its one <article>, else the body."""
    for found in (soup.find_all(["main"]) or soup.find_all(attrs={"role": "main"}), soup.find_all("article")):
        if len(found) == 1:
            return found[0]
    return soup.body or soup


def _boilerplate(node: Tag) -> bool:
    """Navigation, asides, a page's header and footer, and link lists: not what the page is about."""
    name = node.name
    if name in _BOILERPLATE_TAGS:
        return True
    if name in ("header", "footer") and not any(p.name in _SECTIONING for p in node.parents):
        # the page's own footer, and its banner unless that is only the document's title (a plain HTML document)
        return name == "footer" or bool(node.find(["nav", "form", "ul", "ol", "menu", "img"])) or _link_list(node)
    role = node.get("role")
    if isinstance(role, str) and role.strip().lower() in _BOILERPLATE_ROLES:
        return True
    if name in _NAMED_CONTAINERS:
        names = [*(node.get("class") or []), node.get("id") or ""]
        named = any(isinstance(n, str) and _BOILERPLATE_NAME.search(n) for n in names)
        if named and not node.find(["main", "article"]):
            return True
    return name in ("div", "p", "ul", "ol", "td", "section") and _link_list(node)


def _link_list(node: Tag) -> bool:
    """Mostly links and separators, short ("Home | Products | Contact"): a menu someone built without <nav>."""
    letters = 0
    for piece in node.stripped_strings:  # stops early in a long block: every container of the page is asked
        letters += len(re.sub(r"[\W_]+", "", piece))  # separators ("|", "·", "/") do not count
        if letters > _LINK_LIST_CHARS:
            return False
    links = node.find_all("a")
    linked = sum(len(re.sub(r"[\W_]+", "", a.get_text())) for a in links)
    return len(links) >= 2 and linked >= 0.8 * letters


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
