"""The firewall evaluator on rulesets real programs wrote (tests/fixtures, see make_fixtures.sh), on the
rule forms real rulesets use, and against a straightforward reference for prefixes, ranges and sets."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checks import netfilter
from checks.netfilter import Packet, RulesetError, ValueSet, evaluate, parse_iptables_save, parse_nft

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ME, SERVER = ipaddress.ip_address("198.51.100.15"), ipaddress.ip_address("203.0.113.2")
EPHEMERAL = (32768, 60999)


def query(proto: str = "udp", oif: str | None = "eth0") -> Packet:
    return Packet("output", 4, proto, ME, SERVER, EPHEMERAL, (53, 53), "new", oif=oif)


def answer(proto: str = "udp") -> Packet:
    return Packet("input", 4, proto, SERVER, ME, (53, 53), EPHEMERAL, "established", iif="eth0")


def nft(ruleset: str) -> list[netfilter.Table]:
    """A ruleset written the way nft's JSON prints it, from a compact description of its rules."""
    return parse_nft(json.loads(ruleset))


def load_nft(name: str) -> list[netfilter.Table]:
    return parse_nft(
        json.loads((FIXTURES / f"{name}.nft.json").read_text()), (FIXTURES / f"{name}.nft.txt").read_text()
    )


def test_debians_default_nftables_conf_lets_dns_through_by_policy() -> None:
    tables = load_nft("debian-default")
    for packet in (query(), answer(), query("tcp"), answer("tcp")):
        decision = evaluate(tables, packet)
        assert decision.verdict == "accept" and decision.certain
        assert decision.passed[-1].policy == "accept"


def test_firewalld_public_zone_lets_the_query_out_and_the_answer_in() -> None:
    tables = load_nft("firewalld")
    out, back = evaluate(tables, query()), evaluate(tables, answer())
    assert out.verdict == "accept" and back.verdict == "accept"
    assert any("established" in str(p.rule or "") for p in back.passed)
    # A new connection from outside to a port the public zone does not open is rejected.
    inbound = Packet("input", 4, "tcp", SERVER, ME, EPHEMERAL, (8080, 8080), "new", iif="eth0")
    assert evaluate(tables, inbound).blocks


def test_ufw_defaults_let_the_query_out_and_the_answer_in() -> None:
    text = (FIXTURES / "ufw.iptables-save").read_text()
    tables = parse_iptables_save(text, "iptables-nft", 4)
    out, back = evaluate(tables, query()), evaluate(tables, answer())
    assert out.verdict == "accept" and back.verdict == "accept"
    # The answer is let in by ufw's conntrack rule, not by a policy (ufw's INPUT policy is DROP).
    assert "RELATED,ESTABLISHED" in str(back.passed[0].rule)
    # A new connection coming in is dropped by the policy.
    inbound = Packet("input", 4, "tcp", SERVER, ME, EPHEMERAL, (22, 22), "new", iif="eth0")
    refused = evaluate(tables, inbound)
    assert refused.blocks


def test_ufw_nft_view_skips_the_tables_iptables_nft_wrote() -> None:
    tables = parse_nft(
        json.loads((FIXTURES / "ufw.nft.json").read_text()), skip_tables={("ip", "filter"), ("ip6", "filter")}
    )
    assert not [t for t in tables if t.name == "filter" and t.family in ("ip", "ip6")]


def test_docker_rules_leave_the_hosts_own_dns_alone() -> None:
    tables = parse_iptables_save((FIXTURES / "docker.iptables-save").read_text(), "iptables-legacy", 4)
    assert evaluate(tables, query()).verdict == "accept"
    forward = Packet(
        "forward",
        4,
        "udp",
        ipaddress.ip_address("172.17.0.2"),
        SERVER,
        EPHEMERAL,
        (53, 53),
        "new",
        iif="docker0",
        oif="eth0",
    )
    assert evaluate(tables, forward).verdict == "accept"  # -i docker0 ! -o docker0 -j ACCEPT


NFT = """{"nftables": [
 {"table": {"family": "inet", "name": "t", "handle": 1}},
 {"set": {"family": "inet", "table": "t", "name": "bad", "type": "ipv4_addr", "flags": ["interval"],
          "elem": [{"prefix": {"addr": "10.0.0.0", "len": 8}}, "203.0.113.2"]}},
 {"chain": {"family": "inet", "table": "t", "name": "out", "handle": 1, "type": "filter", "hook": "output",
            "prio": 0, "policy": "drop"}},
 {"chain": {"family": "inet", "table": "t", "name": "user", "handle": 2}},
 {"chain": {"family": "inet", "table": "t", "name": "late", "handle": 3, "type": "filter", "hook": "output",
            "prio": 10, "policy": "accept"}},
 RULES
]}"""


def rules(*exprs: str, chain: str = "out") -> list[netfilter.Table]:
    body = ",\n".join(
        f'{{"rule": {{"family": "inet", "table": "t", "chain": "{c}", "handle": {i + 10}, "expr": [{e}]}}}}'
        for i, (c, e) in enumerate((chain, e) if isinstance(e, str) else e for e in exprs)
    )
    return nft(NFT.replace("RULES", body))


ACCEPT, DROP = '{"accept": null}', '{"drop": null}'
UDP53 = '{"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 53}}'


def test_policy_drop_with_an_accept_for_53() -> None:
    tables = rules(f"{UDP53}, {ACCEPT}")
    assert evaluate(tables, query()).verdict == "accept"
    assert evaluate(tables, query("tcp")).verdict == "drop"  # the policy
    assert evaluate(tables, query("tcp")).policy_of.policy == "drop"


def test_named_set_with_prefixes_and_negation() -> None:
    in_set = '{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "@bad"}}'
    not_in = in_set.replace('"op": "=="', '"op": "!="')
    assert evaluate(rules(f"{in_set}, {DROP}", f"{ACCEPT}"), query()).verdict == "drop"
    assert evaluate(rules(f"{not_in}, {DROP}", f"{ACCEPT}"), query()).verdict == "accept"


def test_jump_return_and_goto() -> None:
    jump = '{"jump": {"target": "user"}}'
    ret = '{"return": null}'
    # user: return at once -> back in out, where the next rule accepts
    tables = rules(f"{UDP53}, {jump}", f"{ACCEPT}", ("user", ret))
    assert evaluate(tables, query()).verdict == "accept"
    # user: drop -> the jump's verdict is the drop
    tables = rules(f"{UDP53}, {jump}", f"{ACCEPT}", ("user", DROP))
    decision = evaluate(tables, query())
    assert decision.verdict == "drop" and decision.rule.chain == "user"
    # goto user, which ends without a verdict: the base chain's policy (drop) decides, not the next rule
    tables = rules(f'{UDP53}, {{"goto": {{"target": "user"}}}}', f"{ACCEPT}", ("user", '{"counter": null}'))
    assert evaluate(tables, query()).verdict == "drop"


def test_ct_state_and_the_established_answer() -> None:
    est = '{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}'
    tables = rules(f"{est}, {ACCEPT}")
    assert evaluate(tables, query()).verdict == "drop"  # new: not established
    in_chain = NFT.replace('"hook": "output"', '"hook": "input"').replace(
        "RULES",
        f'{{"rule": {{"family": "inet", "table": "t", "chain": "out", "handle": 9, "expr": [{est}, {ACCEPT}]}}}}',
    )
    assert evaluate(nft(in_chain), answer()).verdict == "accept"


def test_unknown_matches_are_may_match_never_a_silent_guess() -> None:
    dscp = '{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "dscp"}}, "right": "cs1"}}'
    decision = evaluate(rules(f"{dscp}, {DROP}", f"{ACCEPT}"), query())
    assert decision.verdict == "accept" and not decision.certain
    assert decision.may_match[0].verdict == "drop"


def test_marks_of_an_ordinary_socket_are_0_unless_some_rule_sets_them() -> None:
    mark = '{"match": {"op": "==", "left": {"meta": {"key": "mark"}}, "right": 42}}'
    decision = evaluate(rules(f"{mark}, {DROP}", f"{ACCEPT}"), query())
    assert decision.verdict == "accept" and decision.certain
    setter = '{"mangle": {"key": {"meta": {"key": "mark"}}, "value": 42}}'
    tables = rules(setter, f"{mark}, {DROP}", f"{ACCEPT}")
    assert netfilter.mangled(tables) == {"meta mark"}
    unknown_mark = Packet("output", 4, "udp", ME, SERVER, EPHEMERAL, (53, 53), "new", oif="eth0", mark=None)
    decision = evaluate(tables, unknown_mark)
    assert decision.verdict == "accept" and decision.may_match[0].verdict == "drop"


def test_interfaces_and_the_ephemeral_port_range() -> None:
    oif = '{"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "wg0"}}'
    assert evaluate(rules(f"{oif}, {ACCEPT}"), query(oif="eth0")).verdict == "drop"
    assert not evaluate(rules(f"{oif}, {ACCEPT}"), query(oif=None)).certain
    whole = '{"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "sport"}}, "right": {"range": [1024, 65535]}}}'  # noqa: E501
    part = whole.replace("1024, 65535", "40000, 50000")
    assert evaluate(rules(f"{whole}, {ACCEPT}"), query()).verdict == "accept"
    assert not evaluate(rules(f"{part}, {ACCEPT}"), query()).certain


def test_a_later_base_chain_still_sees_an_accepted_packet() -> None:
    tables = rules(f"{UDP53}, {ACCEPT}", ("late", f"{UDP53}, {DROP}"))
    decision = evaluate(tables, query())
    assert decision.verdict == "drop" and decision.rule.chain == "late"


IPT = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT DROP [0:0]
:dns - [0:0]
-A OUTPUT -o lo -j ACCEPT
-A OUTPUT -p udp -m multiport --dports 53,853 -j dns
-A OUTPUT -p tcp -m tcp --dport 1:1023 -m conntrack --ctstate NEW -j ACCEPT
-A OUTPUT -m mark --mark 0x1 -j ACCEPT
-A dns ! -d 203.0.113.0/24 -j REJECT --reject-with icmp-port-unreachable
-A dns -m comment --comment "resolvers" -j ACCEPT
COMMIT
"""


def test_iptables_save_forms() -> None:
    tables = parse_iptables_save(IPT, "iptables-legacy", 4)
    assert evaluate(tables, query()).verdict == "accept"
    other = Packet("output", 4, "udp", ME, ipaddress.ip_address("192.0.2.53"), EPHEMERAL, (53, 53), "new")
    refused = evaluate(tables, other)
    assert refused.verdict == "reject" and refused.rule.chain == "dns"
    assert evaluate(tables, query("tcp")).verdict == "accept"
    icmp = Packet("output", 4, "icmp", ME, SERVER, (0, 0), (0, 0), "new")
    decision = evaluate(tables, icmp)
    assert decision.verdict == "drop" and decision.may_match  # the mark rule might have let it out


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("*filter\n-X garbage\n", "not iptables-save output"),
        (":INPUT ACCEPT\n", "before any table"),
        ("*filter\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -j nowhere\nCOMMIT\n", None),
    ],
)
def test_unknown_iptables_forms_are_errors_not_crashes(text: str, words: str | None) -> None:
    if words:
        with pytest.raises(RulesetError, match=words):
            parse_iptables_save(text, "iptables-legacy", 4)
    else:  # a jump to a chain the listing lacks: that rule is in doubt, the rest is evaluated
        decision = evaluate(parse_iptables_save(text, "iptables-legacy", 4), query())
        assert decision.verdict == "accept" and decision.may_match[0].unknown == ("chain nowhere",)


@pytest.mark.parametrize(
    "document",
    [
        '{"something": []}',
        '{"nftables": [42]}',
        '{"nftables": [{"chain": {"family": "inet", "table": "x", "name": "c"}}]}',
    ],
)
def test_unknown_nft_forms_are_errors_not_crashes(document: str) -> None:
    with pytest.raises(RulesetError):
        parse_nft(json.loads(document))


@given(st.lists(st.tuples(st.ip_addresses(v=4), st.integers(8, 32)), max_size=5), st.ip_addresses(v=4))
def test_prefix_sets_match_like_ipaddress(
    prefixes: list[tuple[ipaddress.IPv4Address, int]], addr: ipaddress.IPv4Address
) -> None:
    nets = [ipaddress.ip_network(f"{a}/{n}", strict=False) for a, n in prefixes]
    value = ValueSet(networks=tuple(nets))
    assert value.contains_address(addr) == any(addr in n for n in nets)


@given(
    st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 2000)), max_size=4),
    st.integers(0, 2000),
    st.integers(0, 300),
)
def test_port_coverage_matches_a_reference(spans: list[tuple[int, int]], lo: int, width: int) -> None:
    ranges = tuple((min(a, b), max(a, b)) for a, b in spans)
    value = ValueSet(ranges=ranges)
    ports = set(range(lo, lo + width + 1))
    inside = {p for p in ports if any(a <= p <= b for a, b in ranges)}
    expected = True if inside == ports else False if not inside else None
    assert value.port_coverage((lo, lo + width)) is expected
