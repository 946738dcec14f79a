"""The part of a candidate a cross-encoder reads: the run of whole sentences that holds most of the query's terms.

A cross-encoder's cost grows with every word piece it reads, and a chunk is longer than the passage that answers a
question; reading the best window instead of the chunk's head keeps the answer in view at a fraction of the cost.
"""

from __future__ import annotations

from mmrag.text.analyzer import tokens as analyze
from mmrag.text.tokens import count_tokens, sentence_spans, token_spans


def best_window(query: str, text: str, max_tokens: int) -> str:
    """Whole sentences of `text`, at most `max_tokens` tokens (a Latin word or one CJK character each), chosen to
    hold the most distinct query terms; among equals, a window that opens on a matching sentence, then the earliest.
    Shorter texts come back unchanged."""
    if count_tokens(text) <= max_tokens:
        return text
    spans = sentence_spans(text) or [(0, len(text))]
    terms = set(analyze(query))
    sizes = [count_tokens(text[a:b]) for a, b in spans]
    found = [set(analyze(text[a:b])) & terms for a, b in spans]
    best: tuple[int, int, int, int] = (-1, 0, 0, 0)  # (distinct terms, opens on a match, first, last sentence)
    for first in range(len(spans)):
        used, seen, last = 0, set(), first
        while last < len(spans) and used + sizes[last] <= max_tokens:
            used += sizes[last]
            seen |= found[last]
            last += 1
        if last == first:  # one sentence longer than the window
            seen, last = found[first], first + 1
        if (len(seen), bool(found[first])) > best[:2]:
            best = (len(seen), int(bool(found[first])), first, last)
    start, end = spans[best[2]][0], spans[best[3] - 1][1]
    window = text[start:end]
    if count_tokens(window) > max_tokens:
        cut = token_spans(window)[max_tokens - 1][1]
        window = window[:cut]
    return window.strip()
