"""Token counting, sentence splitting and clean-up of PDF-extracted text (English and Chinese)."""

from __future__ import annotations

import re

# Ideographs (BMP and supplementary planes), kana and hangul: one token per character.
_CJK = (
    r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
    r"\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f\u1100-\u11ff\u3130-\u318f\uac00-\ud7af"
)
_CJK_RE = re.compile(rf"[{_CJK}]")
# A run of letters/digits of any non-CJK script (with combining accents) is one token; so is any other non-space char.
_TOKEN = re.compile(rf"(?:[^\W_{_CJK}]++[\u0300-\u036f]*+)++|[{_CJK}]|\S")

_CLOSERS = "\"')\\]}’”»」』）》】〉〕"
_BOUNDARY = re.compile(
    rf"(?P<para>\n[^\S\n]*\n)"
    rf"|(?P<west>(?<![.!?;])[.!?;]++)[{_CLOSERS}]*+(?=\s|\Z)"
    rf"|[。！？；｡]++[{_CLOSERS}]*+"
    rf"|(?<=[{_CJK}])(?:[!?;…⋯])++[{_CLOSERS}]*+"
)
_NON_SPACE = re.compile(r"\S")
_OPENERS = "\"'([{“‘«「『（《【"
# A period after these never ends a sentence.
_ABBREVIATIONS = frozenset(
    (
        "e.g",
        "i.e",
        "cf",
        "vs",
        "viz",
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "sr",
        "jr",
        "st",
        "mt",
        "rev",
        "hon",
        "gen",
        "gov",
        "sen",
        "approx",
        "dept",
        "esp",
        "incl",
        "resp",
        "ca",
        "al",
        "a.m",
        "p.m",
        "u.s",
        "u.k",
    )
)
# ...nor after these when a number follows ("Fig. 3", "No. 5", "Jan. 2").
_NUMERIC_ABBREVIATIONS = frozenset(
    (
        "no",
        "nos",
        "fig",
        "figs",
        "p",
        "pp",
        "vol",
        "vols",
        "sec",
        "ch",
        "chap",
        "eq",
        "eqs",
        "ref",
        "art",
        "para",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
    )
)
_DOTTED = re.compile(r"(?:[a-z]\.)+[a-z]")


def count_tokens(text: str) -> int:
    """Count tokens in our own model-independent unit.

    Each run of letters/digits of a non-CJK script (Latin, Cyrillic...) is one token, each CJK ideograph, kana or hangul
    syllable is one token, and each other non-space character (punctuation, symbol, underscore) is one token.
    "Hello, 世界!" is 5 tokens: "Hello", ",", "世", "界", "!".
    """
    return sum(1 for _ in _TOKEN.finditer(text))


def token_spans(text: str) -> list[tuple[int, int]]:
    """Character [start, end) of every token of `text`, in order (see `count_tokens`)."""
    return [m.span() for m in _TOKEN.finditer(text)]


def is_cjk(ch: str) -> bool:
    return bool(_CJK_RE.match(ch))


def split_sentences(text: str) -> list[str]:
    """Split into sentences that keep their closing punctuation; blank lines always end a sentence."""
    return [text[s:e] for s, e in sentence_spans(text)]


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """[start, end) of each sentence, without surrounding whitespace; together they cover all non-space text."""
    cuts: list[int] = []
    last = 0
    for m in _BOUNDARY.finditer(text):
        if m.group("para") is not None:
            cuts.append(m.start())
        elif m.group("west") is None or _ends_sentence(text, m.start(), m.group("west"), m.end(), last):
            cuts.append(m.end())
        else:
            continue
        last = cuts[-1]
    cuts.append(len(text))

    spans: list[tuple[int, int]] = []
    start = 0
    for cut in cuts:
        first = _NON_SPACE.search(text, start, cut)
        if first is not None:
            segment = text[first.start() : cut]
            spans.append((first.start(), first.start() + len(segment.rstrip())))
        start = cut
    return spans


def _ends_sentence(text: str, punct_start: int, punct: str, end: int, floor: int) -> bool:
    if punct.strip(".") or len(text) == end:
        return True  # "!", "?", ";" (possibly mixed with dots), or the end of the text
    nxt = _NON_SPACE.search(text, end)
    if nxt is None:
        return True
    next_char = nxt.group()
    if next_char.islower():
        return False  # "e.g. foo", "... and then"
    if punct != ".":
        return True
    word_start = 1 + max(
        floor - 1,
        text.rfind(" ", floor, punct_start),
        text.rfind("\n", floor, punct_start),
        text.rfind("\t", floor, punct_start),
    )
    word = text[word_start:punct_start].lstrip(_OPENERS)
    lower = word.lower()
    if lower in _ABBREVIATIONS or _DOTTED.fullmatch(lower):
        return False
    if lower in _NUMERIC_ABBREVIATIONS and next_char.isdigit():
        return False
    if len(word) == 1 and word.isupper():
        return False  # an initial: "J. Smith"
    at_line_start = word_start == 0 or text[word_start - 1] == "\n"
    # "2. Install the package" at the start of a line is a list marker, not a sentence
    return not (at_line_start and word.isdigit() and len(word) <= 3)


_LINE_BREAKS = re.compile(r"\r\n?|[\f\v\x1c-\x1e\x85\u2028\u2029]")
_SPACES = re.compile(r"[\t\u00a0\u2000-\u200a\u202f\u205f\u3000]")
_DROP = dict.fromkeys(
    [
        *range(0x00, 0x02),
        *range(0x03, 0x0A),
        *range(0x0B, 0x20),
        *range(0x7F, 0xA0),
        0x200B,
        0x200E,
        0x200F,
        *range(0x202A, 0x202F),
        *range(0x2060, 0x2065),
        0xFEFF,
        *range(0xFFF9, 0xFFFC),
        0xFFFF,
    ]
)
_LIGATURES = {0xFB00: "ff", 0xFB01: "fi", 0xFB02: "fl", 0xFB03: "ffi", 0xFB04: "ffl", 0xFB05: "st", 0xFB06: "st"}
_CLEAN = str.maketrans({**_DROP, **_LIGATURES})
# pdfium marks a hyphen it found at a line end as \x02 (or U+FFFE); U+00AD is a soft hyphen.
_SOFT_HYPHEN = re.compile(r"[\x02\ufffe\u00ad] *(\n?) *")
_MULTI_SPACE = re.compile(r" {2,}")
_SPACE_AROUND_NEWLINE = re.compile(r" *\n *")
_MANY_NEWLINES = re.compile(r"\n{3,}")
_WIDE = re.compile(rf"[{_CJK}\u3000-\u303f\uff00-\uff65]")
# Lines are only judged "short" (a heading, a paragraph's last line) on pages with enough lines to know their width.
_MIN_LINES_FOR_WIDTH = 5
_MIN_TYPICAL_WIDTH = 40
_SHORT_LINE_RATIO = 0.5
_FULLWIDTH_PUNCT = re.compile(r"[\u3000-\u303f\uff00-\uff65]")
_SENTENCE_END = frozenset(".!?。！？")
_LATIN_BEFORE_JOIN = frozenset(",;:)]}%\"'”’")
_LATIN_AFTER_JOIN = frozenset("([{\"'“‘")


def normalize_page_text(text: str, *, join_lines: bool = True) -> str:
    """Clean text extracted from a PDF page.

    Unifies line breaks, drops control/format characters (keeping newlines) and form feeds, expands ligatures, collapses
    runs of spaces and keeps blank-line paragraph breaks. With `join_lines`, hard-wrapped lines are re-joined: a newline
    between two Latin words becomes a space, between two CJK characters it disappears, and "exam-\\nple" becomes
    "example". Other newlines (after a sentence end, before "$ command"...) are kept.
    """
    text = _LINE_BREAKS.sub("\n", text)
    text = _SPACES.sub(" ", text).translate(_CLEAN)
    text = _SOFT_HYPHEN.sub(_soft_hyphen, text)
    text = _MULTI_SPACE.sub(" ", text)
    text = _SPACE_AROUND_NEWLINE.sub("\n", text)
    text = _MANY_NEWLINES.sub("\n\n", text)
    if join_lines:
        text = _join_hard_wraps(text)
    return text.strip()


def _soft_hyphen(m: re.Match[str]) -> str:
    end = m.end()
    following = m.string[end] if end < len(m.string) else ""
    if following.islower() or m.group()[0] == "\u00ad":
        return ""
    return "-" + m.group(1)


def _join_hard_wraps(text: str) -> str:
    lines = text.split("\n")
    short = _short_line_width(lines)
    parts = [lines[0]]
    for prev, line in zip(lines, lines[1:], strict=False):
        if not prev or not line:
            parts.append("\n")
        elif prev[-1] == "-" and prev[-2:-1].isalpha() and line[0].isalnum():
            # "exam-\nple" -> "example", but "PDF-\nBased" -> "PDF-Based"
            if line[0].islower():
                parts[-1] = prev[:-1]
        elif short and _width(prev) < short:
            parts.append("\n")
        else:
            parts.append(_line_joiner(prev[-1], line[0]))
        parts.append(line)
    return "".join(parts)


def _width(line: str) -> int:
    return len(line) + len(_WIDE.findall(line))


def _short_line_width(lines: list[str]) -> float | None:
    widths = sorted(_width(line) for line in lines if line)
    if len(widths) < _MIN_LINES_FOR_WIDTH:
        return None
    typical = widths[int(0.8 * (len(widths) - 1))]
    return typical * _SHORT_LINE_RATIO if typical >= _MIN_TYPICAL_WIDTH else None


def _line_joiner(before: str, after: str) -> str:
    if before in _SENTENCE_END:
        return "\n"
    cjk_before, cjk_after = is_cjk(before), is_cjk(after)
    punct_before, punct_after = bool(_FULLWIDTH_PUNCT.match(before)), bool(_FULLWIDTH_PUNCT.match(after))
    if (cjk_before or punct_before) and (cjk_after or punct_after):
        return ""
    if cjk_before or cjk_after or punct_before or punct_after:
        other = after if (cjk_before or punct_before) else before
        if other.isalnum():
            return "" if punct_before or punct_after else " "
        return "\n"
    latin_before = before.isalnum() or before in _LATIN_BEFORE_JOIN
    latin_after = after.isalnum() or after in _LATIN_AFTER_JOIN
    return " " if latin_before and latin_after else "\n"
