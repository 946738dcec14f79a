"""mmrag studio in a real browser: Debian's Chromium, headless, driven by Playwright, against the real app on
loopback (the offline small models). One signed-in page walks through the screens in order: sign in, drop files,
watch them finish, search by words and by picture, open a result at its page, ask (streamed), chat twice, delete.
Screenshots of every screen go to $MMRAG_ARTIFACTS or tests/browser/artifacts/."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import KEY_A, MODELS, LiveServer, settings_for
from tests.samples import b64, pdf_with_picture, shape_png, text_png

CHROMIUM = Path(os.environ.get("MMRAG_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("MMRAG_ARTIFACTS") or Path(__file__).parent / "artifacts")
PDF_TEXT = "The blue relief valve diagram shows the pressure gauge."
PNG_LINES = ["WARNING: radiator cap is hot", "Never open the radiator while the engine runs"]
COOLANT_TEXT = "The coolant pump runs at 3000 rpm. The coolant pump is serviced every spring."

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
pytestmark = [
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} not found: apt-get install -y chromium"),
    pytest.mark.skipif(not (MODELS / "sentence-transformers").is_dir(), reason=f"offline models not found at {MODELS}"),
]


# visible inputs, selects, textareas and buttons that a screen reader could not name
UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea, button')].filter(el => {
    if (el.type === 'hidden' || el.closest('[hidden]')) return false;
    if (el.tagName === 'BUTTON') return !(el.innerText.trim() || el.getAttribute('aria-label'));
    return !(el.labels && el.labels.length) && !el.getAttribute('aria-label');
}).map(el => el.outerHTML.slice(0, 120))"""


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[LiveServer]:
    with LiveServer(settings_for(tmp_path_factory.mktemp("studio-data"))) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        b.close()


class Studio:
    """One browser tab on the studio, with the console errors it saw (a CSP violation is one)."""

    def __init__(self, browser, base: str):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
        self.page = self.context.new_page()
        self.base = base + "/"
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.bodies: dict[str, str | None] = {}
        self.languages: list[str] = []  # Accept-Language of each API call
        self.page.on("request", self._saw)
        self.page.set_default_timeout(30_000)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def _saw(self, request) -> None:
        self.requests.append(request.url)
        self.bodies[request.url.split("?")[0]] = request.post_data
        if "/api/v1/" in request.url:
            self.languages.append(request.headers.get("accept-language", ""))

    def requests_json(self, path: str) -> dict:
        """The JSON body of the last request to an API path."""
        return json.loads(self.bodies[self.base.rstrip("/") + path])

    def go(self, hash_: str) -> None:
        if self.page.url == self.base + hash_:
            self.page.reload()  # the same hash is no navigation
        else:
            self.page.goto(self.base + hash_)

    def shot(self, name: str, full_page: bool = True) -> None:
        """A screenshot of the screen, after checking that every visible control has a label."""
        assert self.page.evaluate(UNLABELLED) == [], f"controls without a label on {name}"
        if full_page:  # the sticky header would be drawn where the page was scrolled to
            self.page.evaluate("window.scrollTo(0, 0)")
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)

    def images_loaded(self, selector: str) -> list[int]:
        """naturalWidth of each matching <img> once loading finished (0: broken)."""
        self.page.wait_for_function(
            "s => { const i = [...document.querySelectorAll(s)]; return i.length > 0 && i.every(x => x.complete); }",
            arg=selector,
        )
        return self.page.eval_on_selector_all(selector, "imgs => imgs.map(i => i.naturalWidth)")


@pytest.fixture(scope="module")
def studio(browser, live) -> Iterator[Studio]:
    s = Studio(browser, live.url)
    yield s
    s.context.close()


def wait_completed(base: str, doc_id: str) -> None:
    for _ in range(300):
        r = requests.get(f"{base}/api/v1/documents/{doc_id}", headers={"Authorization": f"Bearer {KEY_A}"}, timeout=10)
        if r.json()["data"]["status"] == "completed":
            return
        time.sleep(0.2)
    raise AssertionError(f"{doc_id} was not processed")


def sign_in(studio: Studio, key: str) -> None:
    studio.go("")
    studio.page.fill("#key", key)
    studio.page.press("#key", "Enter")  # the keyboard is enough


def test_app_is_served_with_security_headers(live):
    r = requests.get(live.url + "/", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "<script" in r.text and not re.search(r"<script(?![^>]*\bsrc=)", r.text), "inline script"
    assert not re.search(r"https?://", r.text), "the page loads nothing from elsewhere"
    script = requests.get(live.url + "/studio/js/main.js", timeout=10)
    assert script.headers["content-type"].startswith("text/javascript")
    assert requests.get(live.url + "/studio/../../errors.py", timeout=10).status_code == 404
    assert requests.get(live.url + "/studio/README.md", timeout=10).status_code == 404


def test_wrong_key_is_refused(studio):
    sign_in(studio, "not-a-key")
    alert = studio.page.locator("form.signin [role=alert]")
    alert.wait_for()
    assert "invalid API key" in alert.inner_text() or "refused" in alert.inner_text()
    assert studio.page.locator("nav").count() == 0
    assert studio.page.evaluate("sessionStorage.getItem('mmrag.key')") is None
    studio.shot("01-signin-refused")
    studio.errors.clear()  # the refused /me call is logged by the browser as a failed request


def test_sign_in_shows_the_tenant(studio):
    sign_in(studio, KEY_A)
    studio.page.locator("#tenant").wait_for()
    assert "tenant-a" in studio.page.inner_text("#tenant")
    studio.page.locator(".library-body").wait_for()
    assert not any(KEY_A in url for url in studio.requests), "the key must never be in a URL"
    studio.shot("02-library-empty")


def test_drop_a_pdf_and_a_png_and_watch_both_complete(studio):
    studio.go("#/upload")
    studio.page.locator("#dropzone").wait_for()
    files = [
        {"name": "valve-manual.pdf", "type": "application/pdf", "b64": b64(pdf_with_picture(PDF_TEXT))},
        {"name": "radiator.png", "type": "image/png", "b64": b64(text_png(PNG_LINES))},
    ]
    studio.page.evaluate(
        """files => {
            const dt = new DataTransfer();
            for (const f of files) {
                const bytes = Uint8Array.from(atob(f.b64), c => c.charCodeAt(0));
                dt.items.add(new File([bytes], f.name, {type: f.type}));
            }
            const zone = document.querySelector('#dropzone');
            zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: dt, bubbles: true, cancelable: true}));
            zone.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
        }""",
        files,
    )
    rows = studio.page.locator("li.upload")
    assert rows.count() == 2
    studio.page.wait_for_function(
        "() => [...document.querySelectorAll('li.upload')].every(li => /^(completed|failed)$/.test(li.dataset.status))",
        timeout=90_000,
    )
    assert rows.evaluate_all("els => els.map(e => e.dataset.status)") == ["completed", "completed"]
    studio.shot("03-upload-completed")

    studio.go("#/library")
    studio.page.locator("table.docs").wait_for()
    titles = studio.page.locator("table.docs tbody tr td:first-child").all_inner_texts()
    assert sorted(titles) == ["radiator.png", "valve-manual.pdf"]
    assert studio.page.locator("table.docs .status-completed").count() == 2
    studio.shot("04-library")


def search(studio: Studio, words: str, target: str = "text") -> None:
    studio.go("#/search")
    studio.page.fill("#q", words)
    studio.page.select_option("#target", target)
    studio.page.click("#search-submit")
    studio.page.locator("#result-count").wait_for()


def test_find_the_picture_by_words(studio):
    search(studio, "radiator cap", target="image")
    first = studio.page.locator(".result").first
    assert "radiator" in first.inner_text().lower()
    widths = studio.images_loaded(".result .thumb img")
    assert widths and all(w > 0 for w in widths), widths
    first.locator("details.why summary").click()
    assert studio.page.locator(".result .why li").count() >= 2
    studio.shot("05-search-words-pictures")


def test_find_the_picture_by_a_picture(studio, tmp_path):
    query = tmp_path / "blue.png"
    query.write_bytes(shape_png("blue"))
    studio.go("#/search")
    studio.page.check("input[name=mode][value=image]")
    studio.page.set_input_files("#query-image", str(query))
    studio.page.locator(".picture-preview img").wait_for()
    studio.page.click("#search-submit")
    studio.page.locator(".result").first.wait_for()
    widths = studio.images_loaded(".result .thumb img")
    assert len(widths) >= 2 and all(w > 0 for w in widths), widths
    studio.shot("06-search-by-picture")


def test_search_by_words_and_a_pasted_picture(studio):
    studio.go("#/search")
    studio.page.check("input[name=mode][value=both]")
    studio.page.fill("#q", "relief valve")
    studio.page.evaluate(
        """b64 => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], 'clipboard.png', {type: 'image/png'}));
            document.dispatchEvent(new ClipboardEvent('paste', {clipboardData: dt, bubbles: true, cancelable: true}));
        }""",
        b64(shape_png("blue")),
    )
    studio.page.locator(".picture-preview img").wait_for()
    studio.page.fill("#weight", "30")
    studio.page.select_option("#fusion", "rrf")
    studio.page.click("#search-submit")
    studio.page.locator(".result").first.wait_for()
    body = studio.requests_json("/api/v1/search/multimodal")
    assert body["modality_weights"] == {"text": 0.3, "image": 0.7}
    assert body["search_options"]["fusion_strategy"] == "rrf" and body["query_image"]
    assert all(w > 0 for w in studio.images_loaded(".result .thumb img"))
    studio.shot("07-search-words-and-picture")


def test_more_like_this(studio):
    search(studio, "relief valve pressure gauge")
    studio.page.locator(".result").first.get_by_role("link", name="More like this").click()
    studio.page.wait_for_url(re.compile(r"#/search\?similar=chunk(:|%3A)chunk_"))
    studio.page.locator("#results h2", has_text="Results like").wait_for()
    studio.page.locator("#result-count").wait_for()
    assert studio.requests_json("/api/v1/search/similar")["reference_type"] == "chunk"


def test_open_a_result_at_its_page(studio):
    search(studio, "relief valve pressure gauge")
    first = studio.page.locator(".result").first
    assert first.locator("mark").count() >= 2  # highlighted words
    assert "Page 1" in first.inner_text()
    first.locator("a.result-link").click()
    studio.page.wait_for_url(re.compile(r"#/doc/doc_[0-9a-f]+\?page=1"))
    assert studio.languages[-1].startswith("en")
    target = studio.page.locator(".chunk.target")
    target.wait_for()
    assert target.get_attribute("data-page") == "1" and "relief valve" in target.inner_text()
    assert all(w > 0 for w in studio.images_loaded(".picture .thumb img"))
    assert studio.page.locator(".stages tbody tr").count() == 6
    studio.shot("08-document-at-page", full_page=False)
    studio.page.locator(".picture .thumb").first.click()
    studio.page.locator("dialog .viewer img").wait_for()
    assert all(w > 0 for w in studio.images_loaded("dialog .viewer img"))
    studio.shot("09-picture-full-size", full_page=False)
    studio.page.keyboard.press("Escape")
    studio.page.go_back()  # back to the same results
    studio.page.locator(".result mark").first.wait_for()
    assert studio.page.input_value("#q") == "relief valve pressure gauge"


def test_ask_streams_an_answer_with_a_citation_and_a_picture(studio):
    studio.go("#/ask")
    assert studio.page.locator("#model option").count() >= 1
    studio.page.fill("#question", "What does the blue relief valve diagram show?")
    studio.page.click("#ask-submit")
    cite = studio.page.locator(".answer .answer-text a.cite")
    cite.first.wait_for()
    assert "pressure gauge" in studio.page.inner_text(".answer .answer-text")
    assert any(url.endswith("/api/v1/qa/ask-stream") for url in studio.requests)
    source = studio.page.locator(".answer .sources li").first
    assert "valve-manual.pdf" in source.inner_text() and "Page 1" in source.inner_text()
    widths = studio.images_loaded(".answer .answer-pictures img")
    assert widths and all(w > 0 for w in widths), widths
    cite.first.click()
    assert studio.page.evaluate("document.activeElement.classList.contains('source')")
    studio.shot("10-ask-answer")


def test_chat_two_turns_streamed_and_resume(studio, live):
    key = {"Authorization": f"Bearer {KEY_A}"}
    r = requests.post(
        f"{live.url}/api/v1/documents/upload",
        headers=key,
        json={"document_type": "text", "content": COOLANT_TEXT, "metadata": {"title": "coolant note"}},
        timeout=30,
    )
    doc_id = r.json()["data"]["document_id"]
    try:
        wait_completed(live.url, doc_id)
        studio.go("#/chat")
        studio.page.fill("#chat-message", "How fast does the coolant pump run and when is the coolant pump serviced?")
        studio.page.click("#chat-send")
        studio.page.wait_for_function("() => document.querySelector('.thread .answer .meta')?.innerText.trim()")
        first = studio.page.locator(".thread .answer").first
        assert int(first.get_attribute("data-pieces")) >= 2, "the reply arrives in pieces"
        assert "3000 rpm" in first.inner_text() and "spring" in first.inner_text()
        assert any(url.endswith("/api/v1/qa/chat-stream") for url in studio.requests)
        assert not any(url.endswith("/api/v1/qa/chat") for url in studio.requests)
        session_id = studio.requests_json("/api/v1/qa/chat-stream")["session_id"]
        studio.page.fill("#chat-message", "Is the radiator cap hot?")
        studio.page.click("#chat-send")
        studio.page.wait_for_function(
            "() => [...document.querySelectorAll('.thread .answer-text')].filter(a => a.innerText.trim()).length === 2"
        )
        session_link = studio.page.locator("#sessions li a")
        session_link.first.wait_for()
        assert session_link.count() == 1
        assert session_link.first.get_attribute("href") == f"#/chat/{session_id}"
        saved = requests.get(f"{live.url}/api/v1/qa/sessions/{session_id}", headers=key, timeout=10).json()["data"]
        assert [m["role"] for m in saved["messages"]] == ["user", "assistant"] * 2
        assert "3000 rpm" in saved["messages"][1]["content"]
    finally:
        requests.delete(f"{live.url}/api/v1/documents/{doc_id}", headers=key, timeout=30)
    studio.shot("11-chat-two-turns")
    studio.go("#/chat")
    studio.page.locator("#sessions li a").first.click()
    studio.page.wait_for_function("() => document.querySelectorAll('.thread .bubble.user').length === 2")
    assert studio.page.locator(".thread .answer").count() == 2
    studio.page.locator("#sessions li button.danger").click()
    studio.page.locator("#sessions li.empty").wait_for()
    assert studio.page.locator(".thread .bubble").count() == 0


def test_edit_metadata_then_filter_the_library(studio):
    studio.go("#/library")
    row = studio.page.locator("table.docs tbody tr", has_text="valve-manual.pdf")
    row.get_by_role("button", name=re.compile("^Edit")).click()
    studio.page.fill("#m-title", "Valve manual")
    studio.page.fill("#m-category", "manuals")
    studio.page.fill("#m-tags", "ops, valves")
    studio.page.get_by_role("button", name="Save").click()
    studio.page.locator("table.docs tbody tr", has_text="Valve manual").wait_for()
    studio.page.fill("#f-category", "manuals")
    studio.page.press("#f-category", "Enter")
    studio.page.wait_for_url(re.compile(r"category=manuals"))
    studio.page.wait_for_function("() => document.querySelectorAll('table.docs tbody tr').length === 1")
    assert "valves" in studio.page.inner_text("table.docs tbody tr")
    studio.shot("12-library-filtered")


def test_document_text_is_never_markup(studio, live):
    """Titles, text and highlights from documents are shown as text: markup in them does not run."""
    payload = '<img src=x onerror="window.__xss=1">'
    key = {"Authorization": f"Bearer {KEY_A}"}
    r = requests.post(
        f"{live.url}/api/v1/documents/upload",
        headers=key,
        json={"document_type": "text", "content": f"Hostile {payload} marker text", "metadata": {"title": payload}},
        timeout=30,
    )
    doc_id = r.json()["data"]["document_id"]
    try:
        studio.go("#/library")
        studio.page.locator("table.docs tbody tr", has_text=payload).wait_for()
        search(studio, "hostile marker")
        assert payload in studio.page.inner_text(".result .snippet")
        studio.go(f"#/doc/{doc_id}")
        studio.page.locator(".chunk").first.wait_for()
        assert studio.page.evaluate("window.__xss") is None
        assert studio.page.locator("img[src=x]").count() == 0
    finally:
        requests.delete(f"{live.url}/api/v1/documents/{doc_id}", headers=key, timeout=30)


def test_delete_a_document(studio, live):
    studio.go("#/library")
    row = studio.page.locator("table.docs tbody tr", has_text="radiator.png")
    doc_id = row.get_attribute("data-id")
    row.locator("button.danger").click()
    studio.page.locator("#confirm-delete").click()
    studio.page.wait_for_function("() => document.querySelectorAll('table.docs tbody tr').length === 1")
    r = requests.get(f"{live.url}/api/v1/documents/{doc_id}", headers={"Authorization": f"Bearer {KEY_A}"}, timeout=10)
    assert r.status_code == 404
    studio.shot("13-library-after-delete")


def test_phone_width_and_chinese(studio):
    studio.page.set_viewport_size({"width": 390, "height": 844})
    studio.go("#/library")
    studio.page.select_option("#lang", "zh")
    studio.page.locator("h1", has_text="文档库").wait_for()
    assert studio.page.evaluate("document.documentElement.scrollWidth") <= 390
    studio.shot("14-phone-library-zh")
    search(studio, "relief valve")
    assert studio.languages[-1].startswith("zh"), "API calls ask for Chinese messages"
    assert studio.page.evaluate("document.documentElement.scrollWidth") <= 390
    studio.shot("15-phone-search-zh")
    for name, hash_, ready in [
        ("16-phone-ask-zh", "#/ask", "#question"),
        ("17-phone-chat-zh", "#/chat", "#sessions li"),
        ("18-phone-upload-zh", "#/upload", "#dropzone"),
    ]:
        studio.go(hash_)
        studio.page.locator(ready).first.wait_for()
        assert studio.page.evaluate("document.documentElement.scrollWidth") <= 390, name
        studio.shot(name)
    studio.page.select_option("#lang", "en")
    studio.page.set_viewport_size({"width": 1280, "height": 900})


def test_sign_out_and_no_console_errors(studio):
    studio.go("#/library")
    studio.page.click("#signout")
    studio.page.locator("#key").wait_for()
    assert studio.page.evaluate("sessionStorage.getItem('mmrag.key')") is None
    assert studio.errors == []
