"""The sandbox a function runs in: moto (mock_aws) with dummy credentials and the resources template.yaml declares,
the stand-ins of fakes.py, and the function's environment; all in this process and on 127.0.0.1 only.

- the bucket, the DynamoDB tables (from the template's own key schemas, GSIs and TTLs), the SQS queues, the SNS topics
  and their SQS subscriptions are created in moto; `Ref`/`GetAtt`/`Sub`/`If` in the environment resolve to them;
- OpenSearch is the fake server of tests/aws/opensearch_fake.py (the embedded index if that file is missing), the
  SageMaker endpoint the stand-in encoders, Textract moto's (canned text); answers come from the extractive answerer
  (there is no Bedrock in moto);
- `invoke(function, event)` imports the handler from CodeUri (Handler `run.sh` - the Lambda Web Adapter function -
  runs the same ASGI app through Mangum, buffered) and calls it with the event and a Lambda context.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mmrag_dev import events
from mmrag_dev.fakes import LambdaContext, StandInEncoders, load_opensearch_fake, textract_lines
from mmrag_dev.template import ACCOUNT, REGION, STACK, FunctionSpec, Stack, load_template

DEMO_KEYS = {"demo-key-tenant-a": "tenant-a", "demo-key-tenant-b": "tenant-b"}


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
        TextractBackend.BLOCKS = textract_lines()
        self._exit.callback(setattr, TextractBackend, "BLOCKS", blocks)
        self._create_resources()
        self._start_index()
        from mmrag.lambda_handlers import runtime

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
        fake = load_opensearch_fake()
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
            from mmrag.composition.aws import AwsContainer
            from mmrag.settings import Settings

            return AwsContainer(Settings(), index=self.index, clients={"sagemaker-runtime": self.encoders.client()})

        return build

    def handler(self, spec: FunctionSpec) -> Callable[[dict[str, Any], Any], Any]:
        if spec.handler == "run.sh":  # the Lambda Web Adapter function: the same ASGI app, through Mangum
            from mangum import Mangum

            from mmrag.lambda_handlers.stream_app import LazyApp

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
        from mmrag.lambda_handlers import authorizer, runtime

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
            records.append(events.sqs_record(m, self.stack.physical[logical_queue]["Arn"]))
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

    def api(self, event_file: str, body: Any = None, **path_params: str) -> dict[str, Any]:
        """Call the API route an event file of events/ shows (with another body or path parameters, if given)."""
        from mmrag.adapters.aws.api_routes import ROUTES

        event = events.api_event(event_file, body, **path_params)
        route = next(r for r in ROUTES if r.event == event_file)
        response = self.invoke(route.function, event)
        return {"status": response["statusCode"], "json": events.json_body(response)}


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
