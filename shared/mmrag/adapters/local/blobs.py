"""Blob store on the local filesystem. Keys are our own ids joined by '/', never client file names."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from mmrag.core.blob_paths import validate_key


class FileBlobStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # write-then-rename: a crash never leaves a half-written blob under the final name
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        path = self._path(prefix.rstrip("/"))
        if path.is_dir():
            count = sum(1 for p in path.rglob("*") if p.is_file())
            shutil.rmtree(path, ignore_errors=True)
            return count
        if path.is_file():
            path.unlink(missing_ok=True)
            return 1
        return 0

    def list_keys(self, prefix: str) -> list[str]:
        path = self._path(prefix.rstrip("/"))
        if not path.exists():
            return []
        if path.is_file():
            return [prefix]
        return sorted(
            str(p.relative_to(self.root)) for p in path.rglob("*") if p.is_file() and not p.name.startswith(".tmp-")
        )

    def health(self) -> dict[str, Any]:
        ok = self.root.is_dir() and os.access(self.root, os.W_OK)
        return {"status": "ok" if ok else "error", "backend": "filesystem"}
