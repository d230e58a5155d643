"""The probes against a real DNS server on loopback (port 0), and a real closed port.

The kernel's own ICMP port unreachable is read from the error queue on an unprivileged socket, over IPv4
and IPv6; answers are parsed with their flags; stray datagrams are ignored; silence is retried within
the budget and answers are not.
"""

from __future__ import annotations

import asyncio
import time

import dns.rcode

from checks import wire
from runbook.model import Server
from tests.conftest import needs_ipv6_loopback
from tests.unit.dnsserver import Behaviour, closed_port, dns_server

QUERY = wire.make_query("yummyrecipesforme.com.", "A", edns=False)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_closed_udp_port_is_an_icmp_port_unreachable_from_the_server() -> None:
    server = Server("127.0.0.1", closed_port())
    ex = run(wire.udp_exchange(server, QUERY, 2.0))
    assert ex.outcome == wire.ICMP
    ev = ex.to_evidence()
    assert ev.icmp is not None and ev.icmp.name == "port-unreachable" and ev.icmp.from_server is True
    assert (ex.rtt_s or 1) < 0.5  # no timer was waited on
    assert ex.packets[0].endswith(f"A? yummyrecipesforme.com. ({len(QUERY.to_wire())})")
    assert f"ICMP 127.0.0.1 udp port {server.port} unreachable, length 75" in ex.packets[1]


@needs_ipv6_loopback
def test_closed_udp_port_over_ipv6() -> None:
    server = Server("::1", closed_port("::1"))
    ex = run(wire.udp_exchange(server, QUERY, 2.0))
    assert ex.outcome == wire.ICMP
    assert ex.error is not None and (ex.error.origin, ex.error.type, ex.error.code) == ("icmp6", 1, 4)
    assert "ICMP6, destination unreachable, unreachable port" in ex.packets[1]


def test_closed_tcp_port_is_a_reset() -> None:
    ex = run(wire.tcp_exchange(Server("127.0.0.1", closed_port()), QUERY, 2.0))
    assert ex.outcome == wire.RESET
    assert "Flags [R.]" in ex.packets[-1]


def test_answer_over_udp_and_tcp_with_flags() -> None:
    with dns_server() as (host, port, _):
        server = Server(host, port)
        udp = run(wire.udp_exchange(server, QUERY, 2.0))
        tcp = run(wire.tcp_exchange(server, QUERY, 2.0))
    for ex in (udp, tcp):
        ev = ex.to_evidence()
        assert ev.outcome == "answer" and ev.rcode == "NOERROR"
        assert ev.to_json()["answers"] == [
            {"name": "yummyrecipesforme.com.", "type": "A", "ttl": 300, "value": "127.0.0.2"}
        ]
        assert ev.ra is True and ev.aa is False and ev.tc is False
    assert "1/0/0 A 127.0.0.2" in udp.packets[1]


def test_stray_and_mismatched_datagrams_are_ignored() -> None:
    with dns_server(Behaviour(stray_first=True)) as (host, port, _):
        ex = run(wire.udp_exchange(Server(host, port), QUERY, 2.0))
    assert ex.outcome == wire.ANSWER


def test_refused_is_an_answer_not_a_failure_of_the_transport() -> None:
    with dns_server(Behaviour(rcode=dns.rcode.REFUSED)) as (host, port, _):
        ex = run(wire.udp_exchange(Server(host, port), QUERY, 2.0))
    assert ex.outcome == wire.ANSWER and ex.to_evidence().rcode == "REFUSED"


def test_silence_is_retried_within_the_budget() -> None:
    with dns_server(Behaviour(drop_first=1)) as (host, port, b):
        start = time.monotonic()
        tries = run(wire.udp_attempts(Server(host, port), QUERY, 1.5, 3))
        took = time.monotonic() - start
    assert [t.outcome for t in tries] == [wire.TIMEOUT, wire.ANSWER]
    assert b.seen.count("udp") == 2
    assert took < 1.5 + 0.3


def test_definitive_answers_are_never_retried() -> None:
    tries = run(wire.udp_attempts(Server("127.0.0.1", closed_port()), QUERY, 1.5, 3))
    assert [t.outcome for t in tries] == [wire.ICMP]


def test_total_silence_uses_the_budget_not_the_sum_of_tries() -> None:
    with dns_server(Behaviour(drop_first=99)) as (host, port, _b):
        start = time.monotonic()
        tries = run(wire.udp_attempts(Server(host, port), QUERY, 0.9, 3))
        took = time.monotonic() - start
    assert [t.outcome for t in tries] == [wire.TIMEOUT] * 3
    assert 0.85 < took < 0.9 + 0.3


def test_a_burst_of_a_thousand_needs_one_socket_whatever_the_open_file_limit() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with dns_server() as (host, port, _):
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        try:
            query = lambda: wire.make_query("example.com.", "A", edns=False)  # noqa: E731
            stats = run(wire.burst(Server(host, port), query, 1000, 0.0005, 1.0))
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    # More queries in flight than the process may open files: all sent, on one socket; answers matched by id.
    assert stats.sent == 1000 and stats.received > 0
    assert stats.outcomes.get("local-error", 0) == 0
    assert stats.first_answer is not None and stats.first_answer.rcode == "NOERROR"


def test_a_burst_at_a_closed_port_counts_icmp_errors_not_answers() -> None:
    stats = run(wire.burst(Server("127.0.0.1", closed_port()), lambda: QUERY, 5, 0.01, 0.3))
    assert stats.received == 0 and stats.loss == 1.0 and stats.outcomes.get("icmp", 0) >= 1
