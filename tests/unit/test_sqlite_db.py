"""Two processes opening the same new SQLite database at once (two servers started together on one data dir)."""

from __future__ import annotations

import subprocess
import sys

OPEN = """
import sys
from mmrag.adapters.local.sqlite_store import SqliteDocumentStore
SqliteDocumentStore(sys.argv[1])
"""


def test_two_processes_create_the_same_database_together(tmp_path):
    for round_ in range(5):
        path = tmp_path / f"db{round_}" / "mmrag.sqlite"
        procs = [
            subprocess.Popen([sys.executable, "-c", OPEN, str(path)], stderr=subprocess.PIPE, text=True)
            for _ in range(3)
        ]
        errors = [p.communicate(timeout=60)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], errors
