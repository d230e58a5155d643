"""Reading DNS out of captured traffic, the way the incident's team read its tcpdump log: every query matched
to its answer (id and flow), to the ICMP error that quotes it, or to nothing after a stated wait.

Streaming and bounded: queries wait in a table ordered by time and leave it when answered or when their wait
is over; what is kept per server and per source is counted, not stored. The result is findings in the same
evidence shapes the active steps record (``udp53``, ``tcp53``, ``compare``), so the same rules judge them,
plus ``capture`` (what was read) and ``traffic`` (rates, top talkers, floods, amplification, answers nobody
asked for: numbers, never guesses).
"""

from __future__ import annotations

import statistics
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

from checks.capture import DnsFacts, Packet, line_of
from checks.icmp import ICMP4, ICMP6
from runbook.evidence import Ede, Exchange, Icmp, Record

MAX_KEPT = 12
"""Exchanges and packet lines kept per server, as evidence (the first ones, failures first)."""
MAX_NAMES_KEPT = 2_000
"""Names per server whose exchanges are kept."""
MAX_SOURCES = 50_000
MAX_NAMES = 20_000


@dataclass
class Query:
    ts: float
    client: str
    cport: int
    server: str
    sport: int
    id: int
    qname: str
    qtype: str
    transport: str
    size: int
    packet: Packet
    sent: int = 1

    @property
    def line(self) -> str:
        return line_of(self.packet)


@dataclass
class Seen:
    """The first answer a server gave to one (name, type), and how many answers to it the capture holds."""

    rcode: str
    answers: tuple[Record, ...]
    aa: bool
    count: int = 0


@dataclass
class ServerStats:
    """What one server did with the queries sent to it."""

    label: str
    queries: int = 0
    answered: int = 0
    timeouts: int = 0
    open_at_end: int = 0
    tcp_open_at_end: int = 0
    retransmits: int = 0
    truncated: int = 0
    icmp: Counter[str] = field(default_factory=Counter)
    rcodes: Counter[str] = field(default_factory=Counter)
    rtts: list[float] = field(default_factory=list)
    first_failure: float | None = None
    last_failure: float | None = None
    first_failed_id: int | None = None
    failures: int = 0
    kept: dict[tuple[str, str], list[Exchange]] = field(default_factory=dict)
    """The first exchanges of each (name, type), as evidence: the name diagnosed is chosen afterwards."""
    kept_lines: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    tcp: list[Exchange] = field(default_factory=list)
    answers: dict[tuple[str, str], Seen] = field(default_factory=dict)
    """The first answer to each (name, type), and how many answers it had."""

    def failed(self, ts: float, qid: int) -> None:
        self.failures += 1
        if self.first_failure is None:
            self.first_failure, self.first_failed_id = ts, qid
        self.last_failure = ts

    def keep(self, exchange: Exchange, lines: list[str]) -> None:
        key = ((exchange.qname or "").lower(), exchange.qtype or "")
        if key not in self.kept and len(self.kept) >= MAX_NAMES_KEPT:
            return
        kept = self.kept.setdefault(key, [])
        if len(kept) < MAX_KEPT:
            kept.append(exchange)
            self.kept_lines.setdefault(key, []).extend(line for line in lines if line)

    @property
    def exchanges(self) -> list[Exchange]:
        return [e for kept in self.kept.values() for e in kept]

    def lines(self, qname: str, qtype: str) -> list[str]:
        return self.kept_lines.get((qname.lower(), qtype), [])


@dataclass
class Traffic:
    queries: int = 0
    responses: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
    sources: Counter[str] = field(default_factory=Counter)
    names: dict[str, set[str]] = field(default_factory=dict)
    names_overflow: Counter[str] = field(default_factory=Counter)
    any_queries: int = 0
    any_query_bytes: int = 0
    any_answer_bytes: int = 0
    unsolicited: Counter[str] = field(default_factory=Counter)
    unsolicited_lines: list[str] = field(default_factory=list)
    late: int = 0


def flow_key(client: str, cport: int, server: str, sport: int, qid: int, transport: str) -> tuple[Any, ...]:
    return (client, cport, server, sport, qid, transport)


def label(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Analyzer:
    """Feed it packets in capture order; :meth:`finish` says what became of every query."""

    def __init__(self, wait: float = 2.0, servers: frozenset[str] = frozenset(), name: str | None = None) -> None:
        self.wait = wait
        self.only_servers = servers
        self.only_name = name.lower().rstrip(".") + "." if name else None
        self.pending: OrderedDict[tuple[Any, ...], Query] = OrderedDict()
        self.servers: dict[str, ServerStats] = {}
        self.asked: set[tuple[str, str]] = set()
        """(client, server) pairs with at least one query: an answer outside them was never asked for."""
        self.traffic = Traffic()
        self.tcp_flows: dict[tuple[str, int, str, int], dict[str, Any]] = {}
        self.pings: dict[str, list[int]] = {}
        """ICMP echo requests sent to and replies received from each host: [sent, received]."""
        self.now = 0.0

    # -- feeding ------------------------------------------------------------------------------------------
    def feed(self, p: Packet) -> None:
        self.now = max(self.now, p.ts)
        t = self.traffic
        t.first_ts = p.ts if t.first_ts is None else min(t.first_ts, p.ts)
        t.last_ts = max(t.last_ts or p.ts, p.ts)
        if p.proto in ("icmp", "icmp6"):
            self._icmp(p)
        elif p.proto == "echo":
            self.pings.setdefault(p.dst, [0, 0])[0] += 1
        elif p.proto == "echo-reply":
            self.pings.setdefault(p.src, [0, 0])[1] += 1
        elif p.proto == "tcp":
            self._tcp(p)
        elif p.dns is not None:
            self._dns(p, p.dns, "udp", p.dns_id)
        if len(self.pending) and next(iter(self.pending.values())).ts + self.wait < self.now:
            self._expire(self.now)

    def _wanted(self, server: str, port: int, qname: str) -> bool:
        """Only the --server(s)' traffic. Every name is kept (the one diagnosed is chosen later): a server that
        answers other names while the diagnosed one fails is alive."""
        return not self.only_servers or server in self.only_servers or label(server, port) in self.only_servers

    def _stats(self, host: str, port: int) -> ServerStats:
        key = label(host, port)
        stats = self.servers.get(key)
        if stats is None:
            stats = self.servers[key] = ServerStats(key)
        return stats

    def _dns(self, p: Packet, m: DnsFacts, transport: str, qid: int) -> None:
        if not m.response and p.dport == 53:
            self._query(p, m, transport, qid)
        elif m.response and p.sport == 53:
            self._response(p, m, transport, qid)

    def _query(self, p: Packet, m: DnsFacts, transport: str, qid: int) -> None:
        t = self.traffic
        t.queries += 1
        if len(t.sources) < MAX_SOURCES or p.src in t.sources:
            t.sources[p.src] += 1
        self._count_name(m.qname)
        if m.qtype == "ANY":
            t.any_queries += 1
            t.any_query_bytes += m.size
        self.asked.add((p.src, p.dst))
        if not self._wanted(p.dst, p.dport, m.qname):
            return
        key = flow_key(p.src, p.sport, p.dst, p.dport, qid, transport)
        stats = self._stats(p.dst, p.dport)
        known = self.pending.get(key)
        if known is not None:
            known.sent += 1
            stats.retransmits += 1
            return
        stats.queries += 1
        self.pending[key] = Query(p.ts, p.src, p.sport, p.dst, p.dport, qid, m.qname, m.qtype, transport, m.size, p)

    def _count_name(self, qname: str) -> None:
        labels = qname.rstrip(".").split(".")
        if len(labels) < 3:
            return
        parent = ".".join(labels[1:]).lower() + "."
        names = self.traffic.names.setdefault(parent, set())
        if len(names) < MAX_NAMES:
            names.add(labels[0].lower())
        elif labels[0].lower() not in names:
            self.traffic.names_overflow[parent] += 1

    def _response(self, p: Packet, m: DnsFacts, transport: str, qid: int) -> None:
        t = self.traffic
        t.responses += 1
        key = flow_key(p.dst, p.dport, p.src, p.sport, qid, transport)
        q = self.pending.pop(key, None)
        if q is None:
            if (p.dst, p.src) not in self.asked:
                t.unsolicited[p.src] += 1
                if len(t.unsolicited_lines) < MAX_KEPT:
                    t.unsolicited_lines.append(line_of(p))
            else:
                t.late += 1
            return
        if q.qtype == "ANY":
            t.any_answer_bytes += m.size
        stats = self._stats(q.server, q.sport)
        stats.answered += 1
        stats.rcodes[m.rcode] += 1
        rtt = max(0.0, p.ts - q.ts)
        if len(stats.rtts) < 100_000:
            stats.rtts.append(rtt)
        if m.tc:
            stats.truncated += 1
        if m.rcode in ("SERVFAIL", "REFUSED"):
            stats.failed(q.ts, q.id)
        name = (q.qname.lower(), q.qtype)
        seen = stats.answers.get(name)
        if seen is None:
            seen = stats.answers[name] = Seen(m.rcode, _records(m, q.qname), m.aa)
        seen.count += 1
        kept = stats.tcp if transport == "tcp" else stats.kept.get(name, ())
        if len(kept) >= MAX_KEPT:
            return  # enough of these as evidence: counted above, not kept
        exchange = Exchange(
            transport=transport,
            outcome="answer",
            rtt_s=round(rtt, 6),
            rcode=m.rcode,
            aa=m.aa,
            tc=m.tc,
            answers=_records(m, q.qname),
            flags=tuple(f for f, on in (("qr", True), ("aa", m.aa), ("tc", m.tc)) if on),
            ede=tuple(Ede(code=c, text=text) for c, text in m.ede),
            id=q.id,
            qname=q.qname,
            qtype=q.qtype,
            at=q.ts,
        )
        if transport == "tcp":
            stats.tcp.append(exchange)
        else:
            stats.keep(exchange, [q.line, line_of(p)])

    def _icmp(self, p: Packet) -> None:
        quoted, codes = p.quoted, p.icmp
        if quoted is None or codes is None or quoted.proto != "udp":
            return
        table = ICMP6 if p.proto == "icmp6" else ICMP4
        name, kind, _ = table.get(codes, ("unknown", "other", ""))
        matched = [
            key
            for key, q in self.pending.items()
            if q.client == quoted.src
            and q.server == quoted.dst
            and q.transport == "udp"
            and (not quoted.sport or q.cport == quoted.sport)
            and (not quoted.dport or q.sport == quoted.dport)
        ]
        for key in matched:
            q = self.pending.pop(key)
            stats = self._stats(q.server, q.sport)
            stats.icmp[name] += 1
            stats.failed(q.ts, q.id)
            icmp = Icmp(
                origin=p.proto,
                type=codes[0],
                code=codes[1],
                name=name,
                kind=kind,
                offender=p.src,
                from_server=p.src == q.server,
            )
            exchange = Exchange(
                transport="udp",
                outcome="icmp",
                rtt_s=round(p.ts - q.ts, 6),
                icmp=icmp,
                id=q.id,
                qname=q.qname,
                qtype=q.qtype,
                at=q.ts,
            )
            stats.keep(exchange, [q.line, line_of(p)])

    def _tcp(self, p: Packet) -> None:
        to_server = p.dport == 53
        key = (p.src, p.sport, p.dst, p.dport) if to_server else (p.dst, p.dport, p.src, p.sport)
        flow = self.tcp_flows.setdefault(
            key, {"syn": None, "connected": None, "reset": None, "buf": {True: b"", False: b""}}
        )
        if "S" in p.tcp_flags and to_server and flow["syn"] is None:
            flow["syn"] = p.ts
        elif "S" in p.tcp_flags and not to_server:
            flow["connected"] = p.ts
        elif "R" in p.tcp_flags and not to_server:
            flow["reset"] = p.ts
        if p.dns is not None:  # tcpdump text: the message as tcpdump decoded it
            self._dns(p, p.dns, "tcp", p.dns_id)
        elif p.payload:
            self._reassemble(p, flow, to_server)

    def _reassemble(self, p: Packet, flow: dict[str, Any], to_server: bool) -> None:
        from checks.capture import Decoder

        buf = flow["buf"][to_server] + p.payload
        decoder = flow.setdefault("decoder", Decoder())
        while len(buf) >= 2:
            size = int.from_bytes(buf[:2], "big")
            if len(buf) < 2 + size:
                break
            found = decoder.message(buf[2 : 2 + size])
            buf = buf[2 + size :]
            if found is not None:
                self._dns(p, found[0], "tcp", found[1])
        flow["buf"][to_server] = buf[-65_537:]

    def _expire(self, now: float) -> None:
        while self.pending:
            key, q = next(iter(self.pending.items()))
            if q.ts + self.wait >= now:
                return
            del self.pending[key]
            self._timed_out(q)

    def _timed_out(self, q: Query) -> None:
        stats = self._stats(q.server, q.sport)
        stats.timeouts += 1
        stats.failed(q.ts, q.id)
        timeout = Exchange(
            transport=q.transport, outcome="timeout", id=q.id, qname=q.qname, qtype=q.qtype, at=q.ts, sent=q.sent
        )
        stats.keep(timeout, [q.line])

    # -- the end ------------------------------------------------------------------------------------------
    def finish(self) -> None:
        """Every query still waiting: unanswered after its wait, or cut off by the end of the capture."""
        end = self.now
        for q in list(self.pending.values()):
            if q.ts + self.wait < end:
                self._timed_out(q)
            else:
                self._stats(q.server, q.sport).open_at_end += 1
        self.pending.clear()
        for (_client, _cport, server, sport), flow in self.tcp_flows.items():
            if not self._wanted(server, sport, self.only_name or ""):
                continue
            stats = self._stats(server, sport)
            if flow["reset"] is not None and flow["connected"] is None:
                stats.tcp.append(Exchange(transport="tcp", outcome="reset"))
            elif flow["syn"] is not None and flow["connected"] is None:
                if flow["syn"] + self.wait < end:
                    stats.tcp.append(Exchange(transport="tcp", outcome="timeout", detail="no SYN-ACK in the capture"))
                else:  # the capture ends before its wait is over: neither answered nor unanswered
                    stats.tcp_open_at_end += 1

    def rtt_median(self, stats: ServerStats) -> float | None:
        return statistics.median(stats.rtts) if stats.rtts else None


def _records(m: DnsFacts, qname: str) -> tuple[Record, ...]:
    """The answer records; owners tcpdump's text leaves out are walked down the CNAME chain from the question."""
    owner = qname
    out = []
    for name, rtype, value in m.answers:
        out.append(Record(name=name or owner, type=rtype, value=value))
        if rtype == "CNAME" and not name:
            owner = value
    return tuple(out)
