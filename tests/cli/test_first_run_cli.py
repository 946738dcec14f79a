"""The command line on a first run (issue 10): which data dir it uses, models download, doctor, ingest's exit status,
serve's banner and make serve's HOST/PORT. Every command runs as a real process; nothing leaves loopback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.cli.fake_hub import FakeHub, repos_for
from tests.conftest import MODELS, ROOT, TEST_MODELS, Api, free_port, needs_models
from tests.samples import text_pdf, text_png

pytestmark = needs_models


def mmrag(*args: str, cwd: Path, timeout: float = 300, **env_extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MMRAG_", "HF_"))}
    env.update(TEST_MODELS, MMRAG_MODEL_DIR=str(MODELS), HF_HUB_OFFLINE="1")
    env.update(env_extra)
    env = {k: v for k, v in env.items() if v != ""}  # "" unsets
    return subprocess.run(
        [sys.executable, "-m", "mmrag.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def link_models(model_dir: Path) -> None:
    for name in TEST_MODELS.values():
        (model_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (model_dir / name).symlink_to(MODELS / name, target_is_directory=True)


# ---------------------------------------------------------------- data dir


def test_read_only_commands_refuse_a_missing_data_dir_and_create_none(tmp_path):
    for args in (("keys", "list"), ("keys", "revoke", "key_123")):
        r = mmrag(*args, cwd=tmp_path)
        assert r.returncode == 2, r.stderr
        assert f"no data dir at {tmp_path / '.mmrag'}" in r.stderr and "--data-dir" in r.stderr
        assert "MMRAG_DATA_DIR" in r.stderr
    r = mmrag("keys", "list", cwd=tmp_path, MMRAG_DATA_DIR=str(tmp_path / "elsewhere"))
    assert r.returncode == 2 and "(MMRAG_DATA_DIR)" in r.stderr
    assert not (tmp_path / ".mmrag").exists() and not (tmp_path / "elsewhere").exists()


def test_commands_use_the_nearest_data_dir_above_and_say_which(tmp_path):
    created = mmrag("keys", "create", "--tenant", "acme", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    assert f"data dir {tmp_path / '.mmrag'}" in created.stderr and "creating it" in created.stderr
    deeper = tmp_path / "projects" / "notes"
    deeper.mkdir(parents=True)
    listed = mmrag("keys", "list", cwd=deeper)
    assert listed.returncode == 0, listed.stderr
    assert "acme" in listed.stdout and "active" in listed.stdout
    assert f"data dir {tmp_path / '.mmrag'} (found in a parent folder)" in listed.stderr
    assert not (deeper / ".mmrag").exists()
    explicit = mmrag("keys", "list", cwd=deeper, MMRAG_DATA_DIR=str(tmp_path / ".mmrag"))
    assert explicit.returncode == 0 and "acme" in explicit.stdout and "(MMRAG_DATA_DIR)" in explicit.stderr


# ---------------------------------------------------------------- ingest


def test_ingest_exits_0_after_a_successful_run_every_time(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.txt").write_text("Alpha note about compressors and their relief valves.")
    (folder / "b.pdf").write_bytes(text_pdf([["Beta manual page about gearboxes."]]))
    (folder / "c.png").write_bytes(text_png(["OIL PRESSURE LOW"]))  # CLIP and OCR run too (ONNX threads at exit)
    for run in range(5):
        r = mmrag("ingest", str(folder), "--tenant", "acme", "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
        assert r.returncode == 0, f"run {run}: exit {r.returncode}\n{r.stderr[-2000:]}"
        assert "ingested 3 of 3 files" in r.stdout


def test_ingest_without_its_model_stops_at_once_with_the_fix(tmp_path):
    (tmp_path / "a.txt").write_text("Alpha note.")
    empty = tmp_path / "no-models"
    empty.mkdir()
    r = mmrag("ingest", str(tmp_path / "a.txt"), "--data-dir", str(tmp_path / "data"), cwd=tmp_path,
              MMRAG_MODEL_DIR=str(empty))  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert TEST_MODELS["MMRAG_TEXT_MODEL"] in r.stderr and "MMRAG_MODEL_DIR" in r.stderr
    assert "mmrag models download" in r.stderr and "Traceback" not in r.stderr


# ---------------------------------------------------------------- models download


def test_models_download_offline_says_why_and_leaves_nothing(tmp_path):
    target = tmp_path / "models"
    closed = f"http://127.0.0.1:{free_port()}"  # a hub that cannot be reached, on loopback
    started = time.monotonic()
    r = mmrag("models", "download", "--dir", str(target), cwd=tmp_path, HF_HUB_OFFLINE="", HF_ENDPOINT=closed)
    assert r.returncode == 1, r.stdout + r.stderr
    assert time.monotonic() - started < 60
    assert f"the model hub {closed} cannot be reached" in r.stderr and "HTTPS_PROXY" in r.stderr
    assert r.stderr.count("FAILED") == 4
    assert not [p for p in target.rglob("*") if p.is_file()]

    off = mmrag("models", "download", "--dir", str(target), cwd=tmp_path)
    assert off.returncode == 1 and "downloads are off (HF_HUB_OFFLINE)" in off.stderr

    nowhere = mmrag("models", "download", cwd=tmp_path, MMRAG_MODEL_DIR="")
    assert nowhere.returncode == 2 and "--dir DIR" in nowhere.stderr


def test_models_download_accepts_a_folder_laid_out_like_shared_models(tmp_path):
    target = tmp_path / "models"
    link_models(target)
    r = mmrag("models", "download", "--dir", str(target), cwd=tmp_path, MMRAG_MODEL_DIR="")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("already in") == 4 and f"MMRAG_MODEL_DIR={target}" in r.stdout


def test_models_download_fetches_every_model_into_the_offline_layout(tmp_path):
    hub = FakeHub(repos_for(MODELS, list(TEST_MODELS.values())))
    target = tmp_path / "models"
    try:
        r = mmrag("models", "download", "--dir", str(target), cwd=tmp_path, HF_HUB_OFFLINE="", HF_ENDPOINT=hub.url)
    finally:
        hub.close()
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("downloaded into") == 4 and f"MMRAG_MODEL_DIR={target}" in r.stdout
    for name in TEST_MODELS.values():
        model_file = "onnx/model.onnx" if name.startswith("Xenova/") else "model.onnx"
        for rel in (model_file, "tokenizer.json", "config.json"):
            copy, original = target / name / rel, MODELS / name / rel
            assert copy.is_file() and not copy.is_symlink() and copy.read_bytes() == original.read_bytes(), copy
    assert not (target / ".download-cache").exists()
    # and the folder is what an offline run needs: doctor loads every model from it, with no hub at all
    usable = mmrag("doctor", cwd=tmp_path, MMRAG_MODEL_DIR=str(target), MMRAG_API_KEYS="k=default")
    assert usable.returncode == 0, usable.stdout + usable.stderr
    assert usable.stdout.count(f"loads from MMRAG_MODEL_DIR ({target}") == 4


# ---------------------------------------------------------------- doctor


def test_doctor_exit_status_says_whether_the_setup_is_usable(tmp_path):
    no_keys = mmrag("doctor", cwd=tmp_path, MMRAG_API_KEYS="")
    assert no_keys.returncode == 1, no_keys.stdout + no_keys.stderr
    fails = [line for line in no_keys.stdout.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 1 and "API keys" in fails[0] and "mmrag keys create" in no_keys.stdout
    for name in TEST_MODELS.values():
        assert re.search(rf"ok .*{re.escape(name)}.*loads from MMRAG_MODEL_DIR", no_keys.stdout), no_keys.stdout
    assert "ok    OCR" in no_keys.stdout and "extractive" in no_keys.stdout
    assert not (tmp_path / ".mmrag").exists(), "doctor only looks"

    usable = mmrag("doctor", cwd=tmp_path, MMRAG_API_KEYS="k=default")
    assert usable.returncode == 0, usable.stdout + usable.stderr
    assert "mmrag is usable" in usable.stdout

    empty = tmp_path / "no-models"
    empty.mkdir()
    missing = mmrag("doctor", cwd=tmp_path, MMRAG_API_KEYS="k=default", MMRAG_MODEL_DIR=str(empty))
    assert missing.returncode == 1
    assert missing.stdout.count("FAIL") == 3 and "fix: run `mmrag models download --dir DIR`" in missing.stdout
    assert "warn" in missing.stdout  # the reranker: only `rerank: true` degrades without it


# ---------------------------------------------------------------- serve


def test_serve_banner_tells_the_real_address_data_dir_and_model_origin(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMRAG_")}
    env.update(TEST_MODELS, MMRAG_MODEL_DIR=str(MODELS), HF_HUB_OFFLINE="1", MMRAG_API_KEYS="k=default")
    proc = subprocess.Popen(  # port 0: the system picks one, and only the banner can tell which
        [sys.executable, "-m", "mmrag.cli", "serve", "--port", "0", "--data-dir", str(tmp_path / "d")],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        banner = "".join(proc.stderr.readline() for _ in range(8))
        found = re.search(r" on (http://127\.0\.0\.1:(\d+)) ", banner)
        assert found and found.group(2) != "0", banner
        url = found.group(1)
        assert f"data dir: {tmp_path / 'd'}" in banner, banner
        assert f"from MMRAG_MODEL_DIR ({MODELS / TEST_MODELS['MMRAG_TEXT_MODEL']})" in banner, banner
        http = requests.Session()
        http.trust_env = False
        deadline = time.monotonic() + 60
        while True:
            try:
                assert http.get(url + "/api/v1/health", timeout=2).status_code == 200
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "server did not answer"
                time.sleep(0.2)
        # a second server on the same port says so at once, before touching any data dir
        taken = mmrag("serve", "--port", found.group(2), "--data-dir", str(tmp_path / "other"), cwd=tmp_path)
        assert taken.returncode == 1 and f"cannot listen on 127.0.0.1:{found.group(2)}" in taken.stderr
        assert "--port" in taken.stderr and not (tmp_path / "other").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve_while_a_model_downloads_answers_at_once_and_uploads_wait(tmp_path):
    hub = FakeHub(repos_for(MODELS, list(TEST_MODELS.values())), hold=True)  # file bodies held back
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MMRAG_", "HF_"))}
    env.update(TEST_MODELS, MMRAG_API_KEYS="k=default", HF_ENDPOINT=hub.url, HF_HUB_DOWNLOAD_TIMEOUT="60")
    cmd = [sys.executable, "-m", "mmrag.cli", "serve", "--port", str(port), "--data-dir", str(tmp_path / "d")]
    with open(tmp_path / "serve.log", "w") as log:  # the server keeps its own copy of the handle
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    api = Api(f"http://127.0.0.1:{port}", "k")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = api.ok(api.get("/health"))
                if health["components"]["models"]["text"]["state"] == "downloading":
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(0.1)
        started = time.monotonic()
        r = api.post("/search/text", json={"query": "relief valve"})
        assert time.monotonic() - started < 5
        assert r.status_code == 503 and "being downloaded" in r.json()["error"]["error_detail"], r.text
        upload = {"document_type": "text", "content": "The relief valve opens at 93 kPa."}
        doc_id = api.ok(api.post("/documents/upload", json=upload))["document_id"]
        deadline = time.monotonic() + 20
        while "being downloaded" not in (doc := api.ok(api.get(f"/documents/{doc_id}"))).get("error", ""):
            assert time.monotonic() < deadline, doc
            time.sleep(0.1)
        assert doc["status"] == "processing" and doc["error"].startswith("waiting")

        hub.release()
        done = api.wait(doc_id, timeout=120)
        assert done["status"] == "completed" and "error" not in done, done
        hits = api.ok(api.post("/search/text", json={"query": "relief valve pressure"}))
        assert doc_id in {h["document_id"] for h in hits["results"]}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        hub.close()


def test_make_serve_passes_host_and_port():
    r = subprocess.run(
        ["make", "-n", "serve", "PORT=9123", "HOST=0.0.0.0"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert "mmrag serve --host 0.0.0.0 --port 9123" in r.stdout
    plain = subprocess.run(
        ["make", "-n", "serve"], cwd=ROOT, capture_output=True, text=True, timeout=60, env={**os.environ, "HOST": "box"}
    )
    assert "--host" not in plain.stdout.splitlines()[-1]  # an exported HOST (a shell's machine name) is not taken
