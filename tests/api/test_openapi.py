"""The OpenAPI document tells the truth: it is the checked-in shared/mmrag/api/openapi.json, it declares the Bearer
key, the upload bodies, the error envelope and the event stream, the docs pages work without the internet, and a bounded
Schemathesis run finds no 5xx and no response that breaks the document."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, needs_models

DOCUMENT = ROOT / "shared" / "mmrag" / "api" / "openapi.json"
METHODS = {"get", "post", "put", "delete", "patch"}


def operations(doc: dict):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield method, path, op


@pytest.fixture(scope="module")
def document() -> dict:
    from mmrag.api.openapi_file import current_document

    return current_document()


def test_the_checked_in_document_is_current(document):
    assert DOCUMENT.is_file(), "run `make openapi`"
    stale = "shared/mmrag/api/openapi.json is stale: `make openapi`"
    assert json.loads(DOCUMENT.read_text(encoding="utf-8")) == document, stale


def test_the_file_command_checks_and_writes(tmp_path):
    out = tmp_path / "openapi.json"
    run = [sys.executable, "-m", "mmrag.api.openapi_file"]
    assert subprocess.run([*run, "--check", str(out)], capture_output=True).returncode == 1
    assert subprocess.run([*run, "--write", str(out)]).returncode == 0
    assert subprocess.run([*run, "--check", str(out)]).returncode == 0
    assert out.read_text(encoding="utf-8") == DOCUMENT.read_text(encoding="utf-8")


def test_bearer_auth_on_every_protected_operation(document):
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert scheme == {**scheme, "type": "http", "scheme": "bearer"}
    for method, path, op in operations(document):
        if (method, path) == ("get", "/api/v1/health"):
            assert "security" not in op and "401" not in op["responses"]
        else:
            assert op["security"] == [{"bearerAuth": []}], (method, path)
            assert {"401", "429"} <= set(op["responses"]), (method, path)


def test_errors_are_the_envelope_and_never_422(document):
    assert "HTTPValidationError" not in document["components"]["schemas"]
    envelope = document["components"]["schemas"]["ErrorResponse"]
    assert set(envelope["required"]) == {"code", "message", "error"}
    for method, path, op in operations(document):
        responses = op["responses"]
        assert "422" not in responses, (method, path)
        errors = {s for s in responses if s >= "400"}
        assert "500" in errors, (method, path)
        if op.get("parameters") or op.get("requestBody"):
            assert "400" in errors, (method, path)
        if "{" in path:
            assert "404" in errors, (method, path)
        for status in errors:
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (method, path, status)
    assert "Retry-After" in document["paths"]["/api/v1/search/text"]["post"]["responses"]["429"]["headers"]


def test_upload_bodies_are_declared(document):
    upload = document["paths"]["/api/v1/documents/upload"]["post"]["requestBody"]["content"]
    assert upload["application/json"]["schema"] == {"$ref": "#/components/schemas/UploadRequest"}
    form = upload["multipart/form-data"]
    assert form["schema"]["properties"]["file"]["format"] == "binary" and form["schema"]["required"] == ["file"]
    assert form["encoding"]["metadata"]["contentType"] == "application/json"
    assert {"413", "415"} <= set(document["paths"]["/api/v1/documents/upload"]["post"]["responses"])
    batch = document["paths"]["/api/v1/documents/batch-upload"]["post"]["requestBody"]["content"]
    assert batch["application/json"]["schema"] == {"$ref": "#/components/schemas/BatchUploadRequest"}
    items = document["components"]["schemas"]["BatchUploadRequest"]["properties"]["documents"]["items"]
    assert items == {"$ref": "#/components/schemas/BatchItem"}


def test_the_stream_and_the_pictures_have_their_media_types(document):
    stream = document["paths"]["/api/v1/qa/ask-stream"]["post"]["responses"]["200"]["content"]
    assert list(stream) == ["text/event-stream"]
    assert stream["text/event-stream"]["schema"]["properties"]["data"]["contentMediaType"] == "application/json"
    picture = document["paths"]["/api/v1/images/{image_id}"]["get"]["responses"]["200"]["content"]
    assert list(picture) == ["image/*"]


@needs_models
def test_the_served_document_is_the_file(server):
    import requests

    served = requests.get(server.url + "/openapi.json", timeout=30)
    assert served.status_code == 200
    assert served.json() == json.loads(DOCUMENT.read_text(encoding="utf-8"))


@needs_models
def test_docs_pages_load_nothing_from_elsewhere(server):
    import requests

    for page, assets in (("/docs", ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-init.js")), ("/redoc", ())):
        r = requests.get(server.url + page, timeout=30)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        urls = re.findall(r'(?:src|href|spec-url|data-openapi-url)="([^"]+)"', r.text)
        assert urls and all(u.startswith("/") for u in urls), urls  # same origin only: no CDN
        assert "<script>" not in r.text and "<style" not in r.text  # nothing inline (Content-Security-Policy)
        for url in urls:
            if url != "/openapi.json":
                asset = requests.get(server.url + url, timeout=30)
                assert asset.status_code == 200 and len(asset.content) > 100, url
                assert asset.headers["X-Content-Type-Options"] == "nosniff" and asset.headers["X-Request-ID"]
        for name in assets:
            assert any(u.endswith(name) for u in urls), name
    assert requests.get(server.url + "/docs/assets/../../pyproject.toml", timeout=30).status_code == 404


@needs_models
@pytest.mark.slow
def test_schemathesis_finds_no_5xx_and_no_break_of_the_document(tmp_path):
    """A bounded `make fuzz` (about a minute and a half with the server's start and the seeded documents): every
    operation, the coverage and fuzzing phases, 45 s of requests."""
    report = tmp_path / "report"
    models = os.environ.get("MMRAG_TEST_MODEL_DIR", str(ROOT.parent / "shared" / "models"))
    env = {**os.environ, "MMRAG_MODEL_DIR": models}
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "fuzz_api.py"), "--max-examples", "8", "--seed", "10"]
        + ["--phases", "coverage,fuzzing", "--report-dir", str(report), "--max-time", "45"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    summary = re.search(r"fuzz summary: (\{.*\})", run.stdout)
    assert summary, run.stdout[-3000:] + run.stderr[-3000:]
    counts = json.loads(summary.group(1))
    assert run.returncode == 0 and counts["failed_checks"] == 0, run.stdout[-6000:]
    assert counts["operations"] >= 20 and counts["requests"] > 200, counts


CHROMIUM = Path(os.environ.get("MMRAG_CHROMIUM", "/usr/bin/chromium"))


@needs_models
@pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} not found: apt-get install -y chromium")
def test_docs_render_in_a_browser_without_the_internet(server, document):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    operation_count = sum(1 for _ in operations(document))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page()
            errors: list[str] = []
            elsewhere: list[str] = []
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.on("pageerror", lambda e: errors.append(str(e)))

            def loopback_only(route) -> None:
                if route.request.url.startswith(server.url + "/"):
                    route.continue_()
                else:
                    elsewhere.append(route.request.url)
                    route.abort()

            page.route("**/*", loopback_only)
            page.goto(server.url + "/docs")
            page.wait_for_selector(".opblock", timeout=60_000)
            assert page.locator(".opblock").count() == operation_count
            assert page.locator("button.authorize").count() == 1  # the bearer scheme
            assert errors == [] and elsewhere == []

            page.goto(server.url + "/redoc")
            page.wait_for_selector("li[data-item-id]", timeout=60_000)
            assert page.locator("li[data-item-id]").count() >= operation_count
            # ReDoc's footer logo is an <img> from its CDN, which the page's policy blocks: nothing else may fail
            assert [e for e in errors if "cdn.redoc.ly" not in e] == [] and elsewhere == []
        finally:
            browser.close()
