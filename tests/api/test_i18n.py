"""Response messages in the client's language (Accept-Language): the contract's Chinese by default, English on request,
for success and error messages alike, over HTTP."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from mmrag.api import messages
from tests.conftest import assert_error, needs_models

ROUTES = Path(__file__).resolve().parents[2] / "shared" / "mmrag" / "api" / "routes"
CJK = re.compile(r"[\u3400-\u9fff\uff00-\uffef]")


@pytest.mark.parametrize(
    ("header", "language"),
    [
        (None, "zh"),
        ("", "zh"),
        ("en", "en"),
        ("en-US,en;q=0.9", "en"),
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        ("fr-FR, en;q=0.5", "en"),
        ("en;q=0.3, zh-Hant;q=0.8", "zh"),
        ("en;q=0.8, zh;q=0.8", "en"),  # equal weights: the client's first
        ("de, fr", "zh"),  # nothing we speak: the default
        ("en;q=0", "zh"),  # q=0 means "not this one"
        ("*", "zh"),
        ("en;q=abc", "zh"),
        ("x" * 5000 + ",en", "zh"),  # only the header's first 1000 characters are read
    ],
)
def test_negotiation(header, language):
    assert messages.negotiate(header) == language


def _route_messages() -> set[str]:
    """Every Chinese string literal of the route modules: the messages they pass to ok()."""
    found = set()
    for path in ROUTES.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and CJK.search(node.value):
                found.add(node.value)
    return found


def test_every_success_message_of_a_route_has_an_english_translation():
    found = _route_messages()
    assert "文档上传成功" in found  # the scan sees the routes
    messages.set_language("en")
    try:
        untranslated = {m for m in found if CJK.search(messages.success_message(m))}
    finally:
        messages.set_language(messages.DEFAULT_LANGUAGE)
    assert not untranslated, f"add to mmrag.api.messages.SUCCESS_EN: {untranslated}"


def test_every_error_code_has_both_languages():
    from mmrag.api.envelope import STATUS_CODES

    for code in set(STATUS_CODES.values()):
        assert set(messages.ERRORS[code]) == set(messages.LANGUAGES), code


@needs_models
def test_success_messages_follow_accept_language(api):
    default = api.get("/documents")
    assert api.ok(default) is not None and default.json()["message"] == "查询成功"
    assert default.headers["Content-Language"] == "zh" and "Accept-Language" in default.headers["Vary"]
    english = api.get("/documents", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert english.json()["message"] == "Query succeeded" and english.headers["Content-Language"] == "en"
    chinese = api.get("/documents", headers={"Accept-Language": "zh-CN"})
    assert chinese.json()["message"] == "查询成功"
    health = api.get("/health", headers={"Accept-Language": "en"})
    assert health.json()["message"] and not CJK.search(health.json()["message"])  # healthy, degraded or starting


@needs_models
def test_error_messages_follow_accept_language(api, anon):
    missing = "/documents/doc_00000000000000ff"
    zh = assert_error(api.get(missing), 404, "NOT_FOUND")
    en = assert_error(api.get(missing, headers={"Accept-Language": "en"}), 404, "NOT_FOUND")
    assert zh["message"] == "资源不存在" and en["message"] == "Not found"
    assert zh["error"]["error_detail"] == en["error"]["error_detail"]  # the specifics stay as they are
    assert (
        assert_error(anon.get("/documents", headers={"Accept-Language": "en"}), 401, "UNAUTHORIZED")["message"]
        == "Unauthorized"
    )
    bad = api.post("/search/text", json={"query": ""}, headers={"Accept-Language": "en;q=0.9"})
    assert assert_error(bad, 400, "INVALID_PARAMETER")["message"] == "Invalid parameter"
    assert assert_error(api.post("/search/text", json={"query": ""}), 400, "INVALID_PARAMETER")["message"] == "参数错误"


@needs_models
def test_the_language_of_one_request_does_not_leak_into_the_next(api):
    assert api.get("/documents", headers={"Accept-Language": "en"}).json()["message"] == "Query succeeded"
    assert api.get("/documents").json()["message"] == "查询成功"
