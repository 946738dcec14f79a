"""template.yaml, read as data: cfn-lint is clean; every function's code resolves; the API routes of the template, of
the app and of mmrag.adapters.aws.api_routes are one set; IAM has no wildcard actions on data; the data stores are
encrypted,
backed up and private; the tables are the ones mmrag.adapters.aws.tables describes; rate limits map the contract's.
Nothing here talks to AWS."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("yaml", reason="reading template.yaml needs PyYAML (dev extra)")
pytest.importorskip("aws_lambda_powertools", reason="the Lambda glue needs the aws extra")

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
DOC_PATHS = {"/docs", "/openapi.json", "/redoc", "/docs/oauth2-redirect"}
ML_STACK = ("onnxruntime", "fastembed", "cv2", "rapidocr_onnxruntime")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    from mmrag_dev.template import load_template

    return load_template(TEMPLATE)


@pytest.fixture(scope="module")
def resources(template) -> dict[str, dict[str, Any]]:
    return template["Resources"]


def of_type(resources: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in resources.items() if r["Type"] == kind}


def functions(resources) -> dict[str, dict[str, Any]]:
    return of_type(resources, "AWS::Serverless::Function")


# ---------------------------------------------------------------------------------------------------- lint
def test_cfn_lint_is_clean():
    api = pytest.importorskip("cfnlint.api")
    matches = api.lint_file(TEMPLATE)
    assert not matches, "\n".join(str(m) for m in matches)


# ---------------------------------------------------------------------------------------------------- code
def _import_file(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_function_handler_resolves_to_a_callable(resources):
    seen = set()
    for name, fn in functions(resources).items():
        props = fn["Properties"]
        if props.get("PackageType") == "Image":
            assert props["ImageUri"] == {"Ref": "RapidOcrImageUri"}, name
            dockerfile = ROOT / "functions" / "ingest_image" / "Dockerfile"
            assert dockerfile.is_file(), name
            module_name, attr = props["ImageConfig"]["Command"][0].rsplit(".", 1)
            assert f"functions/{module_name}.py" in dockerfile.read_text(), f"{name}: the image must copy the handler"
            path = ROOT / "functions" / f"{module_name}.py"
        elif props["Handler"] == "run.sh":
            script = ROOT / props["CodeUri"] / "run.sh"
            assert script.is_file() and os.access(script, os.X_OK), f"{name}: run.sh must be executable"
            target = re.search(r"uvicorn\s+([\w.]+):(\w+)", script.read_text())
            assert target, "run.sh must start uvicorn on an ASGI app"
            module = __import__(target.group(1), fromlist=[target.group(2)])
            assert callable(getattr(module, target.group(2)))
            env = props["Environment"]["Variables"]
            assert env["AWS_LWA_INVOKE_MODE"] == "response_stream"
            assert env["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
            seen.add(name)
            continue
        else:
            module_name, attr = props["Handler"].rsplit(".", 1)
            path = ROOT / props["CodeUri"] / f"{module_name}.py"
        assert path.is_file(), f"{name}: {path} is missing"
        handler = getattr(_import_file(path, f"fn_{name}"), attr)
        assert callable(handler), name
        seen.add(name)
    assert seen == set(functions(resources))


def test_layers_build_with_sam(resources):
    """Which layers each function gets and what they hold: tests/aws/test_build.py."""
    layers = of_type(resources, "AWS::Serverless::LayerVersion")
    content = {k: ROOT / r["Properties"]["ContentUri"] for k, r in layers.items()}
    assert (content["MmragCodeLayer"] / "mmrag" / "__init__.py").is_file()
    for name, layer in layers.items():
        assert (content[name] / "Makefile").is_file() and layer["Metadata"]["BuildMethod"] == "makefile", name
    for name, fn in functions(resources).items():
        if fn["Properties"].get("PackageType") != "Image":
            assert fn["Properties"]["Runtime"] == "python3.13", name
            deps, code = fn["Properties"]["Layers"][:2]
            assert deps["Ref"] in layers and deps["Ref"] != "MmragCodeLayer", name
            assert code == {"Ref": "MmragCodeLayer"}, name


# ---------------------------------------------------------------------------------------------------- routes
def template_routes(resources) -> dict[tuple[str, str], tuple[str, dict[str, Any]]]:
    out = {}
    for name, fn in functions(resources).items():
        for event in fn["Properties"].get("Events", {}).values():
            if event["Type"] == "Api":
                p = event["Properties"]
                assert p["RestApiId"] == {"Ref": "MmragApi"}
                key = (p["Method"].upper(), p["Path"])
                assert key not in out, f"{key} is mapped twice"
                out[key] = (name, p)
    return out


def app_routes() -> dict[tuple[str, str], Any]:
    from mmrag.lambda_handlers.api import fastapi_app, iter_routes

    app = fastapi_app(object())  # routes do not touch the container until a request comes
    out = {}
    for route in iter_routes(app.routes):
        if route.path in DOC_PATHS:
            continue
        path = re.sub(r"\{(\w+):path\}", r"{\1+}", route.path)  # FastAPI's {x:path} is API Gateway's {x+}
        for method in route.methods - {"HEAD", "OPTIONS"}:
            out[(method, path)] = route
    return out


# the studio web app's static files: served on both platforms, not part of the API's schema, no key
STUDIO_ROUTES = {("GET", "/"), ("GET", "/studio/{file_path+}")}


def test_template_routes_are_the_apps_routes(resources):
    from mmrag.adapters.aws.api_routes import ROUTES

    in_template = template_routes(resources)
    in_app = app_routes()
    assert set(in_template) == set(in_app)
    from mmrag.lambda_handlers.api import fastapi_app

    schema = fastapi_app(object()).openapi()["paths"]
    assert {(m.upper(), p) for p, ops in schema.items() for m in ops} == set(in_app) - STUDIO_ROUTES
    assert {(r.method, r.path) for r in ROUTES} == set(in_app)
    for r in ROUTES:
        assert in_template[(r.method, r.path)][0] == r.function, r


def test_route_classes_match_the_apps_rate_limit_dependencies():
    from mmrag.adapters.aws.api_routes import ROUTES
    from mmrag.api import deps

    callers = {
        deps.upload_caller: "upload",
        deps.query_caller: "query",
        deps.search_caller: "search",
        deps.qa_caller: "qa",
        deps.full_image_caller: "query",  # the key's class; a signed URL (no key) never reaches API Gateway
        deps.thumbnail_caller: "query",
    }
    in_app = app_routes()
    for r in ROUTES:
        route = in_app[(r.method, r.path)]
        found = {callers[d.call] for d in route.dependant.dependencies if d.call in callers}
        assert found == ({r.endpoint_class} if r.endpoint_class else set()), r


def test_auth_and_streaming_configuration(resources):
    api = resources["MmragApi"]["Properties"]
    assert api["ApiKeySourceType"] == "AUTHORIZER"
    assert api["TracingEnabled"] is True
    auth = api["Auth"]
    assert auth["ApiKeyRequired"] is True
    authorizer = auth["Authorizers"][auth["DefaultAuthorizer"]]
    assert authorizer["FunctionPayloadType"] == "REQUEST"
    assert authorizer["FunctionArn"] == {"Fn::GetAtt": ["AuthorizerFunction", "Arn"]}
    identity = authorizer["Identity"]
    assert identity["Headers"] == ["Authorization"]
    assert set(identity["Context"]) == {"resourcePath", "httpMethod"}  # cache per key and route (its class)
    assert "ReauthorizeEvery" in identity
    routes = template_routes(resources)
    for open_route in {("GET", "/api/v1/health")} | STUDIO_ROUTES:
        assert routes[open_route][1]["Auth"] == {"Authorizer": "NONE", "ApiKeyRequired": False}, open_route
    for key, (_, props) in routes.items():
        if key != ("GET", "/api/v1/health") and key not in STUDIO_ROUTES:
            assert "Auth" not in props, f"{key} must use the default authorizer and API key"
    stream = routes[("POST", "/api/v1/qa/ask-stream")]
    assert stream[0] == "AskStreamFunction" and stream[1]["ResponseTransferMode"] == "RESPONSE_STREAM"
    for fn in ("DocumentsFunction", "SearchFunction", "QaFunction", "SessionsFunction", "AskStreamFunction"):
        assert resources[fn]["Properties"]["Environment"]["Variables"]["MMRAG_TRUST_AUTHORIZER"] == "true"
    for fn in ("AuthorizerFunction", "IngestFunction", "TextractCompleteFunction"):
        assert "MMRAG_TRUST_AUTHORIZER" not in resources[fn]["Properties"]["Environment"]["Variables"]


def test_usage_plans_map_the_contract_limits(template, resources):
    from mmrag.settings import DEFAULT_RATE_LIMITS

    plans = of_type(resources, "AWS::ApiGateway::UsagePlan")
    assert len(plans) == len(DEFAULT_RATE_LIMITS)
    for cls, per_hour in DEFAULT_RATE_LIMITS.items():
        plan = plans[f"UsagePlan{cls.capitalize()}"]["Properties"]
        assert plan["ApiStages"] == [{"ApiId": {"Ref": "MmragApi"}, "Stage": {"Ref": "MmragApi.Stage"}}]
        param = f"RateLimits{cls.capitalize()}"
        assert plan["Quota"]["Period"] == "DAY"
        assert plan["Quota"]["Limit"] == {"Fn::Select": [2, {"Ref": param}]}
        rate, burst, per_day = (float(x) for x in template["Parameters"][param]["Default"].split(","))
        assert abs(rate * 3600 - per_hour) <= 0.01 * per_hour  # steady rate: N per hour
        assert burst == per_hour / 10  # so at most 1.1 N in any hour
        assert per_day == 24 * per_hour


def test_every_route_has_an_event_file():
    from mmrag.adapters.aws.api_routes import ROUTES

    for r in ROUTES:
        event = json.loads((ROOT / "events" / r.event).read_text(encoding="utf-8"))
        assert (event["httpMethod"], event["resource"]) == (r.method, r.path), r.event
        assert event["requestContext"]["resourcePath"] == r.path
        if r.endpoint_class:
            assert event["headers"]["Authorization"].startswith("Bearer ")
            assert event["requestContext"]["authorizer"]["tenant"]
        if event["body"] is not None:
            json.loads(event["body"])
    for name in ("authorizer.json", "s3_via_sqs.json", "textract_complete.json"):
        assert json.loads((ROOT / "events" / name).read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------------- IAM
DATA_SERVICES = ("s3", "dynamodb", "sqs", "sns", "es", "aoss", "sagemaker", "secretsmanager", "bedrock", "kms")
NO_RESOURCE_LEVEL = ("textract:", "xray:", "bedrock:Rerank")  # actions that only take Resource "*"


def _statements(value: Any) -> list[dict[str, Any]]:
    """Every statement in a policy document, both branches of Fn::If included."""
    out = []
    if isinstance(value, list):
        for item in value:
            out += _statements(item)
    elif isinstance(value, dict):
        if "Fn::If" in value:
            for branch in value["Fn::If"][1:]:
                out += _statements(branch)
        elif "Effect" in value:
            out.append(value)
        elif "Statement" in value:
            out += _statements(value["Statement"])
    return out


def all_statements(resources) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, res in resources.items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::Serverless::Function":
            for policy in props.get("Policies", []):
                found += [(name, s) for s in _statements(policy)]
        elif res["Type"] == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                found += [(name, s) for s in _statements(policy["PolicyDocument"])]
        elif "PolicyDocument" in props:
            found += [(name, s) for s in _statements(props["PolicyDocument"])]
        elif "AccessPolicies" in props:
            found += [(name, s) for s in _statements(props["AccessPolicies"])]
    return found


def test_no_wildcard_actions_on_data(resources):
    statements = all_statements(resources)
    assert len(statements) > 20
    for owner, s in statements:
        if s["Effect"] != "Allow":
            continue
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        for action in actions:
            assert action != "*", owner
            service, _, verb = action.partition(":")
            assert verb != "*", f"{owner}: {action}"
            assert not (service in DATA_SERVICES and verb.endswith("*") and verb != "ESHttp*"), f"{owner}: {action}"
        if s.get("Resource") == "*":
            assert all(a.startswith(NO_RESOURCE_LEVEL) for a in actions), f"{owner}: {actions} on every resource"


def test_functions_only_get_what_they_use(resources):
    def actions(fn: str) -> set[str]:
        out = set()
        for owner, s in all_statements(resources):
            if owner == fn:
                out |= set(s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
        return out

    assert actions("AuthorizerFunction") == {"dynamodb:GetItem"}
    # s3:GetObject only to presign the pictures' GET URLs in results (a presigned URL acts with its signer's rights)
    assert {a for a in actions("SearchFunction") if a.split(":")[0] in ("s3", "sqs", "textract")} == {"s3:GetObject"}
    assert {a for a in actions("SearchFunction") if a.startswith("bedrock:")} == RERANK_ACTIONS
    assert not any(a.startswith(("bedrock:", "secretsmanager:", "textract:")) for a in actions("DocumentsFunction"))
    assert "secretsmanager:GetSecretValue" in actions("QaFunction")
    assert "textract:StartDocumentTextDetection" in actions("IngestFunction")
    assert "iam:PassRole" in actions("IngestFunction")


RERANK_ACTIONS = {"bedrock:Rerank", "bedrock:InvokeModel"}  # the Rerank API needs both (Bedrock user guide)
RERANKING_FUNCTIONS = ("SearchFunction", "QaFunction", "AskStreamFunction")


def test_rerank_permissions_name_exactly_the_served_bedrock_models(template, resources):
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    models = env["MMRAG_BEDROCK_RERANK_MODELS"].split(",")
    assert models == ["amazon.rerank-v1:0", "cohere.rerank-v3-5:0"]
    assert env["MMRAG_RERANK_MODEL"] == {"Ref": "RerankModel"}
    assert env["MMRAG_BEDROCK_RERANK_REGION"] == {"Ref": "RerankRegion"}
    region = {"Fn::If": ["HasRerankRegion", {"Ref": "RerankRegion"}, {"Ref": "AWS::Region"}]}
    for fn in RERANKING_FUNCTIONS:
        statements = {s.get("Sid"): s for owner, s in all_statements(resources) if owner == fn}
        assert statements["Rerank"]["Action"] == ["bedrock:Rerank"] and statements["Rerank"]["Resource"] == "*", fn
        invoke = statements["RerankModels"]
        assert invoke["Action"] == ["bedrock:InvokeModel"], fn
        assert invoke["Resource"] == [
            {"Fn::Sub": [f"arn:${{AWS::Partition}}:bedrock:${{Region}}::foundation-model/{m}", {"Region": region}]}
            for m in models
        ], fn
    for fn in set(functions(resources)) - set(RERANKING_FUNCTIONS):
        statements = [s for owner, s in all_statements(resources) if owner == fn]
        assert not any("bedrock:Rerank" in s["Action"] or s.get("Sid") == "RerankModels" for s in statements), fn


def test_rerank_parameters_name_served_models(template):
    from mmrag.settings import Settings

    params = template["Parameters"]
    served = set(Settings.model_fields["bedrock_rerank_models"].default.split(","))
    served.add(Settings.model_fields["sagemaker_rerank_model"].default)
    rerank_model = params["RerankModel"]
    assert rerank_model["Default"] == "amazon.rerank-v1:0" and set(rerank_model["AllowedValues"]) == served
    region = params["RerankRegion"]
    assert region["Default"] == ""  # the stack's region
    pattern = re.compile(region["AllowedPattern"])
    for good in ("", "us-west-2", "eu-central-1", "ap-northeast-1", "ca-central-1", "us-gov-west-1"):
        assert pattern.fullmatch(good), good
    for bad in ("us-west", "US-WEST-2", "arn:aws:bedrock", "us-west-2 "):
        assert not pattern.fullmatch(bad), bad


# ---------------------------------------------------------------------------------------------------- storage
def test_tables_match_the_adapters_designs(resources):
    from mmrag.adapters.aws.tables import SPECS

    logical = {
        "documents": "DocumentsTable",
        "jobs": "JobsTable",
        "sessions": "SessionsTable",
        "api_keys": "ApiKeysTable",
    }
    for role, spec in SPECS.items():
        props = resources[logical[role]]["Properties"]
        expected = spec.create_args("x")
        assert props["KeySchema"] == expected["KeySchema"], role
        assert sorted(props["AttributeDefinitions"], key=str) == sorted(expected["AttributeDefinitions"], key=str)
        got_gsis = {g["IndexName"]: g for g in props.get("GlobalSecondaryIndexes", [])}
        want_gsis = {g["IndexName"]: g for g in expected.get("GlobalSecondaryIndexes", [])}
        assert got_gsis == want_gsis, role
        if spec.ttl_attribute:
            assert props["TimeToLiveSpecification"] == {"AttributeName": spec.ttl_attribute, "Enabled": True}
    idem = resources["IdempotencyTable"]["Properties"]
    assert idem["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert idem["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}


def test_tables_have_pitr_and_encryption(resources):
    tables = of_type(resources, "AWS::DynamoDB::Table")
    assert len(tables) == 5
    for name, table in tables.items():
        props = table["Properties"]
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}, name
        assert props["SSESpecification"]["SSEEnabled"] is True, name
        assert props["BillingMode"] == "PAY_PER_REQUEST", name


def test_bucket_is_private_encrypted_and_notifies_the_ingest_queue(resources):
    bucket = resources["DocumentsBucket"]["Properties"]
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    rule = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert rule["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"  # versionId keys the ingest idempotency
    (notification,) = bucket["NotificationConfiguration"]["QueueConfigurations"]
    assert notification["Queue"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    assert notification["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "incoming/"}]
    policy = resources["DocumentsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert any(s["Effect"] == "Deny" and s["Condition"]["Bool"]["aws:SecureTransport"] == "false" for s in policy)


def test_queues_have_dead_letter_queues_with_alarms(resources):
    queues = of_type(resources, "AWS::SQS::Queue")
    alarms = of_type(resources, "AWS::CloudWatch::Alarm")
    alarmed = {a["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0] for a in alarms.values()}
    for name, q in queues.items():
        assert q["Properties"]["SqsManagedSseEnabled"] is True, name
        redrive = q["Properties"].get("RedrivePolicy")
        if redrive:
            dlq = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
            assert dlq in alarmed, f"{name}'s dead-letter queue {dlq} has no alarm"
    sqs_events = [
        e["Properties"]
        for f in functions(resources).values()
        for e in f["Properties"].get("Events", {}).values()
        if e["Type"] == "SQS"
    ]
    assert sqs_events and all(e["FunctionResponseTypes"] == ["ReportBatchItemFailures"] for e in sqs_events)


def test_globals_trace_and_configure_powertools(template):
    g = template["Globals"]["Function"]
    assert g["Tracing"] == "Active"
    env = g["Environment"]["Variables"]
    assert env["MMRAG_BACKEND"] == "aws" and env["POWERTOOLS_METRICS_NAMESPACE"]
    for fn in functions(template["Resources"]).values():
        assert fn["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"].startswith("mmrag-")


def test_api_entry_points_import_without_the_local_ml_stack():
    """The modules behind the API functions' first request (handler, app, AWS container) pull in no local ML."""
    import subprocess

    code = (
        "import sys; sys.path.insert(0, 'functions'); import api_handler, authorizer_handler; "
        "import mmrag.api.app, mmrag.composition.aws, mmrag.lambda_handlers.stream_app; "
        f"bad = [m for m in {ML_STACK!r} if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
