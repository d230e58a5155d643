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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runbook.model import Finding, Status

TIMEOUT = 3.0


@dataclass(frozen=True)
class Channel:
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


def read(daemons: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """One reading of each daemon's channel, by pid: its values, or why there are none."""
    readings = {}
    for d in daemons:
        channel = CHANNELS.get(d["name"])
        if channel is None:
            continue
        conf = d.get("config")
        off = channel.off(conf)
        if off is not None:
            readings[d["pid"]] = {"skipped": off}
        elif shutil.which(channel.tool) is None:
            readings[d["pid"]] = {"skipped": f"{channel.tool} is not installed"}
        else:
            readings[d["pid"]] = _ask(channel, conf)
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
    daemons: list[dict[str, Any]],
    before: Mapping[int, dict[str, Any]],
    after: Mapping[int, dict[str, Any]],
    window: float,
) -> list[Finding]:
    out = []
    count = Counter(d["name"] for d in daemons)
    for d in daemons:
        if d["pid"] not in after:
            continue
        name, first, last = d["name"], before.get(d["pid"], {}), after[d["pid"]]
        key = f"control/{name}" + (f"/{d['pid']}" if count[name] > 1 else "")  # two instances: one finding each
        if "skipped" in last:
            out.append(Finding(key, "control", Status.SKIPPED, f"{name}: {last['skipped']}", {}))
            continue
        if "error" in last:
            evidence = {"daemon": name, "command": last["command"], "error": last["error"]}
            summary = f"{name}: `{' '.join(last['command'])}` failed: {last['error']}"
            out.append(Finding(key, "control", Status.UNKNOWN, summary, evidence))
            continue
        view = VIEWS.get(name, _view_status)(first.get("values", {}), last["values"], window)
        evidence = {"daemon": name, "command": last["command"], **view}
        status = Status.WARNING if view.get("signs") or view.get("warnings") else Status.OK
        out.append(Finding(key, "control", status, f"{name}: {view['words']}", evidence))
    return out


def _delta(first: Mapping[str, str], last: Mapping[str, str], key: str) -> int | None:
    try:
        return int(float(last[key])) - int(float(first.get(key, last[key])))
    except (KeyError, ValueError):
        return None


def _view_unbound(first: Mapping[str, str], last: Mapping[str, str], window: float) -> dict[str, Any]:
    queries = _delta(first, last, "total.num.queries") or 0
    servfail = _delta(first, last, "num.answer.rcode.SERVFAIL") or 0
    exceeded = _delta(first, last, "total.requestlist.exceeded") or 0
    current = last.get("total.requestlist.current.all")
    view: dict[str, Any] = {
        "window_s": window,
        "queries_per_s": round(queries / window, 1),
        "servfail_share": round(servfail / queries, 3) if queries else None,
        "requestlist_exceeded": exceeded,
        "requestlist_current": int(float(current)) if current else None,
        "uptime_s": _number(last.get("time.up")),
    }
    view["signs"] = [f"its request list was full: {exceeded} queries dropped in {window:g} s"] if exceeded > 0 else []
    # Not overload: upstream trouble, or validation failing; worth a warning of its own.
    view["warnings"] = (
        [f"{servfail} of {queries} answers were SERVFAIL"] if queries >= 20 and servfail / queries > 0.5 else []
    )
    words = f"{view['queries_per_s']:.0f} queries/s over {window:g} s, {servfail} SERVFAIL"
    view["words"] = words + (f", {exceeded} dropped for a full request list" if exceeded else "")
    return view


def _view_nsd(first: Mapping[str, str], last: Mapping[str, str], window: float) -> dict[str, Any]:
    queries = _delta(first, last, "num.queries") or 0
    servfail = _delta(first, last, "num.rcode.SERVFAIL") or 0
    dropped = _delta(first, last, "num.dropped") or 0
    view: dict[str, Any] = {
        "window_s": window,
        "queries_per_s": round(queries / window, 1),
        "servfail_share": round(servfail / queries, 3) if queries else None,
        "dropped": dropped,
        "signs": [],
    }
    view["words"] = f"{view['queries_per_s']:.0f} queries/s over {window:g} s, {servfail} SERVFAIL, {dropped} dropped"
    return view


def _view_named(_first: Mapping[str, str], last: Mapping[str, str], _window: float) -> dict[str, Any]:
    """``rndc status``: ``recursive clients: 12/900/1000`` is in use / soft limit / hard limit."""
    view: dict[str, Any] = {"status": {k: v for k, v in last.items() if len(k) < 60}, "signs": []}
    for key in ("recursive clients", "tcp clients"):
        numbers = [int(n) for n in re.findall(r"\d+", last.get(key, ""))]
        if len(numbers) >= 2 and numbers[-1] and numbers[0] >= 0.9 * numbers[-1]:
            view["signs"].append(f"{key} {last[key]}: at its limit")
    view["words"] = "; ".join(f"{k} {last[k]}" for k in ("server is up and running", "recursive clients") if k in last)
    view["words"] = view["words"] or "rndc status answered"
    return view


def _view_status(_first: Mapping[str, str], last: Mapping[str, str], _window: float) -> dict[str, Any]:
    return {"status": dict(last), "signs": [], "words": next(iter(last.values()), "") or "answers"}


def _number(text: str | None) -> float | None:
    try:
        return round(float(text), 3) if text is not None else None
    except ValueError:
        return None


VIEWS: dict[str, Callable[[Mapping[str, str], Mapping[str, str], float], dict[str, Any]]] = {
    "unbound": _view_unbound,
    "nsd": _view_nsd,
    "named": _view_named,
}
