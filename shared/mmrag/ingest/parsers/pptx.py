"""PPTX through python-pptx: one page per slide (shape texts top to bottom, tables, speaker notes) and the slide's
pictures with their bbox and the slide text above and below them; groups are followed into."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pptx import Presentation
from pptx.shapes.group import GroupShape
from pptx.shapes.picture import Picture

from mmrag.errors import ProcessingError
from mmrag.ingest.parsers.base import (
    ParsedDocument,
    ParsedImage,
    ParsedPage,
    ParseOptions,
    check_archive,
    clean_title,
    head,
    pt,
    tail,
    usable_picture,
)
from mmrag.text.tokens import normalize_page_text

_EMU_PER_POINT = 12700
_A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"


@dataclass
class _SlideItem:
    top: float  # points
    left: float
    bottom: float
    text: str = ""
    picture: bytes | None = None
    bbox: list[float] | None = None


def parse(data: bytes, fmt: str, options: ParseOptions) -> ParsedDocument:
    max_pages = options.max_pages
    check_archive(data, "PPTX")
    presentation = Presentation(io.BytesIO(data))
    slides = list(presentation.slides)
    if len(slides) > max_pages:
        raise ProcessingError(f"the presentation has {len(slides)} slides, more than the limit of {max_pages}")
    pages: list[ParsedPage] = []
    images: list[ParsedImage] = []
    for number, slide in enumerate(slides, start=1):
        items = sorted(_slide_items(slide.shapes, (1.0, 1.0, 0.0, 0.0), options), key=lambda i: (i.top, i.left))
        texts = [item for item in items if item.text]
        body = "\n\n".join(item.text for item in texts)
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = slide.notes_slide.notes_text_frame.text.strip()
            if notes:
                body = f"{body}\n\n{notes}" if body else notes
        pages.append(ParsedPage(number, normalize_page_text(body.replace("\v", "\n"), join_lines=False)))
        for item in items:
            if item.picture is None:
                continue
            middle = (item.top + item.bottom) / 2
            above = "\n".join(t.text for t in texts if (t.top + t.bottom) / 2 <= middle)
            below = "\n".join(t.text for t in texts if (t.top + t.bottom) / 2 > middle)
            images.append(ParsedImage(item.picture, number, len(images), item.bbox, tail(above), head(below)))
    return ParsedDocument("pptx", pages, images, clean_title(presentation.core_properties.title))


def _slide_items(
    shapes: Any, transform: tuple[float, float, float, float], options: ParseOptions
) -> Iterator[_SlideItem]:
    """Texts and pictures of shapes, recursing into groups; `transform` maps group coordinates to slide EMUs."""
    scale_x, scale_y, shift_x, shift_y = transform
    for shape in shapes:
        x = (shape.left or 0) * scale_x + shift_x
        y = (shape.top or 0) * scale_y + shift_y
        width, height = (shape.width or 0) * scale_x, (shape.height or 0) * scale_y
        top, left, bottom = y / _EMU_PER_POINT, x / _EMU_PER_POINT, (y + height) / _EMU_PER_POINT
        if isinstance(shape, GroupShape):
            yield from _slide_items(shape.shapes, _group_transform(shape, transform), options)
        elif isinstance(shape, Picture):
            if not options.extract_images:
                continue
            try:
                blob = shape.image.blob
            except (KeyError, ValueError, AttributeError):
                continue  # linked, not embedded
            picture = usable_picture(blob, options)
            if picture is not None:
                bbox = [pt(left), pt(top), pt((x + width) / _EMU_PER_POINT), pt(bottom)]
                yield _SlideItem(top, left, bottom, picture=picture, bbox=bbox)
        else:
            text = _shape_text(shape)
            if text:
                yield _SlideItem(top, left, bottom, text=text)


def _shape_text(shape: Any) -> str:
    if getattr(shape, "has_text_frame", False):
        return "\n".join(p.text for p in shape.text_frame.paragraphs).strip()
    if getattr(shape, "has_table", False):
        rows = (" | ".join(cell.text.strip() for cell in row.cells) for row in shape.table.rows)
        return "\n".join(row for row in rows if row.strip(" |"))
    return ""


def _group_transform(group: GroupShape, outer: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    xfrm = group._element.grpSpPr.xfrm
    if xfrm is None or xfrm.off is None or xfrm.ext is None:
        return outer
    child_offset = xfrm.find(f"{_A}chOff")
    child_extent = xfrm.find(f"{_A}chExt")
    if child_offset is None or child_extent is None:
        return outer
    ch_x, ch_y = int(child_offset.get("x", 0)), int(child_offset.get("y", 0))
    ch_cx, ch_cy = int(child_extent.get("cx", 0)), int(child_extent.get("cy", 0))
    sx = xfrm.ext.cx / ch_cx if ch_cx else 1.0
    sy = xfrm.ext.cy / ch_cy if ch_cy else 1.0
    # group space -> parent space: x' = off + (x - chOff) * ext/chExt, then the outer transform
    scale_x, scale_y, shift_x, shift_y = outer
    return (
        sx * scale_x,
        sy * scale_y,
        (xfrm.off.x - ch_x * sx) * scale_x + shift_x,
        (xfrm.off.y - ch_y * sy) * scale_y + shift_y,
    )
