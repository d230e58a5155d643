"""The packet log in tcpdump's own notation, rebuilt from what a probe sent and got back.

So the report shows the lines the seed's analysts read::

    13:24:32.192571 IP 198.51.100.15.52444 > 203.0.113.2.53: 35084+ A? yummyrecipesforme.com. (39)
    13:24:32.192760 IP 203.0.113.2 > 198.51.100.15: ICMP 203.0.113.2 udp port 53 unreachable, length 75

Pure: each function takes what was observed and returns one line. Times are local, as tcpdump prints them.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype

from checks.icmp import SockError, describe

_RCODE_WORDS = {
    dns.rcode.FORMERR: "FormErr",
    dns.rcode.SERVFAIL: "ServFail",
    dns.rcode.NXDOMAIN: "NXDomain",
    dns.rcode.NOTIMP: "NotImp",
    dns.rcode.REFUSED: "Refused",
}
IPV4_HEADER = 20
IPV6_HEADER = 40
UDP_HEADER = 8
ICMP_HEADER = 8


def stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).strftime("%H:%M:%S.%f")


def _ip(host: str) -> str:
    return "IP6" if ipaddress.ip_address(host.split("%", 1)[0]).version == 6 else "IP"


def endpoint(host: str, port: int | None = None) -> str:
    return host if port is None else f"{host}.{port}"


def dns_text(msg: dns.message.Message, length: int) -> str:
    """A DNS message as tcpdump prints it: ``35084+ A? name. (39)`` or ``35084* 1/0/0 A 1.2.3.4 (55)``."""
    flags = msg.flags
    opcode = dns.opcode.from_flags(flags)
    op = "" if opcode == dns.opcode.QUERY else f" {dns.opcode.to_text(opcode).lower()}"
    question = msg.question[0] if msg.question else None
    qtext = f"{dns.rdatatype.to_text(question.rdtype)}? {question.name.to_text()}" if question is not None else ""
    extra = " [1au]" if msg.edns >= 0 else ""
    if not flags & dns.flags.QR:
        marks = ("+" if flags & dns.flags.RD else "") + ("$" if flags & dns.flags.AD else "")
        marks += "%" if flags & dns.flags.CD else ""
        return f"{msg.id}{op}{marks}{extra} {qtext} ({length})"
    marks = ("*" if flags & dns.flags.AA else "") + ("" if flags & dns.flags.RA else "-")
    marks += ("|" if flags & dns.flags.TC else "") + ("$" if flags & dns.flags.AD else "")
    rcode = msg.rcode()
    rtext = f" {_RCODE_WORDS.get(rcode, dns.rcode.to_text(rcode))}" if rcode else ""
    additional = len(msg.additional) + (1 if msg.edns >= 0 else 0)
    counts = f"{sum(len(r) for r in msg.answer)}/{sum(len(r) for r in msg.authority)}/{additional}"
    answers = ", ".join(
        f"{dns.rdatatype.to_text(rrset.rdtype)} {rdata.to_text()}" for rrset in msg.answer for rdata in rrset
    )
    return f"{msg.id}{op}{marks}{rtext} {counts}{' ' + answers if answers else ''} ({length})"


def udp_line(epoch: float, src: tuple[str, int], dst: tuple[str, int], msg: dns.message.Message, length: int) -> str:
    return f"{stamp(epoch)} {_ip(dst[0])} {endpoint(*src)} > {endpoint(*dst)}: {dns_text(msg, length)}"


def tcp_line(epoch: float, src: tuple[str, int], dst: tuple[str, int], what: str) -> str:
    """A TCP segment: ``Flags [S]``, ``Flags [R.]`` or a DNS message carried over TCP."""
    return f"{stamp(epoch)} {_ip(dst[0])} {endpoint(*src)} > {endpoint(*dst)}: {what}"


def icmp_line(epoch: float, err: SockError, local_host: str, server: tuple[str, int], proto: str = "udp") -> str:
    """The ICMP error as tcpdump prints it, its length rebuilt from the bytes it quoted back."""
    _, _, words = describe(err.origin, err.type, err.code)
    text = words.format(addr=server[0], proto=proto, port=server[1])
    offender = err.offender or "?"
    if err.origin == "local":
        return f"{stamp(epoch)} local error: {text} ({err.errno})"
    if err.origin == "icmp6":
        length = ICMP_HEADER + IPV6_HEADER + UDP_HEADER + err.quoted
        return f"{stamp(epoch)} IP6 {offender} > {local_host}: ICMP6, {text}, length {length}"
    length = ICMP_HEADER + IPV4_HEADER + UDP_HEADER + err.quoted
    return f"{stamp(epoch)} IP {offender} > {local_host}: ICMP {text}, length {length}"
