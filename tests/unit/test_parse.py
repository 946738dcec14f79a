from __future__ import annotations

import base64
import io
import subprocess
import sys
import time
from pathlib import Path

import docx
import pptx
import pytest
from docx.shared import Inches
from PIL import Image, ImageDraw, ImageFont
from pptx.util import Inches as SlideInches
from pptx.util import Pt

from mmrag.errors import ProcessingError, UnsupportedFormat
from mmrag.ingest.parsers import ParsedDocument, parse_document
from tests.samples import build_pdf

ROOT = Path(__file__).resolve().parents[2]
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
DEBIAN_PDF = Path(__file__).resolve().parents[3] / "shared" / "eval" / "corpus" / "debian-reference.en.pdf"


# --- generated documents --------------------------------------------------------------------------------------------


def _png(size: tuple[int, int] = (120, 80), color: tuple[int, int, int] = (200, 30, 30), text: str = "") -> bytes:
    img = Image.new("RGB", size, color)
    if text:
        font = ImageFont.truetype(str(FONT), 28) if FONT.exists() else ImageFont.load_default()
        ImageDraw.Draw(img).text((20, 20), text, fill="black", font=font)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _scanned_pdf(pages: int = 2) -> bytes:
    images = [Image.open(io.BytesIO(_png((600, 400), (255, 255, 255), f"Scanned page {i + 1}"))) for i in range(pages)]
    buf = io.BytesIO()
    images[0].save(buf, "PDF", save_all=True, append_images=images[1:], resolution=100)
    return buf.getvalue()


def _pil(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


# --- PDF ------------------------------------------------------------------------------------------------------------


def test_text_pdf_pages_and_title() -> None:
    data = build_pdf(
        [
            {"lines": [(72, 700, "The first page talks about retrieval."), (72, 680, "It has two lines.")]},
            {"lines": [(72, 700, "Second page: hybrid search with BM25 and vectors.")]},
        ],
        title="Hand Made",
    )
    doc = parse_document(data, "pdf")
    assert doc.fmt == "pdf" and doc.title == "Hand Made"
    assert [p.number for p in doc.pages] == [1, 2]
    assert doc.pages[0].text == "The first page talks about retrieval.\nIt has two lines."
    assert doc.pages[1].text == "Second page: hybrid search with BM25 and vectors."
    assert all(p.scan is None for p in doc.pages) and doc.images == []


@pytest.mark.parametrize("through_form", [False, True])
def test_pdf_embedded_image_with_bbox_and_neighbour_text(through_form: bool) -> None:
    page = {
        "lines": [(72, 700, "Introduction text above the figure."), (72, 350, "Figure 1: caption below it.")],
        "images": [(100, 400, 200, 100, 64, 32, (255, 0, 0)), (400, 400, 20, 20, 16, 16, (0, 0, 255))],
        "form": through_form,
    }
    data = build_pdf([page, {"lines": [(72, 700, "The next page continues the story.")]}])
    doc = parse_document(data, "pdf")
    assert len(doc.images) == 1  # the 16x16 picture is below min_image_side
    image = doc.images[0]
    assert (image.page_number, image.position, image.is_page_scan) == (1, 0, False)
    assert image.bbox == pytest.approx([100, 792 - 500, 300, 792 - 400], abs=0.5)
    assert image.text_before == "Introduction text above the figure."
    assert image.text_after == "Figure 1: caption below it."
    picture = _pil(image.data)
    assert picture.format == "PNG" and picture.size == (64, 32)
    assert picture.convert("RGB").getpixel((10, 10)) == (255, 0, 0)
    assert parse_document(data, "pdf", extract_images=False).images == []


def test_pdf_image_at_page_edges_takes_text_from_neighbouring_pages() -> None:
    data = build_pdf(
        [
            {"lines": [(72, 700, "End of the first page, before the picture.")]},
            {
                "lines": [(72, 100, "Text under the picture, long enough.")],
                "images": [(0, 200, 612, 592, 40, 40, (0, 128, 0))],
            },
            {"lines": [(72, 700, "Third page text.")]},
        ]
    )
    image = parse_document(data, "pdf").images[0]
    assert image.page_number == 2
    assert image.text_before == "End of the first page, before the picture."
    assert image.text_after == "Text under the picture, long enough."


def test_distorted_pdf_image_is_not_rendered_huge() -> None:
    # drawn 300x1 pt, rendering at native resolution would need 19200x64 pixels: the raw bitmap is used instead
    data = build_pdf(
        [{"lines": [(72, 700, "A page with a squashed picture.")], "images": [(72, 400, 300, 1, 64, 64, (0, 0, 255))]}]
    )
    image = parse_document(data, "pdf", max_pixels=100_000).images[0]
    assert _pil(image.data).size == (64, 64)


def test_scanned_pdf_pages_are_rendered_for_ocr() -> None:
    doc = parse_document(_scanned_pdf(2), "pdf", scan_dpi=72)
    assert [p.number for p in doc.pages] == [1, 2]
    assert all(p.text == "" and p.scan is not None for p in doc.pages)
    assert [(i.page_number, i.position, i.is_page_scan) for i in doc.images] == [(1, 0, True), (2, 1, True)]
    page = _pil(doc.pages[0].scan)  # type: ignore[arg-type]
    assert page.format == "PNG" and page.size == (432, 288)  # 600x400 px at 100 dpi = 432x288 pt, rendered at 72 dpi
    assert doc.images[0].data == doc.pages[0].scan
    assert doc.images[0].bbox == pytest.approx([0, 0, 432, 288], abs=0.5)


def test_scanned_pdf_without_ocr_extracts_the_embedded_pictures() -> None:
    doc = parse_document(_scanned_pdf(2), "pdf", ocr=False)
    assert all(p.scan is None for p in doc.pages)
    assert [(i.page_number, i.is_page_scan) for i in doc.images] == [(1, False), (2, False)]
    assert _pil(doc.images[0].data).size == (600, 400)


def test_scan_render_is_capped_at_max_pixels() -> None:
    doc = parse_document(_scanned_pdf(1), "pdf", scan_dpi=600, max_pixels=1_000_000)
    width, height = _pil(doc.pages[0].scan).size  # type: ignore[arg-type]
    assert width * height <= 1_000_000 and width > 1000


@pytest.mark.parametrize("data", [b"%PDF-1.7\n" + bytes(range(256)) * 4, b"%PDF-1.4\n%%EOF\n", b"%PDF-"])
def test_corrupt_pdf(data: bytes) -> None:
    with pytest.raises(ProcessingError, match="PDF"):
        parse_document(data, "pdf")


def test_too_many_pages() -> None:
    data = build_pdf([{"lines": [(72, 700, f"Page {i} has some text on it.")]} for i in range(3)])
    assert len(parse_document(data, "pdf", max_pages=3).pages) == 3
    with pytest.raises(ProcessingError, match="3 pages"):
        parse_document(data, "pdf", max_pages=2)


@pytest.mark.skipif(not DEBIAN_PDF.exists(), reason="sample corpus not available")
def test_real_pdf_sample() -> None:
    started = time.perf_counter()
    doc = parse_document(DEBIAN_PDF.read_bytes(), "pdf")
    assert time.perf_counter() - started < 10
    assert len(doc.pages) == 261 and doc.title == "Debian Reference"
    assert sum(1 for p in doc.pages if p.text) >= 255
    assert doc.pages[26].number == 27 and "popcon" in doc.pages[26].text


# --- DOCX -----------------------------------------------------------------------------------------------------------


def test_docx_text_tables_and_pictures_in_order() -> None:
    picture = _png((120, 80), text="Fig")
    document = docx.Document()
    document.core_properties.title = "Quarterly Report"
    document.add_heading("Quarterly report", level=1)
    document.add_paragraph("Revenue grew strongly in the third quarter.")
    document.add_picture(io.BytesIO(picture), width=Inches(2))
    document.add_paragraph("The chart above shows revenue per month.")
    table = document.add_table(rows=2, cols=2)
    for (r, c), value in {(0, 0): "Region", (0, 1): "Sales", (1, 0): "北京", (1, 1): "120"}.items():
        table.cell(r, c).text = value
    document.add_paragraph("Tiny icon: ").add_run().add_picture(io.BytesIO(_png((10, 10))))
    document.add_paragraph("A second figure follows.")
    document.add_picture(io.BytesIO(_png((64, 64), (0, 0, 255))))
    buf = io.BytesIO()
    document.save(buf)

    doc = parse_document(buf.getvalue(), "docx")
    assert doc.title == "Quarterly Report"
    assert [p.number for p in doc.pages] == [None]
    text = doc.pages[0].text
    assert text.index("Revenue grew") < text.index("The chart above") < text.index("Region | Sales")
    assert "北京 | 120" in text and text.index("120") < text.index("A second figure")
    assert len(doc.images) == 2  # the 10x10 icon is skipped
    first, second = doc.images
    assert (first.position, first.page_number, first.bbox) == (0, None, None)
    assert first.data == picture
    assert first.text_before.endswith("Revenue grew strongly in the third quarter.")
    assert first.text_after.startswith("The chart above shows revenue per month.")
    assert second.position == 1 and second.text_before.endswith("A second figure follows.")
    assert second.text_after == ""
    assert parse_document(buf.getvalue(), "docx", extract_images=False).images == []


def test_docx_sections_carry_their_heading_path_and_paragraph_numbers() -> None:
    document = docx.Document()
    document.add_paragraph("Read this first.")
    document.add_heading("Pump manual", 0)
    document.add_heading("Installation", 1)
    document.add_paragraph("Bolt the pump to the floor.")
    document.add_paragraph("")  # empty paragraphs are not counted: Word shows nothing there
    document.add_heading("Electrical", 2)
    document.add_paragraph("Connect the pump to a 230 V outlet.")
    table = document.add_table(rows=1, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Fuse", "10 A"
    document.add_heading("Maintenance", 1)
    outlined = document.add_paragraph("Yearly checks")  # a heading by outline level, not by style
    outlined.paragraph_format.element.get_or_add_pPr().append(
        docx.oxml.parse_xml(
            '<w:outlineLvl xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" w:val="1"/>'
        )
    )
    document.add_paragraph("Replace the seal every year.")
    buf = io.BytesIO()
    document.save(buf)

    pages = parse_document(buf.getvalue(), "docx").pages
    assert [(p.number, p.section) for p in pages] == [
        (None, None),
        (None, "Pump manual > Installation"),
        (None, "Pump manual > Installation > Electrical"),
        (None, "Pump manual > Maintenance > Yearly checks"),
    ]
    assert pages[1].text == "Pump manual\n\nInstallation\n\nBolt the pump to the floor."
    numbered = [(p.text[offset:].split("\n\n")[0], n) for p in pages for offset, n in p.paragraphs]
    assert numbered == [
        ("Read this first.", 1),
        ("Pump manual", 2),
        ("Installation", 3),
        ("Bolt the pump to the floor.", 4),
        ("Electrical", 5),
        ("Connect the pump to a 230 V outlet.", 6),
        ("Fuse | 10 A", 7),
        ("Maintenance", 8),
        ("Yearly checks", 9),
        ("Replace the seal every year.", 10),
    ]


def test_corrupt_docx() -> None:
    buf = io.BytesIO()
    docx.Document().save(buf)
    data = buf.getvalue()
    with pytest.raises(ProcessingError, match="DOCX"):
        parse_document(data[: len(data) // 2], "docx")


def test_zip_bomb_office_files_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    buf = io.BytesIO()
    docx.Document().save(buf)
    monkeypatch.setattr("mmrag.ingest.parsers.base.MAX_UNZIPPED_BYTES", 10_000)
    with pytest.raises(ProcessingError, match="expands to"):
        parse_document(buf.getvalue(), "docx")


# --- PPTX -----------------------------------------------------------------------------------------------------------


def test_pptx_slides_text_pictures_and_notes() -> None:
    picture = _png((200, 100), (0, 160, 0), "Chart")
    presentation = pptx.Presentation()
    presentation.core_properties.title = "Roadmap"
    slide = presentation.slides.add_slide(presentation.slide_layouts[5])  # title only
    slide.shapes.title.text = "Product roadmap 2025"
    slide.shapes.add_picture(io.BytesIO(picture), SlideInches(1), SlideInches(2), SlideInches(4), SlideInches(2))
    box = slide.shapes.add_textbox(SlideInches(1), SlideInches(5), SlideInches(6), SlideInches(1))
    box.text_frame.text = "Milestones are shown above."
    slide.notes_slide.notes_text_frame.text = "Speaker notes: mention the launch date."

    second = presentation.slides.add_slide(presentation.slide_layouts[6])  # blank
    group = second.shapes.add_group_shape()
    group.shapes.add_picture(io.BytesIO(_png((80, 80), (0, 0, 200))), Pt(100), Pt(50), Pt(80), Pt(80))
    label = group.shapes.add_textbox(Pt(100), Pt(200), Pt(300), Pt(40))
    label.text_frame.text = "Grouped caption"
    rows = second.shapes.add_table(2, 2, SlideInches(5), SlideInches(4), SlideInches(3), SlideInches(1)).table
    rows.cell(0, 0).text, rows.cell(0, 1).text, rows.cell(1, 0).text, rows.cell(1, 1).text = "Q1", "Q2", "上升", "下降"
    buf = io.BytesIO()
    presentation.save(buf)

    doc = parse_document(buf.getvalue(), "pptx")
    assert doc.title == "Roadmap"
    assert [p.number for p in doc.pages] == [1, 2]
    first_text = doc.pages[0].text
    assert first_text.index("Product roadmap 2025") < first_text.index("Milestones") < first_text.index("Speaker notes")
    second_text = doc.pages[1].text
    assert "Grouped caption" in second_text and "Q1 | Q2" in second_text and "上升 | 下降" in second_text

    assert [(i.page_number, i.position) for i in doc.images] == [(1, 0), (2, 1)]
    chart = doc.images[0]
    assert chart.data == picture
    assert chart.bbox == pytest.approx([72, 144, 72 + 288, 144 + 144])
    assert chart.text_before == "Product roadmap 2025"
    assert chart.text_after == "Milestones are shown above."
    grouped = doc.images[1]
    assert grouped.bbox == pytest.approx([100, 50, 180, 130])
    assert grouped.text_before == "" and "Grouped caption" in grouped.text_after


def test_pptx_too_many_slides() -> None:
    presentation = pptx.Presentation()
    for _ in range(3):
        presentation.slides.add_slide(presentation.slide_layouts[6])
    buf = io.BytesIO()
    presentation.save(buf)
    with pytest.raises(ProcessingError, match="3 slides"):
        parse_document(buf.getvalue(), "pptx", max_pages=2)


# --- HTML, text and images ------------------------------------------------------------------------------------------


def _data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def test_html_visible_text_and_data_uri_pictures() -> None:
    first, second = _png((100, 60), (255, 0, 0)), _png((90, 90), (0, 0, 255))
    html = f"""<!DOCTYPE html><html><head><title> Test  page </title><style>p {{color: red}}</style>
    <script>var secret = "do not index";</script></head>
    <body><img src="{_data_uri(first)}" alt="Company logo">
    <h1>Welcome</h1><p>First paragraph with <b>bold</b>
    text.</p><noscript>enable javascript</noscript><template><p>hidden template</p></template>
    <img src="https://example.com/remote.png" alt="remote"><img src="{_data_uri(_png((8, 8)))}">
    <ul><li>one</li><li>two</li></ul><p>Before the chart.</p><img src="{_data_uri(second)}" alt="chart">
    <table><tr><td>a</td><td>b</td></tr></table><script>alert(1)</script><p>The end.</p></body></html>"""
    doc = parse_document(html.encode(), "html")
    assert doc.title == "Test page"
    text = doc.pages[0].text
    assert text == "Welcome\n\nFirst paragraph with bold text.\n\none\ntwo\n\nBefore the chart.\n\na | b\n\nThe end."
    assert [p.number for p in doc.pages] == [None]
    assert [i.position for i in doc.images] == [0, 1]
    logo, chart = doc.images
    assert logo.data == first and logo.text_before == "Company logo" and logo.text_after.startswith("Welcome")
    assert chart.data == second and chart.text_before.endswith("Before the chart.")
    assert chart.text_after == "a | b The end."


def test_html_main_content_only() -> None:
    html = """<?xml version="1.0" encoding="utf-8"?>
    <!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.1//EN" "http://www.w3.org/TR/xhtml11/DTD/xhtml11.dtd" [
      <!ENTITY product "Pump 3000">
    ]>
    <html><head><title>Pump 3000 care</title></head><body>
    <header class="site"><a href="/">ACME</a><form><input name="q"></form></header>
    <div class="top-links"><a href="/">Home</a> | <a href="/p">Products</a> | <a href="/c">Contact</a></div>
    <div id="cookie-banner">We use cookies. <button>OK</button></div>
    <nav><ul><li><a href="/a">Manuals</a></li><li><a href="/b">Support</a></li></ul></nav>
    <main>
      <article>
        <header><h1>Caring for the pump</h1><p class="byline">By the service team</p></header>
        <p>Flush the pump every <a href="/glossary#season">season</a> with clean water.</p>
        <div role="navigation"><a href="/1">1</a> <a href="/2">2</a></div>
        <p>Replace the seal when it leaks.</p>
        <footer>Filed under maintenance.</footer>
      </article>
      <aside><h2>Related</h2><p>Other pumps we sell.</p></aside>
    </main>
    <footer><p>© ACME 2025 · <a href="/privacy">Privacy</a></p></footer>
    </body></html>"""
    doc = parse_document(html.encode(), "html")
    text = doc.pages[0].text
    assert doc.title == "Pump 3000 care"
    assert text == (
        "Caring for the pump\n\nBy the service team\n\nFlush the pump every season with clean water.\n\n"
        "Replace the seal when it leaks.\n\nFiled under maintenance."
    )


def test_html_without_main_drops_menus_but_keeps_content_links() -> None:
    refs = "".join(
        f'<li><a href="/r{i}">Reference manual chapter {i} on pressure relief valves</a></li>' for i in range(8)
    )
    html = f"""<!DOCTYPE html><html><body>
    <header><a href="/">Start</a> <a href="/x">Shop</a></header>
    <p><a href="/">Home</a> | <a href="/products">Products</a> | <a href="/contact">Contact</a></p>
    <header><h1>Relief valves</h1></header>
    <p>The valve opens at 93 kPa. See <a href="/spec">the specification</a> for details.</p>
    <ul>{refs}</ul>
    <div class="footer-links"><a href="/t">Terms</a> · <a href="/p">Privacy</a></div>
    <div class="site-menu"><span>Sales</span> <span>Support</span></div>
    </body></html>"""
    text = parse_document(html.encode(), "html").pages[0].text
    assert text.startswith("Relief valves\n\nThe valve opens at 93 kPa. See the specification for details.")
    assert "Reference manual chapter 7 on pressure relief valves" in text  # a long list of links is content
    for menu in ("Home", "Products", "Contact", "Start", "Shop", "Terms", "Privacy", "Sales", "Support"):
        assert menu not in text


def test_html_charset_from_meta() -> None:
    html = '<html><head><meta charset="gb2312"><title>中文标题</title></head><body><p>检索增强生成。</p></body></html>'
    doc = parse_document(html.encode("gb18030"), "html")
    assert doc.title == "中文标题" and doc.pages[0].text == "检索增强生成。"


def test_plain_text_documents() -> None:
    text = "第一行文字。\r\n第二行文字。\n\nEnglish  line one\nline two"
    for encoding in ("utf-8", "gb18030", "utf-16"):
        doc = parse_document(text.encode(encoding), "text")
        assert doc.pages[0].number is None and doc.images == []
        assert doc.pages[0].text == "第一行文字。\n第二行文字。\n\nEnglish line one\nline two"


def test_image_document_keeps_original_bytes() -> None:
    data = _png((300, 200))
    doc = parse_document(data, "png")
    assert doc == ParsedDocument("png", doc.pages, doc.images)
    assert [(p.number, p.text) for p in doc.pages] == [(None, "")]
    assert len(doc.images) == 1 and doc.images[0].data == data and doc.images[0].page_number is None


def test_image_document_pixel_limit(bomb_png: bytes) -> None:
    started = time.perf_counter()
    with pytest.raises(ProcessingError, match="too large"):
        parse_document(bomb_png, "png")
    assert time.perf_counter() - started < 0.5
    with pytest.raises(ProcessingError):
        parse_document(_png((300, 200)), "png", max_pixels=1000)


def test_unsupported_format() -> None:
    with pytest.raises(UnsupportedFormat):
        parse_document(b"\x7fELF", "unknown")


def test_a_format_library_is_loaded_only_to_parse_that_format() -> None:
    """The API functions import mmrag.core (and with it the parsers package) but only sniff uploads: no pdfium,
    python-docx, python-pptx or BeautifulSoup until a document of that format is parsed."""
    libraries = ("pypdfium2", "docx", "pptx", "bs4")
    code = (
        "import sys; sys.path.insert(0, 'shared'); import mmrag.core.ingestion; "
        "from mmrag.ingest.parsers import parse_document; "
        f"loaded = lambda: [m for m in {libraries!r} if m in sys.modules]; print(loaded()); "
        "parse_document(b'plain text', 'text'); print(loaded()); "
        "parse_document(b'<p>html</p>', 'html'); print(loaded())"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:3] == ["[]", "[]", "['bs4']"]
