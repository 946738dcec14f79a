"""Search benchmark: p50/p95 latency of every search endpoint at 10k and 100k chunks, and the server's memory.

    python bench/search_bench.py [--sizes 10000 100000] [--queries 200] [--data-dir DIR]
                                 [--clip-vectors pictures|every-chunk] [--baseline CHECKOUT] [--endpoints NAME ...]

For each size a synthetic corpus is written straight through the container's ports (document store and embedded
index; no ingestion pipeline, no embedding of the corpus), then `mmrag serve` is started as a subprocess on a free
127.0.0.1 port and queried sequentially by one HTTP client. Queries are real text encoded by the real models and
small generated PNGs. Server-side times come from the responses' `search_time`; the query picture's decode and
CLIP encode (`timings.decode_image` / `timings.encode_image`) are taken out of it and reported on their own.
With --data-dir the corpus of each size is kept in DIR/chunks-N and reused by later runs.

CLIP-space vectors: `pictures` (default, what ingestion writes) gives them to pictures and to the OCR chunks of
pictures only; `every-chunk` (the corpus before version 2, kept in DIR/chunks-N-clip-every-chunk) to every chunk too.
Both shapes draw the same random numbers: same texts, same vectors, only fewer CLIP rows.

--baseline CHECKOUT compares two versions of the code in one run: a second server runs the code of CHECKOUT (e.g.
`git worktree add /tmp/old HEAD~1`; its `shared/` goes first on PYTHONPATH; a folder without `shared/` is put on
PYTHONPATH itself, e.g. one holding a sitecustomize.py) on the same corpus, and every query goes to both servers in
turn, alternating which goes first, so that both see the same load. The report gives both and their ratio.
"""

from __future__ import annotations

import argparse
import base64
import gc
import io
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODELS = ROOT.parent / "shared" / "models"
MODEL_ENV = {
    "MMRAG_TEXT_MODEL": "sentence-transformers/all-MiniLM-L6-v2",
    "MMRAG_IMAGE_MODEL": "Qdrant/clip-ViT-B-32-vision",
    "MMRAG_IMAGE_TEXT_MODEL": "Qdrant/clip-ViT-B-32-text",
}
CORPUS_VERSION = 2  # 2: CLIP vectors only where ingestion writes them (--clip-vectors)
CLIP_SHAPES = ("pictures", "every-chunk")
TENANT, KEY = "bench", "bench-key"
WARM_TENANT, WARM_KEY = "bench-warm", "bench-warm-key"
CLIP_DIM = 512
CHUNKS_PER_DOC = 10  # mean; every IMAGE_EVERY-th document is a picture with a single OCR chunk
IMAGE_EVERY = 10
N_TOPICS = 64
TOPIC_WORDS = 40
TOPIC_SHARE = 0.15  # share of a chunk's words drawn from its document's topic words
ZIPF_S = 1.0
N_PSEUDO = 4000
CATEGORIES = [f"cat-{i:02d}" for i in range(10)]
TAGS = [f"tag-{i:02d}" for i in range(30)]
FUSIONS = ("weighted_sum", "rrf", "linear_combination")
TARGETS_MS = {"text": 50.0, "multimodal": 120.0}

# the analyzer drops these; they head the Zipf ranking so that raw chunk text has realistic stop-word mass
STOP_WORDS = "the of and to in a is that for it as with was on be by at this are from or an which not can".split()
ENGLISH = """pump oil filter pressure valve engine brake fluid coolant temperature sensor battery voltage current motor
gear shaft bearing seal gasket hose pipe tank water air fuel exhaust intake cylinder piston ring crank belt chain
wheel tyre axle spring damper frame panel cable wire switch relay fuse circuit board display screen button signal
network server database index query search image picture camera light lens colour red green blue yellow black white
metal steel plastic rubber glass paper label number part model serial date report manual guide chapter section page
table figure step check replace clean inspect measure adjust install remove tighten loosen lubricate maintain repair
test warning caution danger safety hazard noise vibration leak crack wear damage failure error fault alarm code level
limit range value hour minute week month year interval schedule service operator technician customer supplier order
invoice price cost budget project plan design drawing specification standard quality control process system machine
device equipment tool component assembly module controller software hardware firmware update version release
configuration setting option parameter memory storage disk file folder user account password access security policy
rule radiator thermostat compressor turbine generator inverter transformer insulation ground earth shield connector
terminal socket plug adapter bracket bolt nut screw washer rivet weld joint flange coupling clutch transmission
differential steering suspension chassis body door window mirror seat dashboard""".split()
CHINESE = """冷却液 发动机 散热器 水箱 检查 更换 温度 压力 阀门 油泵 过滤器 刹车 制动液 电池 电压 电流 电机
齿轮 轴承 密封 管道 燃油 排气 气缸 活塞 传感器 开关 线路 电路 显示屏 按钮 信号 网络 服务器 数据库 图片 相机
颜色 红色 蓝色 金属 塑料 标签 编号 零件 型号 日期 报告 手册 章节 维护 安装 拆卸 调整 测量 清洁 安全 警告 故障
错误 报警 系统 设备 工具 软件 硬件 配置 参数 用户 密码""".split()
EN_PREFIXES = ["", "", "how to ", "what is the ", "when should I ", "why does the ", "where is the "]
ZH_PREFIXES = ["", "如何", "怎么", "为什么"]


# ---------------------------------------------------------------------------------------------------------- corpus
@dataclass
class Vocabulary:
    words: np.ndarray  # object array of str, in Zipf rank order
    cdf: np.ndarray
    topics: np.ndarray  # (N_TOPICS, TOPIC_WORDS) indices into words
    weight: dict[str, float]

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.minimum(np.searchsorted(self.cdf, rng.random(n)), len(self.words) - 1)


def make_vocabulary(rng: np.random.Generator) -> Vocabulary:
    consonants, vowels = "bdfgklmnprstvz", "aeiou"
    pseudo: set[str] = set()
    while len(pseudo) < N_PSEUDO:
        n_syl = int(rng.integers(2, 5))
        pseudo.add("".join(rng.choice(list(consonants)) + rng.choice(list(vowels)) for _ in range(n_syl)))
    content = sorted(pseudo - set(ENGLISH)) + ENGLISH + CHINESE
    rng.shuffle(content)
    words = np.array(STOP_WORDS + content, dtype=object)
    p = 1.0 / np.arange(1, len(words) + 1) ** ZIPF_S
    p /= p.sum()
    # topic words come from the middle of the ranking: frequent enough to matter, rare enough to be topical
    mid = np.arange(len(STOP_WORDS) + 50, len(STOP_WORDS) + 2500)
    topics = np.stack([rng.choice(mid, TOPIC_WORDS, replace=False) for _ in range(N_TOPICS)])
    return Vocabulary(words, np.cumsum(p), topics, {str(w): float(x) for w, x in zip(words, p, strict=True)})


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@dataclass
class CorpusInfo:
    path: Path
    n_chunks: int
    n_documents: int
    n_images: int
    text_dim: int
    build_s: float
    build_parts: dict[str, float]
    doc_refs: list[str]
    chunk_refs: list[str]
    seed: int
    clip_vectors: str = "pictures"
    n_clip: int = 0  # rows in the CLIP space
    reused: bool = False

    def to_json(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k not in ("path", "reused")}
        return {"version": CORPUS_VERSION, **d}


def corpus_settings(data_dir: Path, **overrides: Any):
    from mmrag.settings import Settings

    values: dict[str, Any] = {
        "data_dir": data_dir,
        "model_dir": Path(os.environ.get("MMRAG_MODEL_DIR", DEFAULT_MODELS)),
        "answer_provider": "extractive",
        **{k[len("MMRAG_") :].lower(): os.environ.get(k, v) for k, v in MODEL_ENV.items()},
        **overrides,
    }
    return Settings(**values)


def build_corpus(
    data_dir: Path,
    n_chunks: int,
    seed: int = 7,
    log: Callable[[str], None] = print,
    clip_vectors: str = "pictures",
) -> CorpusInfo:
    """Write n_chunks synthetic chunks (and their documents and pictures) into data_dir, or reuse what is there.

    clip_vectors: "pictures" = a CLIP vector for each picture and each OCR chunk of a picture (as ingestion writes
    them); "every-chunk" = for every chunk as well."""
    if clip_vectors not in CLIP_SHAPES:
        raise ValueError(f"clip_vectors must be one of {CLIP_SHAPES}")
    from mmrag.composition import build_container
    from mmrag.core import blob_paths as keys
    from mmrag.core.ingestion import filter_meta
    from mmrag.core.models import Chunk, Document, ImageRecord, IndexItem, new_id

    marker = data_dir / "bench-corpus.json"
    if marker.is_file():
        saved = json.loads(marker.read_text())
        if saved.get("version") == CORPUS_VERSION and (
            saved.get("n_chunks"),
            saved.get("seed"),
            saved.get("clip_vectors"),
        ) == (n_chunks, seed, clip_vectors):
            saved.pop("version")
            return CorpusInfo(path=data_dir, reused=True, **saved)
        raise SystemExit(f"{data_dir} holds a different corpus ({marker}); remove it or pick another --data-dir")
    if data_dir.exists() and any(data_dir.iterdir()):
        raise SystemExit(f"{data_dir} is not empty and has no {marker.name}; refusing to write into it")

    started = time.perf_counter()
    rng = np.random.default_rng(seed + n_chunks)
    vocab = make_vocabulary(rng)
    c = build_container(corpus_settings(data_dir), start_workers=False)
    text_dim = c.text_embedder.dim
    n_docs = max(1, round(n_chunks / CHUNKS_PER_DOC))
    is_image = np.arange(n_docs) % IMAGE_EVERY == IMAGE_EVERY - 1
    n_images = int(is_image.sum())
    n_text_docs = n_docs - n_images
    # image documents have one OCR chunk; the rest of the chunks spread over text documents, at least 1 each
    counts = np.ones(n_docs, dtype=np.int64)
    spare = n_chunks - n_docs
    if spare < 0 or n_text_docs == 0:
        raise SystemExit(f"--sizes: {n_chunks} is too small")
    counts[~is_image] += rng.multinomial(spare, np.full(n_text_docs, 1 / n_text_docs))
    text_topics = unit(rng.standard_normal((N_TOPICS, text_dim)))
    clip_topics = unit(rng.standard_normal((N_TOPICS, CLIP_DIM)))
    parts = {"generate": 0.0, "document store": 0.0, "index": 0.0}
    all_chunk_ids: list[str] = []
    doc_ids: list[str] = []
    n_clip = 0
    tick = time.perf_counter()
    for d in range(n_docs):
        t0 = time.perf_counter()
        topic = int(rng.integers(N_TOPICS))
        doc_id = new_id("doc")
        doc_type = "image" if is_image[d] else ("pdf" if rng.random() < 0.4 else "text")
        meta = {
            "title": f"{' '.join(vocab.words[vocab.topics[topic][:3]])} {d}",
            "category": CATEGORIES[int(rng.integers(len(CATEGORIES)))],
            "tags": sorted({TAGS[int(i)] for i in rng.integers(len(TAGS), size=int(rng.integers(1, 4)))}),
            "created_at": f"{2023 + int(rng.integers(2))}-{int(rng.integers(1, 13)):02d}-"
            f"{int(rng.integers(1, 29)):02d}",
            "author": f"author-{int(rng.integers(200))}",
            "source": "synthetic",
        }
        n = int(counts[d])
        lengths = rng.integers(60, 121, size=n)
        words = vocab.sample(rng, int(lengths.sum()))
        topical = rng.random(words.size) < TOPIC_SHARE
        words[topical] = rng.choice(vocab.topics[topic], int(topical.sum()))
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        texts = [" ".join(vocab.words[words[bounds[i] : bounds[i + 1]]]) + "." for i in range(n)]
        # doc vector = its topic plus noise; chunk vector = its document's vector plus more noise (unit length)
        doc_text = unit(0.7 * text_topics[topic] + 0.7 * unit(rng.standard_normal(text_dim)))
        doc_clip = unit(0.7 * clip_topics[topic] + 0.7 * unit(rng.standard_normal(CLIP_DIM)))
        text_vecs = unit(0.6 * doc_text + 0.8 * unit(rng.standard_normal((n, text_dim))))
        clip_vecs = unit(0.6 * doc_clip + 0.8 * unit(rng.standard_normal((n + 1, CLIP_DIM))))
        images: list[ImageRecord] = []
        image_id = None
        if is_image[d]:
            image_id = new_id("img")
            derived = keys.derived_prefix(TENANT, doc_id)
            images.append(
                ImageRecord(
                    image_id=image_id,
                    document_id=doc_id,
                    position=0,
                    blob_key=f"{derived}/images/{image_id}.png",
                    thumb_key=f"{derived}/images/{image_id}.thumb.png",
                    width=640,
                    height=480,
                    ocr_text=texts[0],
                    caption=texts[0][:300],
                )
            )
        chunks, char = [], 0
        for i, text in enumerate(texts):
            chunks.append(
                Chunk(
                    chunk_id=new_id("chunk"),
                    document_id=doc_id,
                    chunk_index=i,
                    content=text,
                    token_count=int(lengths[i] * 1.3),
                    page_number=(i // 3 + 1) if doc_type == "pdf" else None,
                    source="ocr" if image_id else "text",
                    image_id=image_id,
                    char_start=char,
                    char_end=char + len(text),
                )
            )
            char += len(text) + 1
        every_chunk = clip_vectors == "every-chunk"
        items = [
            IndexItem(
                ch.chunk_id,
                doc_id,
                "chunk",
                ch.content,
                {"text": text_vecs[i], "clip": clip_vecs[i]} if every_chunk or ch.image_id else {"text": text_vecs[i]},
                ch.page_number,
                ch.image_id,
            )
            for i, ch in enumerate(chunks)
        ]
        items += [
            IndexItem(im.image_id, doc_id, "image", "", {"clip": clip_vecs[n]}, None, im.image_id) for im in images
        ]
        doc = Document(
            document_id=doc_id,
            tenant=TENANT,
            document_type=doc_type,
            metadata=meta,
            status="completed",
            file_format={"image": "png", "pdf": "pdf"}.get(doc_type, "txt"),
            file_size=sum(len(t) for t in texts),
            content_hash=f"synthetic-{d}",
            blob_key=keys.original_key(TENANT, doc_id),
            chunks_count=len(chunks),
            images_count=len(images),
            total_tokens=sum(ch.token_count for ch in chunks),
            content_preview=texts[0][:300],
            processing_time=0.0,
        )
        t1 = time.perf_counter()
        c.store.create_document(doc, None)
        c.store.replace_content(TENANT, doc_id, chunks, images)
        t2 = time.perf_counter()
        c.index.upsert_document(TENANT, filter_meta(doc), items)
        n_clip += sum("clip" in it.vectors for it in items)
        t3 = time.perf_counter()
        parts["generate"] += t1 - t0
        parts["document store"] += t2 - t1
        parts["index"] += t3 - t2
        doc_ids.append(doc_id)
        all_chunk_ids.extend(ch.chunk_id for ch in chunks)
        if time.perf_counter() - tick > 15:
            tick = time.perf_counter()
            log(f"  ... {d + 1}/{n_docs} documents, {len(all_chunk_ids)} chunks, {tick - started:.0f} s")
    del c
    gc.collect()
    pick = np.random.default_rng(seed)
    info = CorpusInfo(
        path=data_dir,
        n_chunks=len(all_chunk_ids),
        n_documents=n_docs,
        n_images=n_images,
        text_dim=text_dim,
        build_s=round(time.perf_counter() - started, 2),
        build_parts={k: round(v, 2) for k, v in parts.items()},
        doc_refs=[doc_ids[int(i)] for i in pick.choice(len(doc_ids), min(500, len(doc_ids)), replace=False)],
        chunk_refs=[all_chunk_ids[int(i)] for i in pick.choice(len(all_chunk_ids), 500, replace=True)],
        seed=seed,
        clip_vectors=clip_vectors,
        n_clip=n_clip,
    )
    marker.write_text(json.dumps(info.to_json()))
    return info


# --------------------------------------------------------------------------------------------------------- queries
def make_queries(rng: np.random.Generator, vocab: Vocabulary, n: int) -> list[str]:
    """Distinct short questions from the corpus's real English and Chinese words, common and rare alike."""

    def pick(pool: list[str], k: int) -> list[str]:
        w = np.array([vocab.weight[x] for x in pool]) ** 0.5  # flatter than the corpus: rare words get asked too
        return [pool[int(i)] for i in rng.choice(len(pool), k, replace=False, p=w / w.sum())]

    out: dict[str, None] = {}
    while len(out) < n:
        if rng.random() < 0.15:
            q = ZH_PREFIXES[int(rng.integers(len(ZH_PREFIXES)))] + "".join(pick(CHINESE, int(rng.integers(2, 4))))
        else:
            words = pick(ENGLISH, int(rng.integers(2, 6)))
            q = EN_PREFIXES[int(rng.integers(len(EN_PREFIXES)))] + " ".join(words)
        out[q] = None
    return list(out)


def query_images(rng: np.random.Generator, n: int) -> list[str]:
    """Small PNGs (base64): a coloured background with a few ellipses and rectangles."""
    from PIL import Image, ImageDraw

    out = []
    for _ in range(n):
        w, h = int(rng.integers(160, 321)), int(rng.integers(120, 241))
        img = Image.new("RGB", (w, h), tuple(int(x) for x in rng.integers(0, 256, 3)))
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(2, 6))):
            x0, y0 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
            box = (x0, y0, x0 + int(rng.integers(10, w - x0)), y0 + int(rng.integers(10, h - y0)))
            fill = tuple(int(x) for x in rng.integers(0, 256, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
        buf = io.BytesIO()
        img.save(buf, "PNG")
        out.append(base64.b64encode(buf.getvalue()).decode())
    return out


# ---------------------------------------------------------------------------------------------------------- server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def code_path(checkout: Path) -> Path:
    """What goes first on PYTHONPATH for the code in `checkout`: its shared/ (a checkout), or the folder itself."""
    return checkout / "shared" if (checkout / "shared" / "mmrag").is_dir() else checkout


class Server:
    """`mmrag serve` in a subprocess, so that its RSS is the service's alone. It runs the code of this checkout, or with
    `code` that of another one (see --baseline)."""

    def __init__(self, data_dir: Path, log_path: Path, code: Path | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "MMRAG_MODEL_DIR": str(os.environ.get("MMRAG_MODEL_DIR", DEFAULT_MODELS)),
            **{k: os.environ.get(k, v) for k, v in MODEL_ENV.items()},
            "MMRAG_API_KEYS": f"{KEY}={TENANT},{WARM_KEY}={WARM_TENANT}",
            "MMRAG_RATE_LIMITS": "search=0",  # 0 = unlimited
            "MMRAG_ANSWER_PROVIDER": "extractive",
            "MMRAG_WORKERS": "1",
            "HF_HUB_OFFLINE": "1",
        }
        # this checkout's code (not whichever mmrag the interpreter has installed), or the baseline's
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(code_path(code or ROOT)), env.get("PYTHONPATH")) if p)
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        cmd = [sys.executable, "-m", "mmrag.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--data-dir", str(data_dir), "--log-level", "warning"]
        self.proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, http, timeout: float = 300) -> None:
        """Until the health check says every model is loaded (the service warms up in the background)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log_path}")
            try:
                r = http.get(self.url + "/api/v1/health", timeout=5)
                if r.status_code == 200 and r.json()["data"]["components"]["models"]["status"] == "ok":
                    return
            except Exception:  # noqa: BLE001 - not listening yet
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready in {timeout} s; see {self.log_path}")

    def memory(self) -> dict[str, float]:
        """VmRSS and VmHWM (peak RSS) of the server process in MiB."""
        out = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                out[name] = int(value.split()[0]) / 1024
        return out

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far, all threads."""
        # /proc/<pid>/stat: the command name may contain spaces, so split after its closing parenthesis
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@contextmanager
def running_server(data_dir: Path, log_path: Path, code: Path | None = None) -> Iterator[Server]:
    server = Server(data_dir, log_path, code)
    try:
        yield server
    finally:
        server.stop()


# ----------------------------------------------------------------------------------------------------- measurement
@dataclass
class Series:
    name: str
    target: str | None = None  # key of TARGETS_MS
    rtt: list[float] = field(default_factory=list)
    server: list[float] = field(default_factory=list)  # search_time minus query-picture decode and encode
    timings: dict[str, list[float]] = field(default_factory=dict)
    empty: int = 0
    cpu_ms: float = float("nan")  # server CPU time per measured query

    def add(self, rtt_s: float, data: dict[str, Any]) -> None:
        t = data.get("timings") or {}
        picture = t.get("decode_image", 0.0) + t.get("encode_image", 0.0)
        self.rtt.append(rtt_s * 1000)
        self.server.append((data["search_time"] - picture) * 1000)
        for k, v in t.items():
            self.timings.setdefault(k, []).append(v * 1000)
        # work inside search_time that no stage timer covers
        self.timings.setdefault("untimed", []).append((data["search_time"] - sum(t.values())) * 1000)
        self.empty += not data.get("results")


Body = Callable[[int], dict[str, Any]]


@dataclass
class Endpoint:
    name: str
    path: str
    body: Body
    target: str | None = None


class Client:
    def __init__(self, url: str, key: str):
        import requests

        self.base = url + "/api/v1"
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.headers["Authorization"] = f"Bearer {key}"

    def post(self, path: str, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        start = time.perf_counter()
        r = self.http.post(self.base + path, json=body, timeout=120)
        rtt = time.perf_counter() - start
        if r.status_code != 200:
            raise RuntimeError(f"POST {path} -> {r.status_code}: {r.text[:300]}")
        return rtt, r.json()["data"]


def endpoints(queries: list[str], images: list[str], corpus: CorpusInfo) -> list[Endpoint]:
    def q(i: int) -> str:
        return queries[i % len(queries)]

    def img(i: int) -> str:
        return images[i % len(images)]

    out = [
        Endpoint("text", "/search/text", lambda i: {"query": q(i), "top_k": 10}, "text"),
        Endpoint(
            "text, category filter (~10%)",
            "/search/text",
            lambda i: {"query": q(i), "top_k": 10, "filters": {"category": CATEGORIES[i % len(CATEGORIES)]}},
            "text",
        ),
        Endpoint("image, query_type=text", "/search/image", lambda i: {"query_type": "text", "query_text": q(i)}),
        Endpoint("image, query_type=image", "/search/image", lambda i: {"query_type": "image", "query_image": img(i)}),
    ]
    for fusion in FUSIONS:
        out.append(
            Endpoint(
                f"multimodal, {fusion}",
                "/search/multimodal",
                lambda i, f=fusion: {
                    "query_text": q(i),
                    "query_image": img(i),
                    "top_k": 10,
                    "search_options": {"fusion_strategy": f},
                },
                "multimodal",
            )
        )
    docs, chunks = corpus.doc_refs, corpus.chunk_refs
    out += [
        Endpoint(
            "similar, document",
            "/search/similar",
            lambda i: {"reference_type": "document", "reference_id": docs[i % len(docs)], "top_k": 5},
        ),
        Endpoint(
            "similar, chunk",
            "/search/similar",
            lambda i: {"reference_type": "chunk", "reference_id": chunks[i % len(chunks)], "top_k": 5},
        ),
    ]
    return out


def measure(
    clients: list[Client], ep: Endpoint, n: int, warmup: int, max_s: float, cpus: list[Callable[[], float]]
) -> list[Series]:
    """`warmup` unmeasured queries, then up to n measured ones or until max_s has passed. One at a time; with several
    servers each query goes to all of them in turn, the first one changing from query to query."""
    for i in range(warmup):
        for client in clients:
            client.post(ep.path, ep.body(n + i))  # other queries than the measured ones
    series = [Series(ep.name, ep.target) for _ in clients]
    cpu_ms = [0.0] * len(clients)
    deadline = time.perf_counter() + max_s
    for i in range(n):
        if time.perf_counter() > deadline:
            break
        for turn in range(len(clients)):
            j = (i + turn) % len(clients)
            cpu_start = cpus[j]()
            series[j].add(*clients[j].post(ep.path, ep.body(i)))
            cpu_ms[j] += (cpus[j]() - cpu_start) * 1000
    for s, total in zip(series, cpu_ms, strict=True):
        s.cpu_ms = total / max(len(s.rtt), 1)
    return series


@dataclass
class SizeReport:
    corpus: CorpusInfo
    series: list[Series]
    memory: dict[str, float]
    cold_query_s: float
    bench_s: float
    disk_mb: dict[str, float]
    load_avg: tuple[float, float]  # 1-minute load average before and after the measurements
    baseline: Path | None = None
    baseline_series: list[Series] | None = None
    baseline_memory: dict[str, float] | None = None
    baseline_cold_query_s: float | None = None


@dataclass
class _Side:
    server: Server
    client: Client
    memory: dict[str, float]
    cold_s: float = 0.0


def run_size(
    corpus: CorpusInfo,
    n_queries: int,
    warmup: int,
    max_s: float,
    log_dir: Path,
    baseline: Path | None = None,
    only: list[str] | None = None,
) -> SizeReport:
    started = time.perf_counter()
    rng = np.random.default_rng(11)
    # the same generator state as in build_corpus gives the same vocabulary and Zipf weights
    vocab = make_vocabulary(np.random.default_rng(corpus.seed + corpus.n_chunks))
    queries = make_queries(rng, vocab, n_queries + warmup)
    images = query_images(rng, 40)
    all_eps = endpoints(queries, images, corpus)
    eps = [ep for ep in all_eps if not only or any(ep.name.startswith(o) for o in only)]
    with ExitStack() as stack:
        sides = []
        # one after the other: a server's first start may write beside the corpus (e.g. int8 model copies)
        for code in [None] + ([baseline] if baseline is not None else []):
            log = log_dir / f"server-{corpus.n_chunks}{'' if code is None else '-baseline'}.log"
            server = stack.enter_context(running_server(corpus.path, log, code))
            warm = Client(server.url, WARM_KEY)
            server.wait_ready(warm.http)
            # load every model's runtime on a tenant with an empty index, so that the next RSS step is the index's
            for ep in all_eps[:7]:
                for i in range(3):
                    warm.post(ep.path, ep.body(20_000 + i))
            sides.append(_Side(server, Client(server.url, KEY), {"models": server.memory()["VmRSS"]}))
        load_before = os.getloadavg()[0]
        for side in sides:
            side.cold_s, _ = side.client.post("/search/text", {"query": "first query loads the index", "top_k": 10})
            side.memory["index loaded"] = side.server.memory()["VmRSS"]
        clients, cpus = [x.client for x in sides], [x.server.cpu_seconds for x in sides]
        per_ep = [measure(clients, ep, n_queries, warmup, max_s, cpus) for ep in eps]
        for side in sides:
            final = side.server.memory()
            side.memory["end"], side.memory["peak"] = final["VmRSS"], final["VmHWM"]
    disk = {
        "mmrag.sqlite": sum(p.stat().st_size for p in corpus.path.glob("mmrag.sqlite*")) / 2**20,
        "index": sum(p.stat().st_size for p in (corpus.path / "index").glob("*")) / 2**20,
    }
    load = (load_before, os.getloadavg()[0])
    report = SizeReport(
        corpus, [x[0] for x in per_ep], sides[0].memory, sides[0].cold_s, time.perf_counter() - started, disk, load
    )
    if baseline is not None:
        report.baseline = baseline
        report.baseline_series = [x[1] for x in per_ep]
        report.baseline_memory = sides[1].memory
        report.baseline_cold_query_s = sides[1].cold_s
    return report


# --------------------------------------------------------------------------------------------------------- report
def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def fmt(x: float | None) -> str:
    return "-" if x is None or np.isnan(x) else f"{x:.1f}"


BREAKDOWN = ("encode", "retrieve", "fuse", "hydrate", "untimed")


def _row(name: str, s: Series) -> str:
    dec, enc = s.timings.get("decode_image"), s.timings.get("encode_image")
    target = ""
    if s.target:
        limit = TARGETS_MS[s.target]
        target = f"<={limit:.0f} {'ok' if pct(s.server, 95) <= limit else 'MISS'}"
    stages = " ".join(f"{k} {pct(s.timings[k], 50):.1f}" for k in BREAKDOWN if k in s.timings)
    return (
        f"{name:30} {len(s.server):>4} {fmt(pct(s.server, 50)):>8} {fmt(pct(s.server, 95)):>8} "
        f"{fmt(pct(s.rtt, 50)):>8} {fmt(pct(s.rtt, 95)):>8} {fmt(pct(dec, 50) if dec else None):>8} "
        f"{fmt(pct(enc, 50) if enc else None):>8} {fmt(s.cpu_ms):>6}  {target:11} {s.empty:>5}  {stages}"
    )


def _memory(c: CorpusInfo, m: dict[str, float], cold_s: float, who: str = "") -> list[str]:
    arrays = (c.n_chunks * c.text_dim + c.n_clip * CLIP_DIM) * 4 / 2**20
    return [
        f"{who}index cold load (first query of the tenant, rtt): {cold_s:.2f} s",
        f"{who}server RSS: {m['models']:.0f} MiB with models warm and an empty index; {m['index loaded']:.0f} MiB "
        f"after loading this corpus's index (+{m['index loaded'] - m['models']:.0f} MiB = the index's share; its "
        f"float32 vectors alone are {arrays:.0f} MiB: {c.n_chunks:,}x{c.text_dim} text + {c.n_clip:,}x{CLIP_DIM} "
        f"clip); {m['end']:.0f} MiB after the runs; peak {m['peak']:.0f} MiB",
    ]


def format_report(rep: SizeReport) -> str:
    c = rep.corpus
    base = rep.baseline_series
    lines = [
        f"== {c.n_chunks:,} chunks: {c.n_documents:,} documents, {c.n_images:,} of them a picture, {c.n_clip:,} CLIP "
        f"vectors ({c.clip_vectors}) (corpus {'reused' if c.reused else 'built'}: {c.path}) ==",
        "times in ms; srv = response search_time minus the query picture's decode_image + encode_image; "
        "rtt = client round trip (everything); img dec/enc = the query picture's decode/encode (p50); "
        "cpu/q = server CPU time per query (all threads, includes the picture); multimodal queries carry text and a "
        "picture",
    ]
    if base is not None:
        lines.append(
            f"each endpoint: this code, then the baseline ({rep.baseline}) on the same queries, taking turns; "
            "new/base = ratio of the srv percentiles"
        )
    lines.append(
        f"{'endpoint':30} {'n':>4} {'srv p50':>8} {'srv p95':>8} {'rtt p50':>8} {'rtt p95':>8} "
        f"{'img dec':>8} {'img enc':>8} {'cpu/q':>6}  {'target p95':11} {'0-hit':>5}  srv p50 by stage"
    )
    for i, s in enumerate(rep.series):
        lines.append(_row(s.name, s))
        if base is not None:
            b = base[i]
            lines.append(_row("  baseline", b))
            ratio = [pct(s.server, q) / pct(b.server, q) if pct(b.server, q) > 0 else float("nan") for q in (50, 95)]
            lines.append(f"{'  new/base':30} {'':>4} {ratio[0]:>8.2f} {ratio[1]:>8.2f}")
    parts = ", ".join(f"{k} {v:.1f} s" for k, v in c.build_parts.items())
    lines += _memory(c, rep.memory, rep.cold_query_s)
    if rep.baseline_memory is not None and rep.baseline_cold_query_s is not None:
        lines += _memory(c, rep.baseline_memory, rep.baseline_cold_query_s, "baseline: ")
    lines += [
        f"build: {c.build_s:.1f} s ({parts})"
        + (" [earlier run]" if c.reused else "")
        + f"; on disk: mmrag.sqlite {rep.disk_mb['mmrag.sqlite']:.0f} MiB, index {rep.disk_mb['index']:.0f} MiB; "
        f"server start + queries {rep.bench_s:.0f} s; 1-min load average {rep.load_avg[0]:.1f} before the "
        f"measurements, {rep.load_avg[1]:.1f} after (the client and server need ~1 of the {os.cpu_count()} CPUs)",
    ]
    return "\n".join(lines)


def header(args: argparse.Namespace) -> str:
    import sqlite3

    return "\n".join(
        [
            f"mmrag search benchmark: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"numpy {np.__version__}, SQLite {sqlite3.sqlite_version}; one client, sequential queries; "
            f"{args.warmup} warm-up queries then up to {args.queries} (at most {args.max_seconds:.0f} s) per endpoint",
            f"models ({os.environ.get('MMRAG_MODEL_DIR', DEFAULT_MODELS)}): "
            + ", ".join(os.environ.get(k, v) for k, v in MODEL_ENV.items()),
            "corpus (synthetic, written through the document store and index ports; nothing embedded, no blobs "
            f"stored): ~{CHUNKS_PER_DOC} chunks per document, every {IMAGE_EVERY}th document a picture (one image "
            "item + one OCR chunk with image_id);",
            f"  chunk text = 60-120 words drawn from a Zipf(s={ZIPF_S}) ranking of {len(STOP_WORDS)} English stop "
            f"words, then {N_PSEUDO} pseudo-words, {len(ENGLISH)} English and {len(CHINESE)} Chinese words "
            f"(shuffled), {TOPIC_SHARE:.0%} of the words from one of {N_TOPICS} topics' {TOPIC_WORDS}-word lists;",
            "  vectors = unit(0.6 doc + 0.8 noise), doc = unit(0.7 topic + 0.7 noise), random Gaussian directions: "
            "text space for chunks, CLIP space for pictures and their OCR chunks"
            + (" and every other chunk;" if args.clip_vectors == "every-chunk" else " (--clip-vectors pictures);"),
            f"  metadata: {len(CATEGORIES)} categories (uniform), 1-3 of {len(TAGS)} tags, dates 2023-2024; "
            "documents 'completed' with their counts",
            "queries: distinct questions of 2-5 real English words (85%) or 2-3 Chinese words (15%) from the "
            "corpus vocabulary, encoded by the real models; query pictures: 40 PNGs of 160-320 x 120-240 px",
        ]
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="chunks per corpus")
    ap.add_argument("--queries", type=int, default=200, help="measured queries per endpoint")
    ap.add_argument("--warmup", type=int, default=10, help="unmeasured queries per endpoint")
    ap.add_argument("--max-seconds", type=float, default=20, help="stop measuring an endpoint after this long")
    ap.add_argument("--data-dir", type=Path, help="keep the corpora here (DIR/chunks-N) and reuse them")
    ap.add_argument(
        "--clip-vectors", choices=CLIP_SHAPES, default="pictures", help="which chunks have a CLIP vector (see above)"
    )
    ap.add_argument("--baseline", type=Path, help="a checkout of other code to compare with, query by query")
    ap.add_argument("--endpoints", nargs="+", help="only the endpoints whose name starts with one of these")
    args = ap.parse_args()
    sys.path.insert(0, str(code_path(ROOT)))  # this checkout's code, here as in the servers
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers too (the finally blocks run)
    if args.baseline is not None and not args.baseline.is_dir():
        ap.error(f"--baseline {args.baseline}: not a folder")
    for k, v in MODEL_ENV.items():
        os.environ.setdefault(k, v)
    os.environ.setdefault("MMRAG_MODEL_DIR", str(DEFAULT_MODELS))
    print(header(args), flush=True)
    tmp = None if args.data_dir else Path(tempfile.mkdtemp(prefix="mmrag-search-bench-"))
    root = args.data_dir or tmp
    assert root is not None
    try:
        for size in args.sizes:
            path = root / (f"chunks-{size}" + ("" if args.clip_vectors == "pictures" else f"-clip-{args.clip_vectors}"))
            print(f"\nbuilding or loading the {size:,}-chunk corpus in {path} ...", flush=True)
            corpus = build_corpus(path, size, log=lambda msg: print(msg, flush=True), clip_vectors=args.clip_vectors)
            report = run_size(
                corpus, args.queries, args.warmup, args.max_seconds, root, baseline=args.baseline, only=args.endpoints
            )
            print(format_report(report), flush=True)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
