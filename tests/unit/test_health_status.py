"""/health's overall status: `starting` while the models load at start-up, `ok` once ready, `degraded` with problems
(readiness checks and benchmarks wait for `ok`)."""

from __future__ import annotations

import json

from mmrag.api.routes.health import health


class Components:
    backend = "local"

    def __init__(self, models: dict):
        self.models = models

    def health(self) -> dict:
        return {"store": {"status": "ok"}, "models": self.models}


def status(models: dict) -> str:
    answer = health(c=Components(models))
    return (json.loads(answer.body) if hasattr(answer, "body") else answer)["data"]["status"]


def test_starting_while_models_load_then_ok():
    assert status({"status": "loading", "warming_up": True}) == "starting"
    assert status({"status": "ok", "warming_up": False}) == "ok"
    assert status({"status": "loading", "warming_up": False}) == "ok"  # loaded on first use (no warm-up): ready
    assert status({"status": "error", "warming_up": True, "error": "model x is not available"}) == "degraded"
