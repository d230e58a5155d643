"""End to end: real daemons, real failures, the verdict a user would read.

Each test creates the condition for real (a stopped daemon, an nftables rule, a link down) in the lab's
namespaces, runs ``runbook diagnose`` in the client namespace as a user would, and checks the verdict, its
key evidence and the exit code.
"""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import validate_document
from tests.lab.lab import (
    AUTH,
    RESOLVER,
    RESOLVER2,
    ROUTER_CLIENT_SIDE,
    ROUTER_SERVER_SIDE,
    WEB_ADDRESS,
    ZONE,
    Lab,
)

FAST = ("--timeout", "1")


def ruleset(hook: str, rule: str) -> str:
    """An nftables table ``rbk`` with one base chain on ``hook`` holding ``rule``."""
    return f"table inet rbk {{ chain {hook} {{ type filter hook {hook} priority 0; {rule}; }}; }}\n"


def finding(doc: dict[str, Any], fid: str) -> dict[str, Any]:
    return next(f for f in doc["findings"] if f["id"] == fid)


def test_healthy_resolver_gives_healthy_and_exit_0(lab: Lab) -> None:
    doc, proc = lab.diagnose(*FAST)
    validate_document(doc)
    assert proc.returncode == 0, proc.stderr
    assert doc["verdict"]["code"] == "healthy"
    assert WEB_ADDRESS in doc["verdict"]["summary"]
    udp = finding(doc, f"udp53/{RESOLVER}")["evidence"]
    assert udp["outcome"] == "answer" and udp["rcode"] == "NOERROR"
    assert udp["ra"] is True and udp["tc"] is False
    assert finding(doc, f"tcp53/{RESOLVER}")["evidence"]["outcome"] == "answer"
    assert finding(doc, "resolve/system")["evidence"]["addresses"] == [WEB_ADDRESS]
    assert doc["target"]["servers_from"] == "/etc/resolv.conf"


def test_stopped_daemon_is_the_seeds_incident(lab: Lab) -> None:
    with lab.stopped("unbound"):
        doc, proc = lab.diagnose(*FAST)
        markdown = lab.runbook("diagnose", "yummyrecipesforme.com", "--format", "markdown", *FAST).stdout
    validate_document(doc)
    assert proc.returncode == 2
    verdict = doc["verdict"]
    assert verdict["code"] == "dns-service-down" and verdict["confidence"] == "high"
    icmp = finding(doc, f"udp53/{RESOLVER}")["evidence"]["icmp"]
    assert (icmp["type"], icmp["code"], icmp["offender"], icmp["from_server"]) == (3, 3, RESOLVER, True)
    assert finding(doc, f"tcp53/{RESOLVER}")["evidence"]["outcome"] == "reset"
    assert finding(doc, f"ping/{RESOLVER}")["evidence"]["received"] >= 1
    assert "nothing listens" in verdict["summary"]
    # The seed's own lines, rebuilt: the query and the ICMP error, in tcpdump notation.
    assert "> 203.0.113.2.53: " in markdown and "A? yummyrecipesforme.com. (39)" in markdown
    assert f"IP {RESOLVER} > 198.51.100.15: ICMP {RESOLVER} udp port 53 unreachable, length 75" in markdown
    # The ICMP error arrives in a millisecond: nothing waits for a timer.
    assert doc["duration_s"] < 0.9


def test_reject_rule_on_server_is_told_apart_from_a_stopped_daemon(lab: Lab) -> None:
    rules = ruleset("input", "meta l4proto { tcp, udp } th dport 53 reject")
    with lab.nft(lab.dns, rules):
        doc, proc = lab.diagnose(*FAST)
    validate_document(doc)
    assert proc.returncode == 2
    assert doc["verdict"]["code"] == "dns-service-down"
    assert finding(doc, f"tcp53/{RESOLVER}")["evidence"]["outcome"] == "icmp"
    assert "reject" in doc["verdict"]["summary"]


def test_server_dropping_port_53_is_port_filtered(lab: Lab) -> None:
    rules = ruleset("input", "meta l4proto { tcp, udp } th dport 53 drop")
    with lab.nft(lab.dns, rules):
        doc, proc = lab.diagnose(*FAST)
    validate_document(doc)
    assert proc.returncode == 2
    assert doc["verdict"]["code"] == "dns-port-filtered"
    udp = finding(doc, f"udp53/{RESOLVER}")["evidence"]
    assert udp["outcome"] == "timeout" and udp["sent"] >= 2 and udp["icmp"] is None
    assert finding(doc, f"ping/{RESOLVER}")["evidence"]["received"] >= 1
    # Timeouts of concurrent steps overlap: the run takes about one budget, not the sum of them.
    assert doc["duration_s"] < 1 + 0.5


def test_hung_daemon_is_told_apart_from_a_firewall(lab: Lab) -> None:
    with lab.paused("unbound"):
        doc, proc = lab.diagnose(*FAST)
        probe = lab.runbook("probe", ZONE, "--server", RESOLVER, "--format", "json", *FAST)
    validate_document(doc)
    assert proc.returncode == 2
    assert doc["verdict"]["code"] == "dns-port-filtered"
    tcp = finding(doc, f"tcp53/{RESOLVER}")["evidence"]
    assert tcp["outcome"] == "timeout" and tcp["connect_rtt_s"] is not None
    assert "listens but does not serve" in doc["verdict"]["summary"]
    # `runbook probe` alone (no ping) agrees: the completed handshake proves the host up.
    alone = validate_document(json.loads(probe.stdout))
    assert (
        alone["verdict"]["code"] == "dns-port-filtered" and "listens but does not serve" in alone["verdict"]["summary"]
    )


def test_router_rejecting_dns_is_blocked_in_path_and_names_the_router(lab: Lab) -> None:
    rules = ruleset("forward", "meta l4proto { tcp, udp } th dport 53 reject with icmp type admin-prohibited")
    with lab.nft(lab.router, rules):
        doc, proc = lab.diagnose(*FAST)
    validate_document(doc)
    assert proc.returncode == 2
    assert doc["verdict"]["code"] == "dns-blocked-in-path"
    icmp = finding(doc, f"udp53/{RESOLVER}")["evidence"]["icmp"]
    assert (icmp["type"], icmp["code"]) == (3, 13)
    assert icmp["offender"] == ROUTER_CLIENT_SIDE and icmp["from_server"] is False
    assert ROUTER_CLIENT_SIDE in doc["verdict"]["summary"]


def test_server_link_down_is_server_unreachable(lab: Lab) -> None:
    with lab.link_down(lab.dns, "d0", ROUTER_SERVER_SIDE):
        doc, proc = lab.diagnose(*FAST)
    validate_document(doc)
    assert proc.returncode == 2
    assert doc["verdict"]["code"] == "dns-server-unreachable"
    ping = finding(doc, f"ping/{RESOLVER}")["evidence"]
    assert ping["received"] == 0 and ping["sent"] >= 1
    assert doc["duration_s"] < 1 + 0.5


def test_one_of_two_servers_down_says_which_and_what_it_costs(lab: Lab) -> None:
    with (
        lab.resolv_conf(f"nameserver {RESOLVER}\nnameserver {RESOLVER2}\noptions timeout:2\n"),
        lab.nft(lab.dns, ruleset("input", f"ip daddr {RESOLVER} meta l4proto {{ tcp, udp }} th dport 53 drop")),
    ):
        doc, proc = lab.diagnose("--timeout", "2")  # slack for the healthy second server's burst and ping
    validate_document(doc)
    assert proc.returncode == 2
    verdict = doc["verdict"]
    assert verdict["servers"] == {f"{RESOLVER}:53": "dns-port-filtered", f"{RESOLVER2}:53": "healthy"}, verdict
    assert verdict["code"] == "dns-port-filtered"
    assert "1 of 2 servers fail" in verdict["summary"]
    assert "every lookup waits 2 s" in verdict["summary"] and f"{RESOLVER2}:53" in verdict["summary"]


def test_one_of_two_servers_stopped_fails_fast(lab: Lab) -> None:
    with lab.resolv_conf(f"nameserver {RESOLVER}\nnameserver {RESOLVER2}\n"), lab.stopped("dnsmasq"):
        doc, _proc = lab.diagnose(*FAST)
    validate_document(doc)
    verdict = doc["verdict"]
    assert verdict["code"] == "dns-service-down"
    assert verdict["servers"][f"{RESOLVER2}:53"] == "dns-service-down"
    assert verdict["servers"][f"{RESOLVER}:53"] == "healthy"
    assert "move past it at once" in verdict["summary"]
    # The secondary is down, but no user waits for it: a warning to fix, not a page.
    assert verdict["status"] == "warning" and _proc.returncode == 1


def test_refused_query_is_resolver_refused(lab: Lab) -> None:
    # unbound refuses every name outside the lab's zone.
    proc = lab.runbook("diagnose", "example.org", "--format", "json", *FAST)
    import json

    doc = validate_document(json.loads(proc.stdout))
    assert proc.returncode == 2
    assert doc["verdict"]["code"] == "resolver-refused"


def test_explicit_server_and_port_are_diagnosed_instead_of_resolv_conf(lab: Lab) -> None:
    doc, _proc = lab.diagnose("--server", f"{AUTH}:53", *FAST)
    validate_document(doc)
    assert doc["target"]["servers"] == [f"{AUTH}:53"]
    assert doc["target"]["servers_from"] == "command line"
    udp = finding(doc, f"udp53/{AUTH}")["evidence"]
    assert udp["aa"] is True and udp["ra"] is False
    assert not any(f["id"] == "resolve/system" for f in doc["findings"])
