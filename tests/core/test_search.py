"""SearchService on the fakes: hybrid text ranking, filters, the three multimodal fusion strategies, modality weights,
pictures by words and by a picture, grouping, "more like this"."""

from __future__ import annotations

import pytest

from mmrag.core.models import SearchFilters
from mmrag.core.ranking import IMAGE_BY_TEXT_WEIGHTS, RRF_K, fuse_modalities, text_similarity
from mmrag.core.search import RerankOptions, Scored, Timer
from mmrag.errors import InvalidParameter, NotFound
from mmrag.ingest.images import open_image
from tests.fakes import CoreServices, FakeOcr, HashingTextEmbedder
from tests.samples import b64, pdf_with_picture, shape_png

T = "t1"  # the tenant


def titles(results) -> list[str]:
    return [r.document.metadata["title"] for r in results]


# ------------------------------------------------------------------ text
@pytest.fixture
def library() -> CoreServices:
    s = CoreServices(text_embedder=HashingTextEmbedder(synonyms={"automobile": "car", "lubricant": "oil"}))
    s.ingest(
        T,
        "text",
        content="The car engine needs fresh oil every spring. Check the oil level monthly.",
        metadata={"title": "oil", "category": "cars", "tags": ["maintenance"]},
    )
    s.ingest(
        T,
        "text",
        content="An automobile is serviced by the garage once a year with a new lubricant.",
        metadata={"title": "paraphrase", "category": "garage"},
    )
    s.ingest(T, "text", content="Bread is baked with flour, water and yeast.", metadata={"title": "bread"})
    return s


def test_text_search_is_hybrid_lexical_plus_dense(library):
    out = library.search.text(T, "car oil", 5, SearchFilters())
    by_title = {r.document.metadata["title"]: r for r in out.results}
    assert titles(out.results)[0] == "oil"
    top, paraphrase = by_title["oil"], by_title["paraphrase"]
    # lexical is BM25 over the best BM25 of the query's candidates; dense is the text-space cosine
    assert top.scores["lexical"] == 1.0 and top.scores["bm25"] > 0 and top.scores["dense"] > 0.5
    # a paraphrase without any of the query's words is found by the dense channel alone
    assert paraphrase.scores["lexical"] == 0.0 and paraphrase.scores["dense"] > 0.3
    for r in out.results:
        assert r.score == pytest.approx(text_similarity(r.scores["lexical"], r.scores["dense"]))
        assert r.scores["fused"] == r.score and r.chunk is not None and r.document.status == "completed"
    assert [r.score for r in out.results] == sorted((r.score for r in out.results), reverse=True)
    assert by_title.get("bread") is None or by_title["bread"].score < paraphrase.score
    assert set(out.timings) >= {"encode", "retrieve", "fuse", "hydrate"} and out.total_candidates >= 2


def test_text_filters_threshold_and_top_k(library):
    assert titles(library.search.text(T, "car oil", 5, SearchFilters(category="garage")).results) == ["paraphrase"]
    assert titles(library.search.text(T, "car oil", 5, SearchFilters(tags=["maintenance"])).results) == ["oil"]
    assert titles(library.search.text(T, "car oil", 1, SearchFilters()).results) == ["oil"]
    high = library.search.text(T, "car oil", 5, SearchFilters(), threshold=0.5).results
    assert titles(high) == ["oil"] and all(r.score >= 0.5 for r in high)
    assert library.search.text(T, "car oil", 5, SearchFilters(document_ids=[])).results == []


def test_text_search_sees_only_completed_documents_of_its_tenant(library):
    oil = library.search.text(T, "car oil", 1, SearchFilters()).results[0].document
    assert library.search.text("t2", "car oil", 5, SearchFilters()).results == []
    library.documents.delete(T, oil.document_id, delete_related=False)  # archived: readable, no longer searchable
    assert "oil" not in titles(library.search.text(T, "car oil", 5, SearchFilters()).results)
    assert library.documents.get(T, oil.document_id)[0].status == "archived"
    pending = library.upload(T, "text", content="Fresh car oil arrives tomorrow.", metadata={"title": "pending"})
    assert "pending" not in titles(library.search.text(T, "car oil", 5, SearchFilters()).results)
    library.run_jobs()
    assert library.docs.get_document(T, pending.document_id).status == "completed"
    assert "pending" in titles(library.search.text(T, "car oil", 5, SearchFilters()).results)


def test_metadata_updates_reach_the_index_filters(library):
    bread = library.search.text(T, "bread flour", 1, SearchFilters()).results[0].document
    assert library.search.text(T, "bread flour", 5, SearchFilters(category="bakery")).results == []
    library.documents.update_metadata(T, bread.document_id, {"category": "bakery"})
    assert titles(library.search.text(T, "bread flour", 5, SearchFilters(category="bakery")).results) == ["bread"]


def test_conversation_context_joins_the_query(library):
    alone = library.search.text(T, "how often is it checked", 3, SearchFilters())
    assert titles(alone.results)[0] == "oil"
    leaning = library.search.text(
        T, "how often is it checked", 3, SearchFilters(), context="automobile garage", context_weight=0.8
    )
    assert titles(leaning.results)[0] == "paraphrase"


# ------------------------------------------------------------------ pictures
RED_QUERY = b64(shape_png("red", size=(200, 150)))


def pictures_library(warning_light: bool) -> CoreServices:
    """A manual in words only, a red and a blue picture without text and, with `warning_light`, an orange picture
    whose OCR text is the query's words."""
    s = CoreServices(ocr=FakeOcr(by_colour={"orange": "engine warning light: overheating"}))
    s.ingest(
        T,
        "text",
        content="The engine warning light means the engine is overheating. Stop the car at once.",
        metadata={"title": "manual"},
    )
    s.ingest(T, "image", file=b64(shape_png("red")), metadata={"title": "red"})
    s.ingest(T, "image", file=b64(shape_png("blue")), metadata={"title": "blue"})
    if warning_light:
        s.ingest(T, "image", file=b64(shape_png("orange")), metadata={"title": "light"})
    return s


@pytest.fixture
def pictures() -> CoreServices:
    return pictures_library(warning_light=False)


@pytest.fixture
def gallery() -> CoreServices:
    return pictures_library(warning_light=True)


def multimodal(s, strategy="weighted_sum", weights=None, text="engine warning light", image=RED_QUERY, top_k=10):
    vec = s.search.query_image_vector(image, Timer()) if image else None
    weights = weights or {"text": 0.6, "image": 0.4}
    return s.search.multimodal(T, text, vec, top_k, SearchFilters(), weights, strategy, None, RerankOptions(), Timer())


def label(r) -> str:
    return f"{r.document.metadata['title']}:{r.kind}"


def test_fusion_strategies_compute_what_they_promise(pictures):
    w = {"text": 0.3, "image": 0.7}
    outcomes = {name: multimodal(pictures, name, w).results for name in ("weighted_sum", "rrf", "linear_combination")}
    for name, results in outcomes.items():
        assert [r.score for r in results] == sorted((r.score for r in results), reverse=True), name
        for r in results:
            m = {k: r.scores[k] for k in ("text", "image") if k in r.scores}
            if name == "linear_combination":  # raw similarities, a missing modality counts 0
                want = (w["text"] * m.get("text", 0.0) + w["image"] * m.get("image", 0.0)) / 1.0
            elif name == "rrf":
                want = sum(w[k] / (RRF_K + r.scores[f"{k}_rank"]) for k in w if f"{k}_rank" in r.scores)
            else:  # each modality over its best score, averaged over the modalities the result has
                assert r.score <= 1.0 + 1e-9
                continue
            assert r.score == pytest.approx(want), (name, label(r))
    best = {name: label(results[0]) for name, results in outcomes.items()}
    # weighted_sum does not punish the words-only manual for having no picture: the best text match stays first
    assert best["weighted_sum"] == "manual:chunk" and outcomes["weighted_sum"][0].score == pytest.approx(1.0)
    # with the image weighted 0.7, raw similarities and ranks both put the identical red picture first
    assert best["linear_combination"] == "red:image" and best["rrf"] == "red:image"
    assert outcomes["rrf"][0].score <= 1.0 / (RRF_K + 1)
    scores = {name: [round(r.score, 6) for r in results] for name, results in outcomes.items()}
    assert len({tuple(v) for v in scores.values()}) == 3, scores
    orders = {name: [label(r) for r in results] for name, results in outcomes.items()}
    assert orders["weighted_sum"] != orders["linear_combination"]


def test_fusion_strategies_on_crafted_candidates():
    """Where rank and magnitude disagree: A is best in text by a hair and poor in pictures, B second in text and
    best in pictures, C a picture only."""

    def cands():
        return [
            Scored("A", "chunk", {"text": 0.90, "image": 0.10}),
            Scored("B", "chunk", {"text": 0.89, "image": 0.60}),
            Scored("C", "image", {"image": 0.65}),
        ]

    w = {"text": 0.5, "image": 0.5}
    out = {}
    for strategy in ("weighted_sum", "rrf", "linear_combination"):
        c = cands()
        fuse_modalities(c, w, strategy, has_text=True, has_image=True)
        out[strategy] = [x.item_id for x in sorted(c, key=lambda x: -x.score)]
    assert out == {
        "weighted_sum": ["C", "B", "A"],  # C: its only modality at the best image score → 1.0
        "rrf": ["A", "B", "C"],  # ranks only: A's 1st + 3rd beats B's 2nd + 2nd, however much better B's scores are
        "linear_combination": ["B", "A", "C"],  # raw: B 0.745, A 0.5, C 0.325 (its missing text counts 0)
    }
    c = cands()
    fuse_modalities(c, w, "rrf", has_text=True, has_image=True)
    assert c[0].score == pytest.approx(0.5 / 61 + 0.5 / 63) and c[2].score == pytest.approx(0.5 / 61)
    with pytest.raises(InvalidParameter):
        fuse_modalities(cands(), w, "borda", has_text=True, has_image=True)


@pytest.mark.parametrize("strategy", ["linear_combination", "rrf"])
def test_modality_weights_decide_between_words_and_picture(pictures, strategy):
    words = multimodal(pictures, strategy, {"text": 0.9, "image": 0.1}).results
    picture = multimodal(pictures, strategy, {"text": 0.1, "image": 0.9}).results
    assert label(words[0]) == "manual:chunk"
    assert label(picture[0]) == "red:image"


def test_weighted_sum_weighs_the_modalities_a_result_has(gallery):
    """The manual has words only: its score is its normalised text score whatever the weights. The warning-light
    picture has both modalities (its picture does not look like the red query): the weights move it."""
    words = {label(r): r.score for r in multimodal(gallery, "weighted_sum", {"text": 0.9, "image": 0.1}).results}
    picture = {label(r): r.score for r in multimodal(gallery, "weighted_sum", {"text": 0.1, "image": 0.9}).results}
    assert words["manual:chunk"] == pytest.approx(picture["manual:chunk"]) and words["manual:chunk"] < 1.0
    assert words["light:image"] == pytest.approx(0.9) and picture["light:image"] == pytest.approx(0.1)
    assert words["red:image"] == pytest.approx(0.1) and picture["red:image"] == pytest.approx(0.9)
    assert max(words, key=words.get).startswith("light:") and max(picture, key=picture.get) == "red:image"


def test_multimodal_with_words_only_or_a_picture_only(gallery):
    words = multimodal(gallery, image=None).results
    assert label(words[0]) in ("light:image", "light:chunk") and words[0].score == pytest.approx(1.0)
    assert all("image" not in r.scores for r in words)
    picture = multimodal(gallery, text=None).results
    assert label(picture[0]) == "red:image" and picture[0].scores["image"] == pytest.approx(1.0)
    assert all("text" not in r.scores for r in picture)


def test_find_multimodal_types_filters_and_groups(gallery):
    found = gallery.search.find_multimodal(
        T,
        "engine warning light",
        RED_QUERY,
        10,
        SearchFilters(),
        {"text": 0.6, "image": 0.4},
        "weighted_sum",
        None,
        RerankOptions(),
        group_by_document=True,
    )
    types = {(h.result.document.metadata["title"], h.result_type) for h in found.hits}
    # the OCR chunk of the warning-light picture is "mixed": words printed in a picture, returned with it
    assert ("light", "mixed") in types and ("manual", "text") in types and ("red", "image") in types
    mixed = next(h for h in found.hits if h.result_type == "mixed")
    assert [i.image_id for i in mixed.images] == [mixed.result.chunk.image_id]
    groups = {g.document_id: g for g in found.groups}
    for doc_id, g in groups.items():
        mine = [h.result.score for h in found.hits if h.result.document.document_id == doc_id]
        assert g.match_count == len(mine) and g.max_score == max(mine)
        assert g.avg_score == pytest.approx(sum(mine) / len(mine))
    assert [g.max_score for g in found.groups] == sorted((g.max_score for g in found.groups), reverse=True)
    only_pictures = gallery.search.find_multimodal(
        T,
        "engine warning light",
        RED_QUERY,
        10,
        SearchFilters(),
        {},
        "rrf",
        None,
        RerankOptions(),
        modalities=("image",),
    )
    assert only_pictures.hits and {h.result_type for h in only_pictures.hits} == {"image"}
    assert only_pictures.groups is None
    with pytest.raises(InvalidParameter):
        gallery.search.find_multimodal(T, " ", None, 5, SearchFilters(), {}, "rrf", None, RerankOptions())
    with pytest.raises(InvalidParameter):
        gallery.search.find_multimodal(
            T, "x", None, 5, SearchFilters(), {}, "rrf", None, RerankOptions(), modalities=("video",)
        )
    with pytest.raises(InvalidParameter):
        multimodal(gallery, "borda")


def test_pictures_by_words_and_by_a_picture(gallery):
    by_words = gallery.search.find_images(T, "text", None, "overheating", 5, SearchFilters(), None)
    first = by_words.results[0]
    assert first.kind == "image" and first.document.metadata["title"] == "light"
    assert first.scores["lexical"] > 0  # found through its OCR text
    assert first.score == pytest.approx(sum(w * first.scores.get(k, 0.0) for k, w in IMAGE_BY_TEXT_WEIGHTS.items()))
    by_picture = gallery.search.find_images(T, "image", RED_QUERY, None, 5, SearchFilters(), None)
    assert [r.document.metadata["title"] for r in by_picture.results][0] == "red"
    assert by_picture.results[0].scores["image"] == pytest.approx(1.0)
    assert all(r.kind == "image" for r in by_picture.results)
    with pytest.raises(InvalidParameter):
        gallery.search.find_images(T, "image", None, None, 5, SearchFilters(), None)
    with pytest.raises(InvalidParameter):
        gallery.search.find_images(T, "text", None, "  ", 5, SearchFilters(), None)


def test_a_picture_query_lifts_the_text_about_its_pictures():
    s = CoreServices()
    pdf = s.ingest(
        T,
        "pdf",
        file=b64(pdf_with_picture("Radiator cap: never open when hot.", (220, 20, 20))),
        metadata={"title": "pdf"},
    )
    s.ingest(T, "text", content="Unrelated notes about the weather.", metadata={"title": "notes"})
    page_chunk = s.docs.get_chunks(T, pdf.document_id)[0]
    vec = s.clip.embed_images([open_image(shape_png("red"), 10**8)])[0]
    out = s.search.multimodal(T, None, vec, 5, SearchFilters(), {}, "weighted_sum", None, RerankOptions(), Timer())
    near = next(r for r in out.results if r.item_id == page_chunk.chunk_id)
    assert near.scores["image"] >= 0.8 * 0.99  # NEAR_PICTURE × the picture's similarity
    assert "notes" not in titles(out.results[:2])


def test_similar_items_and_documents(library):
    oil_chunk = library.search.text(T, "car oil", 1, SearchFilters()).results[0]
    library.ingest(T, "text", content="Change the car oil and the oil filter together.", metadata={"title": "filter"})
    same = library.search.similar(T, "chunk", oil_chunk.item_id, 3, True, SearchFilters())[0]
    assert same[0].document.metadata["title"] == "filter" and oil_chunk.item_id not in [r.item_id for r in same]
    docs = library.search.similar(T, "document", oil_chunk.document.document_id, 3, True, SearchFilters())[0]
    assert docs[0].item_id != oil_chunk.document.document_id and docs[0].kind == "document"
    assert [d.score for d in docs] == sorted((d.score for d in docs), reverse=True)
    with pytest.raises(NotFound):
        library.search.similar(T, "chunk", "chunk_missing", 3, True, SearchFilters())
    with pytest.raises(InvalidParameter):
        library.search.similar(T, "page", "x", 3, True, SearchFilters())
