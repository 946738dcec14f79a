"""Which data dir a command uses, said on stderr: --data-dir, else MMRAG_DATA_DIR, else the nearest `.mmrag` in this
folder or one above it (as git finds its repository), else a new `./.mmrag`. Commands that only read refuse to run on
a data dir that does not exist instead of creating an empty one, where keys and documents would seem to be gone."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

NAME = ".mmrag"


@dataclass(frozen=True)
class DataDir:
    path: Path
    origin: str  # how it was chosen, for the line on stderr

    @property
    def exists(self) -> bool:
        return self.path.is_dir()


def resolve(flag: str | os.PathLike[str] | None, cwd: Path | None = None) -> DataDir:
    if flag:
        return DataDir(Path(flag).expanduser().resolve(), "--data-dir")
    env = os.environ.get("MMRAG_DATA_DIR", "").strip()
    if env:
        return DataDir(Path(env).expanduser().resolve(), "MMRAG_DATA_DIR")
    here = (cwd or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / NAME).is_dir():
            return DataDir(folder / NAME, "found in this folder" if folder == here else "found in a parent folder")
    return DataDir(here / NAME, "none found here or above")


def open_data_dir(flag: str | None, *, create: bool, command: str) -> Path:
    """The data dir for `command`, announced on stderr; SystemExit(2) with a hint when it does not exist and
    `create` is false."""
    dd = resolve(flag)
    if dd.exists:
        print(f"mmrag: data dir {dd.path} ({dd.origin})", file=sys.stderr)
        return dd.path
    if not create:
        print(
            f"mmrag {command}: there is no data dir at {dd.path} ({dd.origin}), so there is nothing to read.\n"
            f"  Run it in the folder where `mmrag serve` keeps its {NAME} (or below it), "
            "or say where with --data-dir DIR or MMRAG_DATA_DIR=DIR.",
            file=sys.stderr,
        )
        raise SystemExit(2)
    print(
        f"mmrag: data dir {dd.path} ({dd.origin}) does not exist yet: creating it "
        "(use --data-dir DIR or MMRAG_DATA_DIR=DIR for another)",
        file=sys.stderr,
    )
    dd.path.mkdir(parents=True, exist_ok=True)
    return dd.path
