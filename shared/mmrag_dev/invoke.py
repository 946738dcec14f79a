"""Run a function of template.yaml with an event file against moto: the Docker-free stand-in for `sam local invoke`.

    python -m mmrag_dev.invoke SearchFunction events/search_text.json
    python -m mmrag_dev.invoke DocumentsFunction events/documents_get.json --seed      # with a document to find
    python -m mmrag_dev.invoke IngestFunction events/s3_via_sqs.json
    python -m mmrag_dev.invoke DocumentsFunction events/documents_upload.json --drain  # and run the queued ingestion
    make invoke FN=SearchFunction EVENT=events/search_text.json

Everything runs in this process and on 127.0.0.1 only (see sandbox.py); the response is printed as JSON, with a JSON
body parsed and a picture body summarised.

Options: --seed first creates what the event names (a text document and a picture for doc_/img_ placeholders, a chat
session, a Textract job for the completion event) and puts the ids in the event; objects named by S3 events are
created when missing. --drain afterwards runs the ingest and Textract queues' messages through their functions.
--param Key=Value overrides a template parameter. --verbose keeps Powertools' logs and metrics.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path
from typing import Any

from mmrag_dev import seed
from mmrag_dev.events import json_body
from mmrag_dev.sandbox import Sandbox


def render(response: Any, raw: bool = False) -> str:
    """The handler's return value as indented JSON: a JSON body parsed, a picture body summarised (unless raw)."""
    if raw or not isinstance(response, dict):
        return json.dumps(response, indent=2, ensure_ascii=False, default=str)
    out = dict(response)
    if "body" in out and isinstance(out["body"], str):
        parsed = json_body(out)
        if parsed is not None:
            out["body"] = parsed
            out["isBase64Encoded"] = False
        elif out.get("isBase64Encoded"):
            data = base64.b64decode(out["body"])
            if data.startswith(b"\x89PNG") or data[:3] == b"\xff\xd8\xff":
                kind = "PNG" if data.startswith(b"\x89PNG") else "JPEG"
                out["body"] = f"<{len(data)} bytes of {kind}>"
            else:
                text = data.decode("utf-8", errors="replace")
                out["body"] = text if len(text) < 4000 else text[:4000] + "..."
    return json.dumps(out, indent=2, ensure_ascii=False, default=str)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("function", help="logical id of a function in template.yaml, e.g. SearchFunction")
    parser.add_argument("event", help="event JSON file, e.g. events/search_text.json")
    parser.add_argument("--seed", action="store_true", help="create what the event refers to first")
    parser.add_argument("--drain", action="store_true", help="then run queued ingestion / Textract messages")
    parser.add_argument("--param", action="append", default=[], help="template parameter override Key=Value")
    parser.add_argument("--raw", action="store_true", help="print the handler's return value as it is")
    parser.add_argument("--verbose", action="store_true", help="keep Powertools' logs and metrics on stdout")
    args = parser.parse_args(argv)
    overrides = dict(p.split("=", 1) for p in args.param)
    event = json.loads(Path(args.event).read_text(encoding="utf-8"))
    with Sandbox(overrides, verbose=args.verbose) as sandbox:
        if args.seed:
            event = seed.seed_for(sandbox, event)
        event = seed.ensure_objects(sandbox, event)
        response = sandbox.invoke(args.function, event)
        print(render(response, args.raw))
        if args.drain:
            for function, result in sandbox.drain():
                print(f"--- {function}", file=sys.stderr)
                print(render(result, args.raw))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
