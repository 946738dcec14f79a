"""OCR benchmark: seconds per page and character error rate of our OCR adapter against PP-OCRv4, English and Chinese.

    python bench/ocr_bench.py [--pages 10] [--dpi 110] [--repeats 3] [--threads N] [--v4-python PATH] [--corpus DIR]

Pages: a fixed sample of `--pages` pages of each eval PDF (debian-reference.en.pdf, .zh-cn.pdf), spread evenly over
the pages that have at least 1000 (English) / 700 (Chinese) non-space characters in their text layer and are not
table-of-contents pages (leader dots). Each page is rendered with pypdfium2 at `--dpi` to a PNG; its text layer is
the ground truth.

Engines, each timed on exactly what it is given in production, the PNG already decoded (not timed):
- `PP-OCRv4`: rapidocr-onnxruntime 1.4.4 with its defaults, called directly on the BGR array (`engine(array)`). It
  is not a dependency of mmrag: it runs in a worker process started with `--v4-python` (a Python that has
  rapidocr-onnxruntime, e.g. a throwaway venv: `python -m venv /tmp/v4 && /tmp/v4/bin/pip install
  rapidocr-onnxruntime==1.4.4`), or with this Python if it can import it; skipped if neither.
- `ours`: `RapidOcrEngine().recognize(rgb_image)` of mmrag.adapters.local.ocr — the whole `ocr` stage of a page.
Both texts go through the same `lines_from_boxes`. The engines alternate page by page (and which one goes first
alternates too), `--repeats` times over the sample, so that the noise of a shared machine hits both; the figures are
medians over all pages and repeats: wall-clock seconds per page, and CPU seconds per page (all threads of the
engine's process during the call). By default each engine runs with its own threads (PP-OCRv4: ONNX Runtime's
default, spin-waiting; ours: one per core, no spinning). `--threads 1` runs both on one thread: then CPU s/page is the
work each engine does, which other people's jobs on the machine hardly change.

CER = Levenshtein distance(OCR text, text layer) / length of the text layer, summed over the pages of a language
(total edits / total reference characters). Both texts are normalised first: Unicode NFKC (full-width forms become
ASCII), every run of whitespace becomes one space, and spaces next to a CJK character are removed (Chinese has no
spaces; where a PDF line break falls is not OCR's business). Spaces between Latin words count: English words that
run together are errors.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "shared"))
DEFAULT_CORPUS = ROOT.parent / "shared" / "eval" / "corpus"
PDFS = {"en": "debian-reference.en.pdf", "zh": "debian-reference.zh-cn.pdf"}
MIN_CHARS = {"en": 1000, "zh": 700}

V4_WORKER = r"""
import json, sys, time
import numpy as np
from PIL import Image
from rapidocr_onnxruntime import RapidOCR
threads = int(sys.argv[1])
engine = RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=1) if threads else RapidOCR()
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    path = json.loads(line)["png"]
    arr = np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB"))[:, :, ::-1])
    start, cpu = time.perf_counter(), time.process_time()
    result, _ = engine(arr)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    boxes = [[[float(x), float(y)] for x, y in box] for box, _t, _s in (result or [])]
    out = [[b, t, float(s)] for b, (_b, t, s) in zip(boxes, result or [])]
    print(json.dumps({"seconds": seconds, "cpu": cpu, "results": out}), flush=True)
"""

_CJK = "\u2e80-\u9fff\u3000-\u303f\uf900-\ufaff\uff00-\uffef"
_SPACE_NEXT_TO_CJK = re.compile(rf"(?<=[{_CJK}]) | (?=[{_CJK}])")


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = " ".join(text.split())
    return _SPACE_NEXT_TO_CJK.sub("", text)


def levenshtein(a: str, b: str) -> int:
    """Edit distance, one row of the DP table at a time in NumPy (insertions resolved with a running minimum)."""
    if not a or not b:
        return len(a) + len(b)
    codes = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    cols = np.arange(len(b) + 1)
    prev = cols.copy()
    row = np.empty_like(prev)
    for i, ch in enumerate(a, 1):
        row[0] = i
        np.minimum(prev[1:] + 1, prev[:-1] + (codes != ord(ch)), out=row[1:])
        prev = np.minimum.accumulate(row - cols) + cols
    return int(prev[-1])


def sample_pages(pdf_path: Path, lang: str, count: int, dpi: int, out_dir: Path) -> list[tuple[int, Path, str]]:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(pdf_path))
    try:
        texts = []
        for i in range(len(pdf)):
            page = pdf[i]
            textpage = page.get_textpage()
            texts.append(textpage.get_text_range())
            textpage.close()
            page.close()
        eligible = [
            i for i, t in enumerate(texts) if ". . . ." not in t and sum(not c.isspace() for c in t) >= MIN_CHARS[lang]
        ]
        step = len(eligible) / count
        picked = [eligible[int(k * step)] for k in range(count)]
        out = []
        for i in picked:
            page = pdf[i]
            png = out_dir / f"{lang}-{i + 1}.png"
            page.render(scale=dpi / 72).to_pil().convert("RGB").save(png)
            page.close()
            out.append((i + 1, png, texts[i]))
        return out
    finally:
        pdf.close()


class V4Worker:
    name = "PP-OCRv4"

    def __init__(self, python: str, threads: int):
        self.proc = subprocess.Popen(
            [python, "-c", V4_WORKER, str(threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        if json.loads(self.proc.stdout.readline()).get("ready") is not True:
            raise RuntimeError("the PP-OCRv4 worker did not start")

    def run(self, png: Path) -> tuple[float, float, str]:
        from mmrag.adapters.local.ocr import lines_from_boxes

        self.proc.stdin.write(json.dumps({"png": str(png)}) + "\n")
        answer = json.loads(self.proc.stdout.readline())
        return answer["seconds"], answer["cpu"], lines_from_boxes(answer["results"])

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


class Ours:
    name = "ours"

    def __init__(self, threads: int):
        from mmrag.adapters.local.ocr import RapidOcrEngine

        self.engine = RapidOcrEngine(threads=threads or None)
        self.engine.load()

    def run(self, png: Path) -> tuple[float, float, str]:
        from mmrag.ingest.images import open_image

        image = open_image(png.read_bytes(), 40_000_000)  # as the ingestion pipeline decodes it: RGB
        start, cpu = time.perf_counter(), time.process_time()
        text = self.engine.recognize(image)
        return time.perf_counter() - start, time.process_time() - cpu, text

    def close(self) -> None:
        pass


def v4_python(arg: str | None) -> str | None:
    if arg:
        return arg
    check = subprocess.run([sys.executable, "-c", "import rapidocr_onnxruntime"], capture_output=True)
    return sys.executable if check.returncode == 0 else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--pages", type=int, default=10, help="pages per language")
    ap.add_argument("--dpi", type=int, default=110)
    ap.add_argument("--repeats", type=int, default=3, help="passes over the sample")
    ap.add_argument("--langs", default="en,zh")
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads of both engines (default: their own)")
    ap.add_argument("--v4-python", help="a Python with rapidocr-onnxruntime (default: this one, if it has it)")
    ap.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    args = ap.parse_args()
    langs = args.langs.split(",")

    engines: list = []
    python = v4_python(args.v4_python)
    if python:
        engines.append(V4Worker(python, args.threads))
    else:
        print("PP-OCRv4 skipped: no Python with rapidocr-onnxruntime (see --v4-python)", file=sys.stderr)
    engines.append(Ours(args.threads))

    with tempfile.TemporaryDirectory(prefix="mmrag-ocr-bench-") as tmp:
        pages = {lang: sample_pages(args.corpus / PDFS[lang], lang, args.pages, args.dpi, Path(tmp)) for lang in langs}
        for lang in langs:
            print(f"{lang}: pages {[n for n, _, _ in pages[lang]]} at {args.dpi} dpi", file=sys.stderr)
        for engine in engines:  # warm-up: first call allocations, lazy loads
            engine.run(pages[langs[0]][0][1])

        seconds = {(e.name, lang): [] for e in engines for lang in langs}
        cpu = {(e.name, lang): [] for e in engines for lang in langs}
        errors = {(e.name, lang): [0, 0] for e in engines for lang in langs}
        turn = 0
        for rep in range(args.repeats):
            for lang in langs:
                for number, png, truth in pages[lang]:
                    order = engines if turn % 2 == 0 else engines[::-1]
                    turn += 1
                    for engine in order:
                        s, c, text = engine.run(png)
                        seconds[(engine.name, lang)].append(s)
                        cpu[(engine.name, lang)].append(c)
                        if rep == 0:
                            ref = normalise(truth)
                            errors[(engine.name, lang)][0] += levenshtein(normalise(text), ref)
                            errors[(engine.name, lang)][1] += len(ref)
                    print(f"  pass {rep + 1} {lang} page {number} done", file=sys.stderr)
        for engine in engines:
            engine.close()

    figures = {}
    print(f"\n{'engine':10s} {'lang':4s} {'s/page':>8s} {'CPU s/page':>11s} {'CER':>7s}   (medians)")
    for engine in engines:
        for lang in langs:
            med = statistics.median(seconds[(engine.name, lang)])
            med_cpu = statistics.median(cpu[(engine.name, lang)])
            edits, total = errors[(engine.name, lang)]
            figures[f"{engine.name}/{lang}"] = {
                "s_per_page": round(med, 3),
                "cpu_s_per_page": round(med_cpu, 3),
                "cer": round(edits / total, 4),
            }
            print(f"{engine.name:10s} {lang:4s} {med:8.2f} {med_cpu:11.2f} {edits / total:7.3f}")
    if len(engines) == 2:
        for lang in langs:
            ours, v4 = figures[f"ours/{lang}"], figures[f"PP-OCRv4/{lang}"]
            ratio, ratio_cpu = ours["s_per_page"] / v4["s_per_page"], ours["cpu_s_per_page"] / v4["cpu_s_per_page"]
            figures[f"ratio/{lang}"] = {"s_per_page": round(ratio, 3), "cpu_s_per_page": round(ratio_cpu, 3)}
            print(f"ours / PP-OCRv4, {lang}: {ratio:.2f}x the time, {ratio_cpu:.2f}x the CPU time")
    threads = args.threads or "default"
    print(
        f"({os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; threads: {threads}; "
        f"{args.repeats} passes over {args.pages} pages per language at {args.dpi} dpi)"
    )
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
