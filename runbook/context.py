"""What a check receives: a frozen context, and the one signature every check has.

A check is ``async def run(ctx: Context) -> list[Finding]``. It prints nothing, exits nothing, reads no
argv or environment; it spends at most ``ctx.time_left()`` and turns every foreign error into a finding.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping

import msgspec

from runbook.config import Settings
from runbook.evidence import Empty, Evidence
from runbook.hostfiles import ResolvConf
from runbook.model import Finding, Server, Status, StepResult


class Context(msgspec.Struct, frozen=True):
    step: str
    settings: Settings
    servers: tuple[Server, ...]
    resolv: ResolvConf | None
    """The parsed resolv.conf, read once by the engine (None when it could not be read)."""
    resolv_error: str | None
    deadline: float
    """``time.monotonic()`` value by which the step must be done."""
    needs: Mapping[str, StepResult] = msgspec.field(default_factory=dict)
    running: Mapping[str, asyncio.Task[StepResult]] = msgspec.field(default_factory=dict)
    """The other steps of the run, still running or done: a check may watch one (never start or cancel it)."""

    def time_left(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def finding(
        self,
        key: str,
        status: Status,
        summary: str,
        evidence: Evidence | None = None,
        *,
        clock: Clock,
        server: Server | None = None,
    ) -> Finding:
        """A finding of this step: its id is ``STEP/KEY``, its duration runs from when ``clock`` started."""
        return Finding(
            id=f"{self.step}/{key}",
            step=self.step,
            status=status,
            summary=summary,
            evidence=evidence if evidence is not None else Empty(),
            started_at=clock.wall,
            duration_s=time.monotonic() - clock.mono,
            server=server.label if server else None,
        )


Check = Callable[[Context], Awaitable[list[Finding]]]


class Clock:
    """Wall-clock and monotonic start of one piece of work, for a finding's timings."""

    __slots__ = ("mono", "wall")

    def __init__(self) -> None:
        self.wall = time.time()
        self.mono = time.monotonic()
