"""Typed evidence: what the diagnosis reads, as frozen values. Pure: no I/O.

The checks record their evidence in the run document (JSON, ``runbook.run/v1``: it is what is stored,
rendered and diagnosed again later). This module is the one place that reads that document's keys: it
turns each finding's evidence into the typed values below, so that the rules (:mod:`runbook.rules`) are
checked by mypy against one contract instead of string keys scattered through them. A key renamed in a
check fails here, in one test (tests/unit/test_evidence.py), not silently in a rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from runbook.model import Finding, Server

# What one exchange ended in: the words of the JSON document, written by checks.wire, read by the rules.
ANSWER = "answer"
ICMP = "icmp"
TIMEOUT = "timeout"
LOCAL_ERROR = "local-error"
RESET = "reset"
CLOSED = "closed"
MALFORMED = "malformed"
CONNECTED = "connected"

# What an ICMP error means for the diagnosis: written by checks.icmp, read by the rules.
PORT_UNREACHABLE = "port-unreachable"
PROHIBITED = "prohibited"
HOST_UNREACHABLE = "host-unreachable"
PROTOCOL_UNREACHABLE = "protocol-unreachable"
TTL_EXCEEDED = "ttl-exceeded"
OTHER = "other"


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _maps(value: Any) -> tuple[Mapping[str, Any], ...]:
    return tuple(v for v in value if isinstance(v, Mapping)) if isinstance(value, list | tuple) else ()


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class Icmp:
    """An ICMP error a probe drew: who sent it and what it means."""

    type: int | None
    code: int | None
    name: str
    kind: str
    offender: str | None
    from_server: bool

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Icmp:
        return cls(
            _int(doc.get("type")),
            _int(doc.get("code")),
            str(doc.get("name")),
            str(doc.get("kind")),
            _str(doc.get("offender")),
            bool(doc.get("from_server")),
        )

    @property
    def typecode(self) -> str:
        return f"{self.type}/{self.code}"


@dataclass(frozen=True)
class Record:
    """One record of an answer section."""

    name: str
    type: str
    value: str
    ttl: int | None = None

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Record:
        return cls(str(doc.get("name", "")), str(doc.get("type", "")), str(doc.get("value", "")), _int(doc.get("ttl")))


@dataclass(frozen=True)
class Ede:
    """An Extended DNS Error (RFC 8914)."""

    code: int | None
    text: str

    @property
    def words(self) -> str:
        return f"EDE {self.code} {self.text}".strip()


@dataclass(frozen=True)
class Exchange:
    """One query and what came back (or did not): an attempt over UDP or TCP."""

    transport: str
    outcome: str
    rtt_s: float | None = None
    connect_rtt_s: float | None = None
    icmp: Icmp | None = None
    errno: str | None = None
    detail: str | None = None
    rcode: str | None = None
    aa: bool = False
    tc: bool = False
    answers: tuple[Record, ...] = ()
    ede: tuple[Ede, ...] = ()

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Exchange:
        icmp = doc.get("icmp")
        return cls(
            transport=str(doc.get("transport", "udp")),
            outcome=str(doc.get("outcome")),
            rtt_s=_float(doc.get("rtt_s")),
            connect_rtt_s=_float(doc.get("connect_rtt_s")),
            icmp=Icmp.from_json(icmp) if isinstance(icmp, Mapping) else None,
            errno=_str(doc.get("errno")),
            detail=_str(doc.get("detail")),
            rcode=_str(doc.get("rcode")),
            aa=bool(doc.get("aa")),
            tc=bool(doc.get("tc")),
            answers=tuple(Record.from_json(a) for a in _maps(doc.get("answers"))),
            ede=tuple(Ede(_int(e.get("code")), str(e.get("text") or "")) for e in _maps(doc.get("ede"))),
        )

    @property
    def answered(self) -> bool:
        return self.outcome == ANSWER

    @property
    def negative(self) -> bool:
        """NXDOMAIN, or NOERROR with no record (NODATA)."""
        return self.rcode == "NXDOMAIN" or (self.rcode == "NOERROR" and not self.answers)


@dataclass(frozen=True)
class Burst:
    """The burst of queries that measures loss and latency (udp53)."""

    sent: int
    received: int
    loss: float
    degraded: str
    """Why the burst counts as degraded, or ''."""
    first_answer: Exchange | None

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Burst:
        first = doc.get("first_answer")
        return cls(
            _int(doc.get("sent")) or 0,
            _int(doc.get("received")) or 0,
            _float(doc.get("loss")) or 0.0,
            str(doc.get("degraded") or ""),
            Exchange.from_json(first) if isinstance(first, Mapping) else None,
        )


@dataclass(frozen=True)
class Ping:
    """Is the server's host up: ICMP echo, or a TCP connect where ICMP cannot be sent."""

    method: str
    sent: int
    received: int
    rtt_avg_s: float | None

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Ping:
        return cls(
            str(doc.get("method", "")),
            _int(doc.get("sent")) or 0,
            _int(doc.get("received")) or 0,
            _float(doc.get("rtt_avg_s")),
        )

    @property
    def by_icmp(self) -> bool:
        return self.method.startswith("icmp")


@dataclass(frozen=True)
class Block:
    """A path of a DNS packet through this host's firewall that a rule drops or rejects."""

    direction: str
    """``query``, ``answer``, ``query_in`` or ``answer_out``."""
    verdict: str
    certain: bool
    source: str
    family: str
    table: str
    chain: str
    rule: str | None
    handle: int | None
    policy: str | None

    _WHAT: ClassVar[dict[str, str]] = {
        "query": "the query going out",
        "answer": "the answer coming back",
        "query_in": "the query coming in to the server on this host",
        "answer_out": "the answer leaving the server on this host",
    }

    @property
    def words(self) -> str:
        where = f"{self.source} {self.family} {self.table} {self.chain}"
        text = f"`{self.rule}` (handle {self.handle})" if self.rule else f"policy {self.policy}"
        return f"{self.verdict} of {self._WHAT.get(self.direction, self.direction)} by {where}: {text}"


@dataclass(frozen=True)
class Firewall:
    """This host's rules for DNS to one server, by protocol: the first path a rule stops, if any."""

    udp: Block | None = None
    tcp: Block | None = None

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Firewall:
        paths = _map(doc.get("paths"))

        def block(proto: str) -> Block | None:
            for direction in ("query", "answer", "query_in", "answer_out"):
                path = _map(paths.get(f"{proto}_{direction}"))
                if path.get("verdict") in ("drop", "reject"):
                    rule = _map(path.get("rule")) or _map(path.get("policy"))
                    return Block(
                        direction,
                        str(path["verdict"]),
                        bool(path.get("certain")),
                        str(rule.get("source")),
                        str(rule.get("family")),
                        str(rule.get("table")),
                        str(rule.get("chain")),
                        _str(rule.get("rule")),
                        _int(rule.get("handle")),
                        _str(rule.get("policy")),
                    )
            return None

        return cls(block("udp"), block("tcp"))


@dataclass(frozen=True)
class Reference:
    """Another server's answer to the same question (compare): an authoritative server or a --resolver."""

    server: str
    role: str
    exchange: Exchange
    lame: str | None = None

    @classmethod
    def from_finding(cls, f: Finding) -> Reference:
        e = f.evidence
        return cls(str(f.server), str(e.get("role")), Exchange.from_json(e), _str(e.get("lame")))

    @property
    def answering(self) -> bool:
        return self.exchange.answered and not self.lame

    @property
    def failure(self) -> str:
        return self.lame or self.exchange.outcome


@dataclass(frozen=True)
class References:
    """What a configured server's answer is compared with."""

    authorities: tuple[Reference, ...] = ()
    resolvers: tuple[Reference, ...] = ()
    expect: tuple[str, ...] = ()
    discovery_error: str | None = None

    @property
    def answering_authorities(self) -> tuple[Reference, ...]:
        return tuple(a for a in self.authorities if a.answering)

    @classmethod
    def from_findings(cls, findings: Sequence[Finding], expect: Sequence[str] = ()) -> References:
        compared = [Reference.from_finding(f) for f in findings if f.step == "compare" and f.server]
        summary = next((f for f in findings if f.id == "compare/authoritative"), None)
        error = summary.evidence.get("error") if summary else None
        return cls(
            tuple(r for r in compared if r.role == "authoritative"),
            tuple(r for r in compared if r.role == "resolver"),
            tuple(expect),
            str(error) if error else None,
        )


@dataclass(frozen=True)
class Dot:
    """DNS over TLS on port 853: the handshake, the certificate's trust, the answer."""

    exchange: Exchange
    handshake: bool
    verified: bool
    verify_error: str | None
    subject: str | None

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Dot:
        cert = _map(doc.get("certificate"))
        return cls(
            Exchange.from_json(doc),
            bool(doc.get("handshake")),
            bool(doc.get("verified")),
            _str(doc.get("verify_error")),
            _str(cert.get("subject")),
        )

    @property
    def answered(self) -> bool:
        """An answer the server owns (NOERROR or NXDOMAIN): DNS itself works over TLS."""
        return self.exchange.answered and self.exchange.rcode in ("NOERROR", "NXDOMAIN")


@dataclass(frozen=True)
class ServerEvidence:
    """Everything the findings say about one configured server."""

    server: Server
    udp: tuple[Exchange, ...] = ()
    """Every UDP exchange any step made with it (udp53's attempts, resolve's)."""
    tcp: tuple[Exchange, ...] = ()
    """Every TCP exchange (tcp53's, and resolve's retry of a truncated answer)."""
    ping: Ping | None = None
    resolution: Exchange | None = None
    """The resolve step's answer (EDNS0, TCP when truncated): what the comparison reads."""
    cd_retry: Exchange | None = None
    """resolve's second question with CD=1 after a SERVFAIL."""
    burst: Burst | None = None
    firewall: Firewall | None = None
    udp_sent: int | None = None
    """How many queries the UDP probe (udp53) sent: the count its own finding states."""
    liveness: Exchange | None = None
    """The answer to ``id.server CH TXT`` when the question itself got none: is the daemon alive?"""
    dot: Dot | None = None
    """DNS over TLS on port 853 (the dot step)."""
    finding_ids: tuple[str, ...] = ()

    @property
    def host_up(self) -> bool | None:
        """True when anything proves the host is up, False when ping saw nothing, None when unknown."""
        if self.ping and self.ping.received:
            return True
        if any(e.outcome in (ANSWER, RESET, CONNECTED, CLOSED) or e.connect_rtt_s is not None for e in self.tcp):
            return True
        if any(e.icmp and e.icmp.from_server for e in (*self.udp, *self.tcp)):
            return True
        if self.dot and (self.dot.handshake or self.dot.exchange.outcome == RESET):
            return True
        if self.ping and self.ping.sent:
            return False
        return None


@dataclass
class _Gathering:
    server: Server
    udp: list[Exchange] = field(default_factory=list)
    tcp: list[Exchange] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def freeze(self) -> ServerEvidence:
        return ServerEvidence(self.server, tuple(self.udp), tuple(self.tcp), finding_ids=tuple(self.ids), **self.extra)


def gather(servers: Sequence[Server], findings: Sequence[Finding]) -> dict[Server, ServerEvidence]:
    """Each configured server's evidence, from the findings of every step."""
    by_label = {s.label: _Gathering(s) for s in servers}
    by_host: dict[str, list[_Gathering]] = {}
    for g in by_label.values():
        by_host.setdefault(g.server.host, []).append(g)
    for f in findings:
        if f.step == "ping":
            for g in by_host.get(f.id.split("/", 1)[1], []):
                g.extra["ping"] = Ping.from_json(f.evidence)
                g.ids.append(f.id)
        elif f.server in by_label and f.step in _READERS:
            g = by_label[f.server]
            _READERS[f.step](g, f.evidence)
            g.ids.append(f.id)
    return {g.server: g.freeze() for g in by_label.values()}


def _read_udp53(g: _Gathering, e: Mapping[str, Any]) -> None:
    g.udp.extend(Exchange.from_json(a) for a in (_maps(e.get("attempts")) or (e,)))
    g.extra["udp_sent"] = _int(e.get("sent"))
    if isinstance(e.get("burst"), Mapping):
        g.extra["burst"] = Burst.from_json(e["burst"])
    if isinstance(e.get("liveness"), Mapping):
        g.extra["liveness"] = Exchange.from_json(e["liveness"])


def _read_tcp53(g: _Gathering, e: Mapping[str, Any]) -> None:
    g.tcp.extend(Exchange.from_json(a) for a in (_maps(e.get("attempts")) or (e,)))


def _read_firewall(g: _Gathering, e: Mapping[str, Any]) -> None:
    g.extra["firewall"] = Firewall.from_json(e)


def _read_resolve(g: _Gathering, e: Mapping[str, Any]) -> None:
    final = Exchange.from_json(e)
    g.extra["resolution"] = final
    if isinstance(e.get("cd_retry"), Mapping):
        g.extra["cd_retry"] = Exchange.from_json(e["cd_retry"])
    if isinstance(e.get("udp"), Mapping):
        g.udp.append(Exchange.from_json(e["udp"]))
    (g.tcp if final.transport == "tcp" else g.udp).append(final)


def _read_dot(g: _Gathering, e: Mapping[str, Any]) -> None:
    g.extra["dot"] = Dot.from_json(e)


_READERS = {
    "dot": _read_dot,
    "udp53": _read_udp53,
    "tcp53": _read_tcp53,
    "firewall": _read_firewall,
    "resolve": _read_resolve,
}


@dataclass(frozen=True)
class HostsEntry:
    line: int | None
    text: str
    address: str


@dataclass(frozen=True)
class Hosts:
    """The hosts file's entries for the name (hostconf)."""

    finding: str
    path: str
    entries: tuple[HostsEntry, ...]

    @classmethod
    def from_findings(cls, findings: Sequence[Finding]) -> Hosts | None:
        f = next((f for f in findings if f.id == "hostconf/hosts"), None)
        if f is None:
            return None
        entries = tuple(
            HostsEntry(_int(e.get("line")), str(e.get("text")), str(e.get("address")))
            for e in _maps(f.evidence.get("entries"))
        )
        return cls(f.id, str(f.evidence.get("path")), entries)


@dataclass(frozen=True)
class Site:
    """The web step's connection to one of the name's addresses."""

    finding: str
    summary: str
    address: str
    reachable: bool

    @classmethod
    def from_findings(cls, findings: Sequence[Finding]) -> tuple[Site, ...]:
        return tuple(
            cls(f.id, f.summary, str(f.evidence.get("address")), bool(f.evidence.get("reachable")))
            for f in findings
            if f.step == "web" and "reachable" in f.evidence
        )
