"""Proof after an incident: a run compared with a later run of the same target, finding by finding. Pure.

fixed           bad before (warning, critical, unknown, error), ok now
still failing   bad before and bad now
regressed       ok (or absent) before, bad now
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

BAD = frozenset({"warning", "critical", "unknown", "error"})


def compare_runs(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    old = {f["id"]: f for f in before["findings"]}
    new = {f["id"]: f for f in after["findings"]}
    fixed: list[dict[str, Any]] = []
    failing: list[dict[str, Any]] = []
    regressed: list[dict[str, Any]] = []
    for fid, f in new.items():
        was = old.get(fid)
        if f["status"] in BAD:
            (failing if was is not None and was["status"] in BAD else regressed).append(
                {"id": fid, "before": was["status"] if was else None, "now": f["status"], "summary": f["summary"]}
            )
        elif was is not None and was["status"] in BAD:
            fixed.append({"id": fid, "before": was["status"], "now": f["status"], "summary": f["summary"]})
    for fid, was in old.items():
        if fid not in new and was["status"] in BAD:
            fixed.append({"id": fid, "before": was["status"], "now": None, "summary": "no longer seen"})
    healthy = after["verdict"]["code"] == "healthy"
    ok = healthy and not regressed
    return {
        "run_id": before["run_id"],
        "verified_by": after["run_id"],
        "at": after["started_at"],
        "verdict_before": before["verdict"]["code"],
        "verdict_now": after["verdict"]["code"],
        "fixed": fixed,
        "still_failing": failing,
        "regressed": regressed,
        "ok": ok,
        "exit_code": 0 if ok else (after["exit_code"] or 1),
    }


def describe(result: Mapping[str, Any]) -> list[str]:
    lines = [f"verdict: {result['verdict_before']} -> {result['verdict_now']}"]
    for key, words in (("fixed", "fixed"), ("still_failing", "still failing"), ("regressed", "regressed")):
        for item in result[key]:
            lines.append(f"{words}: {item['id']} ({item['before']} -> {item['now']}): {item['summary']}")
    lines.append("VERIFIED: the failure is gone and nothing regressed" if result["ok"] else "NOT VERIFIED")
    return lines
