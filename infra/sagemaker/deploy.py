#!/usr/bin/env python3
"""Deploy mmrag's model endpoint: package the models and inference.py, upload to S3, create a SageMaker endpoint.

    python infra/sagemaker/deploy.py --endpoint-name mmrag-models --role-arn arn:aws:iam::123:role/sm \\
        --bucket my-artifacts --model-dir ../shared/models --serverless --dry-run

The archive (model.tar.gz) holds one folder per model, named as fastembed names it, plus code/inference.py and
code/requirements.txt; it runs in the SageMaker PyTorch inference container (CPU), see README.md. Only this script
imports the `sagemaker` SDK (pip install 'sagemaker>=2.200,<3' where you deploy from); --help and --dry-run work
without it, and --dry-run calls no AWS API.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_MODELS = {
    "text": "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2",
    "image": "Qdrant/clip-ViT-B-32-vision",
    "image_text": "Qdrant/clip-ViT-B-32-text",
    "rerank": "Xenova/ms-marco-MiniLM-L-6-v2",
}
# glibc of the DLC's Ubuntu is newer than all of these; pip does not widen manylinux_2_x tags by itself
WHEEL_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
CPU_INSTANCE_FOR_IMAGE = "ml.m5.large"  # any CPU type: it only selects the CPU flavour of the image


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Package mmrag's ONNX models + inference.py and deploy them as one SageMaker endpoint.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--endpoint-name", required=True, help="SageMaker endpoint name (what SageMakerEmbedder is given)")
    p.add_argument("--role-arn", help="execution role SageMaker assumes (reads the S3 archive, writes logs)")
    p.add_argument("--bucket", help="S3 bucket for the archive (same region as the endpoint)")
    p.add_argument("--prefix", default="mmrag/sagemaker", help="S3 key prefix for the archive")
    p.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    p.add_argument(
        "--model-dir",
        type=Path,
        default=Path(os.environ["MMRAG_MODEL_DIR"]) if os.environ.get("MMRAG_MODEL_DIR") else None,
        help="folder with one sub-folder per model (fastembed layout), as MMRAG_MODEL_DIR",
    )
    models = p.add_argument_group("models (the same names the service is configured with)")
    models.add_argument("--text-model", default=os.environ.get("MMRAG_TEXT_MODEL") or DEFAULT_MODELS["text"])
    models.add_argument("--image-model", default=os.environ.get("MMRAG_IMAGE_MODEL") or DEFAULT_MODELS["image"])
    models.add_argument(
        "--image-text-model", default=os.environ.get("MMRAG_IMAGE_TEXT_MODEL") or DEFAULT_MODELS["image_text"]
    )
    models.add_argument(
        "--rerank-model",
        default=os.environ.get("MMRAG_RERANK_MODEL", DEFAULT_MODELS["rerank"]),
        help="an empty value hosts no reranker",
    )
    models.add_argument("--text-max-tokens", type=int, default=int(os.environ.get("MMRAG_TEXT_MAX_TOKENS", "256")))
    models.add_argument(
        "--models-in-image",
        metavar="DIR",
        help="the models are baked into a custom --image-uri at DIR: package only the code, set MMRAG_MODEL_DIR=DIR",
    )

    hosting = p.add_argument_group("hosting")
    hosting.add_argument("--serverless", action="store_true", help="serverless endpoint instead of instances")
    hosting.add_argument("--memory-mb", type=int, default=6144, help="serverless memory: 1024..6144 in 1024 steps")
    hosting.add_argument("--max-concurrency", type=int, default=5, help="serverless concurrent invocations")
    hosting.add_argument("--provisioned-concurrency", type=int, default=None, help="serverless warm capacity")
    hosting.add_argument("--instance-type", default="ml.m5.large", help="real-time instance type")
    hosting.add_argument("--instance-count", type=int, default=1, help="real-time instance count")
    hosting.add_argument("--workers", type=int, default=1, help="model server workers (each loads every model)")
    hosting.add_argument("--update", action="store_true", help="update an existing endpoint in place")

    image = p.add_argument_group("container")
    image.add_argument("--framework-version", default="2.6.0", help="PyTorch inference DLC version")
    image.add_argument("--py-version", default="py312", help="Python of that DLC")
    image.add_argument("--image-uri", help="a custom image instead of the DLC (e.g. the DLC with fastembed baked in)")
    image.add_argument(
        "--vendor-wheels",
        action="store_true",
        help="put fastembed's wheels in the archive and install offline (for endpoints without internet access)",
    )

    p.add_argument("--archive", type=Path, help="also keep the built model.tar.gz here")
    p.add_argument("--dry-run", action="store_true", help="print what would be done; call no AWS API")
    args = p.parse_args(argv)
    if not args.dry_run:
        missing = [f"--{n.replace('_', '-')}" for n in ("role_arn", "bucket", "region") if not getattr(args, n)]
        if missing:
            p.error(f"{', '.join(missing)} required unless --dry-run")
    if not args.models_in_image and not args.model_dir:
        p.error("--model-dir (or MMRAG_MODEL_DIR) is required unless --models-in-image")
    if args.serverless and not (1024 <= args.memory_mb <= 6144 and args.memory_mb % 1024 == 0):
        p.error("--memory-mb must be 1024, 2048, ... 6144")
    return args


def model_names(args: argparse.Namespace) -> list[str]:
    names = [args.text_model, args.image_model, args.image_text_model]
    if args.rerank_model.strip():
        names.append(args.rerank_model.strip())
    return list(dict.fromkeys(names))


def container_env(args: argparse.Namespace) -> dict[str, str]:
    env = {
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
        # each worker process holds its own copy of every model; ONNX Runtime already uses all cores in one
        "SAGEMAKER_MODEL_SERVER_WORKERS": str(args.workers),
        "HF_HUB_OFFLINE": "1",  # the models are in the archive (or image): never try to download
        "MMRAG_TEXT_MODEL": args.text_model,
        "MMRAG_IMAGE_MODEL": args.image_model,
        "MMRAG_IMAGE_TEXT_MODEL": args.image_text_model,
        "MMRAG_RERANK_MODEL": args.rerank_model.strip(),
        "MMRAG_TEXT_MAX_TOKENS": str(args.text_max_tokens),
    }
    if args.region:
        env["SAGEMAKER_REGION"] = args.region
    if args.models_in_image:
        env["MMRAG_MODEL_DIR"] = args.models_in_image
    return env


def _folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def archive_members(args: argparse.Namespace) -> list[tuple[Path, str]]:
    """(local path, name in the archive) of every top-level entry; fails early on a missing model folder."""
    members: list[tuple[Path, str]] = []
    if not args.models_in_image:
        for name in model_names(args):
            folder = args.model_dir / name
            if not folder.is_dir():
                raise SystemExit(f"model folder not found: {folder} (fastembed layout: <model dir>/<model name>)")
            members.append((folder, name))
    members.append((HERE / "inference.py", "code/inference.py"))
    members.append((HERE / "requirements.txt", "code/requirements.txt"))
    return members


def _requirements(vendored: bool) -> str:
    text = (HERE / "requirements.txt").read_text()
    # pip reads a relative --find-links in a requirements file relative to that file
    return f"--no-index\n--find-links wheels\n{text}" if vendored else text


def _download_wheels(dest: Path, py_version: str) -> None:
    python = py_version.removeprefix("py")
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--dest", str(dest)]
    cmd += ["--python-version", f"{python[0]}.{python[1:]}", "--implementation", "cp"]
    for platform in WHEEL_PLATFORMS:
        cmd += ["--platform", platform]
    cmd += ["-r", str(HERE / "requirements.txt")]
    subprocess.run(cmd, check=True)


def build_archive(args: argparse.Namespace, dest: Path) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        code = Path(tmp) / "code"
        code.mkdir()
        shutil.copy2(HERE / "inference.py", code / "inference.py")
        (code / "requirements.txt").write_text(_requirements(args.vendor_wheels))
        if args.vendor_wheels:
            _download_wheels(code / "wheels", args.py_version)
        # ONNX weights hardly compress: the fastest gzip level saves minutes and costs a few percent
        with tarfile.open(dest, "w:gz", compresslevel=1) as tar:
            for path, name in archive_members(args):
                if not name.startswith("code/"):
                    tar.add(path, arcname=name)
            tar.add(code, arcname="code")
    return dest


def image_uri(args: argparse.Namespace) -> str:
    if args.image_uri:
        return args.image_uri
    description = f"pytorch-inference:{args.framework_version}-cpu-{args.py_version} (SageMaker DLC)"
    try:
        from sagemaker import image_uris
    except ImportError:
        if args.dry_run:
            return f"{description}; resolved with the sagemaker SDK when deploying"
        raise
    return image_uris.retrieve(
        "pytorch",
        args.region or "us-east-1",
        version=args.framework_version,
        py_version=args.py_version,
        instance_type=CPU_INSTANCE_FOR_IMAGE if args.serverless else args.instance_type,
        image_scope="inference",
    )


def plan(args: argparse.Namespace, model_data: str) -> dict[str, Any]:
    hosting: dict[str, Any]
    if args.serverless:
        hosting = {
            "type": "serverless",
            "memory_size_in_mb": args.memory_mb,
            "max_concurrency": args.max_concurrency,
            "provisioned_concurrency": args.provisioned_concurrency,
        }
    else:
        hosting = {"type": "real-time", "instance_type": args.instance_type, "instance_count": args.instance_count}
    members = archive_members(args)
    return {
        "endpoint_name": args.endpoint_name,
        "action": "update endpoint" if args.update else "create endpoint",
        "region": args.region,
        "role_arn": args.role_arn,
        "image_uri": image_uri(args),
        "model_data": model_data,
        "archive": {
            name: f"{_folder_size(path) if path.is_dir() else path.stat().st_size} bytes" for path, name in members
        }
        | ({"code/wheels": "fastembed and its dependencies (pip download)"} if args.vendor_wheels else {}),
        "hosting": hosting,
        "environment": container_env(args),
    }


def _model_data_uri(args: argparse.Namespace) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return f"s3://{args.bucket or '<bucket>'}/{args.prefix.strip('/')}/{args.endpoint_name}/{stamp}/model.tar.gz"


def deploy(args: argparse.Namespace, model_data: str) -> None:
    import boto3
    import sagemaker
    from sagemaker.model import Model
    from sagemaker.serverless import ServerlessInferenceConfig

    boto_session = boto3.Session(region_name=args.region)
    session = sagemaker.Session(boto_session=boto_session)
    with tempfile.TemporaryDirectory() as tmp:
        archive = build_archive(args, args.archive or Path(tmp) / "model.tar.gz")
        bucket, _, key = model_data.removeprefix("s3://").partition("/")
        print(f"uploading {archive} ({archive.stat().st_size} bytes) to {model_data}", flush=True)
        boto_session.client("s3").upload_file(str(archive), bucket, key)

    # plain Model (not PyTorchModel): the archive already has code/, so the SDK must not download and repack it
    model = Model(
        image_uri=image_uri(args),
        model_data=model_data,
        role=args.role_arn,
        env=container_env(args),
        name=f"{args.endpoint_name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}",
        sagemaker_session=session,
    )
    kwargs: dict[str, Any] = {"endpoint_name": args.endpoint_name, "update_endpoint": args.update, "wait": True}
    if args.serverless:
        kwargs["serverless_inference_config"] = ServerlessInferenceConfig(
            memory_size_in_mb=args.memory_mb,
            max_concurrency=args.max_concurrency,
            provisioned_concurrency=args.provisioned_concurrency,
        )
    else:
        kwargs |= {
            "initial_instance_count": args.instance_count,
            "instance_type": args.instance_type,
            # start-up installs requirements.txt and loads every model: give it more than the default
            "container_startup_health_check_timeout": 900,
            "model_data_download_timeout": 900,
        }
    print(f"deploying {args.endpoint_name} (this waits until the endpoint is InService)", flush=True)
    model.deploy(**kwargs)
    print(f"endpoint {args.endpoint_name} is InService: SageMakerEmbedder({args.endpoint_name!r})")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model_data = _model_data_uri(args)
    print(json.dumps(plan(args, model_data), indent=2))
    if args.dry_run:
        if args.archive:
            build_archive(args, args.archive)
            print(f"dry run: archive written to {args.archive}; nothing uploaded or deployed")
        else:
            print("dry run: nothing built, uploaded or deployed")
        return 0
    deploy(args, model_data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
