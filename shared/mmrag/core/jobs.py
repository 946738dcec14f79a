"""The local job runner: worker threads fed by the durable job table in the document store."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from mmrag.core.models import Job, new_id
from mmrag.core.ports import DocumentStore
from mmrag.errors import ModelUnavailable, ServiceUnavailable

log = logging.getLogger(__name__)


class ThreadJobRunner:
    def __init__(
        self,
        store: DocumentStore,
        handler: Callable[[Job], None],
        workers: int = 1,
        max_attempts: int = 3,
        on_give_up: Callable[[Job], None] | None = None,
    ):
        self.store = store
        self.handler = handler
        self.workers = workers
        self.max_attempts = max_attempts
        self.on_give_up = on_give_up
        self.retry_delay_s = 2.0
        self.model_wait_s = 10.0  # a job waiting for a model is tried again this often (a failed load is remembered)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._done = threading.Condition()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self.store.recover_jobs()
        for i in range(self.workers):
            t = threading.Thread(target=self._loop, name=f"mmrag-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        self._wake.set()

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout)

    def notify(self) -> None:
        self._wake.set()

    def wait_idle(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until predicate() is true, re-checking whenever a job finishes."""
        deadline = time.monotonic() + timeout
        with self._done:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._done.wait(min(left, 0.25))
        return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            job = self.store.claim_job()
            if job is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            status, error, pause = "done", None, 0.0
            try:
                if job.attempts > self.max_attempts:
                    status, error = "failed", "gave up after repeated interruptions"
                    if self.on_give_up:
                        self.on_give_up(job)
                else:
                    self.handler(job)
            except ModelUnavailable as exc:
                # the document waits for the model however long that takes: a fresh job at the back of the queue,
                # so that waiting never counts as an interrupted attempt (also across restarts)
                status, error, pause = "deferred", exc.detail, self.model_wait_s
                self.store.enqueue(
                    Job(job_id=new_id("job"), tenant=job.tenant, document_id=job.document_id, kind=job.kind)
                )
            except ServiceUnavailable as exc:  # transient: try again later, up to max_attempts
                log.warning("job %s will be retried: %s", job.job_id, exc.detail)
                if job.attempts < self.max_attempts:
                    status, error = "queued", exc.detail
                    self._stop.wait(self.retry_delay_s)
                else:
                    status, error = "failed", exc.detail
                    if self.on_give_up:
                        self.on_give_up(job)
            except Exception as exc:  # the handler records document failures itself; this is a last resort
                log.exception("job %s crashed", job.job_id)
                status, error = "failed", f"{type(exc).__name__}: {exc}"
            self.store.finish_job(job.job_id, status, error)
            with self._done:
                self._done.notify_all()
            if pause:
                self._stop.wait(pause)
