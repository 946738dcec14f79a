"""Follow-up questions a chat answer offers: what the retrieved sources that the answer did not use are about.

A source's topic is, best first, a section heading inside it ("1.4.9 Recording the shell activities", a short title
line), else its key phrase: English, the most frequent run of content words (RAKE-style: runs between stop words and
punctuation, so a phrase is always words that stand together in the text); Chinese, jieba's TF-IDF keywords (nouns).
Questions come in the answer's language, and never repeat what was just asked.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from mmrag.text.analyzer import EN_STOP, has_cjk, tokens

# words that end a key phrase besides the analyzer's stop words: verbs, adverbs and fillers that make a run read like
# a random word pair ("good practice", "usually offer")
_BREAK_WORDS = frozenset(
    """all also always another because been before being between both each either else even every example following
    further get gets given good here however just least less like likely make makes many may might more most much must
    need needs new now often one only other others out over own please really same see several should show shown
    since some still than through thus too two under until up upon usually use used uses using very via want well
    while within without yet""".split()
)
_HEADING_NUMBER = re.compile(r"(?:^|(?<=\s))(\d{1,2}(?:\.\d{1,2}){1,3})\.?\s+(?=[A-Z\u4e00-\u9fff])")
_CJK_PUNCT = re.compile(r"[。，、；：！？（）“”《》]")
_CJK_HEADING_CHARS = 16
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9+#'-]*|[^\sA-Za-z]")
_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9+#-]*[A-Za-z0-9+#]|[A-Za-z]")
_SECTION_NUMBER = re.compile(r"\b\d{1,2}(?:\.\d{1,2}){1,3}\b")
_ROMAN = re.compile(r"[ivxlcdm]+|[IVXLCDM]+")
_ZH_NOUNS = ("n", "nz", "vn", "nt", "nr", "ns", "nl", "l")  # l: set phrases, where jieba puts "软件包"


@dataclass
class Topic:
    text: str
    heading: bool


def follow_up_questions(question: str, language: str, sources: Iterable[tuple[str, bool]], limit: int = 3) -> list[str]:
    """Up to `limit` questions from `sources` — (content, cited) pairs, the most relevant first: the first topic of
    each source in turn, uncited sources first, then the second topics, and so on."""
    asked = set(tokens(question))
    ordered = sorted(sources, key=lambda s: s[1])  # uncited first; stable, so relevance order stays within each group
    texts = [content.lower() for content, _ in ordered]
    per_source = [topics(content, language) for content, _ in ordered]
    out: list[str] = []
    seen: set[frozenset[str]] = set()
    taken: list[str] = []
    for rank in range(max((len(t) for t in per_source), default=0)):
        for found in per_source:
            if rank >= len(found) or len(out) >= limit:
                continue
            topic = found[rank]
            terms = frozenset(tokens(topic.text))
            if not terms or terms <= asked or terms in seen or any(topic.text in t or t in topic.text for t in taken):
                continue  # nothing new, or part of a topic already offered ("散热器" after "散热器盖")
            if len(texts) >= 3 and sum(topic.text.lower() in t for t in texts) > len(texts) / 2:
                continue  # in most of the sources ("Debian" in the Debian manual): not what this one is about
            seen.add(terms)
            taken.append(topic.text)
            out.append(phrase_question(topic, language))
    return out


def phrase_question(topic: Topic, language: str) -> str:
    if language == "zh":
        return f"“{topic.text}”一节讲了什么？" if topic.heading else f"关于“{topic.text}”，文档里有哪些说明？"
    if topic.heading:
        return f"What does the section “{topic.text}” explain?"
    return f"What should I know about {topic.text}?"


def topics(content: str, language: str) -> list[Topic]:
    """A source's topics, best first: its headings, then its key phrases."""
    # an English question gets no Chinese heading; a Chinese one may get an English heading (commands, names)
    found = [Topic(h, True) for h in headings(content) if language == "zh" or not has_cjk(h)]
    found += [Topic(k, False) for k in (zh_keywords(content) if language == "zh" else en_key_phrases(content))]
    return found


def headings(content: str) -> list[str]:
    """Numbered section headings ("2.1.3 Package configuration", even when the PDF's text runs on after them) and
    short title lines (no final punctuation; two to eight words, or up to 16 Chinese characters)."""
    out: list[str] = []
    for m in _HEADING_NUMBER.finditer(content):
        words: list[str] = []
        for w in content[m.end() : m.end() + 120].split():
            if len(words) >= 8 or not re.match(r"\w", w) or _SECTION_NUMBER.fullmatch(w.rstrip(".")):
                break  # dot leaders of a table of contents, a quote, a bullet, the next section's number
            if has_cjk(w):
                # Chinese runs on without capitals or spaces that say where a heading ends: its first word only
                if (
                    not words
                    and len(w) >= 3
                    and not _CJK_PUNCT.search(w)
                    and "第" not in content[m.start() - 3 : m.start()]
                ):
                    words.append(w)
                break
            if words and re.fullmatch(r"[A-Z][a-z]+", w) and words[-1][:1].islower():
                break  # "Recording the shell activities The output..." - a new sentence starts
            words.append(w.rstrip(".:;!?,"))
            if w != words[-1]:
                break  # the heading ended with punctuation
        heading = " ".join(words)
        if len(heading) >= (2 if has_cjk(heading) else 4) and len(heading.split()) <= 8:
            out.append(heading)
    for line in content.splitlines():
        line = line.strip()
        n = len(line.split())
        plain = has_cjk(line) or all(_WORD.fullmatch(w) for w in line.split())
        if _SECTION_NUMBER.search(line) or _ROMAN.fullmatch(line.split()[-1] if line.split() else ""):
            continue  # a heading run into the line before it, a page header "Debian Reference xxiii"
        if (
            2 <= n <= 8
            and line[:1].isupper()
            and plain
            and not re.search(r"[.:;,!?。：；，！？)\]]$|\d$|[=/<>|{}]", line)
        ):
            out.append(line)
        elif has_cjk(line[:1]) and 3 <= len(line) <= _CJK_HEADING_CHARS and n <= 4 and not _CJK_PUNCT.search(line):
            out.append(line)  # a Chinese title line: short, no punctuation (two characters: "提示", "注意" labels)
    return list(dict.fromkeys(out))


def en_key_phrases(content: str, limit: int = 3) -> list[str]:
    """Runs of one to three content words: those that recur (longer ones first), then pairs said once."""
    runs: list[list[str]] = []
    current: list[str] = []
    for m in re.finditer(r"[A-Za-z][A-Za-z0-9+#-]*[A-Za-z0-9+#]|[A-Za-z]|[^\sA-Za-z]+", content):
        w = m.group(0)
        lw = w.lower()
        if not _LATIN_WORD.fullmatch(w) or lw in EN_STOP or lw in _BREAK_WORDS or len(w) < 3:
            if current:
                runs.append(current)
            current = []
        else:
            current.append(w)
    if current:
        runs.append(current)
    counts: Counter[str] = Counter()
    shown: dict[str, str] = {}
    for run in runs:
        for size in (3, 2, 1):
            for i in range(len(run) - size + 1):
                words = run[i : i + size]
                key = " ".join(x.lower() for x in words)
                counts[key] += 1
                shown.setdefault(key, " ".join(words))

    def weight(key: str) -> float:
        n = len(key.split())
        if counts[key] >= 2:
            return counts[key] * (1 + 0.5 * (n - 1))
        return {2: 1.2, 3: 1.0}.get(n, 0.0)  # said once: two words are most often a compound noun, three less so

    scored = sorted(counts, key=lambda k: (-weight(k), -len(k)))
    out: list[str] = []
    for key in scored:
        if len(key.split()) == 1 and (counts[key] < 2 or len(key) < 5):
            continue  # a lone word is a topic only when it recurs
        if any(key in o.lower() or o.lower() in key for o in out):
            continue
        out.append(shown[key])
        if len(out) >= limit:
            break
    return out


def zh_keywords(content: str, limit: int = 3) -> list[str]:
    """jieba's TF-IDF keywords among nouns, Chinese words of at least two characters."""
    import jieba.analyse

    out = []
    for w in jieba.analyse.extract_tags(content, topK=limit * 3, allowPOS=_ZH_NOUNS):
        if has_cjk(w) and len(w) >= 2:  # Latin words in Chinese text are mostly commands and placeholders
            out.append(w)
    return out[:limit]
