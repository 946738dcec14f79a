"""Blob key rules shared by every BlobStore: our own ids joined by '/', never client file names."""

from __future__ import annotations

import re

_KEY = re.compile(r"^[A-Za-z0-9_.=-]+(/[A-Za-z0-9_.=-]+)*$")


def validate_key(key: str) -> str:
    """Return the key unchanged, or raise ValueError for anything that could escape or alias: '..', '/abs',
    empty segments, spaces and other characters outside [A-Za-z0-9_.=-]."""
    if not _KEY.match(key) or any(part in (".", "..") for part in key.split("/")):
        raise ValueError(f"invalid blob key {key!r}")
    return key
