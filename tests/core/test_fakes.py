"""The model fakes behave as the core tests assume (the store and index fakes are held to the ports' contract suites in
tests/contract instead)."""

from __future__ import annotations

import numpy as np
import pytest

from mmrag.ingest.images import open_image
from tests.fakes import FakeOcr, HashingClip, HashingTextEmbedder, colour_name, image_key, image_key_of
from tests.samples import shape_png, text_png


def test_text_vectors_are_deterministic_normalised_and_share_words():
    emb = HashingTextEmbedder(synonyms={"automobile": "car"})
    a, b, c, d = emb.embed_texts(["the pumps are primed", "pump priming", "bread and yeast", "automobile"])
    assert np.allclose(np.linalg.norm(np.stack([a, b, c]), axis=1), 1.0) and emb.embed_texts([]).shape == (0, emb.dim)
    assert float(a @ b) == pytest.approx(1.0)  # the analyzer's stems: pumps/pump, primed/priming
    assert abs(float(a @ c)) < 0.2
    assert float(d @ emb.embed_query("car")) == pytest.approx(1.0)
    assert np.array_equal(a, HashingTextEmbedder().embed_query("pumps primed"))
    assert emb.calls == [("embed_texts", 4), ("embed_texts", 0), ("embed_query", 1)]


def test_pictures_are_described_by_colour_or_by_what_a_test_says():
    red, blue = open_image(shape_png("red"), 10**8), open_image(shape_png("blue"), 10**8)
    assert [colour_name(red), colour_name(blue), colour_name(open_image(text_png(["ink"]), 10**8))] == [
        "red", "blue", "black",
    ]
    assert image_key(red) == image_key_of(shape_png("red")) != image_key(blue)
    clip = HashingClip(descriptions={image_key(blue): "a coolant gauge"})
    pics = clip.embed_images([red, blue])
    words = clip.embed_texts(["red", "coolant gauge"])
    assert float(pics[0] @ words[0]) == pytest.approx(1.0) and float(pics[1] @ words[1]) == pytest.approx(1.0)
    ocr = FakeOcr(by_colour={"red": "STOP"}, by_key={image_key(blue): "GAUGE"}, default="?")
    assert [ocr.recognize(red), ocr.recognize(blue), ocr.recognize(open_image(text_png(["x"]), 10**8))] == [
        "STOP", "GAUGE", "?",
    ]
    assert colour_name(open_image(shape_png("green"), 10**8)) == "green"
    ocr.fail = RuntimeError("down")
    with pytest.raises(RuntimeError):
        ocr.recognize(red)
