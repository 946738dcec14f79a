"""Local OCR: RapidOCR (`rapidocr` ≥ 3.9, Apache-2.0) with the PP-OCRv6 small models that ship inside its wheel, on
ONNX Runtime. One model pair reads Chinese and English (and keeps the spaces between English words).

Nothing is downloaded, ever: we open the two ONNX files from the installed `rapidocr` package ourselves and hand
RapidOCR the sessions, so its model-download code is never reached (a missing file is an error, not a download).

The parameters are tuned for what we feed it — PDF pages rendered at 110–150 dpi and pictures
(`bench/ocr_bench.py` measures them):

- no angle classifier (`use_cls`): our pages are upright, and on them the classifier turned some lines upside down
  (English CER 0.047 with it, 0.008 without, on 3 pages) besides costing time;
- detection sees the image with its longer side at most 1024 px (`Det.limit_type` max): a 150-dpi page is detected
  at about the size of a 110-dpi one, and small pictures are not blown up (RapidOCR's default enlarges any image to a
  shorter side of at least 736 px); the text lines are still cut from the full-size image;
- one line per recognition run (no batches) and no padding to 320 px: a batch is padded to its widest line, which
  on our pages costs more than batching saves;
- each line is given `line_margin` (30%) of its height more background, above and below, before recognition. The
  recogniser scales every line to 48 px high and its cost grows with the width that gives, so a slightly smaller
  line is cheaper to read: about 20% less work per page for +0.002–0.004 CER on our pages;
- ONNX Runtime threads = the cores this process may use, and no spin-waiting: a waiting thread that spins keeps a
  core from whatever else runs (the embedding models, the other ingestion worker, search): with spinning, OCR was
  20–65% slower on 2 busy cores in our runs, and only 7% faster on an idle machine. Detection, one large image,
  splits its work across the cores; recognition reads as many lines at once as there are cores, each line on one
  thread (a line is too small a job to split across cores without spinning: 15% faster this way).
"""

from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mmrag.text.analyzer import has_cjk

DET_MODEL = "PP-OCRv6_det_small.onnx"
REC_MODEL = "PP-OCRv6_rec_small.onnx"

# RapidOCR configuration (its dotted keys). Model choice and ONNX Runtime settings are not here: we make the sessions.
DEFAULT_PARAMS: dict[str, Any] = {
    "Global.log_level": "error",
    "Global.use_cls": False,
    "Det.limit_type": "max",
    "Det.limit_side_len": 1024,
    "Rec.rec_batch_num": 1,
    "Rec.rec_img_shape": [3, 48, 48],  # the minimum width a line is padded to; the height (48) is the model's
}


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


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def bundled_model(name: str) -> Path:
    """A model file inside the installed `rapidocr` wheel."""
    import rapidocr

    path = Path(rapidocr.__file__).resolve().parent / "models" / name
    if not path.is_file():
        raise RuntimeError(f"OCR model {name} is not in the installed rapidocr package ({path}); rapidocr>=3.9 has it")
    return path


def ort_session(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


@functools.cache
def _rapidocr_class():
    import cv2
    from rapidocr import RapidOCR
    from rapidocr.ch_ppocr_rec.typings import TextRecOutput

    class TunedRapidOCR(RapidOCR):
        """RapidOCR whose line crops get `line_margin` × height of background above and below (edge pixels repeated),
        and whose lines are recognised by the threads of `line_pool`, one line per task, when it is set."""

        line_margin = 0.0
        line_pool: ThreadPoolExecutor | None = None

        def crop_text_regions(self, img, det_boxes):
            crops = super().crop_text_regions(img, det_boxes)
            if self.line_margin <= 0:
                return crops
            out = []
            for crop in crops:
                pad = round(crop.shape[0] * self.line_margin / 2)
                out.append(cv2.copyMakeBorder(crop, pad, pad, 0, 0, cv2.BORDER_REPLICATE) if pad else crop)
            return out

        def recognize_txt(self, img):
            if self.line_pool is None or len(img) < 2:
                return super().recognize_txt(img)
            parent = super()
            # widest lines first, so that no thread is left alone with a long line at the end
            order = sorted(range(len(img)), key=lambda i: -img[i].shape[1] / img[i].shape[0])
            done = self.line_pool.map(lambda i: parent.recognize_txt([img[i]]), order)
            lines = [line for _, line in sorted(zip(order, done, strict=True), key=lambda pair: pair[0])]
            return TextRecOutput(
                imgs=[line.imgs[0] for line in lines],
                txts=tuple(line.txts[0] for line in lines),
                scores=tuple(line.scores[0] for line in lines),
                word_results=tuple(line.word_results[0] for line in lines),
                elapse=sum(line.elapse for line in lines),
                viser=lines[0].viser,
            )

    return TunedRapidOCR


class RapidOcrEngine:
    name = "rapidocr"

    def __init__(self, threads: int | None = None, line_margin: float = 0.3, **params: Any):
        """`threads`: cores to use — detection's intra-op threads and lines recognised at once (default: the cores
        this process may use). `line_margin`: extra background around each text line before recognition, as a share
        of its height (0 = RapidOCR's crops). `params`: RapidOCR settings by their dotted names, over DEFAULT_PARAMS
        (`**{"Det.limit_side_len": 1280}`)."""
        self._threads = threads or available_cores()
        self._line_margin = line_margin
        self._params = {**DEFAULT_PARAMS, **params}
        self._engine = None
        self._lock = threading.Lock()
        self.state = "not loaded"

    def _get(self):
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    try:
                        self._engine = self._build()
                    except Exception:
                        self.state = "error"
                        raise
                    self.state = "loaded"
        return self._engine

    def _build(self):
        from omegaconf import flag_override

        engine = _rapidocr_class()(params=dict(self._params))
        engine.line_margin = self._line_margin
        if self._threads > 1:
            engine.line_pool = ThreadPoolExecutor(self._threads, thread_name_prefix="ocr-line")
        # RapidOCR takes a ready session in a model's config ("session", rapidocr PR #451); its config only holds
        # plain values unless told otherwise. The models load lazily, so we load both now: no surprise on the
        # first page, and the config never has to hold the sessions again.
        with flag_override(engine.cfg, "allow_objects", True):
            engine.cfg.Det.session = ort_session(bundled_model(DET_MODEL), self._threads)
            engine.cfg.Rec.session = ort_session(bundled_model(REC_MODEL), 1)  # the lines run side by side instead
            engine._load_det_model()
            engine._load_rec_model()
        return engine

    def recognize(self, image: Image.Image) -> str:
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        arr = np.asarray(image)  # one copy out of Pillow; RGB is turned into BGR below, as OpenCV-trained models expect
        if arr.ndim == 3:
            import cv2

            arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
        result = self._get()(arr)
        if result.boxes is None or result.txts is None:
            return ""
        return lines_from_boxes(list(zip(result.boxes.tolist(), result.txts, result.scores, strict=True)))

    def load(self) -> None:
        self._get()

    def health(self) -> dict[str, Any]:
        return {"engine": self.name, "state": self.state}
