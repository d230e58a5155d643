"""DNS over TLS against the lab's real unbound (tls-service on 203.0.113.2:853, a self-signed certificate that
names the address): what the dot step reports, and what it changes in the verdict when port 53 fails."""

from __future__ import annotations

from tests.conftest import validate_document
from tests.lab.lab import RESOLVER, ZONE, Lab
from tests.lab.test_verdicts import FAST, finding, ruleset


def test_healthy_resolver_reports_its_tls_channel_and_certificate(lab: Lab) -> None:
    doc, proc = lab.diagnose(*FAST)
    validate_document(doc)
    assert proc.returncode == 0, proc.stderr
    dot = finding(doc, f"dot/{RESOLVER}")
    ev = dot["evidence"]
    assert dot["status"] == "ok"
    assert ev["outcome"] == "answer" and ev["rcode"] == "NOERROR" and ev["tls_version"].startswith("TLSv1.")
    # Self-signed: not verified, and said so with the reason; still encrypted, so the query went through.
    assert ev["verified"] is False and "self-signed" in ev["verify_error"]
    assert ev["certificate"]["subject"] == f"CN=dns.{ZONE}" and ev["certificate"]["san"] == [RESOLVER]
    assert ev["sni"] is None  # the server is named by its address: no SNI
    assert "not verified" in dot["summary"] and f"CN=dns.{ZONE}" in dot["summary"]
    assert doc["verdict"]["code"] == "healthy"


def test_port_53_dropped_on_the_server_while_853_answers(lab: Lab) -> None:
    """A filter of port 53 alone: DoT proves the host and the daemon are up, and is the workaround."""
    with lab.nft(lab.dns, ruleset("input", "meta l4proto { tcp, udp } th dport 53 drop")):
        doc, proc = lab.diagnose(*FAST, "--skip", "ping")
    validate_document(doc)
    assert proc.returncode == 2
    verdict = doc["verdict"]
    # Without ping, only the TLS handshake proves the host is up: filtered, not unreachable.
    assert verdict["code"] == "dns-port-filtered", verdict
    assert f"DNS over TLS on {RESOLVER}:853 answers" in verdict["summary"]
    assert "port 53 alone" in verdict["summary"]
    workaround = [a for a in verdict["actions"] if "DNS over TLS" in a["text"]]
    assert workaround and workaround[0]["commands"] == [f"dig +tls @{RESOLVER} {ZONE} A"]


def test_port_53_rejected_while_853_answers_says_the_daemon_runs(lab: Lab) -> None:
    with lab.nft(lab.dns, ruleset("input", "meta l4proto { tcp, udp } th dport 53 reject")):
        doc, proc = lab.diagnose(*FAST)
    validate_document(doc)
    assert proc.returncode == 2
    assert doc["verdict"]["code"] == "dns-service-down"
    assert "yet the DNS daemon runs: it answers DNS over TLS on port 853" in doc["verdict"]["summary"]


def test_a_stopped_daemon_stops_tls_too_and_no_workaround_is_offered(lab: Lab) -> None:
    with lab.stopped("unbound"):
        doc, _ = lab.diagnose(*FAST)
    dot = finding(doc, f"dot/{RESOLVER}")
    assert dot["evidence"]["outcome"] == "reset" and "not offered" in dot["summary"]
    assert not any("DNS over TLS" in step for step in doc["verdict"]["next_steps"])


def test_dot_works_through_the_tls_verified_path_explain(lab: Lab) -> None:
    """--explain shows the DoT evidence where a rule used it."""
    with lab.nft(lab.dns, ruleset("input", "meta l4proto { tcp, udp } th dport 53 drop")):
        doc, _ = lab.diagnose(*FAST, "--skip", "ping", "--explain")
    matched = [e for e in doc["verdict"]["explain"] if e["matched"] and e["server"]]
    assert [e["rule"] for e in matched] == ["filtered-drop"]
    host_up = next(t for t in matched[0]["needs"] if "host is up" in t["text"])
    assert host_up["holds"]
