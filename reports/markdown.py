"""``--format markdown``: the incident report, in the order of the seed's own.

The problem seen in the DNS and ICMP traffic (with the packet log in tcpdump notation), when it happened,
how it was found, what was tested, the likely cause, the next steps. Everything from the network is
escaped for Markdown and HTML.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from reports import Document, each
from reports.common import findings, packet_log
from reports.escape import code_span, fence, markdown
from runbook.evidence import CaptureFile, Compared, Resolution, UdpProbe
from runbook.model import Finding


def _when(rfc3339: str) -> str:
    try:
        return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return rfc3339


def _traffic(doc: Document, by_id: Mapping[str, Finding]) -> list[str]:
    """The seed's first paragraph: which query went where, over which protocol, and what came back."""
    target = doc["target"]
    name = markdown(target.get("display_name") or target["name"])
    lines: list[str] = []
    for f in by_id.values():
        ev = f.evidence
        if not isinstance(ev, UdpProbe):
            continue
        said = f"UDP was used to ask the DNS server {markdown(f.server or '')} for the {markdown(target['type'])} "
        said += f"record of {name}."
        if ev.outcome == "icmp" and ev.icmp is not None:
            origin = "the server" if ev.icmp.from_server else markdown(ev.icmp.offender)
            said += (
                f" ICMP was used to respond with an error message: {origin} sent "
                f"*{markdown(ev.icmp.name)}* (type {ev.icmp.type}, code {ev.icmp.code})."
            )
        elif ev.outcome == "answer":
            said += (
                f" The server answered {markdown(ev.rcode)} with flags "
                f"{markdown(' '.join(ev.flags) or 'none')} in {1000 * (ev.rtt_s or 0):.1f} ms."
            )
        elif ev.outcome == "timeout":
            said += f" Nothing came back to {ev.sent or 1} queries: no answer and no ICMP error."
        else:
            said += f" The query could not be sent: {markdown(ev.detail or ev.errno)}."
        lines.append(said)
    return lines


def render(doc: Document) -> str:
    target = doc["target"]
    verdict = doc["verdict"]
    by_id = findings(doc)
    name = markdown(target.get("display_name") or target["name"])
    out: list[str] = [
        f"# DNS incident report: {name}",
        "",
        f"**Verdict:** {code_span(verdict['code'])} — {verdict['status'].upper()}, confidence "
        f"{markdown(verdict['confidence'])}. {markdown(verdict['summary'])}",
        "",
        "## The problem seen in the DNS and ICMP traffic",
        "",
    ]
    out += [*_traffic(doc, by_id), ""] if _traffic(doc, by_id) else ["No UDP probe ran.", ""]
    packets = packet_log(doc, by_id)
    if packets:
        out += [
            "The packet log, as the capture shows it (the lines quoted whole):"
            if doc.get("command") == "analyze"
            else "The packet log, in tcpdump's notation, rebuilt from what the probes sent and received:",
            "",
            fence(packets, "text"),
            "",
        ]
    out += [
        "## When it happened",
        "",
        f"The diagnosis ran at {_when(doc['started_at'])} and took {doc['duration_s']:.2f} s "
        f"(run {code_span(doc['run_id'])}, runbook {markdown(doc['tool_version'])}).",
        "",
        *_window(doc.get("outage")),
        "## How it was found",
        "",
        _how(doc, by_id, name),
        "",
    ]
    out += _tested(doc, by_id)
    out += _answered(by_id)
    out += _cause(verdict)
    out += _verification(doc.get("verification"))
    out += ["", f"Exit code {doc['exit_code']}.", ""]
    return "\n".join(out)


def _how(doc: Document, by_id: Mapping[str, Finding], name: str) -> str:
    target = doc["target"]
    servers = markdown(", ".join(target["servers"]) or "no server")
    if doc.get("command") == "analyze":
        capture = next((f.evidence for f in by_id.values() if isinstance(f.evidence, CaptureFile)), None)
        wait = capture.wait_s if capture and capture.wait_s is not None else "?"
        return (
            f"`runbook analyze` read {markdown(target['servers_from'])}: every query to {servers} matched to its "
            f"answer, to the ICMP error that quotes it, or to nothing within {wait} s; "
            f"{name} ({markdown(target['type'])}) is the name diagnosed."
        )
    return (
        f"`runbook diagnose` queried {name} ({markdown(target['type'])}) through {servers} (from "
        f"{markdown(target['servers_from'])}), ran the steps below concurrently, and read every answer and ICMP "
        "error the kernel reported."
    )


def _tested(doc: Document, by_id: Mapping[str, Finding]) -> list[str]:
    out = ["## What was tested", "", "| step | status | finding |", "|---|---|---|"]
    for step in doc["steps"]:
        if not step["findings"]:
            out.append(f"| {markdown(step['id'])} | {step['status']} | {markdown(step.get('reason') or '')} |")
        for fid in step["findings"]:
            f = by_id[fid]
            out.append(f"| {markdown(step['id'])} | {f.status.value} | {markdown(f.summary)} |")
    return out


def _answered(by_id: Mapping[str, Finding]) -> list[str]:
    """The answers of the configured servers (resolve) and of the references (compare), side by side."""
    answered = [
        (f, f.evidence)
        for f in by_id.values()
        if isinstance(f.evidence, Resolution | Compared) and f.evidence.rcode is not None
    ]
    if not answered:
        return []
    out = [
        "",
        "## What each server answered",
        "",
        "| server | role | rcode | flags | answer |",
        "|---|---|---|---|---|",
    ]
    for f, ev in answered:
        role = ev.role if isinstance(ev, Compared) else "configured"
        values = ", ".join(f"{a.type} {a.value}" for a in ev.answers) or "—"
        out.append(
            f"| {markdown(f.server or '')} | {role} | {markdown(ev.rcode)} | "
            f"{markdown(' '.join(ev.flags))} | {markdown(values)} |"
        )
    return out


def _cause(verdict: Document) -> list[str]:
    out = ["", "## Likely cause", "", markdown(verdict["summary"]), ""]
    for also in verdict.get("also", []):
        out.append(
            f"- Also: {code_span(also['code'])} on {markdown(also.get('server', ''))}: {markdown(also['summary'])}"
        )
    if verdict.get("also"):
        out.append("")
    out += ["## Next steps", ""]
    out += [f"{i}. {_step(step)}" for i, step in enumerate(verdict["next_steps"], 1)]
    return out


def _step(text: str) -> str:
    """Next steps carry commands in backticks: keep those as code spans, escape the rest."""
    pieces = text.split("`")
    return "".join(code_span(p) if i % 2 else markdown(p) for i, p in enumerate(pieces))


def render_all(docs: Sequence[Document]) -> str:
    return each(render, docs, "\n---\n\n")


def _window(outage: Any) -> list[str]:
    """The outage window ``runbook watch`` recorded, in the seed's words ("between 1:24 - 1:28pm")."""
    if not isinstance(outage, dict):
        return []
    start = _when(str(outage.get("first_failure")))
    if outage.get("recovery"):
        span = f"between {start} and {_when(str(outage['recovery']))}"
    else:
        span = f"since {start}, not recovered when the watch ended"
    verdicts = ", ".join(code_span(v) for v in outage.get("verdicts", []))
    return [f"`runbook watch` saw the outage {span} ({verdicts}).", ""]


def _verification(result: Any) -> list[str]:
    if not isinstance(result, dict):
        return []
    out = [
        "",
        "## Verification",
        "",
        f"Run {code_span(result.get('verified_by'))} at {_when(str(result.get('at')))} ran the same runbook again: "
        f"{code_span(result.get('verdict_before'))} then, {code_span(result.get('verdict_now'))} now. "
        + ("**Verified: the failure is gone and nothing regressed.**" if result.get("ok") else "**Not verified.**"),
        "",
    ]
    groups = (("fixed", "Fixed"), ("still_failing", "Still failing"), ("regressed", "Regressed"), ("new", "New"))
    for key, words in groups:
        for item in result.get(key, []):
            before = item.get("before") or "not seen before"
            now = item.get("now") or "no longer seen"
            out.append(f"- {words}: {code_span(item.get('id'))} ({before} → {now}): {markdown(item.get('summary'))}")
    return out
