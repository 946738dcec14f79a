#!/usr/bin/env python3
"""Run a function of template.yaml with an event file against moto: the Docker-free stand-in for `sam local invoke`.

    python scripts/invoke.py SearchFunction events/search_text.json
    python scripts/invoke.py DocumentsFunction events/documents_get.json --seed      # with a document to find
    python scripts/invoke.py IngestFunction events/s3_via_sqs.json
    python scripts/invoke.py DocumentsFunction events/documents_upload.json --drain  # and run the queued ingestion
    make invoke FN=SearchFunction EVENT=events/search_text.json

What it does, all in this process and on 127.0.0.1 only:
- reads template.yaml (Handler, CodeUri, the function's and Globals' Environment, parameter defaults, conditions);
- starts moto (mock_aws) with dummy credentials and creates what the template declares: the bucket, the DynamoDB
  tables (from the template's own key schemas, GSIs and TTLs), the SQS queues, the SNS topics and their SQS
  subscriptions; `Ref`/`GetAtt`/`Sub`/`If` in the environment resolve to those;
- stands in for what moto lacks: OpenSearch is the fake server of tests/aws/opensearch_fake.py (a real HTTP server
  on 127.0.0.1 that the real OpenSearchVectorIndex talks to; the embedded index if that file is missing), and the
  SageMaker endpoint is a deterministic encoder behind the real SageMakerEmbedder, answering its JSON contract from
  inside boto3 (no network). Textract is moto's (canned text). Answers come from the extractive answerer (there is
  no Bedrock in moto);
- imports the handler from CodeUri (Handler `run.sh` - the Lambda Web Adapter function - runs the same ASGI app
  through Mangum, buffered), calls it with the event and a Lambda context, and prints the response.

Options: --seed first creates what the event names (a text document and a picture for doc_/img_ placeholders, a chat
session, a Textract job for the completion event) and puts the ids in the event; objects named by S3 events are
created when missing. --drain afterwards runs the ingest and Textract queues' messages through their functions.
--param Key=Value overrides a template parameter. --verbose keeps Powertools' logs and metrics.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import hashlib
import importlib.util
import io
import json
import os
import re
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
EVENTS = ROOT / "events"
STACK = "mmrag-local"
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
DEMO_KEYS = {"demo-key-tenant-a": "tenant-a", "demo-key-tenant-b": "tenant-b"}
PLACEHOLDER_DOC = "doc_0123456789abcdef"
PLACEHOLDER_IMG = "img_0123456789abcdef"
SCANNED_TEXT = ["Boiler manual - scanned copy", "Check the water level gauge every morning."]


# ---------------------------------------------------------------------------------------------------- template
class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form intrinsics, as their long forms ({"Ref": ...}, {"Fn::Sub": ...})."""


def _intrinsic(tag: str, name: str) -> None:
    def construct(loader: CfnLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if name == "Fn::GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    CfnLoader.add_constructor(tag, construct)


for _tag in (
    "Base64",
    "Cidr",
    "FindInMap",
    "GetAtt",
    "GetAZs",
    "ImportValue",
    "Join",
    "Select",
    "Split",
    "Sub",
    "Transform",
    "And",
    "Equals",
    "If",
    "Not",
    "Or",
):
    _intrinsic(f"!{_tag}", f"Fn::{_tag}")
_intrinsic("!Ref", "Ref")
_intrinsic("!Condition", "Condition")


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=CfnLoader)  # noqa: S506 - our own loader, SafeLoader-based


@dataclass
class FunctionSpec:
    name: str
    properties: dict[str, Any]
    handler: str  # module.function, or run.sh
    code_dir: Path
    environment: dict[str, str] = field(default_factory=dict)


class Stack:
    """The template with parameter values, conditions evaluated and resources' stand-in physical ids."""

    def __init__(self, template: dict[str, Any], overrides: dict[str, str] | None = None):
        self.template = template
        self.resources: dict[str, dict[str, Any]] = template.get("Resources", {})
        self.params: dict[str, Any] = {}
        for name, spec in template.get("Parameters", {}).items():
            value = (overrides or {}).get(name, spec.get("Default", ""))
            if spec.get("Type") == "CommaDelimitedList" and isinstance(value, str):
                value = value.split(",")
            self.params[name] = value
        self.physical: dict[str, dict[str, str]] = {}  # logical id -> {"Ref": ..., "Arn": ..., ...}

    # conditions and intrinsics
    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template.get("Conditions", {})[name]))

    def active(self, logical_id: str) -> bool:
        cond = self.resources[logical_id].get("Condition")
        return cond is None or self.condition(cond)

    def pseudo(self, name: str) -> Any:
        return {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::StackName": STACK,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
        }[name]

    def ref(self, name: str) -> Any:
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.params:
            return self.params[name]
        if name in self.physical:
            return self.physical[name]["Ref"]
        return f"{STACK}-{name}"  # a resource this stand-in does not create (a function, an API ...)

    def getatt(self, logical_id: str, attribute: str) -> Any:
        known = self.physical.get(logical_id, {})
        if attribute in known:
            return known[attribute]
        if attribute == "Arn":
            return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{STACK}-{logical_id}"
        return f"{STACK}-{logical_id}-{attribute}"

    def resolve(self, value: Any) -> Any:  # noqa: PLR0911, PLR0912 - one branch per intrinsic
        if isinstance(value, list):
            return [v for v in (self.resolve(x) for x in value) if v is not None]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {k: self.resolve(v) for k, v in value.items()}
        ((key, arg),) = value.items()
        if key == "Ref":
            return self.ref(arg)
        if key == "Fn::GetAtt":
            logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            return self.getatt(logical, attribute)
        if key == "Fn::Sub":
            if isinstance(arg, str):
                text, extra = arg, {}
            else:
                text, extra = arg[0], {k: self.resolve(v) for k, v in arg[1].items()}

            def sub(m: re.Match[str]) -> str:
                expr = m.group(1)
                if expr in extra:
                    return str(extra[expr])
                if "." in expr and not expr.startswith("AWS::"):
                    return str(self.getatt(*expr.split(".", 1)))
                return str(self.ref(expr))

            return re.sub(r"\$\{([^}!]+)\}", sub, text)
        if key == "Fn::If":
            cond, yes, no = arg
            return self.resolve(yes if self.condition(cond) else no)
        if key == "Fn::Equals":
            a, b = (self.resolve(x) for x in arg)
            return str(a) == str(b)
        if key == "Fn::Not":
            return not self.resolve(arg[0])
        if key == "Fn::And":
            return all(self.resolve(x) for x in arg)
        if key == "Fn::Or":
            return any(self.resolve(x) for x in arg)
        if key == "Condition":
            return self.condition(arg)
        if key == "Fn::Select":
            index, items = arg
            return self.resolve(items)[int(self.resolve(index))]
        if key == "Fn::Join":
            sep, items = arg
            return sep.join(str(x) for x in self.resolve(items))
        return {k: self.resolve(v) for k, v in value.items()}

    # functions
    def functions(self) -> dict[str, dict[str, Any]]:
        return {k: r for k, r in self.resources.items() if r.get("Type") == "AWS::Serverless::Function"}

    def function(self, name: str) -> FunctionSpec:
        functions = self.functions()
        if name not in functions:
            raise SystemExit(f"no function {name!r} in template.yaml; there are: {', '.join(sorted(functions))}")
        props = functions[name].get("Properties", {})
        if props.get("PackageType") == "Image":
            # the image copies functions/*.py into the task root (functions/ingest_image/Dockerfile)
            handler, code_dir = props["ImageConfig"]["Command"][0], ROOT / "functions"
        else:
            handler, code_dir = props["Handler"], ROOT / props["CodeUri"]
        env: dict[str, str] = {}
        globals_env = self.template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
        for source in (globals_env, props.get("Environment", {}).get("Variables", {})):
            for key, raw in source.items():
                value = self.resolve(raw)
                if value is not None:
                    env[key] = str(value)
        return FunctionSpec(name, props, handler, code_dir, env)


# ---------------------------------------------------------------------------------------------------- stand-ins
def _hash_vector(text: str, dim: int, salt: str) -> list[float]:
    """A deterministic bag-of-words vector: texts sharing words point the same way."""
    from mmrag.text.analyzer import tokens

    vec = [0.0] * dim
    words = tokens(text) or [text.strip().lower() or "empty"]
    for word in words:
        h = hashlib.sha256(f"{salt}:{word}".encode()).digest()
        vec[int.from_bytes(h[:4], "little") % dim] += 1.0 if h[4] % 2 else -1.0
        vec[int.from_bytes(h[5:9], "little") % dim] += 0.5
    return vec


def _image_vector(b64: str, dim: int) -> list[float]:
    import numpy as np
    from PIL import Image

    img = Image.open(io.BytesIO(base64.b64decode(b64))).convert("L").resize((8, 8))
    pixels = np.asarray(img, dtype=np.float32).reshape(-1) / 255.0 - 0.5
    matrix = np.random.default_rng(7).standard_normal((dim, pixels.size)).astype(np.float32)
    return (matrix @ pixels + 0.01).tolist()


class StandInEncoders:
    """The SageMaker endpoint's JSON contract (infra/sagemaker), answered by deterministic encoders."""

    def __init__(self, text_dim: int = 384, clip_dim: int = 512):
        self.text_dim, self.clip_dim = text_dim, clip_dim
        self.calls: list[str] = []

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        task, inputs = request["task"], request["inputs"]
        self.calls.append(task)
        if task in ("embed_text", "embed_query"):
            return {
                "vectors": [_hash_vector(t, self.text_dim, "text") for t in inputs],
                "dim": self.text_dim,
                "model": "stand-in/text",
            }
        if task == "embed_clip_text":
            return {
                "vectors": [_hash_vector(t, self.clip_dim, "clip") for t in inputs],
                "dim": self.clip_dim,
                "model": "stand-in/clip",
            }
        if task == "embed_image":
            return {
                "vectors": [_image_vector(b, self.clip_dim) for b in inputs],
                "dim": self.clip_dim,
                "model": "stand-in/clip",
            }
        if task == "rerank":
            from mmrag.text.analyzer import tokens

            q = set(tokens(request.get("query", "")))
            return {"scores": [float(len(q & set(tokens(d)))) - 1.0 for d in inputs], "model": "stand-in/rerank"}
        raise ValueError(f"unknown task {task!r}")

    def client(self) -> Any:
        """A sagemaker-runtime client whose InvokeEndpoint is answered here, before any request is sent."""
        import boto3
        from botocore.awsrequest import AWSResponse
        from botocore.response import StreamingBody

        client = boto3.client("sagemaker-runtime", region_name=REGION)

        def invoke(params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
            body = params["body"]
            answer = json.dumps(self.answer(json.loads(body))).encode()
            http = AWSResponse("https://runtime.sagemaker.stand-in/invocations", 200, {}, None)
            parsed = {
                "Body": StreamingBody(io.BytesIO(answer), len(answer)),
                "ContentType": "application/json",
                "ResponseMetadata": {"HTTPStatusCode": 200, "HTTPHeaders": {}},
            }
            return http, parsed

        client.meta.events.register("before-call.sagemaker-runtime.InvokeEndpoint", invoke)
        return client


def _load_opensearch_fake() -> Any | None:
    path = ROOT / "tests" / "aws" / "opensearch_fake.py"
    if not path.exists():
        return None
    name = "opensearch_fake"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class LambdaContext:
    def __init__(self, function_name: str, timeout_s: int = 900, memory_mb: int = 1024):
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "stand-in"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


# ---------------------------------------------------------------------------------------------------- the sandbox
def _sample_bytes(key: str) -> bytes:
    """Content for an object an S3 event names, by its extension."""
    from PIL import Image, ImageDraw

    ext = key.rsplit(".", 1)[-1].lower()
    if ext in ("txt", "md"):
        return (
            "The relief valve opens at 93 kPa. It must be inspected every six months.\n安全阀每六个月检查一次。\n"
        ).encode()
    if ext in ("png", "jpg", "jpeg", "pdf"):
        img = Image.new("RGB", (400, 300) if ext != "pdf" else (850, 1100), "white")
        draw = ImageDraw.Draw(img)
        for i, line in enumerate(SCANNED_TEXT):
            draw.text((40, 60 + 40 * i), line, fill="black")
        buf = io.BytesIO()
        img.save(buf, {"png": "PNG", "pdf": "PDF"}.get(ext, "JPEG"))
        return buf.getvalue()
    return b"\x7fELF\x02\x01\x01" + bytes(4089)  # an executable: not a document


def _textract_lines() -> list[dict[str, Any]]:
    return [
        {
            "BlockType": "LINE",
            "Id": f"line-{i}",
            "Text": text,
            "Page": 1,
            "Confidence": 99.0,
            "Geometry": {"BoundingBox": {"Left": 0.05, "Top": 0.05 + 0.05 * i, "Width": 0.8, "Height": 0.04}},
        }
        for i, text in enumerate(SCANNED_TEXT)
    ]


class Sandbox:
    """moto + stand-ins + the template's resources; `invoke(function, event)` runs a handler."""

    def __init__(self, param_overrides: dict[str, str] | None = None, verbose: bool = False):
        self.stack = Stack(load_template(), param_overrides)
        self.verbose = verbose
        self.encoders = StandInEncoders()
        self._exit = contextlib.ExitStack()
        self.clients: dict[str, Any] = {}
        self.index: Any = None
        self.opensearch_server: Any = None

    # lifecycle
    def __enter__(self) -> Sandbox:
        base_env = {
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        self._exit.enter_context(_environ(base_env, drop=("AWS_PROFILE", "AWS_ENDPOINT_URL")))
        from moto import mock_aws
        from moto.textract.models import TextractBackend

        self._exit.enter_context(mock_aws())
        blocks = TextractBackend.BLOCKS
        TextractBackend.BLOCKS = _textract_lines()
        self._exit.callback(setattr, TextractBackend, "BLOCKS", blocks)
        self._create_resources()
        self._start_index()
        from mmrag.aws import runtime

        self._exit.callback(runtime.configure, None)
        return self

    def __exit__(self, *exc: object) -> None:
        self._exit.close()

    def client(self, service: str) -> Any:
        if service not in self.clients:
            import boto3

            self.clients[service] = boto3.client(service, region_name=REGION)
        return self.clients[service]

    def _create_resources(self) -> None:
        st = self.stack
        for logical, res in st.resources.items():
            if not st.active(logical):
                continue
            kind, props = res["Type"], res.get("Properties", {})
            if kind == "AWS::S3::Bucket":
                name = st.resolve(props.get("BucketName")) or f"{STACK}-{logical}".lower()
                self.client("s3").create_bucket(Bucket=name)
                if props.get("VersioningConfiguration", {}).get("Status") == "Enabled":
                    self.client("s3").put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
                st.physical[logical] = {"Ref": name, "Arn": f"arn:aws:s3:::{name}"}
            elif kind == "AWS::DynamoDB::Table":
                name = f"{STACK}-{logical}"
                args = {k: st.resolve(props[k]) for k in ("KeySchema", "AttributeDefinitions") if k in props}
                if props.get("GlobalSecondaryIndexes"):
                    args["GlobalSecondaryIndexes"] = st.resolve(props["GlobalSecondaryIndexes"])
                ddb = self.client("dynamodb")
                desc = ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", **args)["TableDescription"]
                ttl = props.get("TimeToLiveSpecification")
                if ttl:
                    ddb.update_time_to_live(
                        TableName=name,
                        TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
                    )
                st.physical[logical] = {"Ref": name, "Arn": desc["TableArn"]}
            elif kind == "AWS::SQS::Queue":
                name = f"{STACK}-{logical}"
                url = self.client("sqs").create_queue(QueueName=name)["QueueUrl"]
                arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
                st.physical[logical] = {"Ref": url, "Arn": arn, "QueueName": name, "QueueUrl": url}
            elif kind == "AWS::SNS::Topic":
                name = st.resolve(props.get("TopicName")) or f"{STACK}-{logical}"
                arn = self.client("sns").create_topic(Name=name)["TopicArn"]
                st.physical[logical] = {"Ref": arn, "TopicArn": arn, "TopicName": name}
            elif kind == "AWS::IAM::Role":
                arn = f"arn:aws:iam::{ACCOUNT}:role/{STACK}-{logical}"
                st.physical[logical] = {"Ref": f"{STACK}-{logical}", "Arn": arn}
            elif kind == "AWS::OpenSearchService::Domain":
                endpoint = f"search-{STACK}.{REGION}.es.amazonaws.com"  # replaced by the stand-in index
                st.physical[logical] = {"Ref": STACK, "DomainEndpoint": endpoint, "Arn": f"arn:aws:es:::{STACK}"}
        for logical, res in st.resources.items():  # subscriptions need their topic and queue first
            if res["Type"] == "AWS::SNS::Subscription" and st.active(logical):
                props = st.resolve(res["Properties"])
                if props.get("Protocol") == "sqs":
                    self.client("sns").subscribe(TopicArn=props["TopicArn"], Protocol="sqs", Endpoint=props["Endpoint"])

    def _start_index(self) -> None:
        fake = _load_opensearch_fake()
        if fake is not None:
            from mmrag.adapters.aws.opensearch_client import make_local_client
            from mmrag.adapters.aws.opensearch_index import OpenSearchVectorIndex

            self.opensearch_server = fake.FakeOpenSearch().start()
            self._exit.callback(self.opensearch_server.stop)
            index_name = str(self.stack.params.get("OpenSearchIndex") or "mmrag-items")
            self.index = OpenSearchVectorIndex(
                make_local_client(self.opensearch_server.url), index_name, analyzer="standard"
            )
            self.index.ensure_index()
        else:
            from mmrag.adapters.local.vector_index import EmbeddedVectorIndex

            tmp = self._exit.enter_context(tempfile.TemporaryDirectory(prefix="mmrag-invoke-"))
            self.index = EmbeddedVectorIndex(Path(tmp) / "index")

    # running functions
    def function_env(self, spec: FunctionSpec) -> dict[str, str]:
        env = dict(spec.environment)
        env.update(
            {
                "AWS_LAMBDA_FUNCTION_NAME": f"{STACK}-{spec.name}",
                "MMRAG_ANSWER_PROVIDER": "extractive",  # no Bedrock in moto
                "MMRAG_ANSWER_MODEL": "extractive",
                "MMRAG_API_KEYS": ",".join(f"{k}={t}" for k, t in DEMO_KEYS.items()),
                "POWERTOOLS_TRACE_DISABLED": "true",
            }
        )
        if not self.verbose:
            env.update({"POWERTOOLS_LOG_LEVEL": "ERROR", "POWERTOOLS_METRICS_DISABLED": "true"})
        return env

    def container_factory(self) -> Callable[[], Any]:
        def build() -> Any:
            from mmrag.adapters.aws.container import AwsContainer
            from mmrag.settings import Settings

            return AwsContainer(Settings(), index=self.index, clients={"sagemaker-runtime": self.encoders.client()})

        return build

    def handler(self, spec: FunctionSpec) -> Callable[[dict[str, Any], Any], Any]:
        if spec.handler == "run.sh":  # the Lambda Web Adapter function: the same ASGI app, through Mangum
            from mangum import Mangum

            from mmrag.aws.stream_app import LazyApp

            return Mangum(LazyApp(), lifespan="off")
        module_name, _, attr = spec.handler.rpartition(".")
        path = spec.code_dir / f"{module_name.replace('.', '/')}.py"
        if not path.exists():
            raise SystemExit(f"{spec.name}: Handler {spec.handler} not found at {path}")
        mod_spec = importlib.util.spec_from_file_location(f"mmrag_fn_{module_name}", path)
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
        return getattr(module, attr)

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        spec = self.stack.function(function)
        from mmrag.aws import authorizer, runtime

        context = LambdaContext(spec.name, int(spec.properties.get("Timeout", 29)))
        with _environ(self.function_env(spec)), contextlib.ExitStack() as quiet:
            if not self.verbose:  # Powertools prints its metrics (EMF) to stdout, and warns when there are none
                quiet.enter_context(contextlib.redirect_stdout(io.StringIO()))
                quiet.enter_context(warnings.catch_warnings())
                warnings.simplefilter("ignore")
            runtime.configure(self.container_factory())
            authorizer.set_key_store(None)
            return self.handler(spec)(copy.deepcopy(event), context)

    # state
    def bucket(self) -> str:
        return next(p["Ref"] for k, p in self.stack.physical.items() if p.get("Arn", "").startswith("arn:aws:s3"))

    def queue_url(self, logical: str) -> str:
        return self.stack.physical[logical]["QueueUrl"]

    def ensure_objects(self, event: dict[str, Any]) -> dict[str, Any]:
        """Create the objects an S3-via-SQS event names (when missing) and put their real versions in the event."""
        event = copy.deepcopy(event)
        s3 = self.client("s3")
        for record in event.get("Records", []):
            try:
                body = json.loads(record.get("body", ""))
            except ValueError:
                continue
            changed = False
            for rec in body.get("Records", []) if isinstance(body, dict) else []:
                if rec.get("eventSource") != "aws:s3":
                    continue
                obj, bucket = rec["s3"]["object"], rec["s3"]["bucket"]["name"]
                from urllib.parse import unquote_plus

                key = unquote_plus(obj["key"])
                try:
                    head = s3.head_object(Bucket=bucket, Key=key)
                except s3.exceptions.ClientError:
                    data = _sample_bytes(key)
                    s3.put_object(Bucket=bucket, Key=key, Body=data)
                    head = s3.head_object(Bucket=bucket, Key=key)
                obj["size"] = head["ContentLength"]
                if head.get("VersionId") and head["VersionId"] != "null":
                    obj["versionId"] = head["VersionId"]
                else:
                    obj.pop("versionId", None)
                changed = True
            if changed:
                record["body"] = json.dumps(body)
        return event

    def queued_event(self, logical_queue: str, max_messages: int = 10) -> dict[str, Any] | None:
        """The messages waiting on a queue, as the SQS event Lambda would get (they are deleted from the queue)."""
        sqs = self.client("sqs")
        url = self.queue_url(logical_queue)
        got = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=max_messages, AttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", [])
        if not got:
            return None
        records = []
        for m in got:
            attrs = m.get("Attributes", {})
            records.append(
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": {
                        "ApproximateReceiveCount": attrs.get("ApproximateReceiveCount", "1"),
                        "SentTimestamp": attrs.get("SentTimestamp", "0"),
                        "SenderId": attrs.get("SenderId", ACCOUNT),
                        "ApproximateFirstReceiveTimestamp": attrs.get("ApproximateFirstReceiveTimestamp", "0"),
                    },
                    "messageAttributes": {},
                    "md5OfBody": m.get("MD5OfBody", ""),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.stack.physical[logical_queue]["Arn"],
                    "awsRegion": REGION,
                }
            )
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return {"Records": records}

    def ingest_function(self) -> str:
        return "IngestFunction" if self.stack.active("IngestFunction") else "IngestImageFunction"

    def drain(self, rounds: int = 5) -> list[tuple[str, Any]]:
        """Run the ingest and Textract queues' messages through their functions until both are empty."""
        out = []
        for _ in range(rounds):
            ran = False
            queues = (("IngestQueue", self.ingest_function()), ("TextractQueue", "TextractCompleteFunction"))
            for queue, function in queues:
                event = self.queued_event(queue)
                if event is not None:
                    out.append((function, self.invoke(function, event)))
                    ran = True
            if not ran:
                break
        return out

    # seeding
    def api(self, event_file: str, body: Any = None, **path_params: str) -> dict[str, Any]:
        from mmrag.aws.routes import ROUTES

        event = json.loads((EVENTS / event_file).read_text(encoding="utf-8"))
        route = next(r for r in ROUTES if r.event == event_file)
        if body is not None:
            event["body"] = json.dumps(body, ensure_ascii=False)
        for name, value in path_params.items():
            event["path"] = event["path"].replace(event["pathParameters"][name], value)
            event["requestContext"]["path"] = f"/{event['requestContext']['stage']}{event['path']}"
            event["pathParameters"][name] = value
        response = self.invoke(route.function, event)
        return {"status": response["statusCode"], "json": _json_body(response)}

    def seed_documents(self) -> dict[str, str]:
        text = self.api("documents_upload.json")["json"]["data"]["document_id"]
        picture = _sample_bytes("label.png")
        image = self.api(
            "documents_upload.json",
            body={
                "document_type": "image",
                "file": base64.b64encode(picture).decode(),
                "metadata": {"title": "Gauge label", "category": "manuals", "tags": ["ops"]},
            },
        )["json"]["data"]["document_id"]
        self.drain()
        detail = self.api("documents_get.json", document_id=image)["json"]["data"]
        ids = {PLACEHOLDER_DOC: text, "image_document": image}
        if detail.get("images"):
            ids[PLACEHOLDER_IMG] = detail["images"][0]["image_id"]
        return ids

    def seed_textract_job(self) -> str:
        s3 = self.client("s3")
        key = "incoming/tenant-a/scanned-boiler-manual.pdf"
        s3.put_object(Bucket=self.bucket(), Key=key, Body=_sample_bytes(key))
        version = s3.head_object(Bucket=self.bucket(), Key=key).get("VersionId")
        body = {
            "Records": [
                {
                    "eventSource": "aws:s3",
                    "eventName": "ObjectCreated:Put",
                    "s3": {
                        "bucket": {"name": self.bucket()},
                        "object": {"key": key, "versionId": version, "sequencer": "01"},
                    },
                }
            ]
        }
        s3_event = {
            "Records": [
                {
                    "messageId": "seed-1",
                    "receiptHandle": "seed",
                    "body": json.dumps(body),
                    "attributes": {"ApproximateReceiveCount": "1"},
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                    "awsRegion": REGION,
                    "eventSourceARN": self.stack.physical["IngestQueue"]["Arn"],
                }
            ]
        }
        self.invoke(self.ingest_function(), s3_event)
        pending = self.queued_event("TextractQueue")  # moto's Textract finished at once and told the topic
        if pending is None:
            raise RuntimeError("Textract did not report a job (is MMRAG_OCR_ENGINE textract?)")
        envelope = json.loads(pending["Records"][0]["body"])
        return json.loads(envelope["Message"])["JobId"]

    def seed_for(self, event: dict[str, Any]) -> dict[str, Any]:
        text = json.dumps(event)
        if "Textract" in text and "JobId" in text:
            job_id = self.seed_textract_job()
            event = copy.deepcopy(event)
            for record in event.get("Records", []):
                envelope = json.loads(record["body"])
                notice = json.loads(envelope["Message"]) if "Message" in envelope else envelope
                notice["JobId"] = job_id
                if "Message" in envelope:
                    envelope["Message"] = json.dumps(notice)
                record["body"] = json.dumps(envelope if "Message" in envelope else notice)
            return event
        if PLACEHOLDER_DOC in text or PLACEHOLDER_IMG in text or "session_demo_1" in text:
            ids = self.seed_documents()
            if "session_demo_1" in text:
                self.api("qa_chat.json")
            for placeholder, real in ids.items():
                text = text.replace(placeholder, real)
            return json.loads(text)
        return event


@contextlib.contextmanager
def _environ(values: dict[str, str], drop: tuple[str, ...] = ()) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in (*values, *drop)}
    for k in drop:
        os.environ.pop(k, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _json_body(response: dict[str, Any]) -> Any:
    body = response.get("body")
    if body is None:
        return None
    raw = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()
    try:
        return json.loads(raw)
    except ValueError:
        return None


def render(response: Any, raw: bool = False) -> str:
    if raw or not isinstance(response, dict):
        return json.dumps(response, indent=2, ensure_ascii=False, default=str)
    out = dict(response)
    if "body" in out and isinstance(out["body"], str):
        parsed = _json_body(out)
        if parsed is not None:
            out["body"] = parsed
            out["isBase64Encoded"] = False
        elif out.get("isBase64Encoded"):
            data = base64.b64decode(out["body"])
            if data.startswith(b"\x89PNG") or data[:3] == b"\xff\xd8\xff":
                kind = "PNG" if data.startswith(b"\x89PNG") else "JPEG"
                out["body"] = f"<{len(data)} bytes of {kind}>"
            else:
                text = data.decode("utf-8", errors="replace")
                out["body"] = text if len(text) < 4000 else text[:4000] + "..."
    return json.dumps(out, indent=2, ensure_ascii=False, default=str)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("function", help="logical id of a function in template.yaml, e.g. SearchFunction")
    parser.add_argument("event", help="event JSON file, e.g. events/search_text.json")
    parser.add_argument("--seed", action="store_true", help="create what the event refers to first")
    parser.add_argument("--drain", action="store_true", help="then run queued ingestion / Textract messages")
    parser.add_argument("--param", action="append", default=[], help="template parameter override Key=Value")
    parser.add_argument("--raw", action="store_true", help="print the handler's return value as it is")
    parser.add_argument("--verbose", action="store_true", help="keep Powertools' logs and metrics on stdout")
    args = parser.parse_args(argv)
    overrides = dict(p.split("=", 1) for p in args.param)
    event = json.loads(Path(args.event).read_text(encoding="utf-8"))
    with Sandbox(overrides, verbose=args.verbose) as sandbox:
        if args.seed:
            event = sandbox.seed_for(event)
        event = sandbox.ensure_objects(event)
        response = sandbox.invoke(args.function, event)
        print(render(response, args.raw))
        if args.drain:
            for function, result in sandbox.drain():
                print(f"--- {function}", file=sys.stderr)
                print(render(result, args.raw))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
