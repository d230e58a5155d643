"""The error queue's ICMP errors decoded and classified the way the diagnosis needs them."""

from __future__ import annotations

import socket
import struct

import pytest

from checks.icmp import (
    HOST_UNREACHABLE,
    PORT_UNREACHABLE,
    PROHIBITED,
    SO_EE_ORIGIN_ICMP,
    SO_EE_ORIGIN_ICMP6,
    SO_EE_ORIGIN_LOCAL,
    describe,
    parse_extended_err,
    same_address,
)


def extended_err(errno: int, origin: int, icmp_type: int, code: int, offender: bytes) -> bytes:
    return struct.pack("=IBBBBII", errno, origin, icmp_type, code, 0, 0, 0) + offender


def sockaddr_in(addr: str) -> bytes:
    return struct.pack("=H", socket.AF_INET) + struct.pack("!H", 0) + socket.inet_aton(addr) + b"\0" * 8


def sockaddr_in6(addr: str) -> bytes:
    return (
        struct.pack("=H", socket.AF_INET6)
        + struct.pack("!H", 0)
        + b"\0" * 4
        + socket.inet_pton(socket.AF_INET6, addr)
        + b"\0" * 4
    )


def test_port_unreachable_from_the_server() -> None:
    err = parse_extended_err(extended_err(111, SO_EE_ORIGIN_ICMP, 3, 3, sockaddr_in("203.0.113.2")), quoted=39)
    assert err is not None
    assert (err.origin, err.name, err.kind, err.offender, err.quoted) == (
        "icmp",
        "port-unreachable",
        PORT_UNREACHABLE,
        "203.0.113.2",
        39,
    )
    ev = err.to_evidence("203.0.113.2")
    assert ev.from_server is True and ev.errno == "ECONNREFUSED"


def test_icmp6_admin_prohibited_from_a_router() -> None:
    err = parse_extended_err(extended_err(13, SO_EE_ORIGIN_ICMP6, 1, 1, sockaddr_in6("2001:db8::1")))
    assert err is not None
    assert (err.kind, err.offender) == (PROHIBITED, "2001:db8::1")
    assert err.to_evidence("2001:db8::53").from_server is False


def test_local_error_has_no_offender() -> None:
    err = parse_extended_err(extended_err(1, SO_EE_ORIGIN_LOCAL, 0, 0, b"\0" * 16))
    assert err is not None and err.origin == "local" and err.offender is None


def test_short_control_message_is_ignored() -> None:
    assert parse_extended_err(b"\0" * 4) is None


@pytest.mark.parametrize(
    ("origin", "icmp_type", "code", "kind"),
    [
        ("icmp", 3, 3, PORT_UNREACHABLE),
        ("icmp", 3, 9, PROHIBITED),
        ("icmp", 3, 10, PROHIBITED),
        ("icmp", 3, 13, PROHIBITED),
        ("icmp", 3, 1, HOST_UNREACHABLE),
        ("icmp", 3, 0, HOST_UNREACHABLE),
        ("icmp6", 1, 4, PORT_UNREACHABLE),
        ("icmp6", 1, 1, PROHIBITED),
        ("icmp6", 1, 3, HOST_UNREACHABLE),
    ],
)
def test_classification_table(origin: str, icmp_type: int, code: int, kind: str) -> None:
    assert describe(origin, icmp_type, code)[1] == kind


def test_unknown_pairs_get_a_generic_name() -> None:
    assert describe("icmp", 42, 7)[0] == "type-42-code-7"


def test_same_address_ignores_scope_and_spelling() -> None:
    assert same_address("fe80::1%eth0", "fe80:0::1")
    assert not same_address(None, "203.0.113.2")
