"""Safe image decoding: pixel limits checked from the header before any pixel data is decompressed."""

from __future__ import annotations

import io

import numpy as np
from PIL import (
    BmpImagePlugin,
    GifImagePlugin,
    Image,
    ImageFile,
    ImageOps,
    JpegImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    WebPImagePlugin,
)

from mmrag.errors import ProcessingError
from mmrag.ingest.sniff import sniff

# Opening with the plugin classes directly reads the header without Image.open's global MAX_IMAGE_PIXELS check
# (and its warnings): our own per-call `max_pixels` limit applies instead.
_PLUGINS: dict[str, type[ImageFile.ImageFile]] = {
    "png": PngImagePlugin.PngImageFile,
    "jpeg": JpegImagePlugin.JpegImageFile,
    "gif": GifImagePlugin.GifImageFile,
    "webp": WebPImagePlugin.WebPImageFile,
    "bmp": BmpImagePlugin.BmpImageFile,
    "tiff": TiffImagePlugin.TiffImageFile,
}
_MIME = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
}
_WHITE = (255, 255, 255)
_ORIENTATION = 0x0112
_TRANSPOSED = frozenset(range(2, 9))  # EXIF orientations other than "normal"


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) read from the header only; ProcessingError when the bytes are not a readable image."""
    img = _open_header(data)
    try:
        return img.size
    finally:
        img.close()


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """Decode the first frame of an image as RGB, refusing (before decoding) images over `max_pixels` pixels."""
    img = _open_header(data)
    try:
        check_pixels(img.size, max_pixels)
        img.load()
        orientation = img.getexif().get(_ORIENTATION, 1)
        return ensure_rgb(ImageOps.exif_transpose(img) if orientation in _TRANSPOSED else img)
    except ProcessingError:
        img.close()
        raise
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, struct.error... on bad data
        img.close()
        raise ProcessingError(f"corrupt or truncated image: {exc}") from exc


def check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ProcessingError(f"invalid image size {width}x{height}")
    if width * height > max_pixels:
        raise ProcessingError(f"image too large: {width}x{height} = {width * height} pixels, the limit is {max_pixels}")


def ensure_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode to RGB: transparency onto white, 16-bit/float scaled to 8-bit, palette/CMYK/1-bit expanded."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode.startswith(("I", "F")):
        return Image.fromarray(_to_uint8(np.asarray(img), is_float=mode.startswith("F")), "L").convert("RGB")
    if mode in ("RGBA", "RGBa", "LA", "La", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("LA").convert("RGBA") if mode == "La" else img.convert("RGBA")
        background = Image.new("RGB", img.size, _WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


def to_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def thumbnail_png(img: Image.Image, max_side: int = 256) -> bytes:
    thumb = img.copy()
    thumb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return to_png(thumb)


def mime_for(fmt: str) -> str:
    """MIME type of a sniffed image format ("application/octet-stream" for anything else)."""
    return _MIME.get(fmt, "application/octet-stream")


def _open_header(data: bytes) -> ImageFile.ImageFile:
    fmt = sniff(data)
    plugin = _PLUGINS.get(fmt)
    if plugin is None:
        raise ProcessingError(f"not a supported image (detected: {fmt})")
    try:
        return plugin(io.BytesIO(data))
    except Exception as exc:
        raise ProcessingError(f"corrupt or unreadable {fmt.upper()} image: {exc}") from exc


def _to_uint8(arr: np.ndarray, *, is_float: bool) -> np.ndarray:
    if arr.size == 0:
        return arr.astype(np.uint8)
    arr = arr.astype(np.float64)
    low, high = float(arr.min()), float(arr.max())
    if is_float and low >= 0 and high <= 1:
        scaled = arr * 255
    elif low >= 0 and high <= 255:
        scaled = arr
    elif low >= 0 and high <= 65535:
        scaled = arr / 257  # 16-bit samples
    else:
        scaled = (arr - low) * (255 / (high - low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
