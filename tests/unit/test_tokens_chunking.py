from __future__ import annotations

import random
import time

import pytest

from mmrag.ingest.chunking import TextPiece, chunk_text
from mmrag.text.tokens import count_tokens, normalize_page_text, sentence_spans, split_sentences

ZH_SENTENCES = [
    "人工智能正在深刻地改变我们的工作和生活方式。",
    "检索增强生成把搜索引擎和大语言模型结合在一起！",
    "你知道向量数据库是如何存储文档的吗？",
    "系统首先把文档切分成较小的片段；",
    "然后为每个片段计算嵌入向量。",
]
WORDS = [
    "the",
    "system",
    "stores",
    "documents",
    "in",
    "chunks",
    "and",
    "retrieves",
    "relevant",
    "passages",
    "for",
    "each",
    "question",
    "using",
    "hybrid",
    "search",
    "over",
    "dense",
    "vectors",
    "keyword",
    "indexes",
    "while",
    "answers",
    "cite",
    "their",
    "sources",
]


def _english(sentences: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    out = []
    for i in range(sentences):
        words = rng.choices(WORDS, k=rng.randint(4, 30))
        out.append(" ".join(words).capitalize() + rng.choice([".", ".", "!", "?"]))
        if i % 6 == 5:
            out.append("\n\n")
    return " ".join(out)


# --- tokens ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", 0),
        ("   \n\t", 0),
        ("Hello world", 2),
        ("Hello, world!", 4),
        ("Linux 2.6.30", 6),
        ("snake_case", 3),
        ("café naïve Straße", 3),
        ("人工智能", 4),
        ("我用Python写代码。", 7),
        ("こんにちは", 5),
        ("한국어", 3),
        ("/etc/fstab", 4),
    ],
)
def test_count_tokens(text: str, expected: int) -> None:
    assert count_tokens(text) == expected


# --- sentences ------------------------------------------------------------------------------------------------------


def test_english_sentences_keep_abbreviations_versions_and_file_names() -> None:
    text = (
        "Install Linux 2.6.30 first, e.g. from the archive, i.e. the mirror. Dr. Smith edited /etc/fstab.conf "
        "yesterday. Did it work? Yes! Mount it; then reboot. See Fig. 3 for details."
    )
    assert split_sentences(text) == [
        "Install Linux 2.6.30 first, e.g. from the archive, i.e. the mirror.",
        "Dr. Smith edited /etc/fstab.conf yesterday.",
        "Did it work?",
        "Yes!",
        "Mount it;",
        "then reboot.",
        "See Fig. 3 for details.",
    ]


def test_quotes_stay_with_their_sentence() -> None:
    assert split_sentences('He said "stop." Then he left.') == ['He said "stop."', "Then he left."]


def test_chinese_sentences() -> None:
    text = "".join(ZH_SENTENCES) + "他说：“走吧。”我们就出发了"
    assert split_sentences(text) == [*ZH_SENTENCES, "他说：“走吧。”", "我们就出发了"]


def test_blank_lines_split_paragraphs_and_single_newlines_do_not() -> None:
    text = "A heading without stop\n\nFirst line of a paragraph\ncontinues here. Next one.\n \nLast"
    assert split_sentences(text) == [
        "A heading without stop",
        "First line of a paragraph\ncontinues here.",
        "Next one.",
        "Last",
    ]


def test_sentence_spans_are_offsets() -> None:
    text = "  One. Two!\n\n三句话。四 "
    spans = sentence_spans(text)
    assert [text[s:e] for s, e in spans] == ["One.", "Two!", "三句话。", "四"]


def test_split_sentences_of_blank_text() -> None:
    assert split_sentences("") == [] and split_sentences(" \n\n ") == []


# --- page text normalization ----------------------------------------------------------------------------------------


def test_normalize_joins_hard_wrapped_lines() -> None:
    assert normalize_page_text("the quick brown\nfox jumps") == "the quick brown fox jumps"
    assert normalize_page_text("人工智能正在改变\n我们的生活。") == "人工智能正在改变我们的生活。"
    assert normalize_page_text("an exam-\nple of hyphen-\nation") == "an example of hyphenation"
    assert normalize_page_text("a PDF-\nBased tool") == "a PDF-Based tool"
    assert normalize_page_text("使用\nLinux 系统") == "使用 Linux 系统"


def test_normalize_keeps_paragraphs_and_cleans() -> None:
    raw = "First  paragraph\r\nline two.\r\n\r\n\r\n\x0cSecond\tparagraph\x00 here\x07.\n   \nThird ﬁle"
    assert normalize_page_text(raw) == "First paragraph line two.\n\nSecond paragraph here.\n\nThird file"


def test_normalize_keeps_line_structure_that_is_not_a_wrap() -> None:
    assert normalize_page_text("Type the following.\n$ dpkg -L vim\n$ apt show vim") == (
        "Type the following.\n$ dpkg -L vim\n$ apt show vim"
    )


def test_normalize_keeps_short_heading_lines_on_full_pages() -> None:
    body = "This is a long line of body text that was wrapped by the PDF producer at the"
    page = "\n".join(["Installation", body, body, body, "end of the paragraph.", "Configuration", body, "end."])
    out = normalize_page_text(page)
    assert out.startswith("Installation\nThis is a long line")
    assert "\nConfiguration\nThis is" in out
    assert "producer at the This is" in out


def test_normalize_pdfium_hyphen_markers() -> None:
    assert normalize_page_text("distri\x02\r\nbution and non\ufffedevelopers") == "distribution and nondevelopers"
    assert normalize_page_text("soft\u00adhyphen") == "softhyphen"


# --- chunking -------------------------------------------------------------------------------------------------------


def _check_invariants(text: str, pieces: list[TextPiece], chunk_size: int) -> None:
    assert pieces
    for piece in pieces:
        assert piece.text.strip()
        assert piece.token_count == count_tokens(piece.text) <= chunk_size
        assert text[piece.start : piece.end].strip() == piece.text.strip()
    for prev, nxt in zip(pieces, pieces[1:], strict=False):
        assert prev.start < nxt.start and prev.end < nxt.end
    assert pieces[0].start == len(text) - len(text.lstrip())
    assert pieces[-1].end == len(text.rstrip())
    # every non-space character is in some chunk
    covered = bytearray(len(text))
    for piece in pieces:
        covered[piece.start : piece.end] = b"\x01" * (piece.end - piece.start)
    assert all(covered[i] or text[i].isspace() for i in range(len(text)))


def test_chunks_pack_whole_sentences_with_overlap() -> None:
    text = _english(300)
    pieces = chunk_text(text, chunk_size=128, overlap=30)
    _check_invariants(text, pieces, 128)
    starts = {s for s, _ in sentence_spans(text)}
    ends = {e for _, e in sentence_spans(text)}
    fallbacks = 0
    for prev, nxt in zip(pieces, pieces[1:], strict=False):
        assert nxt.end in ends  # chunks end on a sentence end
        shared = count_tokens(text[nxt.start : prev.end])
        assert nxt.start < prev.end and shared <= 30
        if nxt.start not in starts:  # the last sentence was longer than the overlap: its trailing tokens are shared
            fallbacks += 1
            assert shared == 30
    assert fallbacks < len(pieces) - 1
    assert sum(p.token_count for p in pieces) > count_tokens(text)  # there was overlap
    assert max(p.token_count for p in pieces) > 100  # chunks are packed


def test_no_overlap() -> None:
    text = _english(100)
    pieces = chunk_text(text, chunk_size=64, overlap=0)
    _check_invariants(text, pieces, 64)
    for prev, nxt in zip(pieces, pieces[1:], strict=False):
        assert nxt.start >= prev.end
    assert sum(p.token_count for p in pieces) == count_tokens(text)


def test_short_text_is_one_chunk() -> None:
    text = "  A single short sentence.  "
    assert chunk_text(text) == [TextPiece("A single short sentence.", 5, 2, 26)]


def test_blank_text_gives_no_chunks() -> None:
    assert chunk_text("") == [] and chunk_text("  \n\n\t ") == []


def test_long_english_sentence_is_cut_between_words() -> None:
    words = [f"word{i}" for i in range(300)]
    text = "Start " + " ".join(words) + " and that's it, e.g. foo.bar-baz stop."
    pieces = chunk_text(text, chunk_size=50, overlap=10)
    _check_invariants(text, pieces, 50)
    for piece in pieces:
        assert piece.start == 0 or text[piece.start - 1] == " "
        assert piece.end == len(text) or text[piece.end] == " "
    for prev, nxt in zip(pieces, pieces[1:], strict=False):
        assert 0 < count_tokens(text[nxt.start : prev.end]) <= 10


def test_long_chinese_sentence_is_cut_between_characters() -> None:
    text = "检索增强生成" * 100 + "。"
    pieces = chunk_text(text, chunk_size=64, overlap=8)
    _check_invariants(text, pieces, 64)
    assert pieces[0].token_count == 64 - 8  # pieces leave room for the overlap
    assert all(p.token_count == 64 for p in pieces[1:-1])
    assert pieces[1].start == 64 - 8 - 8


def test_chinese_text_chunks_keep_sentences() -> None:
    text = "\n\n".join("".join(ZH_SENTENCES) for _ in range(20))
    pieces = chunk_text(text, chunk_size=100, overlap=30)
    _check_invariants(text, pieces, 100)
    for prev, nxt in zip(pieces, pieces[1:], strict=False):
        assert prev.text.endswith(("。", "！", "？", "；"))
        assert nxt.text[0] in {s[0] for s in ZH_SENTENCES}
        assert 0 < count_tokens(text[nxt.start : prev.end]) <= 30


def test_overlap_falls_back_to_trailing_tokens() -> None:
    sentence = " ".join(f"w{i}" for i in range(40)) + "."
    text = " ".join([sentence] * 5)
    pieces = chunk_text(text, chunk_size=60, overlap=15)
    _check_invariants(text, pieces, 60)
    for prev, nxt in zip(pieces, pieces[1:], strict=False):
        assert count_tokens(text[nxt.start : prev.end]) == 15


@pytest.mark.parametrize("chunk_size, overlap", [(15, 0), (0, 0), (64, 64), (64, 100), (64, -1)])
def test_validation(chunk_size: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        chunk_text("Some text.", chunk_size=chunk_size, overlap=overlap)


def test_chunking_is_fast() -> None:
    pages = [_english(60, seed=i) for i in range(260)]
    assert sum(map(len, pages)) > 550_000
    started = time.perf_counter()
    for page in pages:
        chunk_text(page)
    assert time.perf_counter() - started < 1.0
