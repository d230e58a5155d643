"""``runbook server``: the DNS daemons' own view, through their control channels, where one is set up.

Read-only commands only: ``unbound-control stats_noreset``, ``nsd-control stats_noreset``, ``rndc status``,
``knotc status``. unbound and NSD count queries, SERVFAILs and (unbound) the requests its request list had to
drop: read at the start and at the end of the load window, the counters become rates over the window. BIND
tells its recursive and TCP clients against their limits. A channel that is not enabled in the daemon's
configuration is not tried; one that fails (no key, no permission, the daemon not answering) says why.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
from msgspec.structs import replace

from runbook.evidence import ControlView, Daemon
from runbook.model import Finding, Status

TIMEOUT = 3.0


class Channel(msgspec.Struct, frozen=True):
    tool: str
    argv: Callable[[str | None], list[str]]
    off: Callable[[str | None], str | None]
    """Why the channel is not to be tried (not enabled, the configuration unreadable), or None."""
    parse: Callable[[str], dict[str, str]]


def _key_values(text: str, sep: str = "=") -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, found, value = line.partition(sep)
        if found:
            out[key.strip()] = value.strip()
    return out


def _control_off(conf: str | None) -> str | None:
    """unbound and NSD: on only with ``control-enable: yes`` in the configuration (its ``remote-control:``)."""
    if not conf:
        return "its configuration file is not known"
    try:
        text = Path(conf).read_text(errors="replace")
    except OSError as e:
        return f"its configuration {conf} could not be read ({e.strerror}): run as root"
    if re.search(r"^\s*control-enable:\s*\"?yes\"?\s*(#.*)?$", text, re.MULTILINE) is None:
        return f"its control channel is not enabled in {conf}"
    return None


def _always(_conf: str | None) -> str | None:
    return None


def _with_conf(tool: str, *args: str) -> Callable[[str | None], list[str]]:
    return lambda conf: [tool, *(["-c", conf] if conf else []), *args]


CHANNELS: dict[str, Channel] = {
    "unbound": Channel("unbound-control", _with_conf("unbound-control", "stats_noreset"), _control_off, _key_values),
    "nsd": Channel("nsd-control", _with_conf("nsd-control", "stats_noreset"), _control_off, _key_values),
    # rndc reads /etc/bind/rndc.key (or rndc.conf), not named's configuration; BIND sets the key up by default.
    "named": Channel("rndc", lambda _conf: ["rndc", "status"], _always, lambda t: _key_values(t, ":")),
    # Knot's control socket is on by default.
    "knotd": Channel("knotc", _with_conf("knotc", "status"), _always, lambda t: {"status": t.strip()}),
}


def read(daemons: Sequence[Daemon]) -> dict[int, dict[str, Any]]:
    """One reading of each daemon's channel, by pid: its values, or why there are none."""
    readings = {}
    for d in daemons:
        channel = CHANNELS.get(d.name)
        if channel is None:
            continue
        off = channel.off(d.config)
        if off is not None:
            readings[d.pid] = {"skipped": off}
        elif shutil.which(channel.tool) is None:
            readings[d.pid] = {"skipped": f"{channel.tool} is not installed"}
        else:
            readings[d.pid] = _ask(channel, d.config)
    return readings


def _ask(channel: Channel, conf: str | None) -> dict[str, Any]:
    argv = channel.argv(conf)
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"command": argv, "error": str(e)}
    if proc.returncode != 0:
        why = (proc.stderr.strip() or proc.stdout.strip() or f"exit status {proc.returncode}").splitlines()[-1]
        return {"command": argv, "error": why}
    return {"command": argv, "values": channel.parse(proc.stdout)}


def findings(
    daemons: Sequence[Daemon],
    before: Mapping[int, dict[str, Any]],
    after: Mapping[int, dict[str, Any]],
    window: float,
) -> list[Finding]:
    out = []
    count = Counter(d.name for d in daemons)
    for d in daemons:
        if d.pid not in after:
            continue
        name, first, last = d.name, before.get(d.pid, {}), after[d.pid]
        key = f"control/{name}" + (f"/{d.pid}" if count[name] > 1 else "")  # two instances: one finding each
        if "skipped" in last:
            out.append(Finding(key, "control", Status.SKIPPED, f"{name}: {last['skipped']}"))
            continue
        base = ControlView(daemon=name, command=tuple(last["command"]))
        if "error" in last:
            summary = f"{name}: `{' '.join(last['command'])}` failed: {last['error']}"
            out.append(Finding(key, "control", Status.UNKNOWN, summary, replace(base, error=last["error"])))
            continue
        view = VIEWS.get(name, _view_status)(base, first.get("values", {}), last["values"], window)
        status = Status.WARNING if view.signs or view.warnings else Status.OK
        out.append(Finding(key, "control", status, f"{name}: {view.words}", view))
    return out


def _delta(first: Mapping[str, str], last: Mapping[str, str], key: str) -> int | None:
    try:
        return int(float(last[key])) - int(float(first.get(key, last[key])))
    except (KeyError, ValueError):
        return None


def _view_unbound(base: ControlView, first: Mapping[str, str], last: Mapping[str, str], window: float) -> ControlView:
    queries = _delta(first, last, "total.num.queries") or 0
    servfail = _delta(first, last, "num.answer.rcode.SERVFAIL") or 0
    exceeded = _delta(first, last, "total.requestlist.exceeded") or 0
    current = last.get("total.requestlist.current.all")
    rate = round(queries / window, 1)
    words = f"{rate:.0f} queries/s over {window:g} s, {servfail} SERVFAIL"
    return replace(
        base,
        window_s=window,
        queries_per_s=rate,
        servfail_share=round(servfail / queries, 3) if queries else None,
        requestlist_exceeded=exceeded,
        requestlist_current=int(float(current)) if current else None,
        uptime_s=_number(last.get("time.up")),
        signs=(f"its request list was full: {exceeded} queries dropped in {window:g} s",) if exceeded > 0 else (),
        # Not overload: upstream trouble, or validation failing; worth a warning of its own.
        warnings=(f"{servfail} of {queries} answers were SERVFAIL",)
        if queries >= 20 and servfail / queries > 0.5
        else (),
        words=words + (f", {exceeded} dropped for a full request list" if exceeded else ""),
    )


def _view_nsd(base: ControlView, first: Mapping[str, str], last: Mapping[str, str], window: float) -> ControlView:
    queries = _delta(first, last, "num.queries") or 0
    servfail = _delta(first, last, "num.rcode.SERVFAIL") or 0
    dropped = _delta(first, last, "num.dropped") or 0
    rate = round(queries / window, 1)
    return replace(
        base,
        window_s=window,
        queries_per_s=rate,
        servfail_share=round(servfail / queries, 3) if queries else None,
        dropped=dropped,
        words=f"{rate:.0f} queries/s over {window:g} s, {servfail} SERVFAIL, {dropped} dropped",
    )


def _view_named(base: ControlView, _first: Mapping[str, str], last: Mapping[str, str], _window: float) -> ControlView:
    """``rndc status``: ``recursive clients: 12/900/1000`` is in use / soft limit / hard limit."""
    signs = []
    for key in ("recursive clients", "tcp clients"):
        numbers = [int(n) for n in re.findall(r"\d+", last.get(key, ""))]
        if len(numbers) >= 2 and numbers[-1] and numbers[0] >= 0.9 * numbers[-1]:
            signs.append(f"{key} {last[key]}: at its limit")
    words = "; ".join(f"{k} {last[k]}" for k in ("server is up and running", "recursive clients") if k in last)
    return replace(
        base,
        status={k: v for k, v in last.items() if len(k) < 60},
        signs=tuple(signs),
        words=words or "rndc status answered",
    )


def _view_status(base: ControlView, _first: Mapping[str, str], last: Mapping[str, str], _window: float) -> ControlView:
    return replace(base, status=dict(last), words=next(iter(last.values()), "") or "answers")


def _number(text: str | None) -> float | None:
    try:
        return round(float(text), 3) if text is not None else None
    except ValueError:
        return None


VIEWS: dict[str, Callable[[ControlView, Mapping[str, str], Mapping[str, str], float], ControlView]] = {
    "unbound": _view_unbound,
    "nsd": _view_nsd,
    "named": _view_named,
}
