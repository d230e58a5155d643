"""Probe workers for ``runbook serve``: processes that each run many probes at once on one event loop.

A probe spends most of its wall time waiting (on answers, on the burst's spacing) and its CPU in Python, so
one process is bounded by one core however many threads serve HTTP. The exporter hands each probe to the
least busy of ``N`` worker processes over a pipe; a worker runs every probe it gets as a task of its own
loop and sends back the rendered answer. A worker that dies fails only the probes it had (they answer
``probe_success 0``) and is replaced.

    exporter thread --job--> pipe --> worker loop: task per probe --> engine.execute --> render
                    <-answer- pipe <-------------------------------------------------'
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from multiprocessing.connection import Connection

from msgspec.structs import replace

from runbook.config import Module


@dataclass(frozen=True)
class Job:
    module: Module
    name: str
    timeout: float
    """The engine's per-step budget, already fitted into the scrape's."""
    debug: bool = False


@dataclass(frozen=True)
class Answer:
    text: str
    verdict: str
    """The verdict code, or ``error`` when the probe failed inside the exporter."""
    error: str | None = None


class WorkerGone(Exception):
    """The worker process died with this probe in it."""


def probe(job: Job, known_steps: Sequence[str]) -> Answer:
    """One probe in this process, on a loop of its own (``--workers 0``, and the tests)."""
    return asyncio.run(probe_async(job, known_steps))


async def probe_async(job: Job, known_steps: Sequence[str]) -> Answer:
    from reports import RENDERERS
    from runbook import engine
    from runbook.steps import RUNBOOK

    try:
        # Prometheus text shows no packet log: it is written only for the debug page. The zone's name servers,
        # found through the resolver, are reused within their TTL (at most 5 minutes), as a resolver would.
        settings = replace(
            job.module.settings(job.name, known_steps, job.timeout), packet_log=job.debug, discovery_cache_s=300.0
        )
        run = await engine.execute(engine.plan(settings, RUNBOOK))
    except Exception as e:  # a failing probe is an answer, never a crash of the worker
        return Answer("", "error", f"{type(e).__name__}: {e}")
    doc = run.to_document()
    metrics = RENDERERS["prometheus"]([doc])
    if job.debug:
        report = RENDERERS["text"]([doc])
        return Answer(f"{report}\nMetrics that would have been returned:\n{metrics}", run.verdict.code)
    return Answer(metrics, run.verdict.code)


# -- the worker process ------------------------------------------------------------------------------------
def _worker_main(conn: Connection, known_steps: Sequence[str]) -> None:
    asyncio.run(_worker_loop(conn, tuple(known_steps)))


async def _worker_loop(conn: Connection, known_steps: tuple[str, ...]) -> None:
    loop = asyncio.get_running_loop()
    jobs: asyncio.Queue[tuple[int, Job] | None] = asyncio.Queue()

    def readable() -> None:
        try:
            while conn.poll():
                jobs.put_nowait(conn.recv())
        except (EOFError, OSError):  # the exporter is gone: finish what runs, then stop
            loop.remove_reader(conn.fileno())
            jobs.put_nowait(None)

    async def one(job_id: int, job: Job) -> None:
        answer = await probe_async(job, known_steps)
        with contextlib.suppress(OSError):  # the exporter is gone: nobody waits for the answer
            conn.send((job_id, answer))

    loop.add_reader(conn.fileno(), readable)
    running: set[asyncio.Task[None]] = set()
    while (item := await jobs.get()) is not None:
        task = asyncio.create_task(one(*item))
        running.add(task)
        task.add_done_callback(running.discard)
    if running:
        await asyncio.wait(running)


# -- the exporter's side ------------------------------------------------------------------------------------
class _Worker:
    def __init__(self, known_steps: Sequence[str]) -> None:
        ctx = multiprocessing.get_context("spawn")  # no fork of a process that already runs server threads
        self._conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=_worker_main, args=(child, tuple(known_steps)), daemon=True)
        self.process.start()
        child.close()
        self._pending: dict[int, Future[Answer]] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self.alive = True
        threading.Thread(target=self._read, name="probe-worker-reader", daemon=True).start()

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def submit(self, job: Job) -> Future[Answer]:
        future: Future[Answer] = Future()
        with self._lock:
            if not self.alive:
                future.set_exception(WorkerGone("the probe worker is gone"))
                return future
            job_id = next(self._ids)
            self._pending[job_id] = future
            try:
                self._conn.send((job_id, job))
            except OSError as e:
                del self._pending[job_id]
                future.set_exception(WorkerGone(f"the probe worker is gone: {e}"))
        return future

    def forget(self, future: Future[Answer]) -> None:
        """A probe whose scrape gave up: its answer, when it comes, is dropped."""
        with self._lock:
            for job_id, pending in list(self._pending.items()):
                if pending is future:
                    del self._pending[job_id]

    def _read(self) -> None:
        while True:
            try:
                job_id, answer = self._conn.recv()
            except (EOFError, OSError):
                break
            with self._lock:
                future = self._pending.pop(job_id, None)
            if future is not None and not future.done():
                future.set_result(answer)
        with self._lock:
            self.alive = False
            pending, self._pending = self._pending, {}
        code = self.process.exitcode
        for future in pending.values():
            if not future.done():
                future.set_exception(WorkerGone(f"the probe worker died (exit code {code})"))

    def close(self) -> None:
        self._conn.close()
        self.process.join(timeout=2)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


class WorkerPool:
    """``count`` worker processes; each probe goes to the one with the fewest probes in flight."""

    def __init__(self, count: int, known_steps: Sequence[str]) -> None:
        self._known_steps = tuple(known_steps)
        self._lock = threading.Lock()
        self._workers = [_Worker(self._known_steps) for _ in range(count)]

    def run(self, job: Job, wait: float) -> Answer:
        """The probe's answer; TimeoutError after ``wait`` seconds; WorkerGone when its worker died."""
        with self._lock:
            for i, worker in enumerate(self._workers):
                if not worker.alive:  # replaced at the next probe: its own were already failed
                    worker.close()
                    self._workers[i] = _Worker(self._known_steps)
            worker = min(self._workers, key=lambda w: w.in_flight)
        future = worker.submit(job)
        try:
            return future.result(timeout=wait)
        except TimeoutError:
            worker.forget(future)
            raise

    @property
    def pids(self) -> list[int | None]:
        return [w.process.pid for w in self._workers]

    def close(self) -> None:
        for worker in self._workers:
            worker.close()
