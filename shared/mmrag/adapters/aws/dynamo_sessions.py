"""Chat sessions on DynamoDB: one META item and one item per message under a (tenant, session) partition.

Expiry: every item carries `expires_at` (epoch seconds, the table's TTL attribute). META's is pushed ttl_days past
each append, a message's is set when it is written, so a session disappears ttl_days after its last activity and a
long-running session keeps a rolling ttl_days window of messages, at one write per new message (refreshing every
old message on each turn would cost writes in proportion to the whole history). DynamoDB deletes expired items
only eventually (often within days), so reads drop expired items themselves.

Listing: META also carries tenant, session_id, message_count and the first question, so a tenant's session list is
one Query of the sparse by_tenant index (tenant / updated_at; message items carry no tenant), never a read of
the messages.
"""

from __future__ import annotations

import json
import time
from typing import Any

import boto3

from mmrag.adapters.aws.dynamo_codec import Item, decode_item, encode_item, to_av
from mmrag.adapters.aws.dynamo_io import batch_write, delete_requests, put_requests, query_all
from mmrag.adapters.aws.tables import SESSION_GSI_TENANT, SESSION_TTL_ATTRIBUTE
from mmrag.core.models import SESSION_QUESTION_CHARS, Session, SessionMessage, SessionSummary, utcnow

META = "META"
_MSG = "MSG#"
_DAY = 86_400


def session_pk(tenant: str, session_id: str) -> str:
    # the length prefix makes the pair unambiguous whatever characters the tenant or the id contain
    return f"{len(tenant)}:{tenant}/{session_id}"


def _message_item(pk: str, seq: int, m: SessionMessage, expires_at: int) -> Item:
    return {
        "pk": pk,
        "sk": f"{_MSG}{seq:010d}",
        "message_id": m.message_id,
        "role": m.role,
        "content": m.content,
        "images": json.dumps(m.images, ensure_ascii=False),
        "sources": json.dumps(m.sources, ensure_ascii=False),
        "timestamp": m.timestamp,
        SESSION_TTL_ATTRIBUTE: expires_at,
    }


def _message_from_item(item: Item) -> SessionMessage:
    return SessionMessage(
        message_id=item["message_id"],
        role=item["role"],
        content=item["content"],
        images=json.loads(item.get("images") or "[]"),
        sources=json.loads(item.get("sources") or "[]"),
        timestamp=item["timestamp"],
    )


class DynamoSessionStore:
    def __init__(self, table: str, ttl_days: int = 30, client: Any = None):
        if ttl_days < 1:
            raise ValueError("ttl_days must be at least 1")
        self.table = table
        self.ttl_seconds = ttl_days * _DAY
        self.client = client or boto3.client("dynamodb")

    def _items(self, pk: str) -> tuple[Item | None, list[Item]]:
        """The live META item (None if absent or expired) and the live message items, in order."""
        now = int(time.time())
        items = query_all(
            self.client,
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": to_av(pk)},
            ConsistentRead=True,
        )
        meta, messages = None, []
        for item in items:
            if item.get(SESSION_TTL_ATTRIBUTE, now + 1) <= now:
                continue
            if item["sk"] == META:
                meta = item
            elif item["sk"].startswith(_MSG):
                messages.append(item)
        return meta, messages

    def get_session(self, tenant: str, session_id: str) -> Session | None:
        meta, messages = self._items(session_pk(tenant, session_id))
        if meta is None:
            return None
        return Session(
            session_id=session_id,
            tenant=tenant,
            created_at=meta["created_at"],
            updated_at=meta["updated_at"],
            messages=[_message_from_item(m) for m in messages],
        )

    def _touch(
        self, pk: str, tenant: str, session_id: str, count: int, expires_at: int, question: str | None
    ) -> int | None:
        """Create or refresh META and reserve `count` sequence numbers; returns the new message count, or None if
        the session is expired but not yet removed by TTL. The first question is kept once, for the session list."""
        now = utcnow()
        values = {
            ":now": to_av(now),
            ":exp": to_av(expires_at),
            ":t": to_av(tenant),
            ":sid": to_av(session_id),
            ":n": to_av(count),
            ":epoch": to_av(int(time.time())),
        }
        first = ""
        if question is not None:
            first = ", first_question = if_not_exists(first_question, :q)"
            values[":q"] = to_av(question[:SESSION_QUESTION_CHARS])
        try:
            resp = self.client.update_item(
                TableName=self.table,
                Key=encode_item({"pk": pk, "sk": META}),
                UpdateExpression=(
                    "SET created_at = if_not_exists(created_at, :now), updated_at = :now, #x = :exp, "
                    f"tenant = :t, session_id = :sid{first} ADD message_count :n"
                ),
                ConditionExpression="attribute_not_exists(pk) OR #x > :epoch",
                ExpressionAttributeNames={"#x": SESSION_TTL_ATTRIBUTE},
                ExpressionAttributeValues=values,
                ReturnValues="UPDATED_NEW",
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return None
        return int(decode_item(resp["Attributes"])["message_count"])

    def append_messages(self, tenant: str, session_id: str, messages: list[SessionMessage]) -> Session:
        pk = session_pk(tenant, session_id)
        expires_at = int(time.time()) + self.ttl_seconds
        question = next((m.content for m in messages if m.role == "user"), None)
        total = self._touch(pk, tenant, session_id, len(messages), expires_at, question)
        if total is None:  # an expired session's leftovers: clear them and start afresh
            self._purge(pk)
            total = self._touch(pk, tenant, session_id, len(messages), expires_at, question)
            if total is None:
                raise RuntimeError(f"could not reset expired session {session_id}")
        # the atomic ADD above hands concurrent appenders disjoint sequence numbers
        first = total - len(messages)
        items = [_message_item(pk, first + i, m, expires_at) for i, m in enumerate(messages)]
        batch_write(self.client, self.table, put_requests(items))
        session = self.get_session(tenant, session_id)
        assert session is not None
        return session

    def _purge(self, pk: str) -> None:
        keys = query_all(
            self.client,
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ProjectionExpression="pk, sk",
            ExpressionAttributeValues={":pk": to_av(pk)},
            ConsistentRead=True,
        )
        batch_write(self.client, self.table, delete_requests({"pk": k["pk"], "sk": k["sk"]} for k in keys))

    def delete_session(self, tenant: str, session_id: str) -> int | None:
        pk = session_pk(tenant, session_id)
        meta, messages = self._items(pk)
        if meta is None:
            return None
        self._purge(pk)
        return len(messages)

    def list_sessions(self, tenant: str, *, page: int = 1, page_size: int = 20) -> tuple[int, list[SessionSummary]]:
        """One Query of the by_tenant index (eventually consistent: a session created a moment ago may be missing
        for well under a second). The total needs every live META item anyway, so paging happens here."""
        now = int(time.time())
        rows = [
            item
            for item in query_all(
                self.client,
                TableName=self.table,
                IndexName=SESSION_GSI_TENANT,
                KeyConditionExpression="tenant = :t",
                ExpressionAttributeValues={":t": to_av(tenant)},
                ScanIndexForward=False,
            )
            if item.get(SESSION_TTL_ATTRIBUTE, now + 1) > now
        ]
        rows.sort(key=lambda r: (r["updated_at"], r["session_id"]), reverse=True)
        start = (max(page, 1) - 1) * page_size
        return len(rows), [
            SessionSummary(
                session_id=r["session_id"],
                created_at=r["created_at"],
                updated_at=r["updated_at"],
                message_count=int(r.get("message_count") or 0),
                first_question=r.get("first_question") or "",
            )
            for r in rows[start : start + page_size]
        ]
