"""End to end: what the comparison with other resolvers and the authoritative servers finds.

A rogue resolver, a stopped authoritative server, a missing name, a broken DNSSEC chain of trust, an answer
too big for UDP with TCP dropped, a lossy and a slow link, a stopped web server, a hosts file override:
each made for real in the lab, each checked by its verdict and its evidence.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from tests.conftest import validate_document
from tests.lab.lab import (
    AUTH,
    BIG_TXT,
    FORGED,
    INTERCEPTED,
    REDIRECTED,
    REDIRECTOR,
    RESOLVER,
    ROGUE,
    SIGNED_ZONE,
    SLOW,
    WEB_ADDRESS,
    ZONE,
    Lab,
)
from tests.lab.test_verdicts import finding, ruleset


def diagnose(lab: Lab, name: str, *args: str) -> tuple[dict[str, Any], int]:
    import json

    proc = lab.runbook("diagnose", name, "--format", "json", *args)
    try:
        return validate_document(json.loads(proc.stdout)), proc.returncode
    except ValueError:
        raise AssertionError(proc.stdout + proc.stderr) from None


@pytest.mark.parametrize(
    "reference",
    [("--resolver", RESOLVER), ("--authoritative", AUTH), ("--expect", WEB_ADDRESS)],
    ids=["other-resolver-leads-to-the-authorities", "authoritative-given", "expected-address"],
)
def test_rogue_resolver_is_an_answer_mismatch(lab: Lab, reference: tuple[str, str]) -> None:
    with lab.running("rogue"), lab.resolv_conf(f"nameserver {ROGUE}\n"):
        doc, code = diagnose(lab, ZONE, *reference, "--skip", "web")
    assert code == 2
    verdict = doc["verdict"]
    assert verdict["code"] == "dns-answer-mismatch" and verdict["confidence"] == "high"
    assert FORGED in verdict["summary"] and WEB_ADDRESS in verdict["summary"]
    assert "hijack" in verdict["summary"]


def test_authoritative_server_down_behind_a_working_resolver_is_upstream_servfail(lab: Lab) -> None:
    name = f"fresh-{secrets.token_hex(3)}.{ZONE}"  # not in the resolver's cache
    with lab.stopped("nsd"):
        doc, code = diagnose(lab, name, "--timeout", "3", "--authoritative", AUTH)
    assert code == 2
    assert doc["verdict"]["code"] == "upstream-servfail" and doc["verdict"]["confidence"] == "high"
    auth = finding(doc, f"compare/auth/{AUTH}")["evidence"]
    assert auth["lame"] and auth["icmp"]["name"] == "port-unreachable"
    assert AUTH in doc["verdict"]["summary"]


def test_name_missing_from_the_zone_is_nxdomain_confirmed_by_the_authorities(lab: Lab) -> None:
    doc, code = diagnose(lab, f"missing.{ZONE}", "--timeout", "2")
    assert code == 2
    verdict = doc["verdict"]
    assert verdict["code"] == "nxdomain" and verdict["confidence"] == "high"
    authorities = finding(doc, "compare/authoritative")["evidence"]
    assert authorities["zone"] == f"{ZONE}." and authorities["source"].startswith("NS through")
    assert finding(doc, f"compare/auth/{AUTH}")["evidence"]["rcode"] == "NXDOMAIN"


def test_nodata_is_not_nxdomain(lab: Lab) -> None:
    doc, _ = diagnose(lab, ZONE, "--type", "MX", "--timeout", "2")
    assert doc["verdict"]["code"] != "nxdomain"
    assert "NODATA" in doc["verdict"]["summary"]


def test_broken_chain_of_trust_is_a_dnssec_validation_failure(lab: Lab) -> None:
    doc, code = diagnose(lab, f"www.{SIGNED_ZONE}", "--timeout", "2", "--skip", "web")
    assert code == 2
    verdict = doc["verdict"]
    assert verdict["code"] == "dnssec-validation-failure"
    resolve = finding(doc, f"resolve/{RESOLVER}")["evidence"]
    assert resolve["rcode"] == "SERVFAIL" and resolve["cd_retry"]["rcode"] == "NOERROR"
    assert "CD=1" in verdict["summary"]


def test_truncated_answer_with_tcp_dropped_is_tcp_fallback_blocked(lab: Lab) -> None:
    with lab.nft(lab.dns, ruleset("input", "tcp dport 53 drop")):
        doc, code = diagnose(lab, BIG_TXT, "--type", "TXT", "--timeout", "1")
    assert code == 1
    verdict = doc["verdict"]
    assert verdict["code"] == "tcp-fallback-blocked" and verdict["confidence"] == "high"
    assert finding(doc, f"udp53/{RESOLVER}")["evidence"]["tc"] is True
    assert "TC=1" in verdict["summary"]


def test_big_answer_is_fetched_over_tcp_when_tcp_works(lab: Lab) -> None:
    doc, code = diagnose(lab, BIG_TXT, "--type", "TXT", "--timeout", "1")
    assert code == 0, doc["verdict"]
    assert finding(doc, f"udp53/{RESOLVER}")["evidence"]["tc"] is True
    assert finding(doc, f"tcp53/{RESOLVER}")["evidence"]["outcome"] == "answer"


def test_lossy_link_is_degraded_with_the_numbers(lab: Lab) -> None:
    rule = f"ip daddr {RESOLVER} udp dport 53 numgen random mod 100 < 40 drop"
    with lab.nft(lab.dns, ruleset("input", rule)):
        doc, code = diagnose(lab, ZONE, "--count", "40", "--timeout", "2", "--skip", "web")
    assert code == 1
    assert doc["verdict"]["code"] == "dns-degraded"
    burst = finding(doc, f"udp53/{RESOLVER}")["evidence"]["burst"]
    assert burst["sent"] == 40 and 0.1 < burst["loss"] < 0.8
    assert "lost" in doc["verdict"]["summary"] and "DDoS" in doc["verdict"]["summary"]


def test_slow_link_is_degraded(lab: Lab) -> None:
    with lab.running("relay"), lab.resolv_conf(f"nameserver {SLOW}\n"):
        doc, code = diagnose(lab, ZONE, "--timeout", "2", "--skip", "web")
    assert code == 1
    assert doc["verdict"]["code"] == "dns-degraded"
    burst = finding(doc, f"udp53/{SLOW}")["evidence"]["burst"]
    assert burst["rtt_median_s"] >= 0.4
    assert "median answer time" in doc["verdict"]["summary"]


def test_web_server_stopped_is_site_unreachable_while_dns_is_fine(lab: Lab) -> None:
    with lab.stopped("web"):
        doc, code = diagnose(lab, ZONE, "--timeout", "1", "--web")
        plain, plain_code = diagnose(lab, ZONE, "--timeout", "1")
    assert code == 2
    assert doc["verdict"]["code"] == "site-unreachable-dns-ok"
    web = finding(doc, f"web/{WEB_ADDRESS}")["evidence"]
    assert web["reachable"] is False and web["https"]["result"] == "connection refused"
    # Not declared a website: the same outage is reported, and raises no alarm.
    assert (plain["verdict"]["code"], plain_code) == ("healthy", 0)
    assert "run with --web" in plain["verdict"]["summary"]


def test_hosts_file_pinning_another_address_is_an_override(lab: Lab) -> None:
    with lab.hosts(f"127.0.0.1 localhost\n198.51.100.99 {ZONE}\n"):
        doc, code = diagnose(lab, ZONE, "--timeout", "1")
    assert code == 1
    verdict = doc["verdict"]
    assert verdict["code"] == "hosts-file-override"
    assert "198.51.100.99" in verdict["summary"] and WEB_ADDRESS in verdict["summary"]
    assert finding(doc, "resolve/system")["evidence"]["addresses"] == ["198.51.100.99"]


def test_nxdomain_redirection_is_found_without_any_resolver_given(lab: Lab) -> None:
    """A resolver that forwards honestly but answers an address for a name the zone does not have: found by
    asking the zone's own servers, discovered through the resolver itself (no --resolver, no --expect)."""
    with lab.running("redirector"), lab.resolv_conf(f"nameserver {REDIRECTOR}\n"):
        doc, code = diagnose(lab, REDIRECTED, "--timeout", "2", "--skip", "web")
        honest, honest_code = diagnose(lab, ZONE, "--timeout", "2", "--skip", "web")
    assert code == 2 and doc["verdict"]["code"] == "dns-answer-mismatch", doc["verdict"]
    assert FORGED in doc["verdict"]["summary"] and "NXDOMAIN" in doc["verdict"]["summary"]
    # dnsmasq's address= answers with authority for a zone it does not serve: evidence of its own.
    assert "answers with authority (AA) although the zone's servers are" in doc["verdict"]["summary"]
    # The same resolver is honest for the names the zone has: healthy, and verified against the zone.
    assert honest_code == 0 and honest["verdict"]["code"] == "healthy" and honest["verdict"]["verified"] is True


def test_answers_rewritten_on_the_udp_path_are_a_mismatch_by_channel(lab: Lab) -> None:
    with lab.running("interceptor"), lab.resolv_conf(f"nameserver {INTERCEPTED}\n"):
        doc, code = diagnose(lab, ZONE, "--timeout", "2", "--skip", "web")
    assert code == 2 and doc["verdict"]["code"] == "dns-answer-mismatch", doc["verdict"]
    assert f"over UDP {FORGED}" in doc["verdict"]["summary"] and f"over TCP {WEB_ADDRESS}" in doc["verdict"]["summary"]
