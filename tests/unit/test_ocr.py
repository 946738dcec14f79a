"""The local OCR engine (RapidOCR, PP-OCRv6 from the rapidocr wheel) on pictures drawn here with Pillow, and the
reading order / spacing rules of lines_from_boxes that it shares with the Textract adapter."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from mmrag.adapters.local.ocr import DET_MODEL, REC_MODEL, RapidOcrEngine, bundled_model, lines_from_boxes
from tests.samples import cjk_font_available, font

pytest.importorskip("rapidocr", reason="local OCR needs the local extra (rapidocr)")


@pytest.fixture(scope="module")
def engine() -> RapidOcrEngine:
    ocr = RapidOcrEngine()
    assert ocr.health() == {"engine": "rapidocr", "state": "not loaded"}
    ocr.load()
    assert ocr.health() == {"engine": "rapidocr", "state": "loaded"}
    return ocr


def draw(items: list[tuple[int, int, str]], size=(1000, 400), px: int = 36, cjk: bool = False) -> Image.Image:
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    f = font(px, cjk)
    for x, y, text in items:
        d.text((x, y), text, fill="black", font=f)
    return img


def test_english_lines_come_back_with_the_spaces_between_words(engine):
    img = draw([(30, 30, "The relief valve opens at 93 kPa."), (30, 110, "Inspect it every six months.")])
    assert engine.recognize(img) == "The relief valve opens at 93 kPa.\nInspect it every six months."


@pytest.mark.skipif(not cjk_font_available(), reason="no CJK font (apt-get install fonts-wqy-zenhei)")
def test_chinese_lines_are_read(engine):
    img = draw([(30, 30, "散热器冷却液检查"), (30, 110, "每六个月一次")], cjk=True)
    assert engine.recognize(img) == "散热器冷却液检查\n每六个月一次"


@pytest.mark.skipif(not cjk_font_available(), reason="no CJK font (apt-get install fonts-wqy-zenhei)")
def test_chinese_and_english_in_one_picture(engine):
    img = draw([(30, 30, "安全阀 relief valve"), (30, 110, "压力 93 kPa")], cjk=True)
    lines = engine.recognize(img).split("\n")
    assert len(lines) == 2
    assert lines[0].startswith("安全阀") and lines[0].endswith("relief valve")
    assert "".join(lines[1].split()) == "压力93kPa"


def test_reading_order_is_rows_top_down_then_left_to_right(engine):
    # two columns and two rows, the right column slightly lower than the left one: still the same rows
    img = draw([(40, 40, "north"), (560, 52, "east"), (40, 240, "south"), (560, 250, "west")], size=(1000, 400))
    assert engine.recognize(img) == "north east\nsouth west"


def test_an_empty_picture_gives_no_text(engine):
    assert engine.recognize(Image.new("RGB", (640, 480), "white")) == ""
    assert engine.recognize(Image.new("RGB", (8, 8), "black")) == ""


def test_other_image_modes_are_read(engine):
    img = draw([(30, 30, "Coolant level")], size=(600, 120))
    assert engine.recognize(img.convert("L")) == "Coolant level"
    rgba = img.convert("RGBA")
    assert engine.recognize(rgba) == "Coolant level"


def test_small_text_in_a_small_picture(engine):
    img = draw([(8, 8, "Radiator cap: check"), (8, 26, "coolant every 6 months")], size=(300, 60), px=12)
    assert engine.recognize(img) == "Radiator cap: check\ncoolant every 6 months"


def test_two_threads_share_one_engine(engine):
    img = draw([(30, 30, "Shared engine"), (30, 110, "two workers")], size=(700, 200))
    out: list[str] = []
    threads = [threading.Thread(target=lambda: out.append(engine.recognize(img))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == ["Shared engine\ntwo workers"] * 2


def test_models_come_from_the_wheel_and_nothing_is_downloaded(monkeypatch):
    import rapidocr

    package = Path(rapidocr.__file__).resolve().parent
    for name in (DET_MODEL, REC_MODEL):
        assert bundled_model(name).parent == package / "models"

    def no_network(*args, **kwargs):
        raise AssertionError(f"network access: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    ocr = RapidOcrEngine(threads=1)  # a fresh engine: builds its sessions with the network unplugged
    assert ocr.recognize(draw([(30, 30, "offline")], size=(400, 120))) == "offline"


# ------------------------------------------------------------------------------------------ lines_from_boxes
def box(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def test_fragments_of_a_row_are_joined_left_to_right_with_spaces_only_where_the_script_needs_them():
    results = [
        (box(300, 10, 380, 30), "valve", 0.9),
        (box(10, 12, 100, 31), "安全阀", 0.9),
        (box(110, 11, 290, 30), "relief", 0.9),
        (box(10, 50, 60, 70), "冷却", 0.9),
        (box(62, 51, 120, 71), "液", 0.9),
        (box(130, 50, 200, 70), "OK", 0.9),
    ]
    assert lines_from_boxes(results) == "安全阀 relief valve\n冷却液 OK"


def test_rows_need_half_their_height_in_common():
    results = [
        (box(10, 10, 100, 30), "upper", 0.9),
        (box(200, 24, 300, 44), "lower", 0.9),  # overlaps the first row by 6 of 20 px: a new row
        (box(10, 60, 100, 80), "", 0.9),  # empty text is dropped
    ]
    assert lines_from_boxes(results) == "upper\nlower"
