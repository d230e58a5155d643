"""Runs the steps of a runbook concurrently under one deadline and builds the :class:`Run`.

The step graph is validated before any I/O. Every step is a task that waits for the steps it needs, then
gets ``min(its budget, time left)``; an unexpected exception becomes an ``error`` finding naming it, never
a crash. Results come out in declared order, whatever order they finished in.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol, TypeVar

import msgspec

from checks import wire
from runbook import __version__
from runbook.config import Settings
from runbook.context import Context
from runbook.diagnosis import diagnose, interrupted_verdict, step_verdict
from runbook.errors import InputError
from runbook.evidence import Failure
from runbook.hostfiles import ResolvConf, read_resolv_conf
from runbook.model import Finding, Run, Server, Status, StepResult, Verdict, new_run_id, rfc3339, worst
from runbook.steps import SINGLE_STEPS, Step


class Observer(Protocol):
    """Told about progress while a run goes on (the terminal renderer draws it)."""

    def step_started(self, step: Step) -> None: ...

    def step_finished(self, result: StepResult) -> None: ...


class Plan(msgspec.Struct, frozen=True):
    settings: Settings
    steps: tuple[Step, ...]
    servers: tuple[Server, ...]
    servers_from: str
    resolv: ResolvConf | None
    resolv_error: str | None
    command: str = "diagnose"
    """The command that runs: ``diagnose``, or one step's command (``probe``, ``ping``...)."""


def validate(steps: Sequence[Step]) -> None:
    """Unique ids; every need names an earlier step (which also rules out cycles)."""
    seen: set[str] = set()
    for step in steps:
        if step.id in seen:
            raise ValueError(f"step {step.id!r} is declared twice")
        missing = [n for n in step.needs if n not in seen]
        if missing:
            raise ValueError(f"step {step.id!r} needs {missing}, which are not declared before it")
        seen.add(step.id)


def plan(settings: Settings, steps: Sequence[Step], command: str = "diagnose") -> Plan:
    """Settle what is diagnosed before any packet is sent. An unreadable resolv.conf is an
    :class:`InputError` when it is where the servers would come from. ``command`` names one step's command
    (see :data:`runbook.steps.SINGLE_STEPS`): only its steps run, and its verdict is what they support."""
    if command != "diagnose":
        keep = {"hostconf", *SINGLE_STEPS[command].steps}
        steps = [s for s in steps if s.id in keep]
    validate(steps)
    resolv: ResolvConf | None = None
    error: str | None = None
    try:
        resolv = read_resolv_conf(settings.resolv_conf)
    except InputError as e:
        if not settings.servers:
            raise
        error = str(e)
    if settings.servers:
        return Plan(settings, tuple(steps), settings.servers, settings.origin, resolv, error, command)
    assert resolv is not None
    return Plan(settings, tuple(steps), resolv.servers, str(settings.resolv_conf), resolv, error, command)


async def execute(p: Plan, observer: Observer | None = None) -> Run:
    settings = p.settings
    wire.PACKET_LOG.set(settings.packet_log)  # this task's context, copied into every step's task
    started_wall, started = time.time(), time.monotonic()
    run_deadline = started + settings.deadline_s
    tasks: dict[str, asyncio.Task[StepResult]] = {}

    async def run_step(step: Step) -> StepResult:
        needs = {n: await tasks[n] for n in step.needs}
        if step.id in settings.skip:
            return StepResult(step.id, step.title, Status.SKIPPED, (), 0.0, "switched off with --skip")
        if step.network and not p.servers:
            return StepResult(step.id, step.title, Status.SKIPPED, (), 0.0, "no server to diagnose")
        if observer:
            observer.step_started(step)
        t0 = time.monotonic()
        deadline = min(t0 + settings.timeout, run_deadline)
        ctx = Context(step.id, settings, p.servers, p.resolv, p.resolv_error, deadline, needs, tasks)
        try:
            # The check spends ctx.time_left(); the outer bound only catches a check that overruns it.
            findings = await asyncio.wait_for(step.check(ctx), max(0.0, deadline - t0) + 0.25)
            result = StepResult(
                step.id, step.title, worst([f.status for f in findings]), tuple(findings), time.monotonic() - t0
            )
        except TimeoutError:
            result = _error_result(step, t0, f"the step overran its budget of {deadline - t0:.2f} s")
        except Exception as e:
            result = _error_result(step, t0, f"{type(e).__name__}: {e}")
        if observer:
            observer.step_finished(result)
        return result

    for step in p.steps:
        tasks[step.id] = asyncio.create_task(run_step(step), name=f"step-{step.id}")
    interrupted = False
    try:
        results = tuple([await tasks[s.id] for s in p.steps])
    except asyncio.CancelledError:
        # Ctrl-C: what finished is kept, what did not is said to be interrupted; nothing is made up.
        interrupted = True
        results = await _interrupted(p.steps, tasks, started)
    verdict = _verdict(p, results, interrupted, time.monotonic() - started)
    return Run(
        run_id=new_run_id(started_wall),
        tool_version=__version__,
        target=settings.target,
        servers=p.servers,
        servers_from=p.servers_from,
        started_at=started_wall,
        duration_s=time.monotonic() - started,
        steps=results,
        verdict=verdict,
        command=p.command,
        interrupted=interrupted,
        options=_options(settings),
    )


def _verdict(p: Plan, results: Sequence[StepResult], interrupted: bool, after_s: float) -> Verdict:
    settings = p.settings
    if interrupted:
        return interrupted_verdict(results, after_s)
    findings = [f for r in results for f in r.findings]
    verdict = diagnose(
        settings.target,
        p.servers,
        findings,
        p.resolv if p.servers_from == str(settings.resolv_conf) else None,
        settings.expect,
        website=settings.website,
        explain=settings.explain,
    )
    if p.command != "diagnose":
        verdict = step_verdict(p.command, findings, SINGLE_STEPS[p.command].supports, verdict)
    return verdict


def _options(settings: Settings) -> dict[str, Any]:
    """The options a run was made with, as its document records them (``verify`` runs them again)."""
    return {
        "timeout_s": settings.timeout,
        "udp_attempts": settings.udp_attempts,
        "ping_count": settings.ping_count,
        "burst_count": settings.burst_count,
        "burst_interval_s": settings.burst_interval,
        "max_loss": settings.max_loss,
        "max_rtt_s": settings.max_rtt,
        "resolvers": [s.label for s in settings.resolvers],
        "authoritative": [s.label for s in settings.authoritative],
        "expect": list(settings.expect),
        "skip": sorted(settings.skip),
        "website": settings.website,
        **settings.options,
    }


async def _interrupted(
    steps: Sequence[Step], tasks: dict[str, asyncio.Task[StepResult]], started: float
) -> tuple[StepResult, ...]:
    """The steps' results after a cancellation: the finished ones as they were, the others interrupted."""
    for task in tasks.values():
        task.cancel()
    await asyncio.gather(*tasks.values(), return_exceptions=True)
    results = []
    for step in steps:
        task = tasks[step.id]
        if task.done() and not task.cancelled() and task.exception() is None:
            results.append(task.result())
        else:
            after = time.monotonic() - started
            results.append(StepResult(step.id, step.title, Status.SKIPPED, (), 0.0, f"interrupted after {after:.2f} s"))
    return tuple(results)


def _error_result(step: Step, t0: float, reason: str) -> StepResult:
    finding = Finding(
        id=f"{step.id}/error",
        step=step.id,
        status=Status.ERROR,
        summary=f"the {step.id} step failed: {reason}",
        evidence=Failure(error=reason),
        started_at=time.time() - (time.monotonic() - t0),
        duration_s=time.monotonic() - t0,
    )
    return StepResult(step.id, step.title, Status.ERROR, (finding,), time.monotonic() - t0, reason)


def run_sync(p: Plan, observer: Observer | None = None) -> Run:
    return interruptible(execute(p, observer))


T = TypeVar("T")


def interruptible(work: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(work)`` where Ctrl-C cancels the work at once, so that it can return what it has; a
    second Ctrl-C raises KeyboardInterrupt. The handler is the loop's own (a wakeup fd): the signal wakes the
    loop whichever thread the kernel delivered it to, where asyncio.run's would wait for the next timer."""

    async def main() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(work)
        presses = 0

        def on_sigint() -> None:
            nonlocal presses
            presses += 1
            if presses > 1:
                raise KeyboardInterrupt
            task.cancel()

        try:
            loop.add_signal_handler(signal.SIGINT, on_sigint)
        except (ValueError, RuntimeError, NotImplementedError):  # not the main thread: no handler to install
            return await task
        try:
            return await task
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    return asyncio.run(main())


async def execute_many(plans: list[Plan], concurrency: int) -> list[Run]:
    """Several targets at once (``diagnose --config``), at most ``concurrency`` at a time, in their order.
    Ctrl-C interrupts each run that is going on; each still returns what it found."""
    gate = asyncio.Semaphore(concurrency)

    async def one(p: Plan) -> Run:
        async with gate:
            return await execute(p)

    tasks = [asyncio.create_task(one(p)) for p in plans]
    try:
        await asyncio.wait(tasks)
    except asyncio.CancelledError:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
    # A target still waiting for its turn when Ctrl-C came never ran: it has no run to report.
    return [t.result() for t in tasks if not t.cancelled()]


class Outage(msgspec.Struct):
    """A window from the first failing run to the first healthy one after it (None while it lasts)."""

    first_failure: Run
    recovery: Run | None = None
    verdicts: list[str] = msgspec.field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.first_failure.target.name,
            "first_failure": rfc3339(self.first_failure.started_at),
            "recovery": rfc3339(self.recovery.started_at) if self.recovery else None,
            "first_run_id": self.first_failure.run_id,
            "recovery_run_id": self.recovery.run_id if self.recovery else None,
            "verdicts": self.verdicts,
        }


async def watch(
    p: Plan,
    interval: float,
    until_healthy: bool,
    max_duration: float | None,
    on_run: Callable[[Run, str | None], None],
    on_outage: Callable[[Outage], None],
) -> tuple[Run | None, Outage | None]:
    """Run the runbook every ``interval`` seconds; ``on_run(run, previous verdict)`` for every run and
    ``on_outage`` for every window that closes. Stops when healthy with ``until_healthy``, after
    ``max_duration`` seconds, or when cancelled (Ctrl-C). Returns the last run and the window still open."""
    start = time.monotonic()
    previous: str | None = None
    last: Run | None = None
    open_window: Outage | None = None
    try:
        while True:
            run = await execute(p)
            if run.interrupted:
                return last, open_window
            last = run
            healthy = run.verdict.code == "healthy"
            if not healthy:
                if open_window is None:
                    open_window = Outage(run)
                if not open_window.verdicts or open_window.verdicts[-1] != run.verdict.code:
                    open_window.verdicts.append(run.verdict.code)
            on_run(run, previous)
            if healthy and open_window is not None:
                open_window.recovery = run
                on_outage(open_window)
                open_window = None
            previous = run.verdict.code
            if until_healthy and healthy:
                return last, None
            if max_duration is not None and time.monotonic() - start + interval > max_duration:
                return last, open_window
            await asyncio.sleep(interval)
    except asyncio.CancelledError:
        return last, open_window
