"""The AWS adapters under contract, against moto's in-process AWS (no network): one fresh mock account per test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

REGION = "us-east-1"
BUCKET = "mmrag-contract"


def aws_env(request: pytest.FixtureRequest) -> None:
    """Dummy credentials and a region, and never the instance metadata service."""
    mp = request.getfixturevalue("monkeypatch")
    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        mp.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB"):
        mp.delenv(name, raising=False)


def mocked(request: pytest.FixtureRequest) -> None:
    pytest.importorskip("moto")
    from moto import mock_aws

    aws_env(request)
    mock = mock_aws()
    mock.start()
    request.addfinalizer(mock.stop)


def client(service: str) -> Any:
    import boto3

    return boto3.client(service, region_name=REGION)


def dynamo_tables() -> tuple[Any, Any]:
    from mmrag.adapters.aws.tables import TableNames, create_tables

    ddb, names = client("dynamodb"), TableNames.with_prefix("contract-")
    create_tables(ddb, names)
    return ddb, names


def blob_store(tmp_path: Path, request: pytest.FixtureRequest):
    from mmrag.adapters.aws.s3_blobs import S3BlobStore

    mocked(request)
    s3 = client("s3")
    s3.create_bucket(Bucket=BUCKET)
    return S3BlobStore(BUCKET, prefix="blobs", client=s3)


def document_store(tmp_path: Path, request: pytest.FixtureRequest):
    from mmrag.adapters.aws.dynamo_documents import DynamoDocumentStore

    mocked(request)
    ddb, names = dynamo_tables()
    return DynamoDocumentStore(names, client=ddb)


def session_store(tmp_path: Path, request: pytest.FixtureRequest):
    from mmrag.adapters.aws.dynamo_sessions import DynamoSessionStore

    mocked(request)
    ddb, names = dynamo_tables()
    return DynamoSessionStore(names.sessions, client=ddb)


def key_store(tmp_path: Path, request: pytest.FixtureRequest):
    from mmrag.adapters.aws.dynamo_keys import DynamoKeyStore

    mocked(request)
    ddb, names = dynamo_tables()
    return DynamoKeyStore(names.api_keys, client=ddb)


FACTORIES = {
    "blob_store": {"aws": blob_store},
    "document_store": {"aws": document_store},
    "session_store": {"aws": session_store},
    "key_store": {"aws": key_store},
}
