"""`mmrag ingest PATH...`: bulk ingestion of files and folders into the local data dir, with a progress bar."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from mmrag.errors import MMRagError


def collect(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith(".")))
        elif p.is_file():
            files.append(p)
        else:
            print(f"skipping {raw}: not a file or folder", file=sys.stderr)
    return files


def ingest_paths(args: argparse.Namespace, data_dir: Path) -> int:
    """Exit status 0 when every file was ingested, 1 when some were not, 2 when nothing could start."""
    from tqdm import tqdm

    from mmrag.composition import build_container
    from mmrag.errors import ModelUnavailable
    from mmrag.ingest.sniff import DOCUMENT_TYPE_FOR_FORMAT, sniff
    from mmrag.settings import Settings

    files = collect(args.paths)
    settings = Settings(data_dir=data_dir)
    container = build_container(settings)
    try:
        if files:
            container.text_embedder.load()  # every document needs it: say so now, not after queueing them all
    except ModelUnavailable as exc:
        print(f"mmrag ingest: {exc.message}\n  {exc.detail}\n  (mmrag doctor checks the whole setup)", file=sys.stderr)
        return 2
    container.start(warm_up=False)  # the other models load when the first document needs them
    tags = [t.strip() for t in (args.tags or "").split(",") if t.strip()]
    submitted: dict[str, Path] = {}
    failures: list[tuple[Path, str]] = []
    try:
        for path in tqdm(files, desc="upload", unit="file", disable=not files):
            try:
                data = path.read_bytes()
                doc_type = DOCUMENT_TYPE_FOR_FORMAT.get(sniff(data))
                if doc_type is None:
                    raise MMRagError("unsupported format")
                meta = {"title": path.name, "source": str(path.resolve())}
                if args.category:
                    meta["category"] = args.category
                if tags:
                    meta["tags"] = tags
                doc = container.documents.upload(args.tenant, doc_type, raw=data, metadata=meta, wait=False)
                submitted[doc.document_id] = path
            except (MMRagError, OSError) as exc:
                failures.append((path, getattr(exc, "message", str(exc))))
        pending = set(submitted)
        with tqdm(total=len(pending), desc="process", unit="doc", disable=not pending) as bar:
            while pending:
                for doc_id in list(pending):
                    doc = container.store.get_document(args.tenant, doc_id)
                    waiting = doc is not None and doc.status == "processing" and (doc.error or "").startswith("waiting")
                    if doc is None or doc.status != "processing" or waiting:
                        pending.discard(doc_id)
                        bar.update(1)
                        if doc is not None and doc.status == "failed":
                            failures.append((submitted[doc_id], doc.error or "failed"))
                        elif waiting:  # left queued: `mmrag serve` processes it once the model is there
                            failures.append((submitted[doc_id], f"{doc.error} (left queued)"))
                if pending:
                    time.sleep(0.5)
    finally:
        container.stop()
    ok = len(submitted) - sum(1 for p, _ in failures if p in submitted.values())
    print(f"ingested {ok} of {len(files)} files for tenant {args.tenant!r}")
    for path, why in failures:
        print(f"  failed: {path}: {why}", file=sys.stderr)
    return 0 if not failures else 1
