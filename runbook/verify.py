"""Proof after an incident: a run compared with a later run of the same target, finding by finding. Pure.

fixed           bad before (warning, critical, unknown, error), ok now (or no longer seen)
still failing   bad before and bad now
regressed       ok before, bad now: blocks the verification
new             not seen before (its step could not run then, or did not exist), bad now: shown, not
                blocking by itself — whatever it costs is in the new verdict, which must be healthy
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

BAD = frozenset({"warning", "critical", "unknown", "error"})


def compare_runs(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    old = {f["id"]: f for f in before["findings"]}
    new = {f["id"]: f for f in after["findings"]}
    fixed: list[dict[str, Any]] = []
    failing: list[dict[str, Any]] = []
    regressed: list[dict[str, Any]] = []
    appeared: list[dict[str, Any]] = []
    for fid, f in new.items():
        was = old.get(fid)
        if f["status"] in BAD:
            bucket = appeared if was is None else failing if was["status"] in BAD else regressed
            bucket.append(
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
        "new": appeared,
        "ok": ok,
        "exit_code": 0 if ok else (after["exit_code"] or 1),
    }


def describe(result: Mapping[str, Any]) -> list[str]:
    lines = [f"verdict: {result['verdict_before']} -> {result['verdict_now']}"]
    groups = (("fixed", "fixed"), ("still_failing", "still failing"), ("regressed", "regressed"), ("new", "new"))
    for key, words in groups:
        for item in result.get(key, ()):
            before = item["before"] or "not seen before"
            now = item["now"] or "no longer seen"
            lines.append(f"{words}: {item['id']} ({before} -> {now}): {item['summary']}")
    lines.append("VERIFIED: the failure is gone and nothing regressed" if result["ok"] else "NOT VERIFIED")
    return lines


def expected_verdicts(docs: Sequence[Mapping[str, Any]], expected: Sequence[str]) -> int:
    """`verify --config`: 0 when every target's verdict is the one its config expects, else 2."""
    mismatches = sum(doc["verdict"]["code"] != want for doc, want in zip(docs, expected, strict=True))
    return 2 if mismatches else 0
