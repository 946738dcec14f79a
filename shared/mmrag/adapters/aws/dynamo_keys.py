"""API keys on DynamoDB: the api_keys table (design in tables.py), keyed by the key's SHA-256."""

from __future__ import annotations

from typing import Any

import boto3

from mmrag.adapters.aws import tables as t
from mmrag.adapters.aws.dynamo_codec import decode_item, encode_item, key_from_item, key_item, to_av
from mmrag.adapters.aws.dynamo_io import query_all
from mmrag.core.models import ApiKey


class DynamoKeyStore:
    def __init__(self, table: str, client: Any = None):
        self.table = table
        self.client = client or boto3.client("dynamodb")

    def add_key(self, key: ApiKey) -> None:
        self.client.put_item(
            TableName=self.table, Item=encode_item(key_item(key)), ConditionExpression="attribute_not_exists(key_hash)"
        )

    def find_by_hash(self, key_hash: str) -> ApiKey | None:
        raw = self.client.get_item(
            TableName=self.table, Key=encode_item({"key_hash": key_hash}), ConsistentRead=True
        ).get("Item")
        return key_from_item(decode_item(raw)) if raw else None

    def list_keys(self, tenant: str | None = None) -> list[ApiKey]:
        if tenant:
            items = query_all(
                self.client,
                TableName=self.table,
                IndexName=t.KEY_GSI_TENANT,
                KeyConditionExpression="tenant = :t",
                ExpressionAttributeValues={":t": to_av(tenant)},
            )
        else:  # every tenant's keys: an operator listing, and the table is small
            pages = self.client.get_paginator("scan").paginate(TableName=self.table)
            items = (decode_item(raw) for page in pages for raw in page.get("Items", []))
        return sorted((key_from_item(it) for it in items), key=lambda k: (k.created_at, k.key_id))

    def revoke(self, key_id: str) -> bool:
        found = query_all(
            self.client,
            TableName=self.table,
            IndexName=t.KEY_GSI_KEY_ID,
            KeyConditionExpression="key_id = :k",
            ExpressionAttributeValues={":k": to_av(key_id)},
        )
        revoked = False
        for row in found:
            try:
                self.client.update_item(
                    TableName=self.table,
                    Key=encode_item({"key_hash": row["key_hash"]}),
                    UpdateExpression="SET revoked = :yes",
                    ConditionExpression="key_id = :k",
                    ExpressionAttributeValues={":yes": to_av(True), ":k": to_av(key_id)},
                )
                revoked = True
            except self.client.exceptions.ConditionalCheckFailedException:
                pass  # the index lagged behind a deletion
        return revoked
