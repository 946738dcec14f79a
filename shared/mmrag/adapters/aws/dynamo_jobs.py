"""The ingestion job queue on DynamoDB: the jobs table (design in tables.py) with its sparse by_queue index.

DynamoJobQueue is the job half of the DocumentStore port; DynamoDocumentStore (dynamo_documents.py) builds on it, as
the port puts documents and their jobs in one store (a document and its first job are written in one transaction).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import boto3

from mmrag.adapters.aws import tables as t
from mmrag.adapters.aws.dynamo_codec import (
    QUEUE_STATUSES,
    Item,
    decode_item,
    encode_item,
    job_from_item,
    job_item,
    to_av,
)
from mmrag.adapters.aws.dynamo_io import query_all
from mmrag.core.models import Job, utcnow


class DynamoJobQueue:
    def __init__(self, tables: t.TableNames, client: Any = None):
        self.tables = tables
        self.client = client or boto3.client("dynamodb")

    def _job_put(self, job: Job) -> dict[str, Any]:
        """The Put of a new job, alone (enqueue) or in a transaction with its document (create_document)."""
        return {
            "TableName": self.tables.jobs,
            "Item": encode_item(job_item(job)),
            "ConditionExpression": "attribute_not_exists(job_id)",
        }

    def _drop_pending_jobs(self, document_id: str) -> None:
        jobs = query_all(
            self.client,
            TableName=self.tables.jobs,
            IndexName=t.JOB_GSI_DOCUMENT,
            KeyConditionExpression="document_id = :d",
            ExpressionAttributeValues={":d": to_av(document_id)},
        )
        for job in jobs:
            # finished jobs fail the condition and stay, as history
            with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
                self.client.delete_item(
                    TableName=self.tables.jobs,
                    Key=encode_item({"job_id": job["job_id"]}),
                    ConditionExpression="#s IN (:q, :r)",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={":q": to_av("queued"), ":r": to_av("running")},
                )

    def enqueue(self, job: Job) -> None:
        self.client.put_item(**self._job_put(job))

    def _queue(self, status: str) -> Iterator[Item]:
        """Job keys in a queue status, oldest first. The index may lag: callers re-check with a condition."""
        return query_all(
            self.client,
            TableName=self.tables.jobs,
            IndexName=t.JOB_GSI_QUEUE,
            KeyConditionExpression="queue_status = :s",
            ExpressionAttributeValues={":s": to_av(status)},
            ScanIndexForward=True,
            PaginationConfig={"PageSize": 25},
        )

    def _move(self, job_id: str, src: str, dst: str, count_attempt: bool) -> Job | None:
        """The atomic state change: src -> dst only if the row is still in src. None if someone else won."""
        update = "SET #s = :dst, queue_status = :dst, updated_at = :now"
        values = {":src": to_av(src), ":dst": to_av(dst), ":now": to_av(utcnow())}
        if count_attempt:
            update += " ADD attempts :one"
            values[":one"] = to_av(1)
        try:
            resp = self.client.update_item(
                TableName=self.tables.jobs,
                Key=encode_item({"job_id": job_id}),
                UpdateExpression=update,
                ConditionExpression="#s = :src",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return None
        return job_from_item(decode_item(resp["Attributes"]))

    def claim_job_by_id(self, job_id: str) -> Job | None:
        """Claim one known job (on AWS an SQS message names it): queued -> running, attempts + 1, atomically."""
        return self._move(job_id, "queued", "running", count_attempt=True)

    def claim_job(self) -> Job | None:
        for key in self._queue("queued"):
            job = self.claim_job_by_id(key["job_id"])
            if job is not None:
                return job
        return None

    def finish_job(self, job_id: str, status: str, error: str | None = None) -> None:
        values: dict[str, Any] = {":st": to_av(status), ":now": to_av(utcnow())}
        sets = ["#s = :st", "updated_at = :now"]
        removes = []
        if status in QUEUE_STATUSES:
            sets.append("queue_status = :st")
        else:
            removes.append("queue_status")
        if error is None:
            removes.append("#e")
        else:
            sets.append("#e = :err")
            values[":err"] = to_av(error)
        update = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        # a job dropped with its document stays dropped: no update creates a row
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
            self.client.update_item(
                TableName=self.tables.jobs,
                Key=encode_item({"job_id": job_id}),
                UpdateExpression=update,
                ConditionExpression="attribute_exists(job_id)",
                ExpressionAttributeNames={"#s": "status", "#e": "error"},
                ExpressionAttributeValues=values,
            )

    def recover_jobs(self) -> int:
        """Jobs left 'running' go back to the queue. Only for a single worker fleet that knows it restarted; on
        AWS, SQS redelivery after the visibility timeout does this job instead."""
        return sum(1 for key in list(self._queue("running")) if self._move(key["job_id"], "running", "queued", False))

    def pending_jobs(self) -> int:
        total = 0
        for status in QUEUE_STATUSES:
            pages = self.client.get_paginator("query").paginate(
                TableName=self.tables.jobs,
                IndexName=t.JOB_GSI_QUEUE,
                KeyConditionExpression="queue_status = :s",
                ExpressionAttributeValues={":s": to_av(status)},
                Select="COUNT",
            )
            total += sum(page["Count"] for page in pages)
        return total
