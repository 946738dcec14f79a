"""Signed picture URLs over real HTTP: a URL from a response loads in an <img> (no Authorization header); an altered,
expired or foreign signature is 403 and never another tenant's picture; security headers; no signature in the logs."""

from __future__ import annotations

import logging
import os
import stat
import time
import uuid
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from mmrag.adapters.local.hmac_links import HmacImageLinks, url_secret
from mmrag.core.blob_paths import derived_prefix
from mmrag.core.image_links import ImageVariant, LinkCheck, rounded_expiry
from mmrag.core.models import ImageRecord
from mmrag.errors import NotFound
from tests.conftest import KEY_A, KEY_B, assert_error
from tests.samples import b64, shape_png, text_png


def upload_picture(api, raw: bytes, category: str) -> str:
    body = {"document_type": "image", "file": b64(raw), "metadata": {"title": "pic", "category": category}}
    doc_id = api.ok(api.post("/documents/upload", json=body))["document_id"]
    assert api.wait(doc_id)["status"] == "completed"
    return doc_id


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    return parts._replace(query=urlencode({**query(url), **changes})).geturl()


def on_path(url: str, path: str) -> str:
    return urlsplit(url)._replace(path=path).geturl()


@pytest.fixture(scope="module")
def pictures(api, api_b):
    """Tenant A's red picture found by an image search, and tenant B's own picture."""
    cat = f"sig-{uuid.uuid4().hex[:8]}"
    size = (300 + uuid.uuid4().int % 200, 240)  # bytes no other test uploads (identical uploads may be deduplicated)
    red = upload_picture(api, shape_png("red", size), cat)
    upload_picture(api, shape_png("blue", size), cat)
    body = {"query_type": "image", "query_image": b64(shape_png("red", size)), "top_k": 1, "filters": {"category": cat}}
    top = api.ok(api.post("/search/image", json=body))["results"][0]
    assert top["document_id"] == red
    b_doc = upload_picture(api_b, text_png(["TENANT B ONLY", cat]), cat)
    b_img = api_b.ok(api_b.get(f"/documents/{b_doc}"))["images"][0]
    yield {"a": top, "a_doc": red, "b": b_img}
    api_b.ok(api_b.delete(f"/documents/{b_doc}"))  # other modules expect tenant B to own nothing


def test_a_search_result_picture_loads_without_the_key(api, anon, pictures):
    top = pictures["a"]
    for url in (top["image_url"], top["thumbnail_url"]):
        assert KEY_A not in url and set(query(url)) == {"t", "exp", "sig"}
        r = anon.get(url)
        assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text[:300]
        assert r.content == api.get(url.split("?")[0]).content, "the same bytes as with the key"
        assert r.headers["x-content-type-options"] == "nosniff"
        max_age = int(r.headers["cache-control"].split("max-age=")[1])
        assert 0 < max_age <= 3600
    full, thumb = anon.get(top["image_url"]).content, anon.get(top["thumbnail_url"]).content
    assert full != thumb


def test_the_document_detail_urls_are_signed_and_stable(api, anon, pictures):
    first = api.ok(api.get(f"/documents/{pictures['a_doc']}"))["images"][0]
    again = api.ok(api.get(f"/documents/{pictures['a_doc']}"))["images"][0]
    assert first["url"] == again["url"], "rounded expiry: the same URL while it is fresh (cacheable)"
    assert int(query(first["url"])["exp"]) >= time.time() + 3600 - 5
    assert anon.get(first["thumbnail_url"]).status_code == 200


@pytest.mark.parametrize(
    "change",
    [
        {"sig": "A" * 43},
        {"exp": "9999999999"},
        {"t": "tenant-b"},
        {"exp": "soon"},
        {"t": ""},
    ],
    ids=["altered-sig", "extended-exp", "other-tenant", "bad-exp", "no-tenant"],
)
def test_an_altered_url_is_refused(anon, pictures, change):
    url = pictures["a"]["image_url"]
    sig = query(url)["sig"]
    if "sig" in change:  # flip one character of the real signature instead
        change = {"sig": sig[:-1] + ("A" if sig[-1] != "A" else "B")}
    body = assert_error(anon.get(with_query(url, **change)), 403, "FORBIDDEN")
    assert "png" not in body["message"].lower()


def test_a_signature_works_only_for_its_own_picture_and_variant(anon, pictures):
    a_full, a_thumb = pictures["a"]["image_url"], pictures["a"]["thumbnail_url"]
    b_id = pictures["b"]["image_id"]
    # tenant A's signature on tenant B's picture, full size and thumbnail
    assert_error(anon.get(on_path(a_full, f"/api/v1/images/{b_id}")), 403, "FORBIDDEN")
    assert_error(anon.get(on_path(a_thumb, f"/api/v1/images/{b_id}/thumbnail")), 403, "FORBIDDEN")
    # the full picture's signature on the thumbnail and the other way round
    assert_error(anon.get(on_path(a_full, urlsplit(a_thumb).path)), 403, "FORBIDDEN")
    assert_error(anon.get(on_path(a_thumb, urlsplit(a_full).path)), 403, "FORBIDDEN")


def test_a_genuine_signature_of_tenant_a_for_b_picture_never_shows_it(server, anon, pictures):
    """Even a signature the server made (a leaked secret, a bug elsewhere) is scoped: tenant A reads A's pictures."""
    b_id = pictures["b"]["image_id"]
    links = server.container.image_links
    exp = int(time.time()) + 600
    sig = links.signature("tenant-a", b_id, ImageVariant.FULL, exp)
    url = f"{server.url}/api/v1/images/{b_id}?" + urlencode({"t": "tenant-a", "exp": exp, "sig": sig})
    assert_error(anon.get(url), 404, "NOT_FOUND")


def test_an_expired_url_is_refused_but_the_key_still_works(server, api, anon, pictures):
    image_id = pictures["a"]["image_id"]
    for variant, suffix in ((ImageVariant.FULL, ""), (ImageVariant.THUMBNAIL, "/thumbnail")):
        exp = int(time.time()) - 1
        sig = server.container.image_links.signature("tenant-a", image_id, variant, exp)
        url = f"{server.url}/api/v1/images/{image_id}{suffix}?" + urlencode({"t": "tenant-a", "exp": exp, "sig": sig})
        body = assert_error(anon.get(url), 403, "FORBIDDEN")
        assert "expired" in body["message"] + body["error"]["error_detail"]
        assert api.get(url).status_code == 200, "a valid key is enough, whatever the URL carries"


def test_a_foreign_key_with_a_bad_signature_gets_nothing(api_b, pictures):
    url = with_query(pictures["a"]["image_url"], sig="x" * 43)
    assert_error(api_b.get(url), 404, "NOT_FOUND")
    assert_error(api_b.get(url.split("?")[0]), 404, "NOT_FOUND")


def test_security_headers(anon, api, server):
    r = api.get("/documents")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["referrer-policy"] == "no-referrer"
    assert anon.get("/health").headers["referrer-policy"] == "no-referrer"
    html = anon.get(server.url + "/docs")
    assert html.headers["content-type"].startswith("text/html")
    page = html.headers["content-security-policy"]
    assert "default-src 'self'" in page and "img-src 'self' data: blob:" in page and "frame-ancestors 'none'" in page
    assert "unsafe-inline" not in page and "script-src 'self'" in page


def test_no_log_line_carries_a_signature_or_a_key(anon, pictures):
    records: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    access = logging.getLogger("uvicorn.access")
    handler, level = Capture(), access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        url = pictures["a"]["thumbnail_url"]
        assert anon.get(url).status_code == 200
        anon.get(url, headers={"Authorization": f"Bearer {KEY_B}"})
        deadline = time.time() + 5
        while len(records) < 2 and time.time() < deadline:
            time.sleep(0.05)
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    lines = [line for line in records if "/thumbnail" in line]
    assert len(lines) >= 2, records
    sig = query(pictures["a"]["thumbnail_url"])["sig"]
    assert all("sig=***" in line and sig not in line and KEY_B not in line for line in lines), lines


# ---------------------------------------------------------------------------------------------- the adapter itself
def _image(tenant: str = "tenant-a", image_id: str = "img_1") -> ImageRecord:
    base = f"{derived_prefix(tenant, 'doc_1')}/images/{image_id}"
    return ImageRecord(image_id, "doc_1", 0, f"{base}.png", f"{base}.thumb.png", 10, 10)


def test_no_url_is_made_for_a_picture_outside_the_tenant():
    links = HmacImageLinks(b"k" * 32, 60)
    assert links.url("tenant-a", _image("tenant-a"), ImageVariant.FULL, "http://h")
    for variant in ImageVariant:
        with pytest.raises(NotFound):
            links.url("tenant-b", _image("tenant-a"), variant, "http://h")


def test_the_secret_is_made_once_kept_private_and_survives_a_restart(tmp_path):
    first = url_secret("", tmp_path)
    path = tmp_path / "url_secret"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and len(first) >= 32
    assert url_secret("", tmp_path) == first
    before = HmacImageLinks(first, 3600).url("tenant-a", _image(), ImageVariant.FULL, "http://h")
    q = query(before)
    after = HmacImageLinks(url_secret("", tmp_path), 3600)  # a restarted server
    assert after.check("tenant-a", "img_1", ImageVariant.FULL, int(q["exp"]), q["sig"]) is LinkCheck.VALID
    other = HmacImageLinks(url_secret("", tmp_path / "other"), 3600)
    assert other.check("tenant-a", "img_1", ImageVariant.FULL, int(q["exp"]), q["sig"]) is LinkCheck.INVALID


def test_a_configured_secret_is_used_and_must_be_long(tmp_path):
    assert url_secret("s" * 32, tmp_path) == b"s" * 32 and not (tmp_path / "url_secret").exists()
    with pytest.raises(ValueError, match="at least 32"):
        url_secret("short", tmp_path)
    assert "s" * 32 not in repr(HmacImageLinks(b"s" * 32, 60))


def test_expiry_is_rounded_up_to_a_bucket():
    assert rounded_expiry(1000, 3600) == rounded_expiry(1799, 3600) == 5400  # 15-minute buckets
    for now in (0, 899, 900, 12345.6):
        exp = rounded_expiry(now, 3600)
        assert now + 3600 <= exp < now + 3600 + 900 and exp % 900 == 0
    clock = [1_000_000.0]
    links = HmacImageLinks(b"k" * 32, 60, clock=lambda: clock[0])
    url = links.url("t", _image("t"), ImageVariant.THUMBNAIL, "http://h/")
    assert url.startswith("http://h/api/v1/images/img_1/thumbnail?")
    q = query(url)
    assert links.check("t", "img_1", ImageVariant.THUMBNAIL, int(q["exp"]), q["sig"]) is LinkCheck.VALID
    clock[0] = int(q["exp"]) + 1
    assert links.check("t", "img_1", ImageVariant.THUMBNAIL, int(q["exp"]), q["sig"]) is LinkCheck.EXPIRED
