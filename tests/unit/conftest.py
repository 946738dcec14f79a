"""Shared fixtures for the unit tests; also makes `mmrag` importable from a source checkout."""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

import pytest

_SHARED = Path(__file__).resolve().parents[2] / "shared"
if str(_SHARED) not in sys.path:
    sys.path.insert(0, str(_SHARED))


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


@pytest.fixture(scope="session")
def bomb_png() -> bytes:
    """A valid 24000x24000 1-bit grayscale PNG of about 70 KB (576 megapixels once decoded)."""
    side = 24000
    row = b"\x00" * (1 + side // 8)
    compressor = zlib.compressobj(9)
    block = row * 1000
    idat = b"".join(compressor.compress(block) for _ in range(side // 1000)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")
