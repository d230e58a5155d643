"""tcpdump's own text output, as it is pasted into tickets, read into the same packets a capture gives.

``tcpdump -n`` and ``-nn`` (port names such as ``.domain`` or numbers), with or without ``-v`` (where the IP
header is a line of its own and the addresses follow on the next), ``-tttt`` dates or bare times, IPv4 and
IPv6; DNS queries and answers as tcpdump decodes them (``35084+ A? name. (24)``, ``35084* 1/0/0 A 1.2.3.4
(40)``, ``35084 NXDomain 0/1/0 (97)``), TCP segments by their flags, and ICMP/ICMPv6 errors in tcpdump's
words (``ICMP 203.0.113.2 udp port domain unreachable, length 254``). The lines themselves are kept: the
report quotes them as the capture showed them. A line that is none of these is counted, not guessed at.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterator
from datetime import date, datetime
from typing import IO, Any

from checks.capture import DnsFacts, Packet, Quoted, Source
from checks.icmp import ICMP4, ICMP6
from runbook.errors import InputError

_TIME = r"(?:(?P<date>\d{4}-\d{2}-\d{2}) )?(?P<time>\d{1,2}:\d{2}:\d{2}(?:\.\d+)?)"
_HEAD = re.compile(rf"^{_TIME}\s+(?P<fam>IP6?)\s+(?P<rest>.*)$")
_FLOW = re.compile(r"^(?P<src>\S+?)\s+>\s+(?P<dst>\S+?):\s*(?P<what>.*)$")
_VERBOSE_IP = re.compile(r"^\((?:tos|flowlabel|hlim|class)(?:[^()]|\([^()]*\))*\)\s*(?P<rest>.*)$")
_QUERY = re.compile(
    r"^(?P<id>\d+)(?P<flags>[+%$]*)(?: \[[^\]]*\])* (?P<qtype>[A-Z0-9-]+)\? (?P<qname>\S+) \((?P<len>\d+)\)"
)
_ANSWER = re.compile(
    r"^(?P<id>\d+)(?P<flags>[*\-|$]*)(?: [a-z]+)?(?: (?P<rcode>FormErr|ServFail|NXDomain|NotImp|Refused|YXDomain"
    r"|YXRRSet|NXRRSet|NotAuth|NotZone|BadVers|Resp\d+))?(?:[*\-|$]*)(?: \[[^\]]*\])* (?P<an>\d+)/(?P<ns>\d+)/"
    r"(?P<ar>\d+)(?P<records>.*?) \((?P<len>\d+)\)"
)
_TCP = re.compile(
    r"^Flags \[(?P<flags>[^\]]*)\](?:, seq (?P<seq>\d+))?.*?(?:length (?P<len>\d+))?(?P<dns>: .*| \d+.*)?$"
)
_RCODES = {
    "FormErr": "FORMERR",
    "ServFail": "SERVFAIL",
    "NXDomain": "NXDOMAIN",
    "NotImp": "NOTIMP",
    "Refused": "REFUSED",
}
_MAX_LINE = 10_000


def _icmp_patterns() -> list[tuple[re.Pattern[str], str, int, int]]:
    """tcpdump's words for each ICMP error (checks.icmp's tables) as patterns: (pattern, family, type, code)."""
    out = []
    for family, table in (("icmp", ICMP4), ("icmp6", ICMP6)):
        for (icmp_type, code), (_, _, words) in table.items():
            pattern = re.escape(words)
            for field, group in (
                ("addr", r"(?P<addr>[0-9a-fA-F:.]+)"),
                ("proto", r"(?P<proto>udp|tcp)"),
                ("port", r"(?P<port>\w+)"),
            ):
                pattern = pattern.replace(re.escape("{" + field + "}"), group)
            out.append((re.compile(pattern), family, icmp_type, code))
    return out


_ICMP_WORDS = _icmp_patterns()


def open_text(stream: IO[bytes], name: str) -> Source:
    lines = _lines(stream, name)
    first = next(lines, None)
    seen = 0
    while first is not None and not _HEAD.match(first.strip()) and seen < 50:
        first, seen = next(lines, None), seen + 1
    if first is None or not _HEAD.match(first.strip()):
        raise InputError(
            f"{name} is not a capture: not pcap, not pcapng, and no line reads as tcpdump's output "
            "(`HH:MM:SS.micro IP src.port > dst.port: ...`)"
        )
    stats: dict[str, Any] = {"frames": 0, "undecoded": 0, "truncated": None}
    return Source("tcpdump text", "text", _packets(_chain(first, lines), stats), stats)


def _lines(stream: IO[bytes], name: str) -> Iterator[str]:
    for raw in stream:
        if b"\x00" in raw:
            raise InputError(f"{name} is not a capture: binary data that is neither pcap nor pcapng")
        yield raw[:_MAX_LINE].decode("utf-8", "replace").rstrip("\r\n")


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def _packets(lines: Iterator[str], stats: dict[str, Any]) -> Iterator[Packet]:
    """Packets from the lines; a ``-v`` header line is joined to the indented line that follows it."""
    pending: tuple[str, str] | None = None  # (stamp and family, the original header line) of a -v packet
    today = date.today()
    for line in lines:
        text = line.strip()
        if not text:
            continue
        head = _HEAD.match(text)
        if head is None:
            if pending is not None and line[:1] in (" ", "\t"):
                packet = _packet(f"{pending[0]} {text}", today, f"{pending[1]}\n{line}")
                pending = None
                if packet is not None:
                    stats["frames"] += 1
                    yield packet
            elif line[:1] not in (" ", "\t"):
                stats["undecoded"] += 1
            continue
        verbose = _VERBOSE_IP.match(head["rest"])
        if verbose is not None and not verbose["rest"]:
            stamp = f"{head['date'] + ' ' if head['date'] else ''}{head['time']} {head['fam']}"
            pending = (stamp, line)
            continue
        stats["frames"] += 1
        packet = _packet(text if verbose is None else _without_ip_header(head, verbose["rest"]), today, line)
        if packet is None:
            stats["undecoded"] += 1
        else:
            yield packet


def _without_ip_header(head: re.Match[str], rest: str) -> str:
    return f"{head['date'] + ' ' if head['date'] else ''}{head['time']} {head['fam']} {rest}"


def _packet(text: str, today: date, original: str) -> Packet | None:
    head = _HEAD.match(text)
    flow = _FLOW.match(head["rest"]) if head else None
    if head is None or flow is None:
        return None
    ts = _timestamp(head["date"], head["time"], today)
    what = flow["what"]
    if what.startswith(("ICMP", "ICMP6")):
        echo = re.search(r"echo (request|reply)", what)
        if echo is not None:
            kind = "echo-reply" if echo[1] == "reply" else "echo"
            return Packet(ts, flow["src"], flow["dst"], kind, icmp=(0, 0), line=original)
        return _icmp(ts, flow["src"], flow["dst"], what, original)
    src, sport = _endpoint(flow["src"])
    dst, dport = _endpoint(flow["dst"])
    if src is None or dst is None or 53 not in (sport, dport):
        return None
    tcp = _TCP.match(what)
    if tcp is not None:
        carried = (tcp["dns"] or "").lstrip(": ").strip()
        packet = Packet(ts, src, dst, "tcp", sport, dport, tcp_flags=tcp["flags"], seq=int(tcp["seq"] or 0))
        packet.length, packet.line = int(tcp["len"] or 0), original
        packet.dns = _dns(carried) if carried else None
        packet.dns_id = packet.dns.id if packet.dns else 0
        return packet
    facts = _dns(what)
    if facts is None:
        return None
    return Packet(ts, src, dst, "udp", sport, dport, dns=facts, dns_id=facts.id, length=facts.size, line=original)


def _timestamp(day: str | None, clock: str, today: date) -> float:
    when = datetime.fromisoformat(f"{day or today.isoformat()}T{clock}")
    return when.timestamp()


def _endpoint(text: str) -> tuple[str | None, int]:
    host, _, port = text.rpartition(".")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None, 0
    if port.isdigit():
        return host, int(port)
    try:
        return host, socket.getservbyname(port)
    except OSError:
        return host, 0


def _dns(what: str) -> DnsFacts | None:
    what = what.strip()
    query = _QUERY.match(what)
    if query is not None:
        return DnsFacts(
            int(query["id"]),
            False,
            query["qname"],
            query["qtype"],
            "NOERROR",
            rd="+" in query["flags"],
            edns="[1au]" in what,
            size=int(query["len"]),
            text=what,
        )
    answer = _ANSWER.match(what)
    if answer is None:
        return None
    flags = answer["flags"] + what[len(answer["id"]) : len(answer["id"]) + 8]
    return DnsFacts(
        int(answer["id"]),
        True,
        "",
        "",
        _RCODES.get(answer["rcode"] or "", "NOERROR" if not answer["rcode"] else answer["rcode"].upper()),
        aa="*" in answer["flags"],
        tc="|" in flags[: len(answer["flags"]) + 2],
        answers=_records(answer["records"]),
        size=int(answer["len"]),
        text=what,
    )


def _records(text: str) -> tuple[tuple[str, str, str], ...]:
    """``A 1.2.3.4, CNAME x.`` -> records; the owner of each is filled in by the analysis (tcpdump omits it)."""
    out = []
    for part in text.strip().split(", "):
        kind, _, value = part.strip().partition(" ")
        if kind and value and kind.isupper():
            out.append(("", kind, value.strip()))
    return tuple(out)


def _icmp(ts: float, src: str, dst: str, what: str, original: str) -> Packet | None:
    """An ICMP error line: who sent it (``src``), to whom, and the flow its words name."""
    words = re.sub(r",? length \d+.*$", "", what.split(" ", 1)[1] if " " in what else "").lstrip(", ").strip()
    for pattern, family, icmp_type, code in _ICMP_WORDS:
        m = pattern.search(words)
        if m is None:
            continue
        groups = m.groupdict()
        server = groups.get("addr") or ""
        port = groups.get("port") or "0"
        port_no = int(port) if port.isdigit() else _service(port)
        quoted = Quoted(groups.get("proto") or "udp", dst, 0, server, port_no) if server else None
        return Packet(ts, src, dst, family, icmp=(icmp_type, code), quoted=quoted, line=original)
    return None


def _service(name: str) -> int:
    try:
        return socket.getservbyname(name)
    except OSError:
        return 0
