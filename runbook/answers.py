"""Answer sets, compared the way an expert compares them. Pure.

An answer is the list of records a server gave (:class:`runbook.evidence.Record`). What a client ends up
with is the end of the CNAME chain from the question's name; two servers agree when those ends overlap
(round-robin and CDN answers differ in part, not in whole), or, when the zone's own servers only hand out a
CNAME into another zone, when the other server's chain passes through that CNAME's target.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

import msgspec

from runbook.evidence import Record

AGREE = "agree"
DISAGREE = "disagree"
UNKNOWN = "unknown"


def _norm(rtype: str, value: str) -> str:
    if rtype in ("A", "AAAA"):
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            return value
    return value.lower()


class Resolution(msgspec.Struct, frozen=True):
    """Where a server's answer leads: the CNAME chain walked from the question, and the records at its end."""

    chain: tuple[str, ...]
    values: frozenset[str]

    @property
    def cname_targets(self) -> frozenset[str]:
        return frozenset(self.chain[1:])


def resolve_chain(answers: Iterable[Record], qname: str, qtype: str) -> Resolution:
    records = [(a.name.lower(), a.type, a.value) for a in answers]
    name = qname.lower()
    chain = [name]
    while True:
        values = frozenset(_norm(t, v) for n, t, v in records if n == name and t == qtype)
        if values:
            return Resolution(tuple(chain), values)
        targets = sorted(v.lower() for n, t, v in records if n == name and t == "CNAME")
        if not targets or targets[0] in chain:
            return Resolution(tuple(chain), frozenset())
        name = targets[0]
        chain.append(name)


def compare(candidate: Iterable[Record], references: Sequence[Iterable[Record]], qname: str, qtype: str) -> str:
    """Does ``candidate`` agree with any of the ``references`` (each one server's answer)?"""
    mine = resolve_chain(candidate, qname, qtype)
    verdicts = []
    for ref in references:
        theirs = resolve_chain(ref, qname, qtype)
        if theirs.values:
            verdicts.append(AGREE if mine.values & theirs.values else DISAGREE)
        elif theirs.cname_targets:
            # The zone hands out a CNAME into another zone: agreeing is reaching that target.
            verdicts.append(AGREE if theirs.chain[1] in mine.chain else DISAGREE)
    if not verdicts:
        return UNKNOWN
    return AGREE if AGREE in verdicts else DISAGREE


def matches_expected(candidate: Iterable[Record], expected: Iterable[str], qname: str, qtype: str) -> str:
    """``--expect`` is ground truth: the answer must contain at least one expected address."""
    wanted = {_norm(qtype, e) for e in expected}
    if not wanted:
        return UNKNOWN
    return AGREE if resolve_chain(candidate, qname, qtype).values & wanted else DISAGREE


def describe(answers: Iterable[Record], qname: str, qtype: str) -> str:
    """``CNAME x. -> 203.0.113.22, 203.0.113.23`` for a summary."""
    res = resolve_chain(answers, qname, qtype)
    via = " -> ".join(res.chain[1:])
    values = ", ".join(sorted(res.values)) or "nothing"
    return f"CNAME {via} -> {values}" if via else values
