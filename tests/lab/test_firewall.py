"""End to end: this host's own firewall, evaluated rule by rule, and the verdict that cites the rule.

Rules are applied for real in the client namespace (nftables and the legacy iptables backend), and the
evaluation is checked against what the probes then see.
"""

from __future__ import annotations

import json

from tests.lab.lab import RESOLVER, ZONE, Lab
from tests.lab.test_compare import diagnose
from tests.lab.test_verdicts import finding

FAST = ("--timeout", "1", "--skip", "web")


def test_nft_output_drop_of_udp_53_is_cited(lab: Lab) -> None:
    rules = "table inet rbkfw { chain out { type filter hook output priority 0; udp dport 53 counter drop; }; }\n"
    with lab.nft(lab.client, rules):
        doc, code = diagnose(lab, ZONE, *FAST)
    assert code == 2
    verdict = doc["verdict"]
    assert verdict["code"] == "local-firewall-blocks-dns" and verdict["confidence"] == "high"
    assert "EPERM" in verdict["summary"] and "udp dport 53 counter" in verdict["summary"]
    path = finding(doc, f"firewall/{RESOLVER}")["evidence"]["paths"]["udp_query"]
    assert path["verdict"] == "drop" and path["rule"]["table"] == "rbkfw" and path["rule"]["chain"] == "out"
    assert path["rule"]["handle"]


def test_legacy_iptables_reject_is_cited_with_its_save_line(lab: Lab) -> None:
    restore = (
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        f"-A OUTPUT -d {RESOLVER}/32 -p udp -m udp --dport 53 -j REJECT --reject-with icmp-port-unreachable\n"
        "COMMIT\n"
    )
    with lab.iptables_legacy(lab.client, restore):
        doc, code = diagnose(lab, ZONE, *FAST)
    assert code == 2
    assert doc["verdict"]["code"] == "local-firewall-blocks-dns"
    assert "-A OUTPUT -d 203.0.113.2/32 -p udp -m udp --dport 53 -j REJECT" in doc["verdict"]["summary"]
    path = finding(doc, f"firewall/{RESOLVER}")["evidence"]["paths"]["udp_query"]
    assert path["rule"]["source"] == "iptables-legacy"


def test_dropping_the_answers_coming_back_is_cited(lab: Lab) -> None:
    rules = "table inet rbkfw { chain in { type filter hook input priority 0; udp sport 53 drop; }; }\n"
    with lab.nft(lab.client, rules):
        doc, code = diagnose(lab, ZONE, *FAST)
    assert code == 2
    verdict = doc["verdict"]
    assert verdict["code"] == "local-firewall-blocks-dns"
    assert "the answer coming back" in verdict["summary"] and "udp sport 53 drop" in verdict["summary"]


def test_policy_drop_with_an_accept_for_dns_is_not_blocked(lab: Lab) -> None:
    rules = (
        "table inet rbkfw { chain out { type filter hook output priority 0; policy drop; "
        "ct state established,related accept; meta l4proto { tcp, udp } th dport 53 accept; "
        "icmp type echo-request accept; }; }\n"
    )
    with lab.nft(lab.client, rules):
        doc, _code = diagnose(lab, ZONE, *FAST)
    assert doc["verdict"]["code"] == "healthy", doc["verdict"]
    fw = finding(doc, f"firewall/{RESOLVER}")
    assert fw["status"] == "ok" and fw["evidence"]["blocks"] is False
    assert "th dport 53 accept" in fw["summary"]


def test_jump_to_a_user_chain_that_drops(lab: Lab) -> None:
    rules = (
        "table inet rbkfw { chain dns { ip daddr 203.0.113.0/24 drop; }; "
        "chain out { type filter hook output priority 0; udp dport 53 jump dns; }; }\n"
    )
    with lab.nft(lab.client, rules):
        doc, _code = diagnose(lab, ZONE, *FAST)
    assert doc["verdict"]["code"] == "local-firewall-blocks-dns"
    path = finding(doc, f"firewall/{RESOLVER}")["evidence"]["paths"]["udp_query"]
    assert path["rule"]["chain"] == "dns" and "203.0.113.0/24 drop" in path["rule"]["rule"]


def test_named_set_of_blocked_resolvers(lab: Lab) -> None:
    rules = (
        "table inet rbkfw { set bad_resolvers { type ipv4_addr; flags interval; "
        "elements = { 192.0.2.0/24, 203.0.113.2 }; }; "
        "chain out { type filter hook output priority 0; ip daddr @bad_resolvers reject; }; }\n"
    )
    with lab.nft(lab.client, rules):
        doc, _code = diagnose(lab, ZONE, *FAST)
    assert doc["verdict"]["code"] == "local-firewall-blocks-dns"
    assert "@bad_resolvers" in doc["verdict"]["summary"]


def test_a_field_it_cannot_know_lowers_the_confidence_and_says_so(lab: Lab) -> None:
    rules = "table inet rbkfw { chain out { type filter hook output priority 0; ip dscp cs1 udp dport 53 drop; }; }\n"
    with lab.nft(lab.client, rules):
        doc, _ = diagnose(lab, ZONE, *FAST)
    fw = finding(doc, f"firewall/{RESOLVER}")
    assert fw["status"] == "warning" and "may be stopped" in fw["summary"]
    assert doc["verdict"]["code"] == "healthy"  # the probes got through: the DSCP did not match


def test_a_mark_no_rule_sets_is_the_0_of_an_ordinary_socket(lab: Lab) -> None:
    rules = (
        "table inet rbkfw { chain out { type filter hook output priority 0; meta mark 0x2a udp dport 53 drop; }; }\n"
    )
    with lab.nft(lab.client, rules):
        doc, _ = diagnose(lab, ZONE, *FAST)
    fw = finding(doc, f"firewall/{RESOLVER}")
    assert fw["status"] == "ok" and fw["evidence"]["paths"]["udp_query"]["certain"] is True


def test_every_constructs_definite_answer_is_what_the_kernel_does(lab: Lab) -> None:
    """Each construct of tests/fixtures/constructs.py, loaded for real: the firewall step's definite answer
    for the UDP and the TCP query is compared with what happens to a real query (dig) under the same rule."""
    from tests.fixtures.constructs import CONSTRUCTS
    from tests.fixtures.make_constructs import ruleset

    disagreements, decided = [], 0
    for rule, _, _ in CONSTRUCTS:
        with lab.nft(lab.client, ruleset(rule)):
            proc = lab.runbook("firewall", ZONE, "--server", RESOLVER, "--format", "json", "--timeout", "2")
            paths = finding(json.loads(proc.stdout), f"firewall/{RESOLVER}")["evidence"]["paths"]
            for proto, flag in (("udp", "+notcp"), ("tcp", "+tcp")):
                path = paths[f"{proto}_query"]
                if not path["certain"] or path["verdict"] not in ("accept", "drop"):
                    continue
                decided += 1
                dig = lab.ns(lab.client, "dig", flag, "+time=1", "+tries=1", f"@{RESOLVER}", ZONE, check=False)
                kernel = "accept" if "status: NOERROR" in dig.stdout else "drop"
                if kernel != path["verdict"]:
                    disagreements.append((rule, proto, path["verdict"], kernel))
    assert decided >= 60 and not disagreements, disagreements


def test_an_input_drop_stops_a_resolver_on_loopback(lab: Lab) -> None:
    # The query to 127.0.0.1 leaves through output and reaches the daemon through input, on lo.
    rules = "table inet rbkfw { chain in { type filter hook input priority 0; iif lo udp dport 53 drop; }; }\n"
    with lab.nft(lab.client, rules):
        doc, code = diagnose(lab, ZONE, "--server", "127.0.0.1", *FAST)
    firewall = finding(doc, "firewall/127.0.0.1")
    assert firewall["status"] == "critical" and "out and back in" not in firewall["summary"]
    assert firewall["evidence"]["paths"]["udp_query_in"]["verdict"] == "drop"
    assert code == 2 and doc["verdict"]["code"] == "local-firewall-blocks-dns"
    assert "the query coming in to the server on this host" in doc["verdict"]["summary"]
