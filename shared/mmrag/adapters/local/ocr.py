"""RapidOCR (PP-OCRv4 ONNX models shipped inside the wheel; reads Chinese and English)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from PIL import Image

from mmrag.text.analyzer import has_cjk


def lines_from_boxes(results: list) -> str:
    """Reading order from detected boxes: rows by vertical overlap, left to right inside a row."""
    boxes = []
    for box, text, _score in results:
        ys = [p[1] for p in box]
        xs = [p[0] for p in box]
        boxes.append((min(ys), max(ys), min(xs), text.strip()))
    boxes.sort(key=lambda b: (b[0], b[2]))
    rows: list[list[tuple]] = []
    for b in boxes:
        if rows:
            top, bottom = min(x[0] for x in rows[-1]), max(x[1] for x in rows[-1])
            overlap = min(bottom, b[1]) - max(top, b[0])
            if overlap > 0.5 * min(bottom - top, b[1] - b[0]):
                rows[-1].append(b)
                continue
        rows.append([b])
    out = []
    for row in rows:
        row.sort(key=lambda b: b[2])
        line = ""
        for b in row:
            if not b[3]:
                continue
            if line and not (has_cjk(line[-1]) and has_cjk(b[3][0])):
                line += " "
            line += b[3]
        if line:
            out.append(line)
    return "\n".join(out)


class RapidOcrEngine:
    name = "rapidocr"

    def __init__(self, **params: Any):
        self._params = params
        self._engine = None
        self._lock = threading.Lock()
        self.state = "not loaded"

    def _get(self):
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    from rapidocr_onnxruntime import RapidOCR

                    self._engine = RapidOCR(**self._params)
                    self.state = "loaded"
        return self._engine

    def recognize(self, image: Image.Image) -> str:
        arr = np.asarray(image.convert("RGB"))[:, :, ::-1]  # RapidOCR expects BGR like OpenCV
        result, _ = self._get()(np.ascontiguousarray(arr))
        return lines_from_boxes(result or [])

    def load(self) -> None:
        self._get()

    def health(self) -> dict[str, Any]:
        return {"engine": self.name, "state": self.state}
