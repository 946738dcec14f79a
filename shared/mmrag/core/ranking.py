"""How scores become a ranking: every weight is named here once, with the fusion strategies of multimodal search.

Scores are all in 0–1: `lexical` = BM25 / the best BM25 among the query's candidates; `dense` = cosine similarity
in the text space, clipped at 0; `clip` = cosine similarity in the CLIP space, clipped at 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Protocol

from mmrag.errors import InvalidParameter

# text search: similarity_score = LEXICAL_WEIGHT·lexical + (1 − LEXICAL_WEIGHT)·dense, so that an exact-term match
# and a paraphrase both count
LEXICAL_WEIGHT = 0.5
# pictures found by words: their OCR/page text (lexical, dense) and CLIP's text→image similarity
IMAGE_BY_TEXT_WEIGHTS: Mapping[str, float] = MappingProxyType({"lexical": 0.45, "dense": 0.3, "clip": 0.25})
# multimodal search and answers when the caller names no modality weights
DEFAULT_MODALITY_WEIGHTS: Mapping[str, float] = MappingProxyType({"text": 0.6, "image": 0.4})
# in multimodal search a picture's CLIP similarity to the query's words counts this much toward its text modality
CLIP_TEXT_IN_TEXT_MODALITY = 0.5
# a picture query lifts the text about this many of its best-matching pictures, at this share of their similarity
NEAR_PICTURES = 3
NEAR_PICTURE = 0.8
# reciprocal rank fusion: Σ weight / (RRF_K + rank)
RRF_K = 60


class FusionStrategy(StrEnum):
    WEIGHTED_SUM = "weighted_sum"  # each modality divided by its best score, weighted, averaged over present ones
    RRF = "rrf"  # Σ weight / (RRF_K + rank) over the modalities
    LINEAR_COMBINATION = "linear_combination"  # weights over the raw calibrated similarities


DEFAULT_FUSION = FusionStrategy.WEIGHTED_SUM


class Candidate(Protocol):
    scores: dict[str, float]
    score: float


def text_similarity(lexical: float, dense: float) -> float:
    return LEXICAL_WEIGHT * lexical + (1 - LEXICAL_WEIGHT) * dense


def image_by_text_score(scores: Mapping[str, float]) -> float:
    return sum(w * scores.get(name, 0.0) for name, w in IMAGE_BY_TEXT_WEIGHTS.items())


def fusion_strategy(name: str) -> FusionStrategy:
    try:
        return FusionStrategy(name)
    except ValueError:
        choices = ", ".join(s.value for s in FusionStrategy)
        raise InvalidParameter(f"fusion_strategy must be one of {choices}") from None


def fuse_modalities(
    cands: list[Candidate], weights: Mapping[str, float], strategy: str, *, has_text: bool, has_image: bool
) -> None:
    """Combine the text and image modalities of each candidate into `score` (and `scores["fused"]`)."""
    strategy = fusion_strategy(strategy)
    modalities = [m for m, on in (("text", has_text), ("image", has_image)) if on]
    w = {m: max(float(weights.get(m, 0.5)), 0.0) for m in modalities}
    if sum(w.values()) <= 0:
        w = dict.fromkeys(modalities, 1.0)
    if strategy is FusionStrategy.RRF:
        for m in modalities:
            ranked = sorted((c for c in cands if c.scores.get(m, 0.0) > 0), key=lambda c: -c.scores[m])
            for rank, c in enumerate(ranked, start=1):
                c.scores[f"{m}_rank"] = rank
        for c in cands:
            c.score = sum(w[m] / (RRF_K + c.scores[f"{m}_rank"]) for m in modalities if f"{m}_rank" in c.scores)
    elif strategy is FusionStrategy.WEIGHTED_SUM:
        best = {m: max((c.scores.get(m, 0.0) for c in cands), default=0.0) for m in modalities}
        for c in cands:
            present = [m for m in modalities if m in c.scores]
            total_w = sum(w[m] for m in present) or 1.0
            c.score = sum(w[m] * (c.scores[m] / best[m] if best[m] > 0 else 0.0) for m in present) / total_w
    else:
        total_w = sum(w.values()) or 1.0
        for c in cands:
            c.score = sum(w[m] * c.scores.get(m, 0.0) for m in modalities) / total_w
    for c in cands:
        c.scores["fused"] = c.score
