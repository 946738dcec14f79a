"""When does the extractive answerer decline? Its answer rate on the eval questions (Debian Reference, English and
Chinese) against its decline rate on questions the manual does not cover (tests/data/offtopic_questions.jsonl), for a
sweep of `min_evidence` thresholds (MMRAG_ANSWER_MIN_EVIDENCE).

    python bench/decline_bench.py [--data-dir /tmp/h4-eval/data] [--tenant eval] [--json out.json]

The corpus must already be ingested in DATA_DIR for TENANT; when it is not, the bench ingests it once over HTTP with
`../shared/eval/run_eval.py --serve "mmrag serve" --data-dir DATA_DIR` (a few minutes on 2 cores; the eval's key maps
to tenant "eval"). Answers are computed in-process over that data dir (the real all-MiniLM-L6-v2 from
../shared/models), once per question: the answerer reports the strength of its best sentence, and a threshold t
declines every question whose strength is below t (or whose best sentence shares too few of its terms, whatever t).
"cites gold" counts answers that cite the gold page.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT.parent / "shared" / "eval"
MODELS = ROOT.parent / "shared" / "models"
OFFTOPIC = ROOT / "tests" / "data" / "offtopic_questions.jsonl"
PDF_TITLES = {"en": "debian-reference.en.pdf", "zh": "debian-reference.zh-cn.pdf"}
THRESHOLDS = [round(0.05 * i, 2) for i in range(0, 8)] + [round(0.01 * i, 2) for i in range(38, 51)] + [0.55, 0.6]


def read_jsonl(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if not r.get("skip")]


def build(data_dir: Path):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from mmrag.composition import build_container
    from mmrag.settings import Settings

    settings = Settings(
        data_dir=data_dir,
        model_dir=MODELS,
        text_model="sentence-transformers/all-MiniLM-L6-v2",
        image_model="Qdrant/clip-ViT-B-32-vision",
        image_text_model="Qdrant/clip-ViT-B-32-text",
        answer_provider="extractive",
    )
    return build_container(settings)


def ensure_corpus(container, data_dir: Path, tenant: str) -> dict[str, str]:
    """{language: document_id} of the two eval PDFs, ingesting them over HTTP first when they are missing."""

    def find() -> dict[str, str]:
        docs = container.store.list_documents(tenant, page=1, page_size=100)[1]
        out = {}
        for d in docs:
            for lang, title in PDF_TITLES.items():
                if d.metadata.get("title") == title and d.status == "completed":
                    out[lang] = d.document_id
        return out

    found = find()
    if len(found) < 2:
        cmd = [
            sys.executable,
            str(EVAL / "run_eval.py"),
            "--serve",
            f"{shlex.quote(sys.executable)} -m mmrag.cli serve",
            "--data-dir",
            str(data_dir),
        ]
        print("ingesting the eval corpus:", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
        raise SystemExit("corpus ingested; run the bench again")
    return found


def measure(container, tenant: str, question: dict, doc_ids: dict[str, str]) -> dict:
    from mmrag.core.answering import AskParams

    answers = container.answers
    generator, _ = container.generators.resolve("extractive")
    prep = answers.prepare(tenant, AskParams(question["question"], model="extractive", top_k=5))
    choice = generator.choose(prep.request)
    answers_at = {t: generator.strong_enough(choice, question["question"], t) for t in THRESHOLDS}
    cited = {n for _, n in choice.sentences}
    gold = question.get("page")
    cites_gold = any(
        s.number in cited and s.page == gold and s.document_id == doc_ids.get(question["lang"]) for s in prep.sources
    )
    return {
        "id": question["id"],
        "lang": question["lang"],
        "strength": round(choice.strength, 4),
        "overlap": round(choice.overlap, 4),
        "dense": round(choice.dense, 4),
        "best_relevance": round(max((s.relevance for s in prep.sources), default=0.0), 4),
        "cites_gold": cites_gold,
        "answers_at": answers_at,
        "answer": " ".join(s for s, _ in choice.sentences)[:160],
    }


def sweep(on: list[dict], off: list[dict]) -> list[dict]:
    rows = []
    for t in THRESHOLDS:
        answered = [r for r in on if r["answers_at"][t]]
        declined = [r for r in off if not r["answers_at"][t]]
        row = {
            "threshold": t,
            "answered": len(answered) / len(on),
            "answered_gold": sum(r["cites_gold"] for r in answered) / len(on),
            "declined_offtopic": len(declined) / len(off),
        }
        for lang in ("en", "zh"):
            on_l = [r for r in on if r["lang"] == lang]
            off_l = [r for r in off if r["lang"] == lang]
            row[f"answered_{lang}"] = sum(r in answered for r in on_l) / max(1, len(on_l))
            row[f"declined_{lang}"] = sum(r in declined for r in off_l) / max(1, len(off_l))
        rows.append(row)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="/tmp/h4-eval/data")
    ap.add_argument("--tenant", default="eval")
    ap.add_argument("--json", help="also write every question's figures and the sweep here")
    ap.add_argument(
        "--off-topic",
        type=Path,
        default=OFFTOPIC,
        help="the off-topic questions (also tests/data/offtopic_holdout.jsonl, written after the first tuning)",
    )
    args = ap.parse_args()

    data_dir = Path(args.data_dir)
    container = build(data_dir)
    doc_ids = ensure_corpus(container, data_dir, args.tenant)
    on_topic = read_jsonl(EVAL / "questions_en.jsonl") + read_jsonl(EVAL / "questions_zh.jsonl")
    off_topic = read_jsonl(args.off_topic)
    on = [measure(container, args.tenant, q, doc_ids) for q in on_topic]
    off = [measure(container, args.tenant, q, doc_ids) for q in off_topic]
    rows = sweep(on, off)

    print(f"{len(on)} eval questions, {len(off)} off-topic questions")
    print("threshold  answered  (en    zh)   cites gold  declined off-topic  (en    zh)")
    for r in rows:
        print(
            f"{r['threshold']:9.2f}  {r['answered']:8.3f}  ({r['answered_en']:.3f} {r['answered_zh']:.3f})"
            f"  {r['answered_gold']:10.3f}  {r['declined_offtopic']:18.3f}"
            f"  ({r['declined_en']:.3f} {r['declined_zh']:.3f})"
        )
    from mmrag.adapters.generators.extractive import DEFAULT_MIN_EVIDENCE

    print(f"default MMRAG_ANSWER_MIN_EVIDENCE: {DEFAULT_MIN_EVIDENCE}")
    if args.json:
        Path(args.json).write_text(json.dumps({"on_topic": on, "off_topic": off, "sweep": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
