"""Test documents made on the fly (nothing binary is committed)."""

from __future__ import annotations

import base64
import io
import os
import zlib

from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
CJK_FONTS = [
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
]


def font(size: int, cjk: bool = False):
    for path in (CJK_FONTS if cjk else []) + [FONT]:
        if os.path.exists(path):
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


def cjk_font_available() -> bool:
    return any(os.path.exists(p) for p in CJK_FONTS)


def text_image(lines: list[str], size=(1000, 400), cjk: bool = False) -> Image.Image:
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    f = font(40, cjk)
    y = 30
    for line in lines:
        draw.text((30, y), line, fill="black", font=f)
        y += 64
    return img


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def text_png(lines: list[str], **kw) -> bytes:
    return png(text_image(lines, **kw))


def shape_png(color: str, size=(320, 240)) -> bytes:
    img = Image.new("RGB", size, "white")
    ImageDraw.Draw(img).ellipse((60, 40, 260, 200), fill=color)
    return png(img)


def scanned_pdf(pages: list[list[str]]) -> bytes:
    images = [text_image(lines, size=(1240, 800)) for lines in pages]
    buf = io.BytesIO()
    images[0].save(buf, "PDF", save_all=True, append_images=images[1:], resolution=100)
    return buf.getvalue()


def _esc(s: str) -> str:
    return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def text_pdf(pages: list[list[str]]) -> bytes:
    """A minimal PDF with a real text layer (Helvetica), one list of lines per page."""
    objs: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    n = len(pages)
    font_id = 3 + 2 * n
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n))
    objs.append(f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode())
    for i, lines in enumerate(pages):
        content = "BT /F1 12 Tf 14 TL 72 720 Td " + " ".join(f"({_esc(x)}) Tj T*" for x in lines) + " ET"
        data = content.encode("latin-1")
        objs.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>".encode()
        )
        objs.append(b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream")
    objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, start=1):
        offsets.append(out.tell())
        out.write(f"{i} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode())
    for off in offsets:
        out.write(f"{off:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def docx_with_picture(before: str, after: str, picture: bytes) -> bytes:
    from docx import Document
    from docx.shared import Inches

    d = Document()
    d.core_properties.title = "docx sample"
    d.add_paragraph(before)
    d.add_picture(io.BytesIO(picture), width=Inches(2))
    d.add_paragraph(after)
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def pptx_with_picture(title: str, picture: bytes) -> bytes:
    from pptx import Presentation
    from pptx.util import Inches

    prs = Presentation()
    s1 = prs.slides.add_slide(prs.slide_layouts[5])
    s1.shapes.title.text = "First slide"
    s2 = prs.slides.add_slide(prs.slide_layouts[5])
    s2.shapes.title.text = title
    s2.shapes.add_picture(io.BytesIO(picture), Inches(1), Inches(2), width=Inches(3))
    buf = io.BytesIO()
    prs.save(buf)
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _pdf_string(text: str) -> bytes:
    escaped = text.encode("latin-1").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
    return b"(" + escaped + b")"


def build_pdf(pages: list[dict], title: str | None = None) -> bytes:
    """A PDF with Helvetica text lines [(x, y, text)] and flat-colour RGB images [(x, y, w_pt, h_pt, w_px, h_px, rgb)]
    per page, optionally drawn through a Form XObject ("form": True)."""
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog, pages_id = add(b""), add(b"")
    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    kids = []
    for page in pages:
        content, xobjects = bytearray(), {}
        for x, y, text in page.get("lines", []):
            content += b"BT /F1 12 Tf %d %d Td " % (x, y) + _pdf_string(text) + b" Tj ET\n"
        for i, (x, y, w, h, w_px, h_px, rgb) in enumerate(page.get("images", [])):
            raw = zlib.compress(bytes(rgb) * (w_px * h_px))
            image = add(
                b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB "
                b"/BitsPerComponent 8 /Filter /FlateDecode /Length %d >>\nstream\n"
                % (w_px, h_px, len(raw))
                + raw
                + b"\nendstream"
            )
            if page.get("form"):
                draw = b"q %d 0 0 %d 0 0 cm /Im Do Q" % (w, h)
                xobjects[b"Fm%d" % i] = add(
                    b"<< /Type /XObject /Subtype /Form /BBox [0 0 %d %d] /Resources << /XObject << /Im %d 0 R >> >> "
                    b"/Length %d >>\nstream\n" % (w, h, image, len(draw)) + draw + b"\nendstream"
                )
                content += b"q 1 0 0 1 %d %d cm /Fm%d Do Q\n" % (x, y, i)
            else:
                xobjects[b"Im%d" % i] = image
                content += b"q %d 0 0 %d %d %d cm /Im%d Do Q\n" % (w, h, x, y, i)
        stream = add(b"<< /Length %d >>\nstream\n" % len(content) + bytes(content) + b"\nendstream")
        resources = b" ".join(b"/%s %d 0 R" % item for item in xobjects.items())
        kids.append(
            add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 %d 0 R >> "
                b"/XObject << %s >> >> /Contents %d 0 R >>" % (pages_id, font, resources, stream)
            )
        )
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % pages_id
    objects[pages_id - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % kid for kid in kids),
        len(kids),
    )
    info = add(b"<< /Title " + _pdf_string(title) + b" >>") if title else None

    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R%s >>\n" % (
        len(objects) + 1,
        catalog,
        b" /Info %d 0 R" % info if info else b"",
    )
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def pdf_with_picture(caption: str, rgb: tuple[int, int, int] = (0, 0, 255)) -> bytes:
    """One page: a line of text above a flat-colour picture."""
    return build_pdf([{"lines": [(72, 640, caption)], "images": [(72, 400, 240, 180, 48, 36, rgb)]}])
