"""ICMP and ICMPv6 errors as Linux reports them on a socket with IP_RECVERR / IPV6_RECVERR.

Pure tables and parsing: what an (origin, type, code) means, which kind of failure it signals, and the
words tcpdump prints for it. The socket work is in :mod:`checks.wire`.
"""

from __future__ import annotations

import errno as errno_mod
import ipaddress
import socket
import struct

import msgspec

# What a failure means for the diagnosis: the evidence's words.
from runbook.evidence import (
    HOST_UNREACHABLE,
    OTHER,
    PORT_UNREACHABLE,
    PROHIBITED,
    PROTOCOL_UNREACHABLE,
    TTL_EXCEEDED,
    Icmp,
)

# <linux/errqueue.h>; not in Python's socket module before 3.14.
IP_RECVERR = 11
IPV6_RECVERR = 25
SO_EE_ORIGIN_NONE = 0
SO_EE_ORIGIN_LOCAL = 1
SO_EE_ORIGIN_ICMP = 2
SO_EE_ORIGIN_ICMP6 = 3
_EXTENDED_ERR = struct.Struct("=IBBBBII")


# (type, code) -> (name, kind, tcpdump's words with {addr})
ICMP4: dict[tuple[int, int], tuple[str, str, str]] = {
    (3, 0): ("net-unreachable", HOST_UNREACHABLE, "net {addr} unreachable"),
    (3, 1): ("host-unreachable", HOST_UNREACHABLE, "host {addr} unreachable"),
    (3, 2): ("protocol-unreachable", PROTOCOL_UNREACHABLE, "{addr} protocol {proto} unreachable"),
    (3, 3): ("port-unreachable", PORT_UNREACHABLE, "{addr} {proto} port {port} unreachable"),
    (3, 4): ("fragmentation-needed", OTHER, "{addr} unreachable - need to frag"),
    (3, 5): ("source-route-failed", HOST_UNREACHABLE, "{addr} unreachable - source route failed"),
    (3, 6): ("net-unknown", HOST_UNREACHABLE, "net {addr} unreachable - unknown"),
    (3, 7): ("host-unknown", HOST_UNREACHABLE, "host {addr} unreachable - unknown"),
    (3, 8): ("host-isolated", HOST_UNREACHABLE, "{addr} unreachable - source host isolated"),
    (3, 9): ("net-prohibited", PROHIBITED, "net {addr} unreachable - admin prohibited"),
    (3, 10): ("host-prohibited", PROHIBITED, "host {addr} unreachable - admin prohibited"),
    (3, 11): ("net-unreachable-for-tos", HOST_UNREACHABLE, "net {addr} unreachable - tos prohibited"),
    (3, 12): ("host-unreachable-for-tos", HOST_UNREACHABLE, "host {addr} unreachable - tos prohibited"),
    (3, 13): ("admin-prohibited", PROHIBITED, "host {addr} unreachable - admin prohibited filter"),
    (3, 14): ("host-precedence-violation", PROHIBITED, "host {addr} unreachable - precedence violation"),
    (3, 15): ("precedence-cutoff", PROHIBITED, "host {addr} unreachable - precedence cutoff"),
    (11, 0): ("ttl-exceeded", TTL_EXCEEDED, "time exceeded in-transit"),
    (11, 1): ("reassembly-time-exceeded", OTHER, "ip reassembly time exceeded"),
}
ICMP6: dict[tuple[int, int], tuple[str, str, str]] = {
    (1, 0): ("no-route", HOST_UNREACHABLE, "destination unreachable, unreachable route {addr}"),
    (1, 1): ("admin-prohibited", PROHIBITED, "destination unreachable, unreachable prohibited {addr}"),
    (1, 2): ("beyond-scope", HOST_UNREACHABLE, "destination unreachable, beyond scope {addr}"),
    (1, 3): ("address-unreachable", HOST_UNREACHABLE, "destination unreachable, unreachable address {addr}"),
    (1, 4): (
        "port-unreachable",
        PORT_UNREACHABLE,
        "destination unreachable, unreachable port, {addr} {proto} port {port}",
    ),
    (1, 5): ("source-address-failed-policy", PROHIBITED, "destination unreachable, failed policy {addr}"),
    (1, 6): ("reject-route", PROHIBITED, "destination unreachable, reject route {addr}"),
    (3, 0): ("hop-limit-exceeded", TTL_EXCEEDED, "time exceeded in-transit for {addr}"),
}


class SockError(msgspec.Struct, frozen=True):
    """One entry of a socket's error queue: an ICMP error, or a local error of the sending host."""

    origin: str
    """``icmp``, ``icmp6``, ``local`` or ``none``."""
    type: int
    code: int
    errno: int
    offender: str | None
    """The address that sent the ICMP error (None for local errors)."""
    quoted: int = 0
    """Bytes of our own datagram's payload the error quoted back."""

    @property
    def name(self) -> str:
        return describe(self.origin, self.type, self.code)[0]

    @property
    def kind(self) -> str:
        if self.origin == "local":
            return OTHER
        return describe(self.origin, self.type, self.code)[1]

    def to_evidence(self, server_host: str) -> Icmp:
        return Icmp(
            origin=self.origin,
            type=self.type,
            code=self.code,
            name=self.name,
            kind=self.kind,
            errno=errno_mod.errorcode.get(self.errno, str(self.errno)),
            offender=self.offender,
            from_server=same_address(self.offender, server_host),
        )


def describe(origin: str, icmp_type: int, code: int) -> tuple[str, str, str]:
    """(name, kind, tcpdump words) of an ICMP error; unknown pairs get a generic description."""
    table = ICMP6 if origin == "icmp6" else ICMP4
    if origin == "local":
        return ("local-error", OTHER, "local error")
    found = table.get((icmp_type, code))
    if found:
        return found
    return (f"type-{icmp_type}-code-{code}", OTHER, f"type {icmp_type} code {code} from {{addr}}")


def same_address(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    try:
        return ipaddress.ip_address(a.split("%", 1)[0]) == ipaddress.ip_address(b.split("%", 1)[0])
    except ValueError:
        return a == b


def parse_extended_err(cdata: bytes, quoted: int = 0) -> SockError | None:
    """Decode ``struct sock_extended_err`` and the offender address that follows it."""
    if len(cdata) < _EXTENDED_ERR.size:
        return None
    ee_errno, origin, icmp_type, code, _pad, _info, _data = _EXTENDED_ERR.unpack_from(cdata)
    offender: str | None = None
    rest = cdata[_EXTENDED_ERR.size :]
    if len(rest) >= 2:
        family = struct.unpack_from("=H", rest)[0]
        if family == socket.AF_INET and len(rest) >= 8:
            offender = socket.inet_ntop(socket.AF_INET, rest[4:8])
        elif family == socket.AF_INET6 and len(rest) >= 24:
            offender = socket.inet_ntop(socket.AF_INET6, rest[8:24])
            mapped = ipaddress.IPv6Address(offender).ipv4_mapped
            offender = str(mapped) if mapped else offender
    origin_name = {
        SO_EE_ORIGIN_LOCAL: "local",
        SO_EE_ORIGIN_ICMP: "icmp",
        SO_EE_ORIGIN_ICMP6: "icmp6",
    }.get(origin, "none")
    return SockError(origin_name, icmp_type, code, ee_errno, offender, quoted)
