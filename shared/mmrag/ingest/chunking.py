"""Sentence-aware chunking with overlap, measured in the token unit of `mmrag.text.tokens`."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

from mmrag.text.tokens import is_cjk, sentence_spans, token_spans

MIN_CHUNK_SIZE = 16
# How far (in tokens) a cut inside a long sentence may move to land on whitespace instead of inside "don't" or "a.b".
_MAX_CUT_SHIFT = 16
# A run of letters longer than this counts as one token per this many characters, so that one endless "word" (a
# megabyte of "aaaa", base64 pasted as text) is cut into chunks of chunk_size tokens like any other text.
MAX_TOKEN_CHARS = 64


@dataclass
class TextPiece:
    text: str
    token_count: int
    start: int  # character offsets into the chunked text: text[start:end] == piece.text
    end: int


def chunk_text(text: str, chunk_size: int = 512, overlap: int = 50) -> list[TextPiece]:
    """Pack whole sentences into chunks of at most `chunk_size` tokens, consecutive chunks sharing about `overlap`.

    The overlap is made of the previous chunk's trailing whole sentences when they fit in `overlap` tokens, otherwise
    of its trailing tokens. A sentence longer than `chunk_size` is cut between tokens (between words, or between CJK
    characters); so is a run of letters longer than MAX_TOKEN_CHARS, every MAX_TOKEN_CHARS characters.
    """
    if chunk_size < MIN_CHUNK_SIZE:
        raise ValueError(f"chunk_size must be at least {MIN_CHUNK_SIZE}, got {chunk_size}")
    if not 0 <= overlap < chunk_size:
        raise ValueError(f"overlap must be >= 0 and < chunk_size ({chunk_size}), got {overlap}")

    tokens = _bounded(token_spans(text))
    if not tokens:
        return []
    starts = [s for s, _ in tokens]
    units = _units(text, tokens, starts, chunk_size, overlap)

    pieces: list[TextPiece] = []
    first = 0  # index of the first unit not yet in any chunk
    prev_units: list[tuple[int, int]] = []
    while first < len(units):
        begin = _overlap_start(text, tokens, prev_units, units[first], chunk_size, overlap)
        end_unit = first
        while end_unit < len(units) and units[end_unit][1] - begin <= chunk_size:
            end_unit += 1
        a, b = begin, units[end_unit - 1][1]
        start, end = tokens[a][0], tokens[b - 1][1]
        pieces.append(TextPiece(text=text[start:end], token_count=b - a, start=start, end=end))
        prev_units = units[first:end_unit]
        first = end_unit
    return pieces


def _bounded(tokens: list[tuple[int, int]]) -> list[tuple[int, int]]:
    if all(e - s <= MAX_TOKEN_CHARS for s, e in tokens):
        return tokens
    out: list[tuple[int, int]] = []
    for s, e in tokens:
        out.extend((a, min(a + MAX_TOKEN_CHARS, e)) for a in range(s, e, MAX_TOKEN_CHARS))
    return out


def _units(
    text: str, tokens: list[tuple[int, int]], starts: list[int], chunk_size: int, overlap: int
) -> list[tuple[int, int]]:
    """Sentences as [first, last) token ranges, long ones cut into pieces that leave room for the overlap."""
    units: list[tuple[int, int]] = []
    for s, e in sentence_spans(text):
        a, b = bisect_left(starts, s), bisect_left(starts, e)
        if b - a <= chunk_size:
            units.append((a, b))
            continue
        step = chunk_size - overlap
        while b - a > chunk_size:
            cut = _cut_backward(text, tokens, a + step, a + 1)
            units.append((a, cut))
            a = cut
        units.append((a, b))
    return units


def _overlap_start(
    text: str,
    tokens: list[tuple[int, int]],
    prev_units: list[tuple[int, int]],
    nxt: tuple[int, int],
    chunk_size: int,
    overlap: int,
) -> int:
    """First token of the next chunk: its own first unit, preceded by the overlap taken from the previous chunk."""
    budget = min(overlap, chunk_size - (nxt[1] - nxt[0]))
    if not prev_units or budget <= 0:
        return nxt[0]
    begin = nxt[0]
    for a, _ in reversed(prev_units):
        if nxt[0] - a > budget:
            break
        begin = a
    if begin == nxt[0]:
        # not even the last sentence fits: share trailing tokens, starting on a word boundary
        begin = _cut_forward(text, tokens, nxt[0] - budget, nxt[0])
    return begin


def _cut_backward(text: str, tokens: list[tuple[int, int]], index: int, floor: int) -> int:
    """Token index in [floor, index], nearest to `index`, where a cut does not split a word (else `index`)."""
    for i in range(index, max(floor, index - _MAX_CUT_SHIFT) - 1, -1):
        if _clean_cut(text, tokens, i):
            return i
    return index


def _cut_forward(text: str, tokens: list[tuple[int, int]], index: int, limit: int) -> int:
    """Token index in [index, limit), nearest to `index`, where a cut does not split a word (else `index`)."""
    for i in range(index, min(limit, index + _MAX_CUT_SHIFT)):
        if _clean_cut(text, tokens, i):
            return i
    return index


def _clean_cut(text: str, tokens: list[tuple[int, int]], i: int) -> bool:
    prev_end, start = tokens[i - 1][1], tokens[i][0]
    return prev_end < start or is_cjk(text[start]) or is_cjk(text[prev_end - 1])
