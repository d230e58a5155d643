"""Answer-set comparison, as an expert compares: overlap is agreement, CNAME chains are followed."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from runbook.answers import AGREE, DISAGREE, UNKNOWN, compare, describe, matches_expected, resolve_chain
from runbook.evidence import Record

Q = "www.example.org."
ADDRS = st.lists(st.ip_addresses(v=4).map(str), min_size=1, max_size=6, unique=True)


def a(name: str, value: str, rtype: str = "A") -> Record:
    return Record(name=name, type=rtype, value=value, ttl=60)


def records(addrs: list[str], name: str = Q) -> list[Record]:
    return [a(name, x) for x in addrs]


@given(ADDRS, st.data())
def test_order_never_matters(addrs: list[str], data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(addrs))
    assert compare(records(shuffled), [records(addrs)], Q, "A") == AGREE


@given(ADDRS, st.data())
def test_a_round_robin_subset_agrees(addrs: list[str], data: st.DataObject) -> None:
    subset = data.draw(st.lists(st.sampled_from(addrs), min_size=1, unique=True))
    assert compare(records(subset), [records(addrs)], Q, "A") == AGREE
    assert compare(records(addrs), [records(subset)], Q, "A") == AGREE


@given(ADDRS, ADDRS)
def test_disjoint_sets_disagree(mine: list[str], theirs: list[str]) -> None:
    expected = AGREE if set(mine) & set(theirs) else DISAGREE
    assert compare(records(mine), [records(theirs)], Q, "A") == expected


def test_cname_chain_is_followed() -> None:
    resolver = [
        a(Q, "cdn.example.net.", "CNAME"),
        a("cdn.example.net.", "edge.cdn.example.", "CNAME"),
        a("edge.cdn.example.", "192.0.2.7"),
    ]
    assert resolve_chain(resolver, Q, "A").values == {"192.0.2.7"}
    # The zone's own servers only know the CNAME into the CDN's zone: reaching it is agreement.
    authority = [a(Q, "cdn.example.net.", "CNAME")]
    assert compare(resolver, [authority], Q, "A") == AGREE
    assert (
        compare([a(Q, "evil.example.", "CNAME"), a("evil.example.", "198.51.100.66")], [authority], Q, "A") == DISAGREE
    )


def test_cname_loops_end() -> None:
    looped = [a(Q, "x.example.", "CNAME"), a("x.example.", Q, "CNAME")]
    assert resolve_chain(looped, Q, "A").values == frozenset()


def test_agreeing_with_any_authority_is_enough() -> None:
    assert compare(records(["192.0.2.1"]), [records(["192.0.2.9"]), records(["192.0.2.1"])], Q, "A") == AGREE


def test_nothing_to_compare_with_is_unknown() -> None:
    assert compare(records(["192.0.2.1"]), [], Q, "A") == UNKNOWN
    assert compare(records(["192.0.2.1"]), [[]], Q, "A") == UNKNOWN


def test_ipv6_spellings_are_the_same_address() -> None:
    mine = [a(Q, "2001:db8::1", "AAAA")]
    assert compare(mine, [[a(Q, "2001:0db8:0:0::1", "AAAA")]], Q, "AAAA") == AGREE


def test_case_of_names_does_not_matter() -> None:
    assert compare(records(["192.0.2.1"], "WWW.Example.ORG."), [records(["192.0.2.1"])], Q, "A") == AGREE


def test_expected_addresses_are_ground_truth() -> None:
    assert matches_expected(records(["192.0.2.1", "192.0.2.2"]), ["192.0.2.2"], Q, "A") == AGREE
    assert matches_expected(records(["198.51.100.66"]), ["192.0.2.2"], Q, "A") == DISAGREE
    assert matches_expected(records(["192.0.2.1"]), [], Q, "A") == UNKNOWN


def test_describe() -> None:
    assert (
        describe([a(Q, "c.example.", "CNAME"), a("c.example.", "192.0.2.1")], Q, "A") == "CNAME c.example. -> 192.0.2.1"
    )
