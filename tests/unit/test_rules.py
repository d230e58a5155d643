"""The rule table: every code has a rule; every rule has evidence that matches it and evidence that
contradicts it, checked through --explain (the same output a user debugging a verdict reads)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reports.prometheus import CODES
from runbook import diagnosis as d
from runbook.evidence import ConfigCheck, ControlView, Daemon, Listener, Load, OomKill
from runbook.facts import HostFacts
from runbook.model import Finding, Server, Status, VerdictCode
from runbook.rules import RULES
from runbook.schema import run_schema
from tests.conftest import finding, validate_document
from tests.unit.dnsserver import closed_port
from tests.unit.test_cli import runbook
from tests.unit.test_diagnosis import (
    ANSWER,
    AUTH_ANSWER,
    FORGED,
    NXDOMAIN_ANSWER,
    RESET,
    S1,
    SERVFAIL,
    TARGET,
    TIMEOUT,
    auth,
    icmp,
    ping,
    resolved,
    tcp,
    udp,
)
from tests.unit.test_diagnosis import site as site_evidence

README = Path(__file__).resolve().parents[2] / "README.md"
NODATA = {**ANSWER, "answers": []}
AUTH_NX = {**NXDOMAIN_ANSWER, "aa": True}
TRUNC = {**NODATA, "tc": True}
TCP_ANSWER = {**ANSWER, "transport": "tcp"}
TCP_HUNG = {"outcome": "timeout", "transport": "tcp", "connect_rtt_s": 0.001}
TCP_TIMEOUT = {"outcome": "timeout", "transport": "tcp"}
PROHIBITED = icmp(3, 13, "198.51.100.1", kind="prohibited", name="admin-prohibited")
HOST_UNREACH = icmp(3, 1, "198.51.100.1", kind="host-unreachable", name="host-unreachable")
EPERM = {"outcome": "local-error", "errno": "EPERM", "detail": "Operation not permitted"}
ENETUNREACH = {"outcome": "local-error", "errno": "ENETUNREACH", "detail": "Network is unreachable"}
OTHER_ICMP = icmp(11, 0, "198.51.100.1", kind="ttl-exceeded", name="ttl-exceeded")
DEAD_AUTH = auth("198.18.53.2", {"outcome": "icmp", "icmp": {"name": "port-unreachable"}}, lame="unreachable")


def udp_with(*attempts: dict[str, Any], **extra: Any) -> Finding:
    f = udp(S1, *attempts)
    return finding(f.id, f.step, f.status, f.summary, {**f.evidence.to_json(), **extra}, server=f.server)


def alive() -> Finding:
    return udp_with(TIMEOUT, TIMEOUT, liveness={"outcome": "answer", "rcode": "REFUSED"})


def firewall(proto: str) -> Finding:
    rule = {"source": "nft", "family": "inet", "table": "filter", "chain": "output", "rule": "udp dport 53 drop"}
    paths = {f"{proto}_query": {"verdict": "drop", "certain": True, "rule": {**rule, "handle": "7"}}}
    return finding(f"firewall/{S1.key}", "firewall", Status.CRITICAL, "", {"paths": paths}, server=S1.label)


def other_resolver(evidence: Mapping[str, Any]) -> Finding:
    return finding(
        "compare/198.51.100.9", "compare", Status.OK, "", {"role": "resolver", **evidence}, server="198.51.100.9:53"
    )


def hosts(address: str) -> Finding:
    entry = {"line": 3, "text": f"{address} yummyrecipesforme.com", "address": address}
    return finding("hostconf/hosts", "hostconf", Status.WARNING, "", {"path": "/etc/hosts", "entries": [entry]})


def site(reachable: bool) -> Finding:
    return finding("web/203.0.113.22", "web", Status.OK, "site", site_evidence("203.0.113.22", reachable))


def burst(degraded: str, loss: float = 0.5) -> dict[str, Any]:
    return {"sent": 10, "received": 5, "loss": loss, "first_answer": ANSWER, "degraded": degraded}


def answering(*extra: Finding, answer: dict[str, Any] = ANSWER) -> list[Finding]:
    return [resolved(S1, answer), udp(S1, answer), tcp(S1, {**answer, "transport": "tcp"}), ping(S1, 3), *extra]


@dataclass
class Case:
    findings: list[Finding]
    servers: tuple[Server, ...] = (S1,)
    options: dict[str, Any] = field(default_factory=dict)


# rule id -> (evidence that matches it, evidence that contradicts it)
CASES: dict[str, tuple[Case, Case]] = {
    "no-resolver": (Case([], servers=()), Case(answering())),
    "local-firewall": (Case([udp(S1, EPERM)]), Case([udp(S1, ANSWER), firewall("udp")])),
    "service-down": (
        Case([udp(S1, icmp(3, 3, S1.host)), tcp(S1, RESET)]),
        Case([udp(S1, icmp(3, 3, "198.51.100.1"))]),
    ),
    "blocked-by-icmp": (Case([udp(S1, PROHIBITED)]), Case([udp(S1, icmp(3, 3, S1.host))])),
    "blocked-tcp-icmp": (
        Case([udp(S1, TIMEOUT), tcp(S1, {**PROHIBITED, "transport": "tcp"})]),
        Case([alive(), tcp(S1, {**PROHIBITED, "transport": "tcp"})]),
    ),
    "filtered-hung-daemon": (
        Case([udp(S1, TIMEOUT), tcp(S1, TCP_HUNG), ping(S1, 3)]),
        Case([alive(), tcp(S1, TCP_HUNG), ping(S1, 3)]),
    ),
    "filtered-drop": (
        Case([udp(S1, TIMEOUT), tcp(S1, TCP_TIMEOUT), ping(S1, 3)]),
        Case([udp(S1, TIMEOUT), tcp(S1, TCP_HUNG), ping(S1, 3)]),
    ),
    "unreachable-icmp": (Case([udp(S1, HOST_UNREACH)]), Case([udp(S1, PROHIBITED)])),
    "unreachable-local-error": (Case([udp(S1, ENETUNREACH)]), Case([udp(S1, EPERM)])),
    "unreachable-tcp-icmp": (
        Case([udp(S1, TIMEOUT), tcp(S1, {**HOST_UNREACH, "transport": "tcp"}), ping(S1, 0)]),
        Case([udp(S1, TIMEOUT), tcp(S1, {**HOST_UNREACH, "transport": "tcp"}), ping(S1, 3)]),
    ),
    "unreachable-silent": (
        Case([udp(S1, TIMEOUT), tcp(S1, TCP_TIMEOUT), ping(S1, 0)]),
        Case([udp(S1, TIMEOUT), tcp(S1, TCP_TIMEOUT), ping(S1, 3)]),
    ),
    "refused": (
        Case([udp(S1, {**ANSWER, "rcode": "REFUSED", "answers": []})]),
        Case([udp(S1, {**ANSWER, "rcode": "REFUSED", "answers": []}, ANSWER)]),
    ),
    "mismatch-by-channel": (
        Case([udp(S1, ANSWER, ANSWER), tcp(S1, {**FORGED, "transport": "tcp"})]),
        Case([udp(S1, ANSWER, FORGED), tcp(S1, {**FORGED, "transport": "tcp"})]),
    ),
    "mismatch-nxdomain-vs-records": (
        Case(answering(auth("198.18.53.2", AUTH_ANSWER), answer=NXDOMAIN_ANSWER)),
        Case(answering(auth("198.18.53.2", AUTH_NX), answer=NXDOMAIN_ANSWER)),
    ),
    "mismatch-made-up-answer": (
        Case(answering(auth("198.18.53.2", AUTH_NX))),
        Case(answering(auth("198.18.53.2", AUTH_NX)), options={"expect": ["203.0.113.22"]}),
    ),
    "mismatch-hidden-records": (
        Case(answering(auth("198.18.53.2", AUTH_ANSWER), answer=NODATA)),
        Case([resolved(S1, TRUNC), udp(S1, TRUNC), auth("198.18.53.2", AUTH_ANSWER)]),
    ),
    "mismatch-expect": (
        Case(answering(), options={"expect": ["198.51.100.66"]}),
        Case(answering(), options={"expect": ["203.0.113.22"]}),
    ),
    "mismatch-authoritative": (
        Case(answering(auth("198.18.53.2", {**AUTH_ANSWER, "answers": FORGED["answers"]}))),
        Case(
            answering(auth("198.18.53.2", {**AUTH_ANSWER, "answers": FORGED["answers"]})),
            options={"expect": ["203.0.113.22"]},
        ),
    ),
    "mismatch-resolvers": (
        Case(answering(other_resolver(FORGED))),
        Case(answering(other_resolver(FORGED), auth("198.18.53.2", AUTH_ANSWER))),
    ),
    "dnssec": (
        Case([resolved(S1, {**SERVFAIL, "cd_retry": ANSWER}), udp(S1, SERVFAIL)]),
        Case([resolved(S1, {**SERVFAIL, "cd_retry": SERVFAIL}), udp(S1, SERVFAIL)]),
    ),
    "servfail-authorities-fail": (
        Case([resolved(S1, SERVFAIL), udp(S1, SERVFAIL), DEAD_AUTH]),
        Case([resolved(S1, {**SERVFAIL, "ede": [{"code": 6, "text": "DNSSEC Bogus"}]}), udp(S1, SERVFAIL), DEAD_AUTH]),
    ),
    "servfail": (
        Case([resolved(S1, SERVFAIL), udp(S1, SERVFAIL), auth("198.18.53.2", AUTH_ANSWER)]),
        Case([resolved(S1, SERVFAIL), udp(S1, SERVFAIL), DEAD_AUTH]),
    ),
    "waiting-upstream": (Case([alive(), DEAD_AUTH]), Case([udp(S1, TIMEOUT, TIMEOUT), DEAD_AUTH])),
    "nxdomain": (
        Case(answering(auth("198.18.53.2", AUTH_NX), answer=NXDOMAIN_ANSWER)),
        Case(answering(answer=NXDOMAIN_ANSWER)),
    ),
    "site-down": (
        Case(answering(site(False)), options={"website": True}),
        Case(answering(site(False))),
    ),
    "hosts-override": (Case(answering(hosts("10.9.9.9"))), Case(answering(hosts("203.0.113.22")))),
    "tcp-blocked-here": (
        Case([udp(S1, ANSWER), tcp(S1, TCP_TIMEOUT), firewall("tcp")]),
        Case([udp(S1, ANSWER), tcp(S1, TCP_TIMEOUT)]),
    ),
    "tcp-fails": (
        Case([udp(S1, ANSWER), tcp(S1, RESET)]),
        Case([udp_with(ANSWER, burst=burst("")), tcp(S1, TCP_TIMEOUT)]),
    ),
    "degraded": (
        Case(answering(udp_with(ANSWER, burst=burst("5/10 answered: 50% lost")))),
        Case(answering(udp_with(ANSWER, burst=burst("", loss=0.0)))),
    ),
    "degraded-tcp-lost": (
        Case([udp_with(ANSWER, burst=burst("")), tcp(S1, TCP_TIMEOUT)]),
        Case([udp_with(ANSWER, burst=burst("5/10 answered: 50% lost")), tcp(S1, TCP_TIMEOUT)]),
    ),
    "nxdomain-unconfirmed": (
        Case(answering(answer=NXDOMAIN_ANSWER)),
        Case(answering(auth("198.18.53.2", AUTH_NX), answer=NXDOMAIN_ANSWER)),
    ),
    "nodata": (
        Case(answering(answer=NODATA)),
        Case(answering(auth("198.18.53.2", AUTH_ANSWER), answer=NODATA)),
    ),
    "other-icmp": (Case([udp(S1, OTHER_ICMP)]), Case([udp(S1, PROHIBITED)])),
    "healthy": (Case(answering()), Case(answering(udp_with(ANSWER, burst=burst("5/10 answered: 50% lost"))))),
    "no-pattern": (Case([udp(S1, {**ANSWER, "rcode": "NOTIMP", "answers": []})]), Case(answering())),
}


A = "203.0.113.2"
UNBOUND = {"name": "unbound", "pid": 10, "cmdline": ["unbound", "-d"], "config": None, "fds": 20, "fd_limit": 1024}


def host(**changes: Any) -> HostFacts:
    """A healthy server's facts, with ``changes``."""
    base: dict[str, Any] = {
        "addresses": (A,),
        "port": 53,
        "daemons": (UNBOUND,),
        "other_namespaces": (),
        "units": (),
        "udp": ({"address": A, "pid": 10, "process": "unbound", "dns_daemon": True},),
        "tcp": ({"address": A, "pid": 10, "process": "unbound", "dns_daemon": True},),
        "invalid_configs": (),
        "load": {"window_s": 2, "udp": {"RcvbufErrors": 0}, "conntrack": {}, "cpu_percent": {}},
        "controls": (),
        "firewall_blocks": (),
        "named": {A: ("unbound",)},
    }
    return HostFacts(**{k: _typed(k, v) for k, v in (base | changes).items()})


_KINDS: dict[str, Any] = {
    "daemons": Daemon,
    "other_namespaces": Daemon,
    "udp": Listener,
    "tcp": Listener,
    "invalid_configs": ConfigCheck,
    "controls": ControlView,
    "oom": OomKill,
}


def _typed(key: str, value: Any) -> Any:
    """The facts as the server's findings give them: their evidence's kinds, from the document's form."""
    if key == "load":
        return Load.from_json(value)
    kind = _KINDS.get(key)
    return tuple(kind.from_json(v) for v in value) if kind else value


LOOPBACK = {
    "udp": ({"address": "127.0.0.1", "pid": 10, "process": "unbound", "dns_daemon": True},),
    "tcp": ({"address": "127.0.0.1", "pid": 10, "process": "unbound", "dns_daemon": True},),
    "named": {A: ()},
}
HOST_CASES: dict[str, tuple[HostFacts, HostFacts]] = {
    "config-invalid": (
        host(
            invalid_configs=(
                {
                    "daemon": "unbound",
                    "config": "/etc/unbound/unbound.conf",
                    "checker": ["unbound-checkconf"],
                    "output": ["syntax error"],
                },
            )
        ),
        host(),
    ),
    "port-taken": (host(udp=({"address": A, "pid": 5, "process": "python3", "dns_daemon": False},)), host()),
    "not-listening": (host(**LOOPBACK), host(**LOOPBACK, daemons=())),
    "not-running": (host(daemons=(), udp=(), tcp=(), named={A: ()}), host(**LOOPBACK)),
    "server-firewall": (host(firewall_blocks=("UDP query in: drop",)), host()),
    "overloaded": (
        host(load={"window_s": 2, "udp": {"RcvbufErrors": 400}, "conntrack": {}, "cpu_percent": {}}),
        # a few datagrams lost to a burst, where thousands came in, are not an overload
        host(load={"window_s": 2, "udp": {"RcvbufErrors": 3, "InDatagrams": 9000}, "conntrack": {}, "cpu_percent": {}}),
    ),
    "host-healthy": (host(), host(tcp=())),
    "host-no-pattern": (host(daemons=(), named={A: ()}), host()),
}


def explained(case: Case | HostFacts, rule: str) -> Mapping[str, Any]:
    if isinstance(case, HostFacts):
        v = d.diagnose_host(case, [], explain=True)
    else:
        v = d.diagnose(TARGET, case.servers, case.findings, explain=True, **case.options)
    return next(e for e in v.explain if e["rule"] == rule)


def test_every_rule_has_cases_and_every_code_a_rule() -> None:
    assert set(CASES) | set(HOST_CASES) == {r.id for r in RULES}
    assert len({r.id for r in RULES}) == len(RULES)
    # step-result is no diagnosis: it is one step's command whose evidence supports none.
    assert {r.code for r in RULES} == set(VerdictCode) - {VerdictCode.STEP_RESULT}


@pytest.mark.parametrize("rule", [r.id for r in RULES])
def test_the_rule_matches_its_evidence_and_not_the_contradicting_one(rule: str) -> None:
    matching, contradicting = CASES[rule] if rule in CASES else HOST_CASES[rule]
    hit = explained(matching, rule)
    assert hit["matched"], hit
    assert all(t["holds"] for t in hit["needs"]) and not any(t["holds"] for t in hit["unless"])
    miss = explained(contradicting, rule)
    assert not miss["matched"], miss


def test_rules_of_one_code_share_its_status() -> None:
    for rule in RULES:
        assert d.STATUS[rule.code] == rule.status, rule.id


def test_one_enum_feeds_the_rules_the_prometheus_writer_and_the_schema() -> None:
    enum = run_schema()["properties"]["verdict"]["properties"]["code"]["enum"]
    assert set(enum) == {c.value for c in VerdictCode} == set(CODES) == set(d.STATUS)


def test_the_readmes_verdict_table_is_the_rule_table() -> None:
    """The README lists every code, with the status the table gives it, in the table's order."""
    rows = re.findall(r"^\| `([a-z0-9-]+)` \| ([a-z' ]+) \|", README.read_text(), re.M)
    table = [(c.value, "the step's" if c is VerdictCode.STEP_RESULT else s.value) for c, s in d.PRECEDENCE]
    assert rows == table


def test_explain_quotes_the_evidence_seen() -> None:
    hit = explained(Case([udp(S1, icmp(3, 3, S1.host)), tcp(S1, RESET)]), "service-down")
    seen = [t["seen"] for t in hit["needs"] if t.get("seen")]
    assert any("port-unreachable from 203.0.113.2" in s for s in seen)


def test_a_server_with_two_problems_reports_both() -> None:
    """Every rule that matched goes to also: a resolver that answers NXDOMAIN where the zone has records, and
    whose TCP port is closed."""
    found = [
        *answering(auth("198.18.53.2", AUTH_ANSWER), answer=NXDOMAIN_ANSWER)[:2],
        tcp(S1, RESET),
        ping(S1, 3),
        auth("198.18.53.2", AUTH_ANSWER),
    ]
    v = d.diagnose(TARGET, (S1,), found)
    assert v.code == "dns-answer-mismatch"
    assert [a["code"] for a in v.also] == ["tcp-fallback-blocked"]
    assert Status(v.status) is Status.CRITICAL


def test_explain_in_text_and_json_from_the_command_line() -> None:
    """`runbook diagnose --explain` on a closed loopback port: the text names the rule that matched with its
    evidence, and the JSON carries every rule, valid against the schema."""
    port = closed_port()
    args = (
        "diagnose",
        "example.test",
        "--server",
        f"127.0.0.1:{port}",
        "--skip",
        "web",
        "--skip",
        "firewall",
        "--timeout",
        "1",
        "--no-record",
        "--explain",
    )
    text = runbook(*args)
    assert text.returncode == 2, text.stderr
    assert "Explain (every rule, in precedence order)" in text.stdout
    assert "✓ service-down (dns-service-down)  matched" in text.stdout
    assert "port-unreachable from 127.0.0.1" in text.stdout
    doc = json.loads(runbook(*args, "--format", "json").stdout)
    validate_document(doc)
    rules = {(e["rule"], e["server"]): e for e in doc["verdict"]["explain"]}
    assert rules[("service-down", f"127.0.0.1:{port}")]["matched"]
    assert {r.id for r in RULES if r.scope != "host"} == {rule for rule, _ in rules}


def test_a_resolver_claiming_authority_for_a_zone_served_elsewhere_is_said() -> None:
    forged_aa = {**FORGED, "aa": True}
    found = [resolved(S1, forged_aa), udp(S1, forged_aa), tcp(S1, forged_aa), auth("198.18.53.2", AUTH_ANSWER)]
    v = d.diagnose(TARGET, (S1,), found)
    assert v.code == "dns-answer-mismatch"
    assert "answers with authority (AA) although the zone's servers are 198.18.53.2:53" in v.summary
    # Without AA, or when the server is one of the zone's own, nothing is claimed.
    plain = d.diagnose(TARGET, (S1,), [resolved(S1, FORGED), udp(S1, FORGED), auth("198.18.53.2", AUTH_ANSWER)])
    assert "authority (AA)" not in plain.summary


def test_the_daemons_own_view_of_a_full_request_list_is_overload_and_servfails_are_not() -> None:
    full = {"daemon": "unbound", "signs": ["its request list was full: 812 queries dropped in 2 s"]}
    servfail = {"daemon": "unbound", "signs": [], "warnings": ["40 of 50 answers were SERVFAIL"]}
    assert d.diagnose_host(host(controls=(full,)), []).code == "server-overloaded"
    assert d.diagnose_host(host(controls=(servfail,)), []).code == "healthy"


def test_a_daemons_processes_are_known_by_the_names_they_give_themselves() -> None:
    """NSD titles its processes "nsd: main", "nsd: server 1": its listener is the daemon, not a stranger holding
    port 53 (a false port-53-taken, seen on the lab's authoritative host)."""
    from checks.host import dns_name

    assert dns_name("nsd: server 1") == dns_name("nsd: main") == "nsd"
    assert dns_name("named") == "named" and dns_name("python3", ["/usr/sbin/unbound", "-d"]) == "unbound"
    assert dns_name("python3", ["python3", "-c", "bind port 53"]) is None


def test_a_daemon_the_oom_killer_took_is_said_in_the_verdict() -> None:
    gone = host(daemons=(), udp=(), tcp=(), named={A: ()}, oom=({"pid": 812, "name": "unbound", "line": "..."},))
    verdict = d.diagnose_host(gone, [])
    assert verdict.code == "daemon-not-running" and "OOM killer killed unbound (pid 812)" in verdict.summary


def test_drops_at_another_udp_service_are_not_the_dns_servers_overload() -> None:
    """The namespace's RcvbufErrors count every UDP socket; the DNS port's own sockets dropped nothing."""
    elsewhere = {"window_s": 2, "udp": {"RcvbufErrors": 5000, "InDatagrams": 9000}, "port_drops": 0}
    assert d.diagnose_host(host(load=elsewhere), []).code == "healthy"
    here = {**elsewhere, "port_drops": 4000}
    verdict = d.diagnose_host(host(load=here), [])
    assert verdict.code == "server-overloaded" and "4000 UDP datagrams at port 53" in verdict.summary
