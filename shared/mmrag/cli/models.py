"""`mmrag models download [--dir DIR]`: the configured models (text, CLIP pair, reranker) into a folder for offline
use, laid out as MMRAG_MODEL_DIR is read (DIR/<model name>/...)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmrag.settings import Settings


@dataclass(frozen=True)
class ConfiguredModel:
    role: str
    setting: str
    name: str
    kind: Any  # the fastembed class that runs it

    @property
    def label(self) -> str:
        return f"{self.role} {self.name} ({self.setting})"


def configured_models(settings: Settings) -> list[ConfiguredModel]:
    from fastembed import ImageEmbedding, TextEmbedding
    from fastembed.rerank.cross_encoder import TextCrossEncoder

    return [
        ConfiguredModel("text model", "MMRAG_TEXT_MODEL", settings.text_model, TextEmbedding),
        ConfiguredModel("CLIP image model", "MMRAG_IMAGE_MODEL", settings.image_model, ImageEmbedding),
        ConfiguredModel("CLIP text model", "MMRAG_IMAGE_TEXT_MODEL", settings.image_text_model, TextEmbedding),
        ConfiguredModel("reranker", "MMRAG_RERANK_MODEL", settings.rerank_model, TextCrossEncoder),
    ]


def cmd_models(args: argparse.Namespace) -> int:
    from mmrag.adapters.local.model_source import MissingModel, fetch_into, present_in

    settings = Settings()
    target = args.dir or settings.model_dir
    if not target:
        print(
            "mmrag models download: say where the models go: --dir DIR (then run with MMRAG_MODEL_DIR=DIR)",
            file=sys.stderr,
        )
        return 2
    root = Path(target).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    failed = 0
    for m in configured_models(settings):
        if present_in(m.kind, m.name, root):
            print(f"ok        {m.label}: already in {root / m.name}")
            continue
        print(f"fetching  {m.label} ...", flush=True)
        try:
            folder = fetch_into(m.kind, m.name, root)
        except MissingModel as exc:
            failed += 1
            print(f"FAILED    {m.label}: {exc.why}", file=sys.stderr)
        else:
            print(f"ok        {m.label}: downloaded into {folder}")
    if failed:
        print(
            f"{failed} model(s) could not be fetched. `mmrag models download` needs the model hub "
            "(https://huggingface.co, or the mirror in HF_ENDPOINT): check the network or the proxy (HTTPS_PROXY), "
            "unset HF_HUB_OFFLINE, check the model names; or run it on a machine that has a network and copy "
            f"the folder here ({root}).",
            file=sys.stderr,
        )
        return 1
    print(f"all models are in {root}; run mmrag with MMRAG_MODEL_DIR={root}")
    return 0
