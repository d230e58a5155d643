"""``--format prometheus``: the text exposition format, through prometheus_client.

blackbox_exporter's names where the meaning is the same (``probe_success``, ``probe_duration_seconds``,
``probe_dns_lookup_time_seconds``, ``probe_dns_answer_rrs``, ``probe_dns_serial``...), labelled by target
and server; and the runbook's own: ``runbook_verdict{code}`` (1 for the verdict, 0 for every other code, so
that alerts can match on the code), ``runbook_exit_code``, ``runbook_step_status``, the burst's loss and
median answer time. Fit for node_exporter's textfile collector (the CLI writes --output atomically).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from reports import Document
from reports.common import findings
from runbook.evidence import Compared, Ping, UdpProbe
from runbook.model import VerdictCode

# One enum of codes for the rule table, this writer and the JSON Schema (tests/unit/test_rules.py).
CODES = tuple(code.value for code in VerdictCode)
RCODES = {"NOERROR": 0, "FORMERR": 1, "SERVFAIL": 2, "NXDOMAIN": 3, "NOTIMP": 4, "REFUSED": 5}


_GAUGES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("probe_success", "Whether DNS works (the verdict is ok or a warning)", ("target",)),
    ("probe_duration_seconds", "How long the runbook took", ("target",)),
    ("probe_dns_lookup_time_seconds", "Time of the UDP query of the udp53 step", ("target", "server")),
    ("probe_dns_answer_rrs", "Records in the answer", ("target", "server")),
    ("probe_dns_rcode", "The rcode of the answer (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED)", ("target", "server")),
    ("probe_dns_serial", "The zone's SOA serial on an authoritative server", ("target", "server")),
    ("runbook_verdict", "1 for the run's verdict code, 0 for the others", ("target", "code")),
    ("runbook_exit_code", "The Nagios exit code of the run", ("target",)),
    ("runbook_step_status", "1 for each step's status", ("target", "step", "status")),
    ("runbook_dns_loss_ratio", "Share of the burst's queries left unanswered", ("target", "server")),
    ("runbook_dns_rtt_median_seconds", "Median answer time of the burst", ("target", "server")),
    ("runbook_server_up", "1 when the server's host answered ping or a TCP connect", ("target", "server")),
)


def render_all(docs: Sequence[Document]) -> str:
    """The documents' metrics, through prometheus_client's exposition. Metric families are built for this
    one answer (a collector, not a registry of live gauges: an exporter renders one per probe)."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import GaugeMetricFamily

    families = {name: GaugeMetricFamily(name, doc, labels=labels) for name, doc, labels in _GAUGES}
    for doc in docs:
        _samples(doc, lambda name, labels, value: families[name].add_metric(labels, value))

    class _Collector:
        def collect(self) -> list[GaugeMetricFamily]:
            return list(families.values())

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector())
    return generate_latest(registry).decode()


def _samples(doc: Document, add: Callable[[str, list[str], float], None]) -> None:
    target = str(doc["target"]["name"]).rstrip(".") or "."
    v = doc["verdict"]
    add("probe_success", [target], 1 if v["status"] in ("ok", "warning") else 0)
    add("probe_duration_seconds", [target], doc["duration_s"])
    add("runbook_exit_code", [target], doc["exit_code"])
    for code in CODES:
        add("runbook_verdict", [target, code], 1 if code == v["code"] else 0)
    for s in doc["steps"]:
        add("runbook_step_status", [target, s["id"], s["status"]], 1)
    for f in findings(doc).values():
        ev, server = f.evidence, f.server or ""
        if isinstance(ev, UdpProbe):
            _udp_samples(target, server, ev, add)
        elif isinstance(ev, Compared) and ev.soa_serial is not None:
            add("probe_dns_serial", [target, server], ev.soa_serial)
        elif isinstance(ev, Ping):
            add("runbook_server_up", [target, server], 1 if ev.received else 0)


def _udp_samples(target: str, server: str, ev: UdpProbe, add: Callable[[str, list[str], float], None]) -> None:
    if ev.answered:
        add("probe_dns_lookup_time_seconds", [target, server], ev.rtt_s or 0)
        add("probe_dns_answer_rrs", [target, server], len(ev.answers))
        add("probe_dns_rcode", [target, server], RCODES.get(str(ev.rcode), -1))
    if ev.burst is not None:
        add("runbook_dns_loss_ratio", [target, server], ev.burst.loss)
        if ev.burst.rtt_median_s is not None:
            add("runbook_dns_rtt_median_seconds", [target, server], ev.burst.rtt_median_s)
