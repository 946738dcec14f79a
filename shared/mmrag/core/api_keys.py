"""API keys: only their SHA-256 is ever stored; bootstrap keys from configuration plus keys created at run time."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from mmrag.core.models import ApiKey, new_id
from mmrag.errors import InvalidParameter


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyService:
    """Bootstrap keys (MMRAG_API_KEYS) and stored keys (`mmrag keys create`, or the AWS key admin) → tenant."""

    def __init__(self, store: Any, bootstrap: dict[str, str]):
        self.store = store
        self.bootstrap = {hash_api_key(k): tenant for k, tenant in bootstrap.items()}

    def tenant_for(self, key: str) -> str | None:
        h = hash_api_key(key)
        if h in self.bootstrap:
            return self.bootstrap[h]
        rec = self.store.find_by_hash(h) if self.store else None
        if rec and not rec.revoked:
            return rec.tenant
        return None

    def create(self, tenant: str, label: str = "") -> tuple[str, ApiKey]:
        if not tenant.strip():
            raise InvalidParameter("tenant must not be empty")
        raw = "mmr_" + secrets.token_urlsafe(32)
        rec = ApiKey(key_id=new_id("key"), tenant=tenant, key_hash=hash_api_key(raw), label=label)
        self.store.add_key(rec)
        return raw, rec
