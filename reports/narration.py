"""The lines the CLI prints between reports: `watch`'s changes and outage windows, `verify --config`'s
verdict per target, `demo`'s epilogue. Pure functions of run documents and windows; the untrusted parts
(names, summaries) escaped for the terminal like every other renderer's."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from reports.escape import terminal


def clock(rfc3339: object) -> str:
    """``13:24:32`` in local time, from an RFC 3339 stamp of the document ("?" when there is none)."""
    if not isinstance(rfc3339, str):
        return "?"
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).astimezone().strftime("%H:%M:%S")


def watch_change(doc: Mapping[str, Any]) -> str:
    """A run of `watch` whose verdict differs from the one before."""
    v = doc["verdict"]
    return f"{clock(doc['started_at'])} {v['status'].upper()} {v['code']} ({doc['run_id']}): {terminal(v['summary'])}\n"


def outage_closed(window: Mapping[str, Any], display: str) -> str:
    return (
        f"outage of {terminal(display)}: between {clock(window['first_failure'])} and {clock(window['recovery'])} "
        f"({', '.join(window['verdicts'])})\n"
    )


def outage_open(window: Mapping[str, Any], display: str, now: float | None = None) -> str:
    stamp = datetime.fromtimestamp(time.time() if now is None else now).strftime("%H:%M:%S")
    return f"outage of {terminal(display)} since {clock(window['first_failure'])}, still going at {stamp}\n"


def verdicts_against_expected(docs: Sequence[Mapping[str, Any]], expected: Sequence[str]) -> str:
    """`verify --config`: each target's verdict against the one its config expects."""
    lines = []
    for doc, want in zip(docs, expected, strict=True):
        code = doc["verdict"]["code"]
        ok = code == want
        name = terminal(doc["target"].get("display_name") or doc["target"]["name"])
        lines.append(
            f"{'ok  ' if ok else 'FAIL'} {name}: {code}{'' if ok else f' (expected {want})'}: "
            f"{terminal(doc['verdict']['summary'])}\n"
        )
    return "".join(lines)


def demo_epilogue(name: str, what: str, command: str) -> str:
    """After `runbook demo NAME`: what ran, and the same diagnosis as a user would type it."""
    return (
        f"\nThis was `runbook demo {name}`: {what}. The demo's servers ran on loopback; the same diagnosis was "
        f"`{command}`.\nOn a real name, with the servers of /etc/resolv.conf: `runbook diagnose "
        "yummyrecipesforme.com` (add --format markdown for the incident report).\n"
    )
