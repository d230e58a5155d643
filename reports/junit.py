"""``--format junit``: what CI systems read. One testsuite per target, one testcase per step (and one for the
verdict), failures carrying the findings' summaries. Built with ElementTree, never with string formatting;
shaped by the Ant JUnit schema CI tools accept (testsuites/testsuite with id, package, hostname, a
timezone-less timestamp, properties, system-out and system-err)."""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import datetime

from reports import Document
from reports.escape import terminal

_FAILING = {"critical", "unknown"}


def render_all(docs: Sequence[Document]) -> str:
    root = ET.Element("testsuites", {"name": "runbook"})
    host = socket.gethostname() or "localhost"
    for i, doc in enumerate(docs):
        root.append(_suite(doc, i, host))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _suite(doc: Document, index: int, host: str) -> ET.Element:
    target = doc["target"]
    name = _clean(target.get("display_name") or target["name"])
    by_id = {f["id"]: f for f in doc["findings"]}
    stamp = datetime.fromisoformat(doc["started_at"].replace("Z", "+00:00")).strftime("%Y-%m-%dT%H:%M:%S")
    suite = ET.Element(
        "testsuite",
        {
            "name": name,
            "package": "runbook",
            "id": str(index),
            "hostname": host,
            "timestamp": stamp,
            "time": f"{doc['duration_s']:.6f}",
        },
    )
    props = ET.SubElement(suite, "properties")
    verdict = doc["verdict"]
    for key, value in (
        ("run_id", doc["run_id"]),
        ("verdict", verdict["code"]),
        ("status", verdict["status"]),
        ("confidence", verdict["confidence"]),
        ("type", target["type"]),
        ("servers", ", ".join(target["servers"])),
        ("exit_code", str(doc["exit_code"])),
    ):
        ET.SubElement(props, "property", {"name": key, "value": _clean(value)})
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for step in doc["steps"]:
        counts["tests"] += 1
        outcome = _step_case(suite, step, [by_id[i] for i in step["findings"] if i in by_id], name)
        if outcome:
            counts[outcome] += 1
    counts["tests"] += 1
    case = ET.SubElement(suite, "testcase", {"name": "verdict", "classname": f"runbook.{name}", "time": "0"})
    if verdict["status"] in _FAILING:
        counts["failures"] += 1
        fail = ET.SubElement(case, "failure", {"type": verdict["code"], "message": _clean(verdict["summary"])})
        fail.text = _lines(list(verdict["next_steps"]))
    for key, value in counts.items():
        suite.set(key, str(value))
    out = ET.SubElement(suite, "system-out")
    out.text = _clean(f"{verdict['code']}: {verdict['summary']}")
    ET.SubElement(suite, "system-err")
    return suite


def _step_case(suite: ET.Element, step: Document, findings: list[Document], name: str) -> str | None:
    """One step as a testcase; what it counts as (``failures``, ``errors``, ``skipped``), or None if it passed."""
    case = ET.SubElement(
        suite,
        "testcase",
        {"name": step["id"], "classname": f"runbook.{name}", "time": f"{step.get('duration_s', 0):.6f}"},
    )
    bad = [f for f in findings if f["status"] in _FAILING]
    if step["status"] == "skipped":
        ET.SubElement(case, "skipped", {"message": _clean(step.get("reason") or "skipped")})
        return "skipped"
    if step["status"] == "error":
        message = _clean(findings[0]["summary"] if findings else step.get("reason", ""))
        err = ET.SubElement(case, "error", {"type": "error", "message": message})
        err.text = _lines([f["summary"] for f in findings])
        return "errors"
    if bad:
        fail = ET.SubElement(case, "failure", {"type": bad[0]["status"], "message": _clean(bad[0]["summary"])})
        fail.text = _lines([f"{f['id']}: {f['summary']}" for f in bad])
        return "failures"
    return None


def _clean(value: object) -> str:
    """Text fit for XML 1.0: no control characters (they are shown escaped, as on a terminal)."""
    return terminal(value)


def _lines(lines: list[str]) -> str:
    """A failure body: the lines joined by real newlines, each line cleaned (its own newlines escaped)."""
    return "\n".join(_clean(line) for line in lines)
