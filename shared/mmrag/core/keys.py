"""Where a tenant's things live: blob keys and API-key hashing."""

from __future__ import annotations

import hashlib
import re


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


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
