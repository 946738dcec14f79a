"""Where a tenant's things live in the blob store, and the rules every blob key follows: our own ids joined by '/',
never client file names."""

from __future__ import annotations

import hashlib
import re

_KEY = re.compile(r"^[A-Za-z0-9_.=-]+(/[A-Za-z0-9_.=-]+)*$")


def tenant_slug(tenant: str) -> str:
    """A filesystem- and S3-safe name for a tenant that no other tenant name maps to."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", tenant)[:40]
    return f"{safe}-{hashlib.sha256(tenant.encode()).hexdigest()[:12]}"


def document_prefix(tenant: str, document_id: str) -> str:
    return f"t/{tenant_slug(tenant)}/{document_id}"


def original_key(tenant: str, document_id: str) -> str:
    return f"{document_prefix(tenant, document_id)}/original"


def derived_prefix(tenant: str, document_id: str) -> str:
    return f"{document_prefix(tenant, document_id)}/derived"


def validate_key(key: str) -> str:
    """Return the key unchanged, or raise ValueError for anything that could escape or alias: '..', '/abs',
    empty segments, spaces and other characters outside [A-Za-z0-9_.=-]."""
    if not _KEY.match(key) or any(part in (".", "..") for part in key.split("/")):
        raise ValueError(f"invalid blob key {key!r}")
    return key
