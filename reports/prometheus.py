"""``--format prometheus``: the text exposition format, through prometheus_client.

blackbox_exporter's names where the meaning is the same (``probe_success``, ``probe_duration_seconds``,
``probe_dns_lookup_time_seconds``, ``probe_dns_answer_rrs``, ``probe_dns_serial``...), labelled by target
and server; and the runbook's own: ``runbook_verdict{code}`` (1 for the verdict, 0 for every other code, so
that alerts can match on the code), ``runbook_exit_code``, ``runbook_step_status``, the burst's loss and
median answer time. Fit for node_exporter's textfile collector (the CLI writes --output atomically).
"""

from __future__ import annotations

from collections.abc import Sequence

from reports import Document
from runbook.model import VerdictCode

# One enum of codes for the rule table, this writer and the JSON Schema (tests/unit/test_rules.py).
CODES = tuple(code.value for code in VerdictCode)
RCODES = {"NOERROR": 0, "FORMERR": 1, "SERVFAIL": 2, "NXDOMAIN": 3, "NOTIMP": 4, "REFUSED": 5}


def render_all(docs: Sequence[Document]) -> str:
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    registry = CollectorRegistry()

    def gauge(name: str, doc: str, labels: Sequence[str]) -> Gauge:
        return Gauge(name, doc, list(labels), registry=registry)

    success = gauge("probe_success", "Whether DNS works (the verdict is ok or a warning)", ["target"])
    duration = gauge("probe_duration_seconds", "How long the runbook took", ["target"])
    lookup = gauge("probe_dns_lookup_time_seconds", "Time of the UDP query of the udp53 step", ["target", "server"])
    rrs = gauge("probe_dns_answer_rrs", "Records in the answer", ["target", "server"])
    rcode = gauge(
        "probe_dns_rcode",
        "The rcode of the answer (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED)",
        ["target", "server"],
    )
    serial = gauge("probe_dns_serial", "The zone's SOA serial on an authoritative server", ["target", "server"])
    verdict = gauge("runbook_verdict", "1 for the run's verdict code, 0 for the others", ["target", "code"])
    exit_code = gauge("runbook_exit_code", "The Nagios exit code of the run", ["target"])
    step = gauge("runbook_step_status", "1 for each step's status", ["target", "step", "status"])
    loss = gauge("runbook_dns_loss_ratio", "Share of the burst's queries left unanswered", ["target", "server"])
    median = gauge("runbook_dns_rtt_median_seconds", "Median answer time of the burst", ["target", "server"])
    up = gauge("runbook_server_up", "1 when the server's host answered ping or a TCP connect", ["target", "server"])

    for doc in docs:
        target = str(doc["target"]["name"]).rstrip(".") or "."
        v = doc["verdict"]
        success.labels(target).set(1 if v["status"] in ("ok", "warning") else 0)
        duration.labels(target).set(doc["duration_s"])
        exit_code.labels(target).set(doc["exit_code"])
        for code in CODES:
            verdict.labels(target, code).set(1 if code == v["code"] else 0)
        for s in doc["steps"]:
            step.labels(target, s["id"], s["status"]).set(1)
        for f in doc["findings"]:
            ev = f.get("evidence", {})
            server = str(f.get("server", ""))
            if f["step"] == "udp53":
                if ev.get("outcome") == "answer":
                    lookup.labels(target, server).set(ev.get("rtt_s") or 0)
                    rrs.labels(target, server).set(len(ev.get("answers", [])))
                    rcode.labels(target, server).set(RCODES.get(str(ev.get("rcode")), -1))
                burst = ev.get("burst")
                if isinstance(burst, dict):
                    loss.labels(target, server).set(burst.get("loss", 0))
                    if burst.get("rtt_median_s") is not None:
                        median.labels(target, server).set(burst["rtt_median_s"])
            elif f["step"] == "compare" and ev.get("soa_serial") is not None:
                serial.labels(target, server).set(ev["soa_serial"])
            elif f["step"] == "ping":
                up.labels(target, server).set(1 if ev.get("received") else 0)
    return generate_latest(registry).decode()
