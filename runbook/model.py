"""Plain data of a run: statuses, servers, targets, findings, steps, verdicts. No I/O here.

Findings are immutable; their evidence is one of the typed kinds of :mod:`runbook.evidence`, whose JSON form
(numbers stay numbers, durations are float seconds, times are epoch seconds) is the document's, so that a
run can be rendered, stored and diagnosed again from its document alone.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import msgspec

from runbook.evidence import Empty, Evidence, parse

SCHEMA = "runbook.run/v1"


class Status(StrEnum):
    """How bad one finding, step or verdict is. Ordered by :attr:`rank`; the exit code is the verdict's."""

    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def exit_code(self) -> int:
        """Nagios plugin convention: 0 ok, 1 warning, 2 critical, 3 unknown."""
        return _EXIT[self]


_RANK = {
    Status.OK: 0,
    Status.SKIPPED: 0,
    Status.WARNING: 1,
    Status.UNKNOWN: 2,
    Status.ERROR: 2,
    Status.CRITICAL: 3,
}
_EXIT = {
    Status.OK: 0,
    Status.SKIPPED: 0,
    Status.WARNING: 1,
    Status.CRITICAL: 2,
    Status.UNKNOWN: 3,
    Status.ERROR: 3,
}


class VerdictCode(StrEnum):
    """Every verdict a run can end in: the contract of the JSON Schema and of ``runbook_verdict{code}``.

    The rule table (:mod:`runbook.rules`) says when each applies, with which status, in which precedence."""

    HEALTHY = "healthy"
    SERVICE_DOWN = "dns-service-down"
    PORT_FILTERED = "dns-port-filtered"
    BLOCKED_IN_PATH = "dns-blocked-in-path"
    LOCAL_FIREWALL = "local-firewall-blocks-dns"
    UNREACHABLE = "dns-server-unreachable"
    REFUSED = "resolver-refused"
    UPSTREAM = "upstream-servfail"
    DNSSEC = "dnssec-validation-failure"
    NXDOMAIN = "nxdomain"
    MISMATCH = "dns-answer-mismatch"
    HOSTS_OVERRIDE = "hosts-file-override"
    TCP_FALLBACK = "tcp-fallback-blocked"
    DEGRADED = "dns-degraded"
    SITE_DOWN = "site-unreachable-dns-ok"
    NO_RESOLVER = "no-resolver-configured"
    DAEMON_NOT_RUNNING = "daemon-not-running"
    DAEMON_NOT_LISTENING = "daemon-not-listening"
    PORT_TAKEN = "port-53-taken"
    CONFIG_INVALID = "daemon-config-invalid"
    SERVER_FIREWALL = "server-firewall-blocks-dns"
    OVERLOADED = "server-overloaded"
    INCONCLUSIVE = "inconclusive"
    STEP_RESULT = "step-result"
    """One step's command (``runbook ping``...) whose evidence supports no diagnosis: its status is the step's."""


def worst(statuses: Sequence[Status], default: Status = Status.OK) -> Status:
    """The most severe of ``statuses`` (``default`` when there are none)."""
    return max(statuses, key=lambda s: s.rank, default=default)


class Server(msgspec.Struct, frozen=True):
    """A DNS server to diagnose: an IP address (IPv6 may carry a ``%scope``) and a port."""

    host: str
    port: int = 53

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return ipaddress.ip_address(self.host.split("%", 1)[0])

    @property
    def is_ipv6(self) -> bool:
        return self.ip.version == 6

    @property
    def label(self) -> str:
        """``203.0.113.2:53`` or ``[::1]:5353``: the form users type and reports print."""
        return f"[{self.host}]:{self.port}" if self.is_ipv6 else f"{self.host}:{self.port}"

    @property
    def key(self) -> str:
        """The part of a finding id that names this server: the address, plus the port when not 53."""
        return self.host if self.port == 53 else self.label


class Target(msgspec.Struct, frozen=True):
    """What is diagnosed: the name (as typed and as queried) and the record type."""

    name: str
    """The name as it is queried: absolute, IDNA A-labels (``xn--bcher-kva.example.``)."""
    display: str
    """The name as the user typed it (``bücher.example``)."""
    rdtype: str = "A"


class Finding(msgspec.Struct, frozen=True):
    """One observation of one step, usually about one server."""

    id: str
    step: str
    status: Status
    summary: str
    evidence: Evidence = msgspec.field(default_factory=Empty)
    started_at: float = 0.0
    duration_s: float = 0.0
    server: str | None = None

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "id": self.id,
            "step": self.step,
            "status": self.status.value,
            "summary": self.summary,
            "evidence": self.evidence.to_json(),
            "started_at": rfc3339(self.started_at),
            "duration_s": round(self.duration_s, 6),
        }
        if self.server is not None:
            doc["server"] = self.server
        return doc

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Finding:
        """A finding of a run document (a stored run), its evidence read back into its kind."""
        step, fid = str(doc.get("step", "")), str(doc.get("id", ""))
        return cls(
            id=fid,
            step=step,
            status=Status(doc.get("status", "unknown")),
            summary=str(doc.get("summary", "")),
            evidence=parse(step, fid, doc.get("evidence")),
            server=doc.get("server"),
        )


class StepResult(msgspec.Struct, frozen=True):
    id: str
    title: str
    status: Status
    findings: tuple[Finding, ...]
    duration_s: float = 0.0
    reason: str | None = None
    """Why the step was skipped or failed, when it was."""

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "id": self.id,
            "title": self.title,
            "status": self.status.value,
            "duration_s": round(self.duration_s, 6),
            "findings": [f.id for f in self.findings],
        }
        if self.reason:
            doc["reason"] = self.reason
        return doc


class Verdict(msgspec.Struct, frozen=True):
    code: str
    status: Status
    confidence: str
    summary: str
    findings: tuple[str, ...] = ()
    next_steps: tuple[str, ...] = ()
    also: tuple[Mapping[str, Any], ...] = ()
    servers: Mapping[str, str] = msgspec.field(default_factory=dict)
    """Each diagnosed server's own diagnosis code, by server label."""
    verified: bool | None = None
    """For ``healthy``: whether an independent source (the zone's own servers, --expect, --resolver) confirmed
    the answer. None for the other codes."""
    explain: tuple[Mapping[str, Any], ...] = ()
    """With --explain: every rule asked, whether it matched, and on which evidence."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "status": self.status.value,
            "confidence": self.confidence,
            "summary": self.summary,
            "findings": list(self.findings),
            "next_steps": list(self.next_steps),
            "actions": [action(step) for step in self.next_steps],
            "also": [dict(a) for a in self.also],
            "servers": dict(self.servers),
            **({"verified": self.verified} if self.verified is not None else {}),
            **({"explain": [dict(e) for e in self.explain]} if self.explain else {}),
        }


_COMMAND = re.compile(r"`([^`]+)`")
_ON_HOST = re.compile(r"^On ([^\s:]+):")


def action(step: str) -> dict[str, Any]:
    """A next step for scripts: its words, the host it is for (``On HOST:``), and each command in it."""
    on = _ON_HOST.match(step)
    return {"text": step, "on": on.group(1) if on else None, "commands": _COMMAND.findall(step)}


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def new_run_id(started: float) -> str:
    """A run's id: its start in UTC, and 6 random hex digits (sortable, unique enough for one store)."""
    return datetime.fromtimestamp(started, UTC).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)


class Run(msgspec.Struct, frozen=True):
    """A whole run. Its :meth:`to_document` is the ``runbook.run/v1`` JSON document renderers read."""

    run_id: str
    tool_version: str
    target: Target
    servers: tuple[Server, ...]
    servers_from: str
    started_at: float
    duration_s: float
    steps: tuple[StepResult, ...]
    verdict: Verdict
    options: Mapping[str, Any] = msgspec.field(default_factory=dict)
    command: str = "diagnose"
    """``diagnose``, or the one step's command that made the run (``probe``, ``ping``...)."""
    interrupted: bool = False
    """Stopped (Ctrl-C) before every step finished: the steps that did not are marked so."""

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(f for step in self.steps for f in step.findings)

    @property
    def exit_code(self) -> int:
        """The verdict's Nagios code; 130 (as shells report Ctrl-C) for a run that was interrupted."""
        return 130 if self.interrupted else self.verdict.status.exit_code

    def to_document(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "run_id": self.run_id,
            "command": self.command,
            "interrupted": self.interrupted,
            "tool_version": self.tool_version,
            "target": {
                "name": self.target.name,
                "display_name": self.target.display,
                "type": self.target.rdtype,
                "servers": [s.label for s in self.servers],
                "servers_from": self.servers_from,
                "options": dict(self.options),
            },
            "started_at": rfc3339(self.started_at),
            "duration_s": round(self.duration_s, 6),
            "steps": [s.to_dict() for s in self.steps],
            "findings": [f.to_dict() for f in self.findings],
            "verdict": self.verdict.to_dict(),
            "exit_code": self.exit_code,
        }


def steps_of(spec: Sequence[tuple[str, str]], findings: Sequence[Finding], empty: str) -> tuple[StepResult, ...]:
    """Steps made from findings by their step id (``runbook analyze`` and ``runbook server`` gather evidence
    in one pass rather than by steps): each step's status is its worst finding's; one without findings is
    skipped, saying ``empty``."""
    return tuple(
        StepResult(
            sid,
            title,
            worst([f.status for f in mine], default=Status.SKIPPED),
            tuple(mine),
            0.0,
            None if mine else empty,
        )
        for sid, title in spec
        for mine in [[f for f in findings if f.step == sid]]
    )


_EXIT_SEVERITY = {0: 0, 1: 1, 3: 2, 2: 3, 130: 4}


def worst_exit_code(codes: Sequence[int]) -> int:
    """The exit code of several runs: the worst, ranked as :class:`Status` ranks (critical worst)."""
    return max(codes, key=lambda c: _EXIT_SEVERITY.get(c, 2), default=0)
