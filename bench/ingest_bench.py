"""Ingestion benchmark: pages per second for the eval PDFs (text layer) and for pages uploaded as PNG scans (OCR).

    python bench/ingest_bench.py [--scan-pages 6] [--corpus ../shared/eval/corpus]

Runs the real pipeline in-process (SQLite, embedded index, fastembed ONNX models from MMRAG_MODEL_DIR, RapidOCR) on a
fresh temporary data dir and prints one line per case, with the per-stage times of the document.
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT.parent / "shared" / "eval" / "corpus"
DEFAULT_MODELS = ROOT.parent / "shared" / "models"


def container(data_dir: Path):
    from mmrag.composition import build_container
    from mmrag.settings import Settings

    os.environ.setdefault("MMRAG_MODEL_DIR", str(DEFAULT_MODELS))
    os.environ.setdefault("MMRAG_TEXT_MODEL", "sentence-transformers/all-MiniLM-L6-v2")
    os.environ.setdefault("MMRAG_IMAGE_MODEL", "Qdrant/clip-ViT-B-32-vision")
    os.environ.setdefault("MMRAG_IMAGE_TEXT_MODEL", "Qdrant/clip-ViT-B-32-text")
    c = build_container(Settings(data_dir=data_dir, max_upload_mb=200, upload_wait_s=0))
    c.start()
    c.warm_up()
    return c


def run(c, raw: bytes, doc_type: str, title: str) -> tuple[float, dict]:
    start = time.perf_counter()
    doc = c.documents.upload("bench", doc_type, raw=raw, metadata={"title": title}, wait=False)
    c.runner.wait_idle(lambda: c.store.get_document("bench", doc.document_id).status != "processing", 3600)
    seconds = time.perf_counter() - start
    done = c.store.get_document("bench", doc.document_id)
    assert done.status == "completed", done.error
    return seconds, {"stages": {k: v["seconds"] for k, v in done.stages.items()}, "chunks": done.chunks_count}


def page_pngs(pdf: Path, pages: list[int], dpi: int = 110) -> list[bytes]:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(pdf))
    out = []
    for p in pages:
        img = doc[p - 1].render(scale=dpi / 72).to_pil()
        buf = io.BytesIO()
        img.save(buf, "PNG")
        out.append(buf.getvalue())
    doc.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--scan-pages", type=int, default=6, help="pages per language uploaded as PNG scans")
    args = ap.parse_args()
    import pypdfium2 as pdfium

    with tempfile.TemporaryDirectory(prefix="mmrag-bench-") as tmp:
        c = container(Path(tmp))
        try:
            for name in ("debian-reference.en.pdf", "debian-reference.zh-cn.pdf"):
                pdf = args.corpus / name
                n_pages = len(pdfium.PdfDocument(str(pdf)))
                seconds, info = run(c, pdf.read_bytes(), "pdf", name)
                print(
                    f"pdf   {name}: {n_pages} pages, {info['chunks']} chunks in {seconds:.1f} s = "
                    f"{n_pages / seconds:.1f} pages/s; stages {info['stages']}"
                )
            for name in ("debian-reference.en.pdf", "debian-reference.zh-cn.pdf"):
                pngs = page_pngs(args.corpus / name, list(range(30, 30 + args.scan_pages)))
                total, stages = 0.0, {}
                for i, png in enumerate(pngs):
                    seconds, info = run(c, png, "image", f"{name}#scan{i}")
                    total += seconds
                    for k, v in info["stages"].items():
                        stages[k] = round(stages.get(k, 0) + v / len(pngs), 3)
                print(
                    f"scan  {name}: {len(pngs)} PNG pages at 110 dpi, {total / len(pngs):.2f} s per page; "
                    f"mean stages {stages}"
                )
        finally:
            c.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
