"""Reading a capture: pcap and pcapng (dpkt), or tcpdump's own text output, into one stream of packets.

Pure reading, no judgement: each packet becomes a :class:`Packet` with what the analysis needs (addresses,
ports, TCP flags, the DNS message's facts, an ICMP error's quoted flow). DNS payloads are parsed by dnspython,
once per distinct content (a cache keyed on the message without its id: a flood of one query costs one
parse). The stream is read as it comes, never loaded whole: a capture larger than memory is fine.

Formats are told apart by their first bytes: the pcap magics (both byte orders, micro- and nanosecond), the
pcapng section header, and otherwise text that reads as tcpdump lines (``tcpdump -n``, ``-nn``, with or
without ``-v``, as pasted into a ticket). See :mod:`checks.tcpdump_text`.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any, Literal

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

from checks.icmp import ICMP4, ICMP6
from runbook.errors import InputError

PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
DNS_PORT = 53
# Link types (pcap LINKTYPE_ values) this reader decodes.
ETHERNET, LINUX_SLL, LINUX_SLL2 = 1, 113, 276
RAW_TYPES = frozenset({12, 14, 101, 228, 229})  # raw IP (the BSD and Linux values), raw IPv4, raw IPv6
LINK_NAMES = {ETHERNET: "Ethernet", LINUX_SLL: "Linux cooked v1", LINUX_SLL2: "Linux cooked v2"}
_CACHE_MAX = 200_000
_PORTS = struct.Struct("!HH")


@dataclass(frozen=True, slots=True)
class DnsFacts:
    """What the analysis reads of one DNS message."""

    id: int
    response: bool
    qname: str
    qtype: str
    rcode: str
    aa: bool = False
    tc: bool = False
    rd: bool = False
    answers: tuple[tuple[str, str, str], ...] = ()
    """(owner name, type, value) of each answer record."""
    ede: tuple[tuple[int, str], ...] = ()
    edns: bool = False
    size: int = 0
    text: str = ""
    """The message as tcpdump prints it (for the packet log)."""


@dataclass(frozen=True, slots=True)
class Quoted:
    """The flow an ICMP error quotes back: the datagram that drew it."""

    proto: str
    src: str
    sport: int
    dst: str
    dport: int


@dataclass(slots=True)
class Packet:
    ts: float
    src: str
    dst: str
    proto: str
    """``udp``, ``tcp``, ``icmp`` or ``icmp6``."""
    sport: int = 0
    dport: int = 0
    dns: DnsFacts | None = None
    dns_id: int = 0
    """The message's id (``dns`` is shared by every message of the same content, whatever its id)."""
    tcp_flags: str = ""
    """tcpdump's letters: ``S``, ``S.``, ``R``, ``R.``, ``F.``, ``P.``, ``.``."""
    seq: int = 0
    payload: bytes = b""
    """A TCP segment's bytes (the DNS messages it carries are reassembled by the analysis)."""
    icmp: tuple[int, int] | None = None
    quoted: Quoted | None = None
    length: int = 0
    line: str = ""
    """The line as the capture shows it (text input), or as tcpdump would print it."""


@dataclass
class Source:
    """An opened capture: what it is, and its packets as they are read."""

    kind: str
    """``pcap``, ``pcapng`` or ``tcpdump text``."""
    link: str
    packets: Iterator[Packet]
    stats: dict[str, Any] = field(default_factory=dict)
    """Read as the packets are: ``frames``, ``undecoded``, ``truncated`` (what stopped the read)."""


def open_capture(stream: IO[bytes], name: str) -> Source:
    """The capture in ``stream``; an :class:`InputError` (one line) for what is not one this reader knows."""
    head = _peek(stream, 4)
    if not head:
        raise InputError(f"{name} is empty: no capture to analyse")
    if head in PCAP_MAGICS or head == PCAPNG_MAGIC:
        return _binary(stream, name, "pcapng" if head == PCAPNG_MAGIC else "pcap")
    from checks import tcpdump_text

    return tcpdump_text.open_text(stream, name)


def _peek(stream: IO[bytes], n: int) -> bytes:
    peek = getattr(stream, "peek", None)
    if peek is not None:
        return bytes(peek(n)[:n])
    raise InputError("the capture must be a readable file or a pipe")


def _binary(stream: IO[bytes], name: str, kind: str) -> Source:
    import dpkt

    try:
        reader: Any = dpkt.pcapng.Reader(stream) if kind == "pcapng" else dpkt.pcap.Reader(stream)
    except (ValueError, dpkt.Error, struct.error) as e:
        raise InputError(f"{name}: not a readable {kind} file ({e})") from None
    link = int(reader.datalink())
    if link not in LINK_NAMES and link not in RAW_TYPES:
        raise InputError(
            f"{name}: link type {link} is not one this reader knows (Ethernet, Linux cooked v1/v2, raw IP)"
        )
    stats: dict[str, Any] = {"frames": 0, "undecoded": 0, "truncated": None}
    decoder = Decoder()
    return Source(kind, LINK_NAMES.get(link, "raw IP"), _frames(reader, link, decoder, stats, name), stats)


def _frames(reader: Any, link: int, decoder: Decoder, stats: dict[str, Any], name: str) -> Iterator[Packet]:
    import dpkt

    frames = iter(reader)
    broken_last = False
    while True:
        try:
            ts, buf = next(frames)
        except StopIteration:
            if broken_last:  # the last record ends before its packet does: the file was cut
                stats["truncated"] = f"{name} is damaged: its last packet is cut short"
            return
        except (ValueError, dpkt.Error, struct.error, EOFError) as e:
            stats["truncated"] = f"{name} is damaged after {stats['frames']} packets ({e or type(e).__name__})"
            return
        stats["frames"] += 1
        packet = decoder.frame(float(ts), buf, link)
        broken_last = packet is BROKEN
        if packet is None or packet is BROKEN:
            stats["undecoded"] += 1
        else:
            yield packet


BROKEN = Packet(0.0, "", "", "broken")
"""What :meth:`Decoder.frame` returns for a frame whose headers or payload are cut short."""


def _cut(ip: Any) -> bool:
    """The IP packet is shorter than its own header says (a record cut by the end of the file)."""
    total = getattr(ip, "len", None)
    if total is None:  # IPv6: the payload length
        plen = getattr(ip, "plen", None)
        return plen is not None and len(bytes(ip.data)) < plen if not isinstance(ip.data, bytes) else False
    return bool(total) and len(ip) < total


class Decoder:
    """Link layer to DNS facts, for one capture. Keeps the parse cache (bounded)."""

    def __init__(self) -> None:
        self._messages: dict[bytes, DnsFacts | None] = {}

    def frame(self, ts: float, buf: bytes, link: int) -> Packet | None:
        """The packet, None when it carries no DNS or ICMP error, :data:`BROKEN` when its headers are cut."""
        import dpkt

        if link == ETHERNET and buf[12:14] == b"\x08\x00":
            fast = self.udp4(ts, buf, 14)
            if fast is not False:
                return fast
        try:
            if link == ETHERNET and buf[12:14] == b"\x08\x00":  # IPv4 without a VLAN tag: the common case, direct
                ip: Any = dpkt.ip.IP(buf[14:])
            elif link == ETHERNET and buf[12:14] == b"\x86\xdd":
                ip = dpkt.ip6.IP6(buf[14:])
            elif link == ETHERNET:
                ip = dpkt.ethernet.Ethernet(buf).data
            elif link == LINUX_SLL:
                ip = dpkt.sll.SLL(buf).data
            elif link == LINUX_SLL2:
                ip = dpkt.sll2.SLL2(buf).data
            else:
                ip = dpkt.ip.IP(buf) if buf[:1] and buf[0] >> 4 == 4 else dpkt.ip6.IP6(buf)
        except (dpkt.Error, struct.error, ValueError, IndexError):
            return BROKEN
        if isinstance(ip, bytes) or _cut(ip):
            return BROKEN
        return self.ip(ts, ip)

    def udp4(self, ts: float, buf: bytes, at: int) -> Packet | Literal[False] | None:
        """The hot path of a large capture, measured (bench/analyze_speed.py): an unfragmented IPv4 UDP
        datagram read from its fixed header fields, without building dpkt's objects for every packet. False
        for anything else (options aside, which the header length covers): dpkt reads those, and
        tests/unit/test_analyze.py checks both readings agree."""
        if len(buf) < at + 28 or buf[at] >> 4 != 4 or buf[at + 9] != 17 or buf[at + 6] & 0x3F or buf[at + 7]:
            return False
        header = (buf[at] & 0x0F) * 4
        total = (buf[at + 2] << 8) | buf[at + 3]
        udp = at + header
        if header < 20 or len(buf) < at + total or total < header + 8:
            return False
        sport, dport = _PORTS.unpack_from(buf, udp)
        if DNS_PORT not in (sport, dport):
            return None
        src = socket.inet_ntop(socket.AF_INET, buf[at + 12 : at + 16])
        dst = socket.inet_ntop(socket.AF_INET, buf[at + 16 : at + 20])
        payload = buf[udp + 8 : at + total]
        packet = Packet(ts, src, dst, "udp", sport, dport, length=len(payload))
        found = self.message(payload)
        if found is not None:
            packet.dns, packet.dns_id = found
        return packet

    def ip(self, ts: float, ip: Any) -> Packet | None:
        import dpkt

        if isinstance(ip, dpkt.ip.IP):
            family = socket.AF_INET
        elif isinstance(ip, dpkt.ip6.IP6):
            family = socket.AF_INET6
        else:
            return None
        src, dst = socket.inet_ntop(family, ip.src), socket.inet_ntop(family, ip.dst)
        l4 = ip.data
        if isinstance(l4, dpkt.udp.UDP):
            if DNS_PORT not in (l4.sport, l4.dport):
                return None
            packet = Packet(ts, src, dst, "udp", l4.sport, l4.dport, length=len(l4.data))
            found = self.message(bytes(l4.data))
            if found is not None:
                packet.dns, packet.dns_id = found
            return packet
        if isinstance(l4, dpkt.tcp.TCP):
            if DNS_PORT not in (l4.sport, l4.dport):
                return None
            flags = _tcp_flags(l4.flags)
            return Packet(ts, src, dst, "tcp", l4.sport, l4.dport, tcp_flags=flags, seq=l4.seq, payload=bytes(l4.data))
        if isinstance(l4, dpkt.icmp.ICMP | dpkt.icmp6.ICMP6):
            return _icmp(ts, src, dst, l4)
        return None

    def message(self, payload: bytes) -> tuple[DnsFacts, int] | None:
        """The DNS facts of ``payload`` and its id (None when it is no DNS message), parsed once per content."""
        if len(payload) < 12:
            return None
        key = payload[2:]
        if key in self._messages:
            cached = self._messages[key]
        else:
            cached = dns_facts(payload)
            if len(self._messages) >= _CACHE_MAX:
                self._messages.clear()
            self._messages[key] = cached
        if cached is None:
            return None
        return cached, (payload[0] << 8) | payload[1]


def dns_facts(payload: bytes) -> DnsFacts | None:
    """A DNS message's facts, by dnspython; None when the bytes are not a DNS message."""
    from checks.packetlog import dns_text

    try:
        msg = dns.message.from_wire(payload, ignore_trailing=True, raise_on_truncation=False)
    except (dns.exception.DNSException, ValueError, IndexError, struct.error):
        return None
    question = msg.question[0] if msg.question else None
    return DnsFacts(
        msg.id,
        bool(msg.flags & dns.flags.QR),
        question.name.to_text() if question is not None else ".",
        dns.rdatatype.to_text(question.rdtype) if question is not None else "?",
        dns.rcode.to_text(msg.rcode()),
        bool(msg.flags & dns.flags.AA),
        bool(msg.flags & dns.flags.TC),
        bool(msg.flags & dns.flags.RD),
        tuple(
            (rrset.name.to_text(), dns.rdatatype.to_text(rrset.rdtype), rdata.to_text())
            for rrset in msg.answer
            for rdata in rrset
        ),
        tuple((int(o.code), o.text or "") for o in msg.options if isinstance(o, dns.edns.EDEOption)),
        msg.edns >= 0,
        len(payload),
        dns_text(msg, len(payload)),
    )


def _tcp_flags(bits: int) -> str:
    import dpkt

    letters = "".join(
        c
        for c, b in (("F", dpkt.tcp.TH_FIN), ("S", dpkt.tcp.TH_SYN), ("R", dpkt.tcp.TH_RST), ("P", dpkt.tcp.TH_PUSH))
        if bits & b
    )
    return letters + ("." if bits & dpkt.tcp.TH_ACK else "")


def _icmp(ts: float, src: str, dst: str, l4: Any) -> Packet | None:
    """An ICMP destination-unreachable (or time-exceeded) error with the flow it quotes."""
    import dpkt

    v6 = isinstance(l4, dpkt.icmp6.ICMP6)
    if (l4.type in (128, 129)) if v6 else (l4.type in (0, 8)):  # echo request and reply: is the host up?
        reply = l4.type in (0, 129)
        return Packet(ts, src, dst, "echo-reply" if reply else "echo", icmp=(l4.type, l4.code), length=len(l4))
    table = ICMP6 if v6 else ICMP4
    if (l4.type, l4.code) not in table:
        return None
    inner = l4.data.data if hasattr(l4.data, "data") else None
    if not isinstance(inner, dpkt.ip.IP | dpkt.ip6.IP6):
        raw = bytes(getattr(l4.data, "data", b"") or b"")
        try:
            inner = dpkt.ip6.IP6(raw) if v6 else dpkt.ip.IP(raw)
        except (dpkt.Error, struct.error, ValueError, IndexError):
            return None
    quoted = _quoted(inner)
    if quoted is None:
        return None
    return Packet(ts, src, dst, "icmp6" if v6 else "icmp", icmp=(l4.type, l4.code), quoted=quoted, length=len(l4))


def _quoted(inner: Any) -> Quoted | None:
    import dpkt

    family = socket.AF_INET6 if isinstance(inner, dpkt.ip6.IP6) else socket.AF_INET
    l4 = inner.data
    if isinstance(l4, bytes) and len(l4) >= 4:  # dpkt leaves a truncated quote as bytes: the ports are there
        sport, dport = struct.unpack_from("!HH", l4)
        proto = {17: "udp", 6: "tcp"}.get(getattr(inner, "p", getattr(inner, "nxt", 0)), "")
    elif isinstance(l4, dpkt.udp.UDP | dpkt.tcp.TCP):
        sport, dport = l4.sport, l4.dport
        proto = "udp" if isinstance(l4, dpkt.udp.UDP) else "tcp"
    else:
        return None
    if not proto:
        return None
    return Quoted(proto, socket.inet_ntop(family, inner.src), sport, socket.inet_ntop(family, inner.dst), dport)


def line_of(p: Packet) -> str:
    """The packet as tcpdump prints it: the capture's own line (text input), or rebuilt (pcap, pcapng).
    Made only for the packets a report quotes."""
    if p.line:
        return p.line
    from checks.packetlog import endpoint, stamp

    ip = "IP6" if ":" in p.src else "IP"
    if p.proto == "udp" and p.dns is not None:
        text = p.dns.text
        if p.dns_id != p.dns.id and text.startswith(str(p.dns.id)):
            text = f"{p.dns_id}{text[len(str(p.dns.id)) :]}"
        return f"{stamp(p.ts)} {ip} {endpoint(p.src, p.sport)} > {endpoint(p.dst, p.dport)}: {text}"
    if p.proto in ("icmp", "icmp6") and p.icmp is not None and p.quoted is not None:
        table = ICMP6 if p.proto == "icmp6" else ICMP4
        words = table.get(p.icmp, ("", "", "ICMP error"))[2]
        text = words.format(addr=p.quoted.dst, proto=p.quoted.proto, port=p.quoted.dport)
        kind = "ICMP6, " if p.proto == "icmp6" else "ICMP "
        return f"{stamp(p.ts)} {ip} {p.src} > {p.dst}: {kind}{text}, length {p.length}"
    if p.proto == "tcp":
        return f"{stamp(p.ts)} {ip} {endpoint(p.src, p.sport)} > {endpoint(p.dst, p.dport)}: Flags [{p.tcp_flags}]"
    return f"{stamp(p.ts)} {ip} {p.src} > {p.dst}: {p.proto}"
