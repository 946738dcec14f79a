"""The `mmrag` command: serve, keys, ingest."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _settings(data_dir: str | None):
    from mmrag.settings import Settings

    overrides = {"data_dir": Path(data_dir)} if data_dir else {}
    return Settings(**overrides)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from mmrag.api.app import create_app
    from mmrag.composition import build_container

    settings = _settings(args.data_dir)
    app = create_app(build_container(settings))
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, timeout_graceful_shutdown=10)
    return 0


def _key_service(args: argparse.Namespace):
    from mmrag.composition.local import local_key_service

    return local_key_service(_settings(args.data_dir))


def cmd_keys(args: argparse.Namespace) -> int:
    svc = _key_service(args)
    if args.keys_cmd == "create":
        raw, rec = svc.create(args.tenant, args.label or "")
        print(raw)
        print(f"key id {rec.key_id} for tenant {rec.tenant} (shown once; only its hash is stored)", file=sys.stderr)
    elif args.keys_cmd == "list":
        for k in svc.store.list_keys(args.tenant):
            print(f"{k.key_id}\t{k.tenant}\t{k.created_at}\t{'revoked' if k.revoked else 'active'}\t{k.label}")
    elif args.keys_cmd == "revoke":
        if not svc.store.revoke(args.key_id):
            print(f"no key {args.key_id}", file=sys.stderr)
            return 1
        print(f"revoked {args.key_id}")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from mmrag.cli.bulk import ingest_paths

    return ingest_paths(args)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mmrag", description="Multimodal RAG service")
    sub = ap.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("serve", help="run the local service")
    s.add_argument("--host", default=os.environ.get("MMRAG_HOST", "127.0.0.1"))
    s.add_argument("--port", type=int, default=int(os.environ.get("MMRAG_PORT", "8000")))
    s.add_argument("--data-dir", default=None, help="where data lives (default: $MMRAG_DATA_DIR or ./.mmrag)")
    s.add_argument("--log-level", default="info")
    s.set_defaults(fn=cmd_serve)

    k = sub.add_parser("keys", help="manage API keys (stored hashed in the data dir)")
    k.add_argument("--data-dir", default=None)
    ksub = k.add_subparsers(dest="keys_cmd", required=True)
    kc = ksub.add_parser("create", help="create a key for a tenant and print it")
    kc.add_argument("--tenant", required=True)
    kc.add_argument("--label", default="")
    kl = ksub.add_parser("list", help="list keys (never the keys themselves)")
    kl.add_argument("--tenant", default=None)
    kr = ksub.add_parser("revoke", help="revoke a key by its id")
    kr.add_argument("key_id")
    k.set_defaults(fn=cmd_keys)

    i = sub.add_parser("ingest", help="ingest files and folders (the local twin of dropping files into S3)")
    i.add_argument("paths", nargs="+")
    i.add_argument("--tenant", default="default")
    i.add_argument("--data-dir", default=None)
    i.add_argument("--category", default=None)
    i.add_argument("--tags", default="", help="comma-separated tags for every file")
    i.set_defaults(fn=cmd_ingest)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.fn(args)
