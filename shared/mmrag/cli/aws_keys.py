"""API keys of a deployed stack: `python -m mmrag.cli.aws_keys create|list|revoke --stack NAME ...`.

An mmrag key is stored hashed in the API-keys table (what the authorizer checks) and has one API Gateway API key per
rate-limit class, each in that class's usage plan (what enforces the limits). The API Gateway keys' values are
derived from the stored hash (mmrag.adapters.aws.api_routes.usage_key_value), so nothing but the hash is stored; the
raw key is
printed once, at creation.

    python -m mmrag.cli.aws_keys create --stack mmrag-dev --tenant acme --label "acme prod"
    python -m mmrag.cli.aws_keys create --stack mmrag-dev --tenant tenant-a --key acc-key-tenant-a   # a chosen key
    python -m mmrag.cli.aws_keys list --stack mmrag-dev [--tenant acme]
    python -m mmrag.cli.aws_keys revoke --stack mmrag-dev key_0123456789abcdef

Uses the caller's AWS credentials: cloudformation:DescribeStacks, dynamodb on the API-keys table, apigateway
(POST /apikeys, /usageplans/*/keys, PATCH /apikeys/*).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

from mmrag.adapters.aws.api_routes import ENDPOINT_CLASSES, usage_key_value
from mmrag.core.api_keys import hash_api_key
from mmrag.core.models import ApiKey, new_id

PLAN_OUTPUTS = {cls: f"UsagePlan{cls.capitalize()}Id" for cls in ENDPOINT_CLASSES}
TABLE_OUTPUT = "ApiKeysTableName"


@dataclass
class Stack:
    name: str
    api_keys_table: str
    usage_plans: dict[str, str]  # endpoint class -> usage plan id


def load_stack(name: str, cloudformation: Any) -> Stack:
    stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    missing = [k for k in (TABLE_OUTPUT, *PLAN_OUTPUTS.values()) if k not in outputs]
    if missing:
        raise SystemExit(f"stack {name} has no outputs {', '.join(missing)}: is it an mmrag stack?")
    return Stack(name, outputs[TABLE_OUTPUT], {cls: outputs[o] for cls, o in PLAN_OUTPUTS.items()})


def gateway_key_name(stack: str, key_id: str, endpoint_class: str) -> str:
    return f"{stack}-{key_id}-{endpoint_class}"


def register_usage_keys(apigateway: Any, stack: Stack, record: ApiKey) -> list[str]:
    """One API Gateway key per class for this mmrag key, each added to its class's usage plan."""
    ids = []
    for cls in ENDPOINT_CLASSES:
        created = apigateway.create_api_key(
            name=gateway_key_name(stack.name, record.key_id, cls),
            description=f"mmrag {cls} limits of key {record.key_id} (tenant {record.tenant})",
            enabled=True,
            value=usage_key_value(record.key_hash, cls),
            tags={"mmrag:key_id": record.key_id, "mmrag:class": cls},
        )
        apigateway.create_usage_plan_key(usagePlanId=stack.usage_plans[cls], keyId=created["id"], keyType="API_KEY")
        ids.append(created["id"])
    return ids


def create(stack: Stack, key_store: Any, apigateway: Any, tenant: str, label: str = "", raw: str = "") -> str:
    if not tenant.strip():
        raise SystemExit("--tenant must not be empty")
    if raw:
        record = ApiKey(key_id=new_id("key"), tenant=tenant, key_hash=hash_api_key(raw), label=label)
        key_store.add_key(record)
    else:
        from mmrag.core.api_keys import KeyService

        raw, record = KeyService(key_store, {}).create(tenant, label)
    register_usage_keys(apigateway, stack, record)
    return raw


def revoke(stack: Stack, key_store: Any, apigateway: Any, key_id: str) -> bool:
    found = key_store.revoke(key_id)
    paginator = apigateway.get_paginator("get_api_keys")
    for page in paginator.paginate(nameQuery=f"{stack.name}-{key_id}-"):
        for item in page.get("items", []):
            disable = [{"op": "replace", "path": "/enabled", "value": "false"}]
            apigateway.update_api_key(apiKey=item["id"], patchOperations=disable)
    return found


def main(argv: list[str] | None = None) -> int:
    import boto3

    from mmrag.adapters.aws.dynamo_keys import DynamoKeyStore

    parser = argparse.ArgumentParser(prog="python -m mmrag.cli.aws_keys", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True, help="the CloudFormation stack name given to sam deploy")
    parser.add_argument("--region", default=None)
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("create", help="create a key for a tenant and print it (once)")
    c.add_argument("--tenant", required=True)
    c.add_argument("--label", default="")
    c.add_argument("--key", default="", help="use this key instead of a random one (e.g. for the acceptance suite)")
    ls = sub.add_parser("list", help="list keys (ids, never the keys)")
    ls.add_argument("--tenant", default=None)
    r = sub.add_parser("revoke", help="revoke a key by id")
    r.add_argument("key_id")
    args = parser.parse_args(argv)

    session = boto3.Session(region_name=args.region)
    stack = load_stack(args.stack, session.client("cloudformation"))
    key_store = DynamoKeyStore(stack.api_keys_table, client=session.client("dynamodb"))
    apigateway = session.client("apigateway")
    if args.command == "create":
        print(create(stack, key_store, apigateway, args.tenant, args.label, args.key))
    elif args.command == "list":
        for k in key_store.list_keys(args.tenant):
            print(f"{k.key_id}\t{k.tenant}\t{k.created_at}\t{'revoked' if k.revoked else 'active'}\t{k.label}")
    else:
        if not revoke(stack, key_store, apigateway, args.key_id):
            print(f"no key {args.key_id}", file=sys.stderr)
            return 1
        print(f"revoked {args.key_id}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
