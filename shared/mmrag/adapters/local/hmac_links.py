"""Signed picture URLs of the local service: /api/v1/images/{id}[/thumbnail]?t=<tenant>&exp=<unix>&sig=<HMAC>.

The signature is HMAC-SHA256 with a server secret over (tenant, image id, variant, expiry), so a URL cannot be
moved to another picture, variant or tenant, nor extended. The secret is MMRAG_URL_SECRET, or one generated on first
start and kept in <data dir>/url_secret (mode 0600), so URLs handed out survive a restart."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

from mmrag.core.image_links import ImageVariant, LinkCheck, owned_object_key, rounded_expiry
from mmrag.core.models import ImageRecord

MIN_SECRET_BYTES = 32
SECRET_FILE = "url_secret"


class HmacImageLinks:
    def __init__(self, secret: bytes, lifetime_s: int, clock: Callable[[], float] = time.time):
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the URL signing secret must be at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret
        self.lifetime_s = lifetime_s
        self.clock = clock

    def url(self, tenant: str, image: ImageRecord, variant: ImageVariant, base_url: str) -> str:
        owned_object_key(tenant, image, variant)
        expires = rounded_expiry(self.clock(), self.lifetime_s)
        path = f"/api/v1/images/{image.image_id}" + ("/thumbnail" if variant is ImageVariant.THUMBNAIL else "")
        signature = self.signature(tenant, image.image_id, variant, expires)
        query = urlencode({"t": tenant, "exp": expires, "sig": signature})
        return f"{base_url.rstrip('/')}{path}?{query}"

    def signature(self, tenant: str, image_id: str, variant: ImageVariant, expires: int) -> str:
        # JSON keeps the fields apart: no tenant/image pair can be spelled as another one
        message = json.dumps(["mmrag-image-v1", tenant, image_id, str(variant), int(expires)]).encode()
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def check(self, tenant: str, image_id: str, variant: ImageVariant, expires: int, signature: str) -> LinkCheck:
        expected = self.signature(tenant, image_id, variant, expires)
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            return LinkCheck.INVALID
        return LinkCheck.VALID if expires >= self.clock() else LinkCheck.EXPIRED

    def origins(self) -> list[str]:
        return []

    def __repr__(self) -> str:  # never the secret
        return f"HmacImageLinks(lifetime_s={self.lifetime_s})"


def url_secret(configured: str, data_dir: Path) -> bytes:
    """MMRAG_URL_SECRET if set, else the data dir's own secret (made once, atomically, readable by us only)."""
    if configured:
        secret = configured.encode()
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"MMRAG_URL_SECRET must be at least {MIN_SECRET_BYTES} characters")
        return secret
    path = Path(data_dir) / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _create_secret_file(path)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)
    secret = bytes.fromhex(path.read_text().strip())
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"{path} holds a secret shorter than {MIN_SECRET_BYTES} bytes; delete it to make a new one")
    return secret


def _create_secret_file(path: Path) -> None:
    # written whole under a temporary name and linked into place: a server and `mmrag ingest` starting at once
    # both end up reading the one file that won
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(MIN_SECRET_BYTES) + "\n")
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
