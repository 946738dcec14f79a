"""A first run without the models (issue 10): health names the problem and the fix, work that needs a model fails
fast with 503 and that reason, an upload waits for the model and is processed once the model is there."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import KEY_A, MODELS, TEST_MODELS, Api, LiveServer, assert_error, needs_models, settings_for

pytestmark = needs_models

TEXT_MODEL = TEST_MODELS["MMRAG_TEXT_MODEL"]


def link_models(model_dir: Path) -> None:
    """A folder laid out like ../shared/models, made of links to it."""
    for name in TEST_MODELS.values():
        (model_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (model_dir / name).symlink_to(MODELS / name, target_is_directory=True)


def poll(fn, timeout: float = 20.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


def test_missing_model_fails_fast_with_its_fix_and_uploads_wait_for_it(tmp_path):
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    with LiveServer(settings_for(tmp_path / "data", model_dir=model_dir)) as live:
        live.container.runner.model_wait_s = 0.5  # how often a waiting upload looks again (10 s by default)
        api = Api(live.url, KEY_A)

        health = poll(lambda: (h := api.ok(api.get("/health"))).get("problems") and h)
        assert health and health["status"] == "degraded", health
        text_problem = next(p for p in health["problems"] if p.startswith("models.text:"))
        assert TEXT_MODEL in text_problem and str(model_dir) in text_problem
        assert "HF_HUB_OFFLINE" in text_problem and "mmrag models download" in text_problem
        assert health["components"]["models"]["text"]["state"] == "error"
        clip = poll(lambda: [p for p in api.ok(api.get("/health")).get("problems", []) if "models.clip.image:" in p])
        assert clip and TEST_MODELS["MMRAG_IMAGE_MODEL"] in clip[0] and "MMRAG_IMAGE_MODEL" in clip[0]

        for path, body in (
            ("/search/text", {"query": "relief valve"}),
            ("/search/image", {"query_type": "text", "query_text": "relief valve"}),
            ("/qa/ask", {"question": "At what pressure does the relief valve open?"}),
        ):
            started = time.monotonic()
            r = api.post(path, json=body)
            elapsed = time.monotonic() - started
            detail = assert_error(r, 503, "SERVICE_UNAVAILABLE")["error"]["error_detail"]
            assert elapsed < 5, f"{path} took {elapsed:.1f} s"
            assert "MMRAG_MODEL_DIR" in detail and "mmrag models download" in detail, detail
            assert "ValueError" not in detail

        upload = {"document_type": "text", "content": "The relief valve opens at 93 kPa."}
        doc_id = api.ok(api.post("/documents/upload", json=upload))["document_id"]
        waiting = poll(lambda: (d := api.ok(api.get(f"/documents/{doc_id}"))).get("error") and d)
        assert waiting and waiting["status"] == "processing", waiting
        assert waiting["error"].startswith("waiting") and "MMRAG_TEXT_MODEL" in waiting["error"]
        assert "mmrag models download" in waiting["error"] and "processed as soon as" in waiting["error"]

        # waiting is not an interrupted attempt: more rounds than MMRAG_MAX_JOB_ATTEMPTS and it still waits
        runner = live.container.runner
        time.sleep(max(runner.model_wait_s, runner.retry_delay_s) * (runner.max_attempts + 1))
        still = api.ok(api.get(f"/documents/{doc_id}"))
        assert still["status"] == "processing" and still["error"].startswith("waiting"), still

        link_models(model_dir)  # the models arrive while the server runs: no restart
        done = api.wait(doc_id, timeout=120)
        assert done["status"] == "completed" and "error" not in done, done
        hits = api.ok(api.post("/search/text", json={"query": "relief valve pressure"}))
        assert doc_id in {r["document_id"] for r in hits["results"]}
        healthy = poll(lambda: (h := api.ok(api.get("/health")))["status"] == "ok" and h, timeout=60)
        assert healthy and "problems" not in healthy, api.ok(api.get("/health"))


def test_unknown_model_name_is_named_in_health_and_errors(tmp_path):
    typo = "sentence-transformers/all-MiniLM-L6-v3"
    with LiveServer(settings_for(tmp_path / "data", text_model=typo)) as live:
        api = Api(live.url, KEY_A)
        health = poll(lambda: (h := api.ok(api.get("/health"))).get("problems") and h)
        assert health, "no problem reported"
        assert any(typo in p and "MMRAG_TEXT_MODEL" in p and "typo" in p for p in health["problems"]), health
        detail = assert_error(api.post("/search/text", json={"query": "x"}), 503, "SERVICE_UNAVAILABLE")
        assert typo in detail["error"]["error_detail"]
