"""The evidence the rules read, gathered from the findings of every step: by configured server, the run's
references (the zone's own servers, --resolvers, --expect), the hosts file and the site. Pure: no I/O.

Every value here is one of the typed kinds of :mod:`runbook.evidence` (or a view over one): a finding's
evidence is read by its type, never through a string key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import msgspec
from msgspec.structs import replace

from runbook.evidence import (
    CLOSED,
    CONNECTED,
    RESET,
    Authorities,
    Burst,
    Compared,
    DotProbe,
    Exchange,
    FirewallPaths,
    HostsEntry,
    HostsFacts,
    Ping,
    Resolution,
    SiteProbe,
    TcpProbe,
    UdpProbe,
)
from runbook.model import Finding, Server


class Block(msgspec.Struct, frozen=True):
    """A path of a DNS packet through this host's firewall that a rule drops or rejects."""

    direction: str
    """``query``, ``answer``, ``query_in`` or ``answer_out``."""
    verdict: str
    certain: bool
    where: str
    """``SOURCE FAMILY TABLE CHAIN``."""
    rule: str | None
    handle: str | None
    policy: str | None

    _WHAT: ClassVar[dict[str, str]] = {
        "query": "the query going out",
        "answer": "the answer coming back",
        "query_in": "the query coming in to the server on this host",
        "answer_out": "the answer leaving the server on this host",
    }

    @property
    def words(self) -> str:
        text = f"`{self.rule}` (handle {self.handle})" if self.rule else f"policy {self.policy}"
        return f"{self.verdict} of {self._WHAT.get(self.direction, self.direction)} by {self.where}: {text}"


class Firewall(msgspec.Struct, frozen=True):
    """This host's rules for DNS to one server, by protocol: the first path a rule stops, if any."""

    udp: Block | None = None
    tcp: Block | None = None

    @classmethod
    def of(cls, paths: FirewallPaths) -> Firewall:
        def block(proto: str) -> Block | None:
            stop = paths.first_stop(proto)
            if stop is None:
                return None
            direction, path = stop
            c = path.cited
            where = f"{c.source} {c.family} {c.table} {c.chain}" if c else "? ? ? ?"
            return Block(
                direction,
                path.verdict,
                path.certain,
                where,
                c.rule if c else None,
                c.handle if c else None,
                c.policy if c else None,
            )

        return cls(block("udp"), block("tcp"))


class Reference(msgspec.Struct, frozen=True):
    """Another server's answer to the same question (compare): an authoritative server or a --resolver."""

    server: str
    role: str
    exchange: Compared

    @property
    def lame(self) -> str | None:
        return self.exchange.lame

    @property
    def answering(self) -> bool:
        return self.exchange.answered and not self.lame

    @property
    def failure(self) -> str:
        return self.lame or self.exchange.outcome


class References(msgspec.Struct, frozen=True):
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
        compared = [
            Reference(f.server, f.evidence.role, f.evidence)
            for f in findings
            if f.server and isinstance(f.evidence, Compared)
        ]
        summary = next((f.evidence for f in findings if isinstance(f.evidence, Authorities)), None)
        return cls(
            tuple(r for r in compared if r.role == "authoritative"),
            tuple(r for r in compared if r.role == "resolver"),
            tuple(expect),
            summary.error if summary and summary.error else None,
        )


class ServerEvidence(msgspec.Struct, frozen=True):
    """Everything the findings say about one configured server."""

    server: Server
    udp: tuple[Exchange, ...] = ()
    """Every UDP exchange any step made with it (udp53's attempts, resolve's)."""
    tcp: tuple[Exchange, ...] = ()
    """Every TCP exchange (tcp53's, and resolve's retry of a truncated answer)."""
    ping: Ping | None = None
    resolution: Resolution | None = None
    """The resolve step's answer (EDNS0, TCP when truncated): what the comparison reads."""
    burst: Burst | None = None
    firewall: Firewall | None = None
    udp_sent: int | None = None
    """How many queries the UDP probe (udp53) sent: the count its own finding states."""
    liveness: Exchange | None = None
    """The answer to ``id.server CH TXT`` when the question itself got none: is the daemon alive?"""
    dot: DotProbe | None = None
    """DNS over TLS on port 853 (the dot step)."""
    finding_ids: tuple[str, ...] = ()

    @property
    def cd_retry(self) -> Exchange | None:
        """resolve's second question with CD=1 after a SERVFAIL."""
        return self.resolution.cd_retry if self.resolution else None

    @property
    def host_up(self) -> bool | None:
        """True when anything proves the host is up, False when ping saw nothing, None when unknown."""
        if self.ping and self.ping.received:
            return True
        if any(e.outcome in ("answer", RESET, CONNECTED, CLOSED) or e.connect_rtt_s is not None for e in self.tcp):
            return True
        if any(e.icmp and e.icmp.from_server for e in (*self.udp, *self.tcp)):
            return True
        if self.dot and (self.dot.handshake or self.dot.outcome == RESET):
            return True
        if self.ping and self.ping.sent:
            return False
        return None


def _take(ev: ServerEvidence, f: Finding) -> ServerEvidence:
    """``ev`` with one more finding's evidence, read by its kind."""
    e = f.evidence
    if isinstance(e, UdpProbe):
        ev = replace(ev, udp=ev.udp + (e.attempts or (e,)), udp_sent=e.sent, burst=e.burst, liveness=e.liveness)
    elif isinstance(e, TcpProbe):
        ev = replace(ev, tcp=ev.tcp + (e.attempts or (e,)))
    elif isinstance(e, Resolution):
        truncated = (e.udp,) if e.udp is not None else ()
        if e.transport == "tcp":
            ev = replace(ev, resolution=e, udp=ev.udp + truncated, tcp=(*ev.tcp, e))
        else:
            ev = replace(ev, resolution=e, udp=ev.udp + truncated + (e,))
    elif isinstance(e, FirewallPaths):
        ev = replace(ev, firewall=Firewall.of(e))
    elif isinstance(e, DotProbe):
        ev = replace(ev, dot=e)
    elif isinstance(e, Ping):
        ev = replace(ev, ping=e)
    else:
        return ev
    return replace(ev, finding_ids=(*ev.finding_ids, f.id))


def gather(servers: Sequence[Server], findings: Sequence[Finding]) -> dict[Server, ServerEvidence]:
    """Each configured server's evidence, from the findings of every step. A ping is of a host: it counts for
    every server at that address."""
    found = {s: ServerEvidence(s) for s in servers}
    for f in findings:
        if isinstance(f.evidence, Ping):
            mine = [s for s in servers if s.host == f.id.split("/", 1)[1]]
        else:
            mine = [s for s in servers if s.label == f.server]
        for s in mine:
            found[s] = _take(found[s], f)
    return found


class Hosts(msgspec.Struct, frozen=True):
    """The hosts file's entries for the name (hostconf)."""

    finding: str
    path: str
    entries: tuple[HostsEntry, ...]

    @classmethod
    def from_findings(cls, findings: Sequence[Finding]) -> Hosts | None:
        f = next((f for f in findings if isinstance(f.evidence, HostsFacts)), None)
        if f is None or not isinstance(f.evidence, HostsFacts):
            return None
        return cls(f.id, f.evidence.path, f.evidence.entries)


class Site(msgspec.Struct, frozen=True):
    """The web step's connection to one of the name's addresses."""

    finding: str
    summary: str
    address: str
    reachable: bool

    @classmethod
    def from_findings(cls, findings: Sequence[Finding]) -> tuple[Site, ...]:
        return tuple(
            cls(f.id, f.summary, f.evidence.address, f.evidence.reachable)
            for f in findings
            if isinstance(f.evidence, SiteProbe)
        )
