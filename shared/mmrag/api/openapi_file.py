"""shared/mmrag/api/openapi.json, the API's OpenAPI document as a file: `make openapi` writes it
(`python -m mmrag.api.openapi_file --write shared/mmrag/api/openapi.json`), `--check` says whether it is current.
A new or changed endpoint is one command away from a current file; tests/api/test_openapi.py fails while the file
is stale."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def current_document() -> dict[str, Any]:
    """The document of the app as `mmrag serve` and the Lambda functions build it (routes need no container)."""
    from mmrag.api.app import create_app

    return create_app(object(), manage_lifecycle=False).openapi()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write or check the API's OpenAPI document.")
    parser.add_argument("--write", type=Path, help="write the document to this file")
    parser.add_argument("--check", type=Path, help="exit 1 if this file differs from the document")
    args = parser.parse_args(argv)
    text = render(current_document())
    if args.check:
        if not args.check.is_file() or args.check.read_text(encoding="utf-8") != text:
            print(f"{args.check} is out of date: run `make openapi`", file=sys.stderr)
            return 1
        return 0
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(text, encoding="utf-8")
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
