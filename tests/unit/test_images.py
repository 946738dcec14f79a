from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image, ImageFile

from mmrag.errors import ProcessingError
from mmrag.ingest.images import image_size, mime_for, open_image, thumbnail_png, to_png

LIMIT = 40_000_000


def _encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def test_rgb_png_roundtrip() -> None:
    data = _encode(Image.new("RGB", (50, 20), (10, 200, 30)), "PNG")
    img = open_image(data, LIMIT)
    assert (img.mode, img.size, img.getpixel((3, 3))) == ("RGB", (50, 20), (10, 200, 30))
    assert image_size(data) == (50, 20)
    again = Image.open(io.BytesIO(to_png(img)))
    assert again.format == "PNG" and again.size == (50, 20)


def test_palette_with_transparency_goes_onto_white() -> None:
    img = Image.new("P", (20, 20), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.paste(1, (10, 0, 20, 20))
    data = _encode(img, "PNG", transparency=0)
    rgb = open_image(data, LIMIT)
    assert rgb.mode == "RGB"
    assert rgb.getpixel((2, 2)) == (255, 255, 255)
    assert rgb.getpixel((15, 2)) == (255, 0, 0)


@pytest.mark.parametrize(
    "mode, color, expected",
    [
        ("RGBA", (0, 0, 255, 0), (255, 255, 255)),
        ("RGBA", (0, 0, 255, 255), (0, 0, 255)),
        ("LA", (0, 255), (0, 0, 0)),
        ("1", 1, (255, 255, 255)),
        ("L", 128, (128, 128, 128)),
    ],
)
def test_modes_become_rgb(mode: str, color: object, expected: tuple[int, int, int]) -> None:
    data = _encode(Image.new(mode, (8, 8), color), "PNG")
    img = open_image(data, LIMIT)
    assert img.mode == "RGB" and img.getpixel((1, 1)) == expected


def test_cmyk_jpeg() -> None:
    data = _encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95)
    r, g, b = open_image(data, LIMIT).getpixel((8, 8))
    assert r > 200 and g < 60 and b < 60


def test_16_bit_grayscale_is_scaled_not_clipped() -> None:
    arr = np.array([[0, 16384, 32768, 65535]] * 4, dtype=np.uint16)
    data = _encode(Image.fromarray(arr), "PNG")
    img = open_image(data, LIMIT)
    assert [img.getpixel((x, 0))[0] for x in range(4)] == [0, 64, 128, 255]


def test_animated_gif_and_multipage_tiff_give_first_frame() -> None:
    frames = [Image.new("RGB", (30, 10), c) for c in ((255, 0, 0), (0, 255, 0))]
    gif = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    tiff = _encode(frames[0], "TIFF", save_all=True, append_images=frames[1:])
    for data in (gif, tiff):
        r, g, _ = open_image(data, LIMIT).getpixel((5, 5))
        assert r > 200 and g < 50


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    data = _encode(Image.new("RGB", (40, 20), "white"), "JPEG", exif=exif)
    assert image_size(data) == (40, 20)
    assert open_image(data, LIMIT).size == (20, 40)


def test_pixel_limit_checked_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _encode(Image.new("RGB", (300, 200)), "PNG")

    def no_decoding(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixels must not be decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ProcessingError, match="300x200"):
        open_image(data, max_pixels=300 * 200 - 1)


def test_decompression_bomb_refused_quickly(bomb_png: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    assert len(bomb_png) < 100_000
    assert image_size(bomb_png) == (24000, 24000)
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("bomb decoded"))
    started = time.perf_counter()
    with pytest.raises(ProcessingError, match="too large"):
        open_image(bomb_png, LIMIT)
    assert time.perf_counter() - started < 0.5


def test_global_pillow_limit_untouched(bomb_png: bytes) -> None:
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ProcessingError):
        open_image(bomb_png, LIMIT)
    assert before is not None and before == Image.MAX_IMAGE_PIXELS


def test_limit_above_pillow_default_is_ours() -> None:
    # our limit applies even when it is stricter or looser than Pillow's global one
    data = _encode(Image.new("1", (100, 100)), "PNG")
    assert open_image(data, max_pixels=10_000).size == (100, 100)
    with pytest.raises(ProcessingError):
        open_image(data, max_pixels=9_999)


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,
        b"not an image at all",
        b"GIF89a\x10\x00",
    ],
)
def test_unreadable_header(data: bytes) -> None:
    with pytest.raises(ProcessingError):
        image_size(data)
    with pytest.raises(ProcessingError):
        open_image(data, LIMIT)


def test_truncated_image_raises_processing_error() -> None:
    rng = np.random.default_rng(0)
    data = _encode(Image.fromarray(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)), "PNG")
    truncated = data[: len(data) // 2]
    assert image_size(truncated) == (200, 200)
    with pytest.raises(ProcessingError, match="corrupt or truncated"):
        open_image(truncated, LIMIT)
    jpeg = _encode(Image.fromarray(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)), "JPEG")
    with pytest.raises(ProcessingError):
        open_image(jpeg[:300], LIMIT)


def test_thumbnail_keeps_aspect_ratio() -> None:
    img = Image.new("RGB", (1000, 500), "blue")
    thumb = Image.open(io.BytesIO(thumbnail_png(img)))
    assert thumb.size == (256, 128)
    assert Image.open(io.BytesIO(thumbnail_png(img, max_side=64))).size == (64, 32)
    assert Image.open(io.BytesIO(thumbnail_png(Image.new("RGB", (10, 5))))).size == (10, 5)
    assert img.size == (1000, 500)


def test_mime_for() -> None:
    assert [mime_for(f) for f in ("png", "jpeg", "gif", "webp", "bmp", "tiff")] == [
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/bmp",
        "image/tiff",
    ]
    assert mime_for("pdf") == "application/octet-stream"
