"""The packet log reads like the seed's tcpdump lines."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rrset

from checks import packetlog
from checks.icmp import SockError

SEED_QUERY = "13:24:32.192571 IP 198.51.100.15.52444 > 203.0.113.2.53: 35084+ A? yummyrecipesforme.com. (39)"
SEED_ICMP = "IP 203.0.113.2 > 198.51.100.15: ICMP 203.0.113.2 udp port 53 unreachable, length 75"


def seed_query() -> dns.message.Message:
    q = dns.message.make_query("yummyrecipesforme.com.", "A")
    q.id = 35084
    return q


def test_the_seeds_query_line() -> None:
    q = seed_query()
    line = packetlog.udp_line(0.0, ("198.51.100.15", 52444), ("203.0.113.2", 53), q, len(q.to_wire()))
    assert line.split(" ", 1)[1] == SEED_QUERY.split(" ", 1)[1]


def test_the_seeds_icmp_line() -> None:
    err = SockError("icmp", 3, 3, 111, "203.0.113.2", quoted=39)
    line = packetlog.icmp_line(0.0, err, "198.51.100.15", ("203.0.113.2", 53))
    assert line.split(" ", 1)[1] == SEED_ICMP


def test_response_line_shows_flags_rcode_and_counts() -> None:
    q = seed_query()
    r = dns.message.make_response(q)
    r.flags |= dns.flags.AA
    r.answer.append(dns.rrset.from_text("yummyrecipesforme.com.", 300, "IN", "A", "203.0.113.22"))
    assert packetlog.dns_text(r, 55) == "35084*- 1/0/0 A 203.0.113.22 (55)"
    r.set_rcode(3)
    r.answer.clear()
    r.flags |= dns.flags.RA
    assert packetlog.dns_text(r, 39) == "35084* NXDomain 0/0/0 (39)"


def test_edns_and_admin_prohibited() -> None:
    q = dns.message.make_query("example.org.", "AAAA", use_edns=0)
    q.id = 7
    assert packetlog.dns_text(q, 40) == "7+ [1au] AAAA? example.org. (40)"
    err = SockError("icmp", 3, 13, 113, "198.51.100.1", quoted=39)
    assert "ICMP host 203.0.113.2 unreachable - admin prohibited filter" in packetlog.icmp_line(
        0.0, err, "198.51.100.15", ("203.0.113.2", 53)
    )
