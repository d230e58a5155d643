"""The evaluator on rule constructs of real rulesets, as the real ``nft -j`` prints them (tests/fixtures/
constructs.py, constructs.json): each decides where the packet's fields are known, and says "may match"
only where they are not. A rule the evaluator does not model costs that rule, never the ruleset."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checks import netfilter
from checks.netfilter import Packet, evaluate, parse_nft
from tests.fixtures.constructs import CONSTRUCTS

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
DOCS = json.loads((FIXTURES / "constructs.json").read_text())
ME, SERVER = ipaddress.ip_address("198.51.100.15"), ipaddress.ip_address("203.0.113.2")


def query(proto: str) -> Packet:
    return Packet(
        "output", 4, proto, ME, SERVER, (32768, 60999), (53, 53), "new", oif="eth0", uid=0, gid=0,
        saddr_type="local", daddr_type="unicast",
    )  # fmt: skip


def outcome(decision: netfilter.Decision) -> str:
    if decision.blocks and decision.certain:
        return "drop"
    if decision.verdict == "accept" and decision.certain:
        return "pass"
    return "may"


@pytest.mark.parametrize(("rule", "udp", "tcp"), CONSTRUCTS, ids=[c[0] for c in CONSTRUCTS])
def test_each_construct_decides_as_the_kernel_would(rule: str, udp: str, tcp: str) -> None:
    doc = DOCS[rule]
    tables = parse_nft(doc["json"], doc["text"])
    assert outcome(evaluate(tables, query("udp"))) == udp
    assert outcome(evaluate(tables, query("tcp"))) == tcp


def test_a_may_match_names_the_expression_it_does_not_know() -> None:
    doc = DOCS["socket transparent 1 drop"]
    decision = evaluate(parse_nft(doc["json"], doc["text"]), query("udp"))
    assert decision.verdict == "accept" and decision.may_match
    (rule,) = decision.may_match
    assert rule.rule == "socket transparent 1 drop" and rule.verdict == "drop"
    assert any("socket" in why for why in rule.unknown)


def test_every_construct_in_one_chain_is_evaluated_rule_by_rule() -> None:
    # All the constructs in one chain, in order: the first that certainly drops decides, and none of the
    # others (known or not) makes the whole ruleset unreadable.
    first = DOCS[CONSTRUCTS[0][0]]["json"]["nftables"]
    sets = {json.dumps(i, sort_keys=True) for r, _, _ in CONSTRUCTS for i in DOCS[r]["json"]["nftables"] if "set" in i}
    rules = []
    for n, (rule, _, _) in enumerate(CONSTRUCTS):
        (item,) = [i for i in DOCS[rule]["json"]["nftables"] if "rule" in i]
        rules.append({"rule": {**item["rule"], "handle": n}})
    table = next(i for i in first if "table" in i)
    chain = next(i for i in first if "chain" in i)
    doc = {"nftables": [table, chain, *[json.loads(s) for s in sorted(sets)], *rules]}
    decision = evaluate(parse_nft(doc), query("udp"))
    expected = next(n for n, (_, udp, _) in enumerate(CONSTRUCTS) if udp == "drop")
    assert decision.verdict == "drop" and decision.certain
    assert decision.rule is not None and decision.rule.handle == str(expected)


UNKNOWN_EXPRESSIONS = st.sampled_from(
    [
        {"match": {"op": "==", "left": {"osf": {"key": "name"}}, "right": "Linux"}},
        {"match": {"op": "==", "left": {"exthdr": {"name": "hbh"}}, "right": 1}},
        {"frobnicate": {"level": 11}},
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"weird": 1}}},
        {"match": {"op": "~=", "left": {"meta": {"key": "mark"}}, "right": 1}},
    ]
)


@settings(max_examples=60)
@given(st.lists(UNKNOWN_EXPRESSIONS, min_size=1, max_size=3), st.integers(0, 3), st.sampled_from(["drop", "accept"]))
def test_any_rule_the_parser_does_not_know_leaves_the_rest_of_the_chain_evaluated(
    unknown: list[dict[str, object]], position: int, unknown_verdict: str
) -> None:
    udp53 = {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 53}}
    known = [[udp53, {"counter": None}], [udp53, {"drop": None}]]
    odd = [*unknown, {unknown_verdict: None}]
    exprs = known[:]
    exprs.insert(min(position, len(exprs)), odd)
    doc = {
        "nftables": [
            {"table": {"family": "inet", "name": "t"}},
            {"chain": {"family": "inet", "table": "t", "name": "c", "hook": "output", "prio": 0, "policy": "accept"}},
            *[
                {"rule": {"family": "inet", "table": "t", "chain": "c", "handle": i, "expr": e}}
                for i, e in enumerate(exprs)
            ],
        ]
    }
    decision = evaluate(parse_nft(doc), query("udp"))
    # The known drop still decides; the rule it did not know is reported, never a crash or a silent guess.
    if unknown_verdict == "drop" or exprs.index(odd) > exprs.index(known[1]):
        assert decision.verdict == "drop"
    assert decision.verdict in ("drop",) or decision.may_match
    if exprs.index(odd) < exprs.index(known[1]):
        assert decision.may_match and decision.may_match[0].handle == str(exprs.index(odd))
