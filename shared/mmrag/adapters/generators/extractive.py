"""The default answerer when no language model is configured: it quotes the retrieved sentences that best answer the
question, cites them, and says plainly when the documents hold no answer.

It declines when the evidence is weak: when its best sentence holds less than 15% (idf-weighted) of the question's
terms and is no close paraphrase of it, or when that sentence's score (0.6 × idf-weighted share of the question's
terms it holds + 0.4 × its cosine similarity to the question + 0.1 × its source's relevance; without a text embedder,
(0.6 × share + 0.1 × relevance) / 0.7) is below `min_evidence`.
The default threshold was measured with bench/decline_bench.py (Debian Reference questions vs off-topic questions).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from mmrag.core.generation import GenRequest, GenResult
from mmrag.core.ports import TextEmbedder
from mmrag.text.analyzer import has_cjk, tokens
from mmrag.text.tokens import split_sentences

NO_ANSWER = {
    "en": "The documents I searched do not contain an answer to this question.",
    "zh": "检索到的文档中没有找到这个问题的答案。",
}
MAX_SENTENCES = 3
MAX_CANDIDATES = 120
DENSE_SHORTLIST = 8
DENSE_CHARS = 160  # a sentence's opening says what it is about; long ones cost quadratically more
# Measured with bench/decline_bench.py (all-MiniLM-L6-v2; 61 Debian Reference questions; 74 off-topic ones in
# tests/data/offtopic_questions.jsonl, 40 more written later in offtopic_holdout.jsonl): 0.42, tuned on the first
# set, declined only 87.5% of the later one (Chinese 75%); 0.45 answers 91.8% of the questions and declines 97.3% and
# 97.5% of the two off-topic sets. Chinese is the hard part: the English model finds any two Chinese sentences
# similar, so only shared words count.
DEFAULT_MIN_EVIDENCE = 0.45
MIN_OVERLAP = 0.15  # the best sentence holds at least this (idf-weighted) share of the question's terms...
PARAPHRASE_DENSE = 0.5  # ...unless it says the same in other words (not judged for Chinese, see above)


@dataclass
class Choice:
    """What the answerer found: the chosen (sentence, source number) pairs, best first, and how strong the best is."""

    sentences: list[tuple[str, int]] = field(default_factory=list)
    strength: float = 0.0  # the best sentence's score, see the module docstring
    overlap: float = 0.0  # its idf-weighted share of the question's terms
    dense: float = 0.0  # its cosine similarity to the question (0 without an embedder)


class ExtractiveGenerator:
    provider = "extractive"

    def __init__(self, embedder: TextEmbedder | None = None, min_evidence: float = DEFAULT_MIN_EVIDENCE):
        self.embedder = embedder
        self.min_evidence = min_evidence

    def models(self) -> list[str]:
        return ["extractive"]

    def supports_images(self, model: str) -> bool:
        return False

    def answer_sentences(self, request: GenRequest) -> list[tuple[str, int]]:
        """The chosen (sentence, source number) pairs, best first; empty when nothing answers the question."""
        choice = self.choose(request)
        return choice.sentences if self.strong_enough(choice, request.question) else []

    def strong_enough(self, choice: Choice, question: str, min_evidence: float | None = None) -> bool:
        """Whether the best sentence is evidence enough to answer (else the answerer declines)."""
        if not choice.sentences or choice.strength < (self.min_evidence if min_evidence is None else min_evidence):
            return False
        return choice.overlap >= MIN_OVERLAP or (not has_cjk(question) and choice.dense >= PARAPHRASE_DENSE)

    def choose(self, request: GenRequest) -> Choice:
        """The best sentences whatever their strength (empty only when no sentence can answer at all)."""
        candidates: list[tuple[str, int, float]] = []
        for ev in request.evidence:
            for sentence in split_sentences(ev.text):
                sentence = " ".join(sentence.split())
                if len(sentence) >= 3:
                    candidates.append((sentence, ev.number, ev.score))
        candidates = candidates[:MAX_CANDIDATES]
        q_terms = set(tokens(request.question))
        if not candidates or not q_terms:
            return Choice()
        term_sets = [set(tokens(s)) for s, _, _ in candidates]
        n = len(candidates)
        idf = {t: math.log(1 + n / (1 + sum(t in ts for ts in term_sets))) for t in q_terms}
        q_weight = sum(idf.values()) or 1.0
        overlap = np.array([sum(idf[t] for t in q_terms & ts) / q_weight for ts in term_sets])
        prior = np.array([c[2] for c in candidates])
        dense = np.zeros(n)
        if self.embedder is not None:
            # embedding every sentence is the slow part: only the most promising ones get a dense score
            shortlist = np.argsort(-(overlap + 0.2 * prior))[:DENSE_SHORTLIST]
            vecs = self.embedder.embed_texts([candidates[i][0][:DENSE_CHARS] for i in shortlist])
            dense[shortlist] = np.clip(vecs @ self.embedder.embed_query(request.question), 0, 1)
        score = 0.6 * overlap + 0.4 * dense + 0.1 * prior
        if self.embedder is None:
            score = score / 0.7  # without a dense score, the same scale from the parts there are
        best = int(np.argmax(score))
        # Without a shared term, only a confident paraphrase counts; Chinese questions always need a shared word,
        # because an English-only text model scores any two Chinese sentences as similar.
        if overlap[best] == 0 and (has_cjk(request.question) or dense[best] < PARAPHRASE_DENSE):
            return Choice()
        chosen: list[tuple[str, int]] = []
        seen: set[str] = set()
        for i in np.argsort(-score):
            if len(chosen) >= MAX_SENTENCES or score[i] < 0.75 * score[best]:
                break
            sentence, number, _ = candidates[i]
            key = re.sub(r"\W+", "", sentence.lower())
            if key in seen:
                continue
            seen.add(key)
            chosen.append((sentence, number))
        return Choice(chosen, float(score[best]), float(overlap[best]), float(dense[best]))

    def _text(self, request: GenRequest) -> list[str]:
        chosen = self.answer_sentences(request)
        if not chosen:
            return [NO_ANSWER.get(request.language, NO_ANSWER["en"])]
        sep = "" if request.language == "zh" else " "
        return [("" if i == 0 else sep) + f"{s} [{n}]" for i, (s, n) in enumerate(chosen)]

    def generate(self, request: GenRequest) -> GenResult:
        return GenResult(text="".join(self._text(request)), model="extractive", stop_reason="end_turn")

    def stream(self, request: GenRequest) -> Iterator[str | GenResult]:
        parts = self._text(request)
        yield from parts
        yield GenResult(text="".join(parts), model="extractive", stop_reason="end_turn")
