"""The `mmrag` command: serve, keys, ingest, models, doctor."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from mmrag.cli.data_dir import open_data_dir

DATA_DIR_HELP = "where data lives (default: $MMRAG_DATA_DIR, else the nearest .mmrag here or above, else ./.mmrag)"


def _settings(data_dir: Path):
    from mmrag.settings import Settings

    return Settings(data_dir=data_dir)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from mmrag.api.app import create_app
    from mmrag.cli.banner import banner
    from mmrag.composition import build_container

    # bound before the banner, so that it names the address really listened on (--port 0: the one given)
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        print(
            f"mmrag serve: cannot listen on {args.host}:{args.port}: {exc.strerror or exc} "
            "(another server there? choose another: --port P, MMRAG_PORT=P or make serve PORT=P)",
            file=sys.stderr,
        )
        return 1
    on_aws = os.environ.get("MMRAG_BACKEND", "local").strip().lower() == "aws"  # no data dir there
    settings = _settings(Path(".mmrag") if on_aws else open_data_dir(args.data_dir, create=True, command="serve"))
    container = build_container(settings)
    print(banner(settings, container, args.host, sock.getsockname()[1]), file=sys.stderr, flush=True)
    config = uvicorn.Config(
        create_app(container), log_level=args.log_level, timeout_graceful_shutdown=10, host=args.host
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a restart need not wait
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _key_service(args: argparse.Namespace):
    from mmrag.composition.local import local_key_service

    create = args.keys_cmd == "create"
    return local_key_service(_settings(open_data_dir(args.data_dir, create=create, command=f"keys {args.keys_cmd}")))


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

    return ingest_paths(args, open_data_dir(args.data_dir, create=True, command="ingest"))


def cmd_models(args: argparse.Namespace) -> int:
    from mmrag.cli.models import cmd_models as run

    return run(args)


def cmd_doctor(args: argparse.Namespace) -> int:
    from mmrag.cli.doctor import cmd_doctor as run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mmrag", description="Multimodal RAG service")
    sub = ap.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("serve", help="run the local service")
    s.add_argument("--host", default=os.environ.get("MMRAG_HOST", "127.0.0.1"))
    s.add_argument("--port", type=int, default=int(os.environ.get("MMRAG_PORT", "8000")))
    s.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)
    s.add_argument("--log-level", default="info")
    s.set_defaults(fn=cmd_serve)

    k = sub.add_parser("keys", help="manage API keys (stored hashed in the data dir)")
    k.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)
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
    i.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)
    i.add_argument("--category", default=None)
    i.add_argument("--tags", default="", help="comma-separated tags for every file")
    i.set_defaults(fn=cmd_ingest)

    m = sub.add_parser("models", help="the configured models (text, CLIP pair, reranker) for offline use")
    msub = m.add_subparsers(dest="models_cmd", required=True)
    md = msub.add_parser("download", help="fetch them into DIR/<model name> (the layout MMRAG_MODEL_DIR is read in)")
    md.add_argument("--dir", default=None, help="target folder (default: $MMRAG_MODEL_DIR)")
    m.set_defaults(fn=cmd_models)

    d = sub.add_parser("doctor", help="check the setup: data dir, models, OCR, answer providers, keys")
    d.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)
    d.set_defaults(fn=cmd_doctor)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.fn(args)
