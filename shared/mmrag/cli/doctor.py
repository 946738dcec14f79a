"""`mmrag doctor`: is this setup usable? The data dir, each configured model (found where, loadable), the OCR engine,
the answer providers and the API keys, one line each; exit 0 when usable, 1 with the fix printed under what is not."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from mmrag.cli.data_dir import resolve
from mmrag.cli.models import ConfiguredModel, configured_models
from mmrag.settings import Settings


@dataclass
class Report:
    failures: int = 0
    lines: list[str] = field(default_factory=list)

    def ok(self, what: str, detail: str) -> None:
        self._add("ok  ", what, detail)

    def warn(self, what: str, detail: str, fix: str = "") -> None:
        self._add("warn", what, detail, fix)

    def fail(self, what: str, detail: str, fix: str) -> None:
        self.failures += 1
        self._add("FAIL", what, detail, fix)

    def _add(self, mark: str, what: str, detail: str, fix: str = "") -> None:
        line = f"{mark}  {what}: {detail}"
        print(line, flush=True)
        self.lines.append(line)
        if fix:
            print(f"      fix: {fix}", flush=True)
            self.lines.append(f"fix: {fix}")


def check_data_dir(report: Report, flag: str | None) -> Path:
    dd = resolve(flag)
    if not dd.exists:
        report.warn("data dir", f"{dd.path} ({dd.origin}) does not exist yet; `mmrag serve` creates it")
    elif not os.access(dd.path, os.W_OK):
        report.fail("data dir", f"{dd.path} ({dd.origin}) is not writable", f"chmod u+w {dd.path}, or another dir")
    else:
        report.ok("data dir", f"{dd.path} ({dd.origin})")
    return dd.path


def check_model(report: Report, source, loader, m: ConfiguredModel) -> None:
    """`source` says where the model is (the data dir's real cache); `loader` opens it (its cache folder may be a
    scratch one: fastembed creates the folder, and a data dir that does not exist yet is not made by looking)."""
    from mmrag.adapters.local.model_source import MissingModel

    origin = source.origin(m.kind, m.name)
    on_disk = origin.startswith(("MMRAG_MODEL_DIR", "the download cache"))
    bad = report.warn if m.role == "reranker" else report.fail  # without a reranker only `rerank: true` degrades
    try:
        if on_disk:
            loader.build(m.kind, m.name, threads=1)
        else:
            source.locate(m.kind, m.name)  # the hub answers: a download on first use would work
    except MissingModel as exc:
        bad(m.label, exc.why, exc.fix)
        return
    except Exception as exc:  # noqa: BLE001 - a check reports, it does not crash
        bad(m.label, f"{type(exc).__name__}: {exc}", "see the message; `mmrag models download --dir DIR` again")
        return
    if on_disk:
        report.ok(m.label, f"loads from {origin}")
    else:
        report.warn(
            m.label,
            f"not on disk; downloaded on first use into {source.cache_dir} (the hub answers)",
            "`mmrag models download --dir DIR` and MMRAG_MODEL_DIR=DIR to run without a network",
        )


def check_ocr(report: Report) -> None:
    from mmrag.adapters.local.ocr import RapidOcrEngine

    try:
        RapidOcrEngine(threads=1).load()
    except Exception as exc:  # noqa: BLE001
        report.fail("OCR (rapidocr)", f"does not load: {type(exc).__name__}: {exc}", "reinstall: make install")
        return
    report.ok("OCR (rapidocr)", "loads (pictures and scanned PDFs get their text)")


def check_answers(report: Report, settings: Settings) -> None:
    from mmrag.composition.common import build_generators

    class _Extractive:
        provider = "extractive"

        def models(self) -> list[str]:
            return ["extractive"]

    try:
        generators = build_generators(settings, _Extractive())
    except Exception as exc:  # noqa: BLE001 - a misconfigured provider is the finding
        report.fail("answer providers", str(exc), "fix MMRAG_ANSWER_PROVIDER and its settings (README: Answers)")
        return
    names = [f"{g.provider} ({', '.join(g.models()[:3])})" for g in generators]
    report.ok("answer providers", "; ".join(names))


def check_keys(report: Report, settings: Settings, data_dir: Path) -> None:
    bootstrap = len(settings.bootstrap_keys)
    stored = 0
    if (data_dir / "mmrag.sqlite").is_file():
        from mmrag.composition.local import local_key_service

        stored = sum(1 for k in local_key_service(settings).store.list_keys() if not k.revoked)
    if bootstrap + stored == 0:
        report.fail(
            "API keys",
            "none: every request but /health answers 401",
            "mmrag keys create --tenant default (prints a key), or MMRAG_API_KEYS=mykey=default",
        )
    else:
        report.ok("API keys", f"{bootstrap} from MMRAG_API_KEYS, {stored} active in the data dir")


def cmd_doctor(args: argparse.Namespace) -> int:
    from mmrag.adapters.local.model_source import ModelSource
    from mmrag.composition.local import model_settings

    report = Report()
    data_dir = check_data_dir(report, args.data_dir)
    settings = Settings(data_dir=data_dir)
    if settings.model_dir and not Path(settings.model_dir).is_dir():
        report.fail("MMRAG_MODEL_DIR", f"{settings.model_dir} is not a folder", "point it at the models' folder")
    roles = model_settings(settings)
    source = ModelSource(settings.model_dir, data_dir / "models", threads=1, settings_of=roles)
    with tempfile.TemporaryDirectory(prefix="mmrag-doctor-") as scratch:
        loader = source if data_dir.is_dir() else ModelSource(settings.model_dir, Path(scratch), 1, settings_of=roles)
        for m in configured_models(settings):
            check_model(report, source, loader, m)
    check_ocr(report)
    check_answers(report, settings)
    check_keys(report, settings, data_dir)
    if report.failures:
        print(f"{report.failures} problem(s): mmrag is not usable until the fix(es) above are done", file=sys.stderr)
        return 1
    print("mmrag is usable")
    return 0
