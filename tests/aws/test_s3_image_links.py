"""Picture URLs on AWS: S3 presigned GETs of the picture's own object (moto's S3 answers them), one tenant's pictures
only; the Content-Security-Policy of HTML pages allows the bucket's origin for pictures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

pytest.importorskip("moto")

import requests  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from fastapi.responses import HTMLResponse  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from mmrag.adapters.aws.direct_uploads import presign_client  # noqa: E402
from mmrag.adapters.aws.s3_blobs import S3BlobStore  # noqa: E402
from mmrag.adapters.aws.s3_presigned_links import S3PresignedImageLinks  # noqa: E402
from mmrag.api.security_headers import SecurityHeadersMiddleware, container_image_origins  # noqa: E402
from mmrag.core.blob_paths import derived_prefix  # noqa: E402
from mmrag.core.image_links import ImageVariant, LinkCheck  # noqa: E402
from mmrag.core.models import ImageRecord  # noqa: E402
from mmrag.errors import NotFound  # noqa: E402
from tests.aws.offline import REGION, loopback_only, offline_aws_env  # noqa: E402

BUCKET = "mmrag-pictures-test"
PNG, THUMB = b"\x89PNG full picture", b"\x89PNG thumbnail"


@pytest.fixture
def s3(monkeypatch) -> Iterator[Any]:
    from moto import mock_aws

    offline_aws_env(monkeypatch)
    loopback_only(monkeypatch)
    with mock_aws():
        client = presign_client(REGION)
        client.create_bucket(Bucket=BUCKET)
        yield client


def picture(blobs: S3BlobStore, tenant: str, document_id: str = "doc_1", mime: str = "image/jpeg") -> ImageRecord:
    base = f"{derived_prefix(tenant, document_id)}/images/img_{document_id}"
    blobs.put(f"{base}.jpg", PNG, mime)
    blobs.put(f"{base}.thumb.png", THUMB, "image/png")
    return ImageRecord(f"img_{document_id}", document_id, 0, f"{base}.jpg", f"{base}.thumb.png", 10, 10, mime=mime)


@pytest.mark.parametrize("prefix", ["", "stage/"])
def test_presigned_urls_load_the_picture_without_credentials(s3, prefix):
    blobs = S3BlobStore(BUCKET, prefix, client=s3)
    links = S3PresignedImageLinks(lambda: s3, BUCKET, prefix, 900)
    img = picture(blobs, "tenant-a")

    url = links.url("tenant-a", img, ImageVariant.FULL, "https://api.example/dev")
    parts = urlsplit(url)
    assert parts.netloc == f"{BUCKET}.s3.amazonaws.com" and parts.path == f"/{prefix}{img.blob_key}"
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert q["X-Amz-Expires"] == "900" and q["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256" and q["X-Amz-Signature"]
    r = requests.get(url, timeout=10)  # answered by moto in this process: no Authorization header, no network
    assert r.status_code == 200 and r.content == PNG and r.headers["content-type"] == "image/jpeg"

    thumb = requests.get(links.url("tenant-a", img, ImageVariant.THUMBNAIL, ""), timeout=10)
    assert thumb.status_code == 200 and thumb.content == THUMB and thumb.headers["content-type"] == "image/png"


def test_a_tenant_gets_no_url_for_another_tenants_picture(s3):
    blobs = S3BlobStore(BUCKET, client=s3)
    links = S3PresignedImageLinks(lambda: s3, BUCKET, "", 900)
    a_img = picture(blobs, "tenant-a")
    with pytest.raises(NotFound):
        links.url("tenant-b", a_img, ImageVariant.FULL, "")
    with pytest.raises(NotFound):
        links.url("tenant-b", a_img, ImageVariant.THUMBNAIL, "")
    # a record whose key points outside its own document is refused too
    moved = ImageRecord("img_x", "doc_2", 0, a_img.blob_key, a_img.thumb_key, 10, 10)
    with pytest.raises(NotFound):
        links.url("tenant-a", moved, ImageVariant.FULL, "")
    assert links.check("tenant-a", a_img.image_id, ImageVariant.FULL, 2**40, "x") is LinkCheck.INVALID


def test_html_pages_may_show_pictures_from_the_bucket(s3):
    links = S3PresignedImageLinks(lambda: s3, BUCKET, "", 900)
    assert links.origins() == [f"https://{BUCKET}.s3.amazonaws.com"]

    class Container:
        image_links = links

    app = FastAPI()
    app.add_middleware(SecurityHeadersMiddleware, image_origins=container_image_origins(Container()))

    @app.get("/page", response_class=HTMLResponse)
    def page() -> str:
        return "<html></html>"

    @app.get("/data")
    def data() -> dict[str, int]:
        return {"a": 1}

    with TestClient(app) as client:
        html = client.get("/page").headers["content-security-policy"]
        assert f"img-src 'self' data: blob: https://{BUCKET}.s3.amazonaws.com;" in html
        assert "default-src 'self'" in html and "unsafe-inline" not in html
        api = client.get("/data")
        assert api.headers["content-security-policy"].startswith("default-src 'none'")
        assert api.headers["referrer-policy"] == "no-referrer" and api.headers["x-content-type-options"] == "nosniff"
