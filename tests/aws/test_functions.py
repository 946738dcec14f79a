"""The Lambda functions of template.yaml, run as Lambda runs them (handler(event, context)) with the events in events/,
against moto and the stand-ins of mmrag_dev's sandbox (what `make invoke` uses): the fake OpenSearch server on
127.0.0.1 behind the real OpenSearchVectorIndex, a deterministic SageMaker endpoint behind the real SageMakerEmbedder,
moto's Textract. Any socket to anything but 127.0.0.1 fails the test."""

from __future__ import annotations

import base64
import copy
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

pytest.importorskip("moto")
pytest.importorskip("mangum")
pytest.importorskip("aws_lambda_powertools")

from mmrag_dev import seed  # noqa: E402 - after the skips: the sandbox needs the dev and aws extras
from mmrag_dev.events import json_body  # noqa: E402
from mmrag_dev.fakes import SCANNED_TEXT  # noqa: E402
from mmrag_dev.sandbox import Sandbox  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Any]:
    real_connect = socket.socket.connect

    def loopback_only(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] != "127.0.0.1":
            raise AssertionError(f"network access to {address!r}")
        return real_connect(sock, address)

    socket.socket.connect = loopback_only
    try:
        with Sandbox() as sb:
            yield sb
    finally:
        socket.socket.connect = real_connect


@pytest.fixture(scope="module")
def seeded(sandbox) -> dict[str, str]:
    return seed.seed_documents(sandbox)


def event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


def as_tenant(ev: dict[str, Any], key: str, tenant: str) -> dict[str, Any]:
    from mmrag.core.api_keys import hash_api_key

    ev = copy.deepcopy(ev)
    ev["headers"]["Authorization"] = f"Bearer {key}"
    ev["multiValueHeaders"]["Authorization"] = [f"Bearer {key}"]
    key_id = hash_api_key(key)[:16]
    ev["requestContext"]["authorizer"].update({"tenant": tenant, "key_id": key_id, "principalId": key_id})
    return ev


def with_path(ev: dict[str, Any], **params: str) -> dict[str, Any]:
    ev = copy.deepcopy(ev)
    for name, value in params.items():
        ev["path"] = ev["path"].replace(ev["pathParameters"][name], value)
        ev["pathParameters"][name] = value
    ev["requestContext"]["path"] = f"/{ev['requestContext']['stage']}{ev['path']}"
    return ev


def call(sandbox, function: str, ev: dict[str, Any]) -> tuple[int, Any]:
    response = sandbox.invoke(function, ev)
    return response["statusCode"], json_body(response)


def doc_ids(sandbox, tenant: str) -> dict[str, Any]:
    from mmrag.lambda_handlers import runtime

    return {d.document_id: d for d in runtime.container().store.list_documents(tenant, page_size=100)[1]}


# ---------------------------------------------------------------------------------------------------- authorizer
def test_authorizer_allows_a_stored_key_and_denies_others(sandbox):
    from mmrag.adapters.aws.api_routes import usage_key_value
    from mmrag.adapters.aws.dynamo_keys import DynamoKeyStore
    from mmrag.core.api_keys import KeyService, hash_api_key

    store = DynamoKeyStore(sandbox.stack.physical["ApiKeysTable"]["Ref"], client=sandbox.client("dynamodb"))
    raw, record = KeyService(store, {}).create("acme", "test")
    ev = event("authorizer.json")
    ev["headers"]["Authorization"] = f"Bearer {raw}"

    allowed = sandbox.invoke("AuthorizerFunction", ev)
    assert allowed["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    assert allowed["policyDocument"]["Statement"][0]["Resource"].endswith(":abcdef1234/dev/*")
    assert allowed["context"] == {"tenant": "acme", "key_id": hash_api_key(raw)[:16], "endpoint_class": "search"}
    assert allowed["usageIdentifierKey"] == usage_key_value(record.key_hash, "search")

    upload = copy.deepcopy(ev)
    upload.update(resource="/api/v1/documents/upload", path="/api/v1/documents/upload", httpMethod="POST")
    assert sandbox.invoke("AuthorizerFunction", upload)["usageIdentifierKey"] == usage_key_value(
        record.key_hash, "upload"
    )

    for header in ("Bearer not-a-key", "Basic abc", "", f"Bearer {raw}x"):
        bad = copy.deepcopy(ev)
        bad["headers"]["Authorization"] = header
        with pytest.raises(Exception, match="^Unauthorized$"):
            sandbox.invoke("AuthorizerFunction", bad)

    assert store.revoke(record.key_id)
    with pytest.raises(Exception, match="^Unauthorized$"):
        sandbox.invoke("AuthorizerFunction", ev)

    bootstrap = sandbox.invoke("AuthorizerFunction", event("authorizer.json"))  # demo key from MMRAG_API_KEYS
    assert bootstrap["context"]["tenant"] == "tenant-a"

    unknown_route = copy.deepcopy(event("authorizer.json"))
    unknown_route.update(resource="/api/v1/nowhere", httpMethod="GET")
    assert sandbox.invoke("AuthorizerFunction", unknown_route)["policyDocument"]["Statement"][0]["Effect"] == "Deny"


# ---------------------------------------------------------------------------------------------------- API functions
def test_health(sandbox):
    status, body = call(sandbox, "DocumentsFunction", event("health.json"))
    assert status == 200, body
    data = body["data"]
    assert data["status"] == "ok" and data["backend"] == "aws"
    assert {c["status"] for c in data["components"].values()} == {"ok"}
    assert data["components"]["index"]["backend"] == "opensearch"


def test_studio_files_and_me(sandbox):
    """The studio web app is served through the same API (no key; its CSP lets pictures come from S3); GET /me
    names the authorizer's tenant and the answer models."""

    def text_of(response: dict[str, Any]) -> str:
        body = response.get("body") or ""
        return base64.b64decode(body).decode() if response.get("isBase64Encoded") else body

    def header(response: dict[str, Any], name: str) -> str:
        headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
        multi = {k.lower(): v for k, v in (response.get("multiValueHeaders") or {}).items()}
        return headers.get(name) or (multi.get(name) or [""])[0]

    page = sandbox.invoke("DocumentsFunction", event("studio_index.json"))
    assert page["statusCode"] == 200 and '<script type="module" src="studio/js/main.js">' in text_of(page)
    assert header(page, "content-type").startswith("text/html")
    csp = header(page, "content-security-policy")
    assert "script-src 'self'" in csp and "connect-src 'self' https://*.amazonaws.com" in csp
    no_slash = copy.deepcopy(event("studio_index.json"))  # https://<api>/dev: the page's relative paths need /dev/
    no_slash["requestContext"]["path"] = "/dev"
    moved = sandbox.invoke("DocumentsFunction", no_slash)
    assert moved["statusCode"] == 308 and header(moved, "location") == "/dev/"
    script = sandbox.invoke("DocumentsFunction", event("studio_file.json"))
    assert script["statusCode"] == 200 and "signInScreen" in text_of(script)
    missing = copy.deepcopy(event("studio_file.json"))
    missing["pathParameters"] = {"file_path": "../../errors.py"}
    missing["path"] = "/studio/../../errors.py"
    assert sandbox.invoke("DocumentsFunction", missing)["statusCode"] == 404

    status, body = call(sandbox, "QaFunction", event("me.json"))
    assert status == 200, body
    assert body["data"]["tenant"] == event("me.json")["requestContext"]["authorizer"]["tenant"]
    assert "extractive" in [m for p in body["data"]["answer"]["providers"] for m in p["models"]]


def test_upload_then_ingest_then_get_list_and_search(sandbox):
    status, body = call(sandbox, "DocumentsFunction", event("documents_upload.json"))
    assert status == 200, body
    doc_id = body["data"]["document_id"]
    assert body["data"]["status"] == "processing"  # no worker threads on AWS: the ingest queue has the job

    pending = sandbox.queued_event("IngestQueue")
    assert pending is not None and json.loads(pending["Records"][0]["body"])["mmrag_job"]["document_id"] == doc_id
    result = sandbox.invoke("IngestFunction", pending)
    assert result == {"batchItemFailures": []}

    status, body = call(sandbox, "DocumentsFunction", with_path(event("documents_get.json"), document_id=doc_id))
    assert status == 200, body
    assert body["data"]["status"] == "completed" and body["data"]["chunks_count"] >= 1
    assert body["data"]["metadata"]["title"] == "Relief valve manual"

    status, body = call(sandbox, "DocumentsFunction", event("documents_list.json"))
    assert status == 200 and doc_id in [d["document_id"] for d in body["data"]["documents"]]

    status, body = call(sandbox, "SearchFunction", event("search_text.json"))
    assert status == 200, body
    assert doc_id in [r["document_id"] for r in body["data"]["results"]]
    assert "every six months" in json.dumps(body["data"]["results"], ensure_ascii=False)

    # another tenant (another authorizer context) sees nothing of it
    other = as_tenant(event("search_text.json"), "demo-key-tenant-b", "tenant-b")
    status, body = call(sandbox, "SearchFunction", other)
    assert status == 200 and doc_id not in [r["document_id"] for r in body["data"]["results"]]
    other_get = as_tenant(with_path(event("documents_get.json"), document_id=doc_id), "demo-key-tenant-b", "tenant-b")
    assert call(sandbox, "DocumentsFunction", other_get)[0] == 404


def test_the_tenant_comes_only_from_the_authorizer_context(sandbox):
    ev = event("documents_list.json")
    del ev["requestContext"]["authorizer"]  # a valid key in the header is not enough behind the authorizer
    status, body = call(sandbox, "DocumentsFunction", ev)
    assert status == 401 and body["error"]["error_code"] == "UNAUTHORIZED"


def test_images_and_metadata_and_delete(sandbox, seeded):
    image_id = seeded[seed.PLACEHOLDER_IMG]
    response = sandbox.invoke("DocumentsFunction", with_path(event("images_get.json"), image_id=image_id))
    assert response["statusCode"] == 200 and response["isBase64Encoded"] is True
    assert base64.b64decode(response["body"]).startswith(b"\x89PNG")
    thumb = sandbox.invoke("DocumentsFunction", with_path(event("images_thumbnail.json"), image_id=image_id))
    assert thumb["statusCode"] == 200

    doc_id = seeded["image_document"]
    status, body = call(sandbox, "DocumentsFunction", with_path(event("documents_metadata.json"), document_id=doc_id))
    assert status == 200 and body["data"]["updated_fields"] == ["tags", "title"]
    status, body = call(sandbox, "DocumentsFunction", with_path(event("documents_get.json"), document_id=doc_id))
    image = body["data"]["images"][0]
    assert image["url"].startswith(f"https://{sandbox.bucket()}.s3.amazonaws.com/t/")
    assert "X-Amz-Signature=" in image["url"] and "X-Amz-Expires=3600" in image["url"]
    fetched = requests.get(image["url"], timeout=10)  # moto's S3 answers the presigned GET; no Authorization header
    assert fetched.status_code == 200 and fetched.content == base64.b64decode(response["body"])
    assert fetched.headers["content-type"] == "image/png"
    assert requests.get(image["thumbnail_url"], timeout=10).content == base64.b64decode(thumb["body"])
    other_get = as_tenant(with_path(event("documents_get.json"), document_id=doc_id), "demo-key-tenant-b", "tenant-b")
    assert call(sandbox, "DocumentsFunction", other_get)[0] == 404  # tenant B is handed no URL of A's picture

    status, body = call(sandbox, "DocumentsFunction", with_path(event("documents_delete.json"), document_id=doc_id))
    assert status == 200 and body["data"]["document_id"] == doc_id
    assert call(sandbox, "DocumentsFunction", with_path(event("documents_get.json"), document_id=doc_id))[0] == 404


def test_search_routes_answer(sandbox, seeded):
    for name in ("search_image.json", "search_multimodal.json"):
        status, body = call(sandbox, "SearchFunction", event(name))
        assert status == 200, (name, body)
    text = json.dumps(event("search_similar.json"))
    similar = json.loads(text.replace(seed.PLACEHOLDER_DOC, seeded[seed.PLACEHOLDER_DOC]))
    status, body = call(sandbox, "SearchFunction", similar)
    assert status == 200, body


def test_qa_chat_and_sessions(sandbox, seeded):
    status, body = call(sandbox, "QaFunction", event("qa_ask.json"))
    assert status == 200 and "93 kPa" in body["data"]["answer"], body
    status, body = call(sandbox, "QaFunction", event("qa_chat.json"))
    assert status == 200 and body["data"]["session_saved"] is True
    status, body = call(sandbox, "SessionsFunction", event("sessions_get.json"))
    assert status == 200 and body["data"]["message_count"] >= 2
    assert call(sandbox, "SessionsFunction", event("sessions_delete.json"))[0] == 200
    assert call(sandbox, "SessionsFunction", event("sessions_get.json"))[0] == 404


def test_session_list_is_the_tenants_own(sandbox, seeded):
    other_chat = json.loads(event("qa_chat.json")["body"])
    for session_id in ("aws-list-1", "aws-list-2"):
        assert sandbox.api("qa_chat.json", body={**other_chat, "session_id": session_id})["status"] == 200
    status, body = call(sandbox, "SessionsFunction", event("sessions_list.json"))
    assert status == 200, body
    listed = [s["session_id"] for s in body["data"]["sessions"]]
    assert listed[:2] == ["aws-list-2", "aws-list-1"] and body["data"]["total"] == len(listed)
    first = body["data"]["sessions"][0]
    assert first["message_count"] == 2 and first["title"] == other_chat["question"]
    other = as_tenant(event("sessions_list.json"), "demo-key-tenant-b", "tenant-b")
    status, body = call(sandbox, "SessionsFunction", other)
    assert status == 200 and not {s["session_id"] for s in body["data"]["sessions"]} & set(listed)


def test_reprocess_queues_the_document_again(sandbox, seeded):
    doc_id = seeded[seed.PLACEHOLDER_DOC]
    before = sandbox.api("documents_get.json", document_id=doc_id)["json"]["data"]
    assert before["status"] == "completed"
    ev = with_path(event("documents_reprocess.json"), document_id=doc_id)
    status, body = call(sandbox, "DocumentsFunction", ev)
    assert status == 200 and body["data"]["status"] == "processing", body
    assert call(sandbox, "DocumentsFunction", ev)[0] == 409  # still processing
    other = as_tenant(ev, "demo-key-tenant-b", "tenant-b")
    assert call(sandbox, "DocumentsFunction", other)[0] == 404

    pending = sandbox.queued_event("IngestQueue")
    assert pending is not None and json.loads(pending["Records"][0]["body"])["mmrag_job"]["document_id"] == doc_id
    assert sandbox.invoke("IngestFunction", pending) == {"batchItemFailures": []}
    after = sandbox.api("documents_get.json", document_id=doc_id)["json"]["data"]
    assert after["status"] == "completed" and after["processing"]["options"]["chunk_size"] == 120
    assert not {c["chunk_id"] for c in before["chunks"]} & {c["chunk_id"] for c in after["chunks"]}


def test_the_same_upload_twice_is_one_document(sandbox, seeded):
    status, body = call(sandbox, "DocumentsFunction", event("documents_upload.json"))
    assert status == 200 and body["data"]["deduplicated"] is True
    assert body["data"]["document_id"] == seeded[seed.PLACEHOLDER_DOC]


def test_ask_stream_sends_server_sent_events(sandbox, seeded):
    response = sandbox.invoke("AskStreamFunction", event("qa_ask_stream.json"))
    assert response["statusCode"] == 200
    assert response["headers"]["content-type"].startswith("text/event-stream")
    lines = [line for line in response["body"].splitlines() if line.startswith("data: ")]
    types = [json.loads(line[len("data: ") :])["type"] for line in lines]
    assert types[0] == "retrieval_start" and types[-1] == "complete" and "content_chunk" in types


def test_chat_stream_sends_server_sent_events_and_saves_the_turn(sandbox, seeded):
    ev = event("qa_chat_stream.json")
    session_id = json.loads(ev["body"])["session_id"]
    response = sandbox.invoke("AskStreamFunction", ev)
    assert response["statusCode"] == 200
    assert response["headers"]["content-type"].startswith("text/event-stream")
    lines = [line for line in response["body"].splitlines() if line.startswith("data: ")]
    events = [json.loads(line[len("data: ") :]) for line in lines]
    types = [e["type"] for e in events]
    assert types[0] == "retrieval_start" and types[-1] == "complete" and "content_chunk" in types, types
    done = events[-1]["data"]
    assert done["session_id"] == session_id and done["session_saved"] is True and "[1]" in done["answer"]
    get = with_path(event("sessions_get.json"), session_id=session_id)
    status, body = call(sandbox, "SessionsFunction", get)
    assert status == 200 and [m["content"] for m in body["data"]["messages"]][-1] == done["answer"]
    delete = with_path(event("sessions_delete.json"), session_id=session_id)
    assert call(sandbox, "SessionsFunction", delete)[0] == 200


def test_upload_url_is_presigned_for_the_callers_incoming_folder(sandbox):
    status, body = call(sandbox, "DocumentsFunction", event("documents_upload_url.json"))
    assert status == 200, body
    data = body["data"]
    assert data["method"] == "PUT" and data["key"].startswith("incoming/tenant-a/upl_")
    assert data["key"].endswith("/scanned-manual.pdf")
    signed = data["upload_url"].split("X-Amz-SignedHeaders=")[1].split("&")[0]
    assert "content-length" in signed and "x-amz-meta-mmrag" in signed  # size and attributes are enforced
    assert data["headers"]["Content-Length"] == "7340032"

    too_big = event("documents_upload_url.json")
    body_json = json.loads(too_big["body"])
    body_json["size"] = 51 * 1024 * 1024
    too_big["body"] = json.dumps(body_json)
    status, body = call(sandbox, "DocumentsFunction", too_big)
    assert status == 413 and body["error"]["error_code"] == "FILE_TOO_LARGE"


# ---------------------------------------------------------------------------------------------------- ingestion
def test_s3_event_reports_only_the_bad_object_and_is_idempotent(sandbox):
    ev = seed.ensure_objects(sandbox, event("s3_via_sqs.json"))
    bad_id = ev["Records"][1]["messageId"]
    before = doc_ids(sandbox, "tenant-a")
    result = sandbox.invoke(sandbox.ingest_function(), ev)
    assert result == {"batchItemFailures": [{"itemIdentifier": bad_id}]}

    after = doc_ids(sandbox, "tenant-a")
    new = [d for i, d in after.items() if i not in before]
    assert len(new) == 1
    doc = new[0]
    assert doc.metadata["source"].endswith("/incoming/tenant-a/valve-manual.txt")
    assert doc.metadata["title"] == "valve-manual.txt"
    assert doc.status == "completed" and doc.chunks_count >= 1

    again = sandbox.invoke(sandbox.ingest_function(), ev)  # SQS delivers the batch again
    assert again == {"batchItemFailures": [{"itemIdentifier": bad_id}]}
    assert len(doc_ids(sandbox, "tenant-a")) == len(after)  # the same object never makes a second document


def test_scanned_pdf_goes_through_textract_and_its_completion(sandbox):
    ev = seed.seed_for(sandbox, event("textract_complete.json"))  # drops a scanned PDF; ingest starts Textract
    waiting = [d for d in doc_ids(sandbox, "tenant-a").values() if d.stages.get("ocr", {}).get("status") == "waiting"]
    assert len(waiting) == 1 and waiting[0].status == "processing"

    assert sandbox.invoke("TextractCompleteFunction", ev) == {"batchItemFailures": []}
    from mmrag.lambda_handlers import runtime

    c = runtime.container()
    doc = c.store.get_document("tenant-a", waiting[0].document_id)
    assert doc.status == "completed", doc.error
    chunks = c.store.get_chunks("tenant-a", doc.document_id)
    assert any(ch.source == "ocr" and SCANNED_TEXT[1] in ch.content for ch in chunks)
    assert not c.blobs.list_keys("textract-jobs")

    # the whole path: the dropped file is now searchable through the search function and answerable through qa
    search = event("search_text.json")
    search["body"] = json.dumps({"query": "water level gauge", "top_k": 5})
    status, body = call(sandbox, "SearchFunction", search)
    assert status == 200, body
    assert doc.document_id in [r["document_id"] for r in body["data"]["results"]]
    ask = event("qa_ask.json")
    ask["body"] = json.dumps({"question": "How often must the water level gauge be checked?",
                              "filters": {"document_ids": [doc.document_id]}})
    status, body = call(sandbox, "QaFunction", ask)
    assert status == 200, body
    assert "every morning" in body["data"]["answer"] and body["data"]["sources"][0]["document_id"] == doc.document_id


# ---------------------------------------------------------------------------------------------------- key admin
def test_keys_admin_registers_one_usage_key_per_class_and_revokes_them(sandbox):
    from mmrag.adapters.aws.api_routes import ENDPOINT_CLASSES, usage_key_value
    from mmrag.adapters.aws.dynamo_keys import DynamoKeyStore
    from mmrag.cli import aws_keys as keys_admin
    from mmrag.core.api_keys import hash_api_key

    apigw = sandbox.client("apigateway")
    plans = {cls: apigw.create_usage_plan(name=f"plan-{cls}")["id"] for cls in ENDPOINT_CLASSES}
    table = sandbox.stack.physical["ApiKeysTable"]["Ref"]
    stack = keys_admin.Stack("mmrag-local", table, plans)
    store = DynamoKeyStore(table, client=sandbox.client("dynamodb"))

    raw = keys_admin.create(stack, store, apigw, "tenant-c", "label", raw="chosen-key-for-tenant-c")
    assert raw == "chosen-key-for-tenant-c"
    record = store.find_by_hash(hash_api_key(raw))
    assert record is not None and record.tenant == "tenant-c"
    for cls, plan in plans.items():
        (key,) = apigw.get_usage_plan_keys(usagePlanId=plan)["items"]
        assert key["value"] == usage_key_value(record.key_hash, cls)

    assert keys_admin.revoke(stack, store, apigw, record.key_id)
    assert store.find_by_hash(record.key_hash).revoked
    keys = apigw.get_api_keys(nameQuery=f"mmrag-local-{record.key_id}-", includeValues=False)["items"]
    assert len(keys) == len(ENDPOINT_CLASSES) and not any(k["enabled"] for k in keys)
