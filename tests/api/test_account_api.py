"""GET /api/v1/me over real HTTP: the key's tenant and the answer models the server offers (the studio's header
and model picker); no key or a wrong key is 401."""

from __future__ import annotations

from tests.conftest import assert_error


def test_me_names_the_tenant_and_the_answer_models(api, api_b):
    me = api.ok(api.get("/me"))
    assert me["tenant"] == "tenant-a" and len(me["key_id"]) == 16
    providers = me["answer"]["providers"]
    assert providers[-1] == {"provider": "extractive", "models": ["extractive"], "vision_models": []}
    assert me["answer"]["default_model"] in [m for p in providers for m in p["models"]]
    assert api_b.ok(api_b.get("/me"))["tenant"] == "tenant-b"


def test_me_needs_a_valid_key(anon, server):
    assert_error(anon.get("/me"), 401, "UNAUTHORIZED")
    anon.key = "not-a-key"
    try:
        assert_error(anon.get("/me"), 401, "UNAUTHORIZED")
    finally:
        anon.key = None
