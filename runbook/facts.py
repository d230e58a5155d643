"""What the rules ask about the evidence: facts derived once, typed, with the words the verdicts quote.

Pure. :class:`ServerFacts` reads one configured server's :class:`~runbook.gather.ServerEvidence` and the
run's :class:`~runbook.gather.References`; :class:`RunFacts` the patterns of the whole run (the hosts file,
the site). The rules (:mod:`runbook.rules`) are conditions over these facts.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping, Sequence
from functools import cached_property

import msgspec

from runbook.answers import AGREE, DISAGREE, UNKNOWN, compare, describe, matches_expected, resolve_chain
from runbook.evidence import (
    HOST_UNREACHABLE,
    ICMP,
    LOCAL_ERROR,
    PROHIBITED,
    TIMEOUT,
    ConfigCheck,
    ControlView,
    Daemon,
    Exchange,
    Icmp,
    Listener,
    Load,
    OomKill,
)
from runbook.gather import Block, Hosts, Reference, References, ServerEvidence, Site
from runbook.model import Server, Target

# EDE (RFC 8914) codes that mean the answer failed DNSSEC validation.
EDE_DNSSEC = frozenset({6, 7, 8, 9, 10, 11, 12})
DAEMON_UNITS = "-u unbound -u named -u bind9 -u knot -u nsd -u dnsmasq"


def answer_words(e: Exchange, target: Target) -> str:
    if e.rcode != "NOERROR":
        return str(e.rcode)
    return describe(e.answers, target.name, target.rdtype) if e.answers else "NODATA"


def dig_auth(refs: References, target: Target) -> str:
    """Commands that ask the zone's authoritative servers directly: the ones this run found, by address and
    port, or (none found) dig's own walk down the delegation."""
    qname, qtype = target.name.rstrip(".") or ".", target.rdtype
    labels = list(dict.fromkeys(a.server for a in refs.authorities if a.server))[:3]
    commands = []
    for label in labels:
        host, _, port = label.rpartition(":")
        commands.append(f"`dig @{host.strip('[]')} -p {port} {qname} {qtype} +norec`")
    return ", ".join(commands) if commands else f"`dig +trace {qname} {qtype}`"


def tcp_words(tcp: Exchange | None) -> str:
    if not tcp:
        return "not tested"
    if tcp.outcome == "reset":
        return "connection refused with RST"
    if tcp.outcome == ICMP and tcp.icmp:
        return f"ICMP {tcp.icmp.name} from {tcp.icmp.offender}"
    if tcp.outcome == TIMEOUT:
        return tcp.detail or "timed out"
    return tcp.detail or tcp.outcome


def _outcome(e: Exchange) -> str:
    if e.answered:
        return str(e.rcode)
    if e.icmp:
        return f"ICMP {e.icmp.name} from {e.icmp.offender}"
    return e.errno or e.outcome


class ServerFacts:
    """One configured server, as the rules see it."""

    def __init__(self, ev: ServerEvidence, target: Target, refs: References) -> None:
        self.ev = ev
        self.target = target
        self.refs = refs
        s = ev.server
        self.server: Server = s
        self.where = s.host if s.port == 53 else s.label
        self.port = f"port {s.port}"
        self.dig = f"dig @{s.host} -p {s.port} {target.name.rstrip('.') or '.'} {target.rdtype}"

    # -- what came back over UDP -----------------------------------------------------------------------
    @cached_property
    def answers(self) -> tuple[Exchange, ...]:
        """UDP answers; only the burst's, when only the burst got through (a lossy server, not a dead one)."""
        answered = tuple(e for e in self.ev.udp if e.answered)
        if not answered and self.ev.burst and self.ev.burst.first_answer:
            return (self.ev.burst.first_answer,)
        return answered

    @cached_property
    def icmp(self) -> Icmp | None:
        """The ICMP error UDP drew: the server's own when there is one."""
        errors = [e.icmp for e in self.ev.udp if e.outcome == ICMP and e.icmp]
        return next((i for i in errors if i.from_server), errors[0] if errors else None)

    @cached_property
    def local_error(self) -> Exchange | None:
        return next((e for e in self.ev.udp if e.outcome == LOCAL_ERROR), None)

    @cached_property
    def eperm(self) -> Exchange | None:
        """A send this host refused (EPERM, EACCES): a local firewall."""
        return next((e for e in self.ev.udp if e.outcome == LOCAL_ERROR and e.errno in ("EPERM", "EACCES")), None)

    @property
    def udp_silent(self) -> bool:
        """Every UDP query timed out, and the burst got nothing either."""
        return bool(self.ev.udp) and not self.answers and all(e.outcome == TIMEOUT for e in self.ev.udp)

    @property
    def sent(self) -> int:
        return self.ev.udp_sent or len(self.ev.udp)

    @property
    def alive(self) -> Exchange | None:
        """The answer to id.server CH TXT while the question got none: the daemon lives."""
        live = self.ev.liveness
        return live if live and live.answered else None

    @cached_property
    def rtt_ms(self) -> float:
        return min((e.rtt_s or 0.0) for e in self.answers) * 1000 if self.answers else 0.0

    @property
    def rcodes(self) -> list[str | None]:
        return [e.rcode for e in self.answers]

    @property
    def truncated(self) -> bool:
        return any(e.tc for e in self.answers)

    @cached_property
    def loss(self) -> str | None:
        """How much UDP loss was measured ("30%", "1 of 4"), or None when every query was answered."""
        if self.ev.burst and self.ev.burst.loss:
            return f"{self.ev.burst.loss:.0%}"
        timeouts = sum(1 for e in self.ev.udp if e.outcome == TIMEOUT)
        return f"{timeouts} of {len(self.ev.udp)}" if timeouts else None

    @property
    def degraded(self) -> str:
        return self.ev.burst.degraded if self.ev.burst else ""

    # -- TCP and the host --------------------------------------------------------------------------------
    @cached_property
    def tcp(self) -> Exchange | None:
        return next((e for e in self.ev.tcp if e.answered), self.ev.tcp[0] if self.ev.tcp else None)

    @property
    def tcp_outcome(self) -> str | None:
        return self.tcp.outcome if self.tcp else None

    @property
    def tcp_failed(self) -> bool:
        return self.tcp is not None and not self.tcp.answered

    @property
    def tcp_connected_silent(self) -> bool:
        """TCP's handshake completed (the port is open), then no answer came."""
        return self.tcp is not None and self.tcp.outcome == TIMEOUT and self.tcp.connect_rtt_s is not None

    @property
    def tcp_lost(self) -> bool:
        """A TCP timeout while UDP loses packets too: the same loss, not a block (only an RST, an ICMP error or
        a local rule proves TCP is stopped on a lossy path)."""
        return self.tcp_outcome == TIMEOUT and self.loss is not None and not self.tcp_block

    @property
    def tcp_busy(self) -> bool:
        """Connected, then no answer, at a resolver answering SERVFAIL: the TCP query failed upstream too."""
        return (
            self.tcp is not None
            and self.tcp.outcome in (TIMEOUT, "closed")
            and self.tcp.connect_rtt_s is not None
            and "SERVFAIL" in self.rcodes
        )

    @property
    def tcp_icmp(self) -> Icmp | None:
        return self.tcp.icmp if self.tcp else None

    @property
    def tcp_path_block(self) -> Icmp | None:
        """TCP refused with ICMP by a filter (prohibited, or from another address than the server)."""
        i = self.tcp_icmp
        if i and (i.kind == PROHIBITED or not i.from_server) and i.kind != HOST_UNREACHABLE:
            return i
        return None

    @property
    def udp_block(self) -> Block | None:
        return self.ev.firewall.udp if self.ev.firewall else None

    @property
    def tcp_block(self) -> Block | None:
        return self.ev.firewall.tcp if self.ev.firewall else None

    @property
    def pinged(self) -> bool:
        return bool(self.ev.ping and self.ev.ping.received)

    @property
    def ping_method(self) -> str:
        return "ping" if self.ev.ping and self.ev.ping.by_icmp else "a TCP connect"

    @property
    def up_words(self) -> str:
        p = self.ev.ping
        if not p or not p.received:
            return ""
        rtt = f", {p.rtt_avg_s * 1000:.1f} ms" if p.rtt_avg_s is not None else ""
        return f" (it answers {self.ping_method}: {p.received}/{p.sent}{rtt})"

    @property
    def down_words(self) -> str:
        p = self.ev.ping
        return f", and {self.ping_method} gets no reply ({p.sent} sent)" if p and p.sent and not p.received else ""

    # -- DNS over TLS ----------------------------------------------------------------------------------
    @property
    def dot_answer(self) -> Exchange | None:
        """The answer over TLS on port 853, when DNS itself works there (NOERROR or NXDOMAIN)."""
        return self.ev.dot if self.ev.dot and self.ev.dot.serves_dns else None

    @property
    def dot_words(self) -> str:
        dot, answer = self.ev.dot, self.dot_answer
        if not dot or not answer:
            return ""
        trust = (
            "its certificate verified"
            if dot.verified
            else f"its certificate not verified: {dot.verify_error}; encrypted, not authenticated"
        )
        return (
            f"DNS over TLS on {self.server.host}:853 answers ({answer_words(answer, self.target)}, "
            f"{(answer.rtt_s or 0) * 1000:.1f} ms; {trust})"
        )

    # -- the answer and the references -----------------------------------------------------------------
    @cached_property
    def mine(self) -> Exchange | None:
        """The answer the comparison judges: resolve's (EDNS0, TCP when truncated), else the first answer."""
        if not self.answers:
            return None
        r = self.ev.resolution
        if r and r.answered:
            return r
        return next(e for e in (*self.ev.udp, *self.ev.tcp, *self.answers) if e.answered)

    @property
    def rcode(self) -> str | None:
        return self.mine.rcode if self.mine else None

    @property
    def records(self) -> bool:
        return bool(self.mine and self.mine.rcode == "NOERROR" and self.mine.answers)

    @property
    def nodata(self) -> bool:
        return bool(self.mine and self.mine.rcode == "NOERROR" and not self.mine.answers)

    @property
    def complete(self) -> bool:
        """The judged answer is whole: not a truncated (TC=1) UDP answer."""
        return bool(self.mine and not self.mine.tc)

    @property
    def auths(self) -> tuple[Reference, ...]:
        return self.refs.answering_authorities

    @property
    def auth_records(self) -> tuple[Reference, ...]:
        return tuple(a for a in self.auths if a.exchange.rcode == "NOERROR" and a.exchange.answers)

    @property
    def auth_negative(self) -> tuple[Reference, ...]:
        """The zone's servers saying, with authority (AA: not a referral), that there is no such record."""
        return tuple(a for a in self.auths if a.exchange.aa and a.exchange.negative)

    @property
    def auth_words(self) -> str:
        return "; ".join(f"{a.server}: {answer_words(a.exchange, self.target)}" for a in self.auths) or "none answered"

    @property
    def dig_auth(self) -> str:
        return dig_auth(self.refs, self.target)

    @property
    def others(self) -> tuple[Reference, ...]:
        return tuple(
            r
            for r in self.refs.resolvers
            if r.exchange.answered and r.exchange.answers and r.server != self.server.label
        )

    def _compare(self, refs: Sequence[Reference]) -> str:
        if not self.mine or not refs:
            return UNKNOWN
        return compare(self.mine.answers, [r.exchange.answers for r in refs], self.target.name, self.target.rdtype)

    @cached_property
    def expected(self) -> str:
        if not self.mine or self.mine.rcode != "NOERROR":
            return UNKNOWN
        return matches_expected(self.mine.answers, self.refs.expect, self.target.name, self.target.rdtype)

    @property
    def auth_disagree(self) -> bool:
        return self._compare(self.auth_records) == DISAGREE

    @property
    def others_disagree(self) -> bool:
        return self._compare(self.others) == DISAGREE

    @cached_property
    def ede(self) -> str:
        return ", ".join(e.words for e in self.mine.ede) if self.mine else ""

    @property
    def dnssec_ede(self) -> str:
        return ", ".join(e.words for e in self.mine.ede if e.code in EDE_DNSSEC) if self.mine else ""

    @property
    def cd_answer(self) -> Exchange | None:
        """With CD=1 (no validation) the resolver answers where it said SERVFAIL."""
        cd = self.ev.cd_retry
        return cd if cd and cd.rcode == "NOERROR" else None

    @cached_property
    def channel_change(self) -> str:
        """The same question over UDP and over TCP answered with different content: the two quoted.

        Sets that legitimately vary (a CDN handing out a few of many addresses) vary between the UDP answers
        too: a change counts only when the UDP answers agree with each other and TCP's shares nothing with
        any of them (or says NXDOMAIN where they give records, or the reverse)."""
        qname, qtype = self.target.name, self.target.rdtype
        usable = ("NOERROR", "NXDOMAIN")
        udp = [e for e in self.ev.udp if e.answered and e.rcode in usable]
        tcp = [e for e in self.ev.tcp if e.transport == "tcp" and e.answered and e.rcode in usable]
        if len(udp) < 2 or not tcp or any(u.rcode != udp[0].rcode for u in udp):
            return ""
        first, t = udp[0], tcp[0]
        if first.rcode != t.rcode:
            differ = bool(first.answers or t.answers)
        elif first.answers and t.answers:
            steady = all(compare(u.answers, [first.answers], qname, qtype) == AGREE for u in udp)
            differ = steady and all(compare(t.answers, [u.answers], qname, qtype) == DISAGREE for u in udp)
        else:
            differ = False
        if not differ:
            return ""
        words = answer_words
        return f"over UDP {words(first, self.target)} ({len(udp)} answers alike), over TCP {words(t, self.target)}"

    @cached_property
    def verified_by(self) -> str | None:
        """The independent source a healthy answer agrees with: --expect, the zone's own servers (asked
        directly, which an interceptor of this resolver's traffic does not answer for), or another resolver."""
        if self.refs.expect:
            return "the addresses given with --expect"
        if self.auth_records and self._compare(self.auth_records) == AGREE:
            return "the zone's authoritative servers (" + ", ".join(a.server for a in self.auth_records) + ")"
        if self.mine and self.mine.answers and self.others and self._compare(self.others) == AGREE:
            return "the other resolvers (" + ", ".join(r.server for r in self.others) + ")"
        return None

    @property
    def claims_authority(self) -> str:
        """The server answers with authority (AA) for a name whose zone is served elsewhere (its servers found
        honestly): its own data (unbound local-data, dnsmasq address=, a response policy zone) overrides the
        zone. Evidence of redirection, even where the content still agrees."""
        m = self.mine
        if not m or not m.aa or not self.refs.authorities:
            return ""
        servers = sorted({a.server for a in self.refs.authorities})
        if self.server.label in servers:
            return ""
        return f"it answers with authority (AA) although the zone's servers are {', '.join(servers)}"

    @property
    def values(self) -> str:
        """The values of the first answer with records, for the healthy summary."""
        for e in (*([self.ev.resolution] if self.ev.resolution else []), *self.ev.udp, *self.ev.tcp):
            if e.answers:
                return ", ".join(dict.fromkeys(a.value for a in e.answers))
        return ""

    @property
    def answer(self) -> str:
        return answer_words(self.mine, self.target) if self.mine else "no answer"

    def seen(self) -> str:
        """One line of what was seen, for --explain."""
        udp = ", ".join(sorted({_outcome(e) for e in self.ev.udp})) or "not probed"
        tcp = _outcome(self.tcp) if self.tcp else "not probed"
        ping = self.ev.ping
        parts = [
            f"UDP: {udp}",
            f"TCP: {tcp}",
            f"ping: {ping.received}/{ping.sent}" if ping else "ping: not run",
            f"answer: {self.answer}",
            f"authoritative: {self.auth_words}" if self.refs.authorities else "authoritative: not found",
        ]
        return "; ".join(parts)


class RunFacts(msgspec.Struct, frozen=True):
    """The patterns of the whole run: the hosts file against DNS, the site, whether any server is known."""

    target: Target
    servers: tuple[Server, ...]
    hosts: Hosts | None
    sites: tuple[Site, ...]
    website: bool
    dns_values: frozenset[str]
    """Every address DNS gave for the name (the configured servers' and the zone's own)."""
    no_server_words: str
    """Why there is no server (for the no-resolver verdict)."""
    hostconf_ids: tuple[str, ...] = ()

    @property
    def pinned(self) -> frozenset[str]:
        return frozenset(e.address for e in self.hosts.entries) if self.hosts else frozenset()

    def seen(self) -> str:
        sites = ", ".join(f"{x.address} " + ("open" if x.reachable else "closed") for x in self.sites)
        return (
            f"servers: {', '.join(s.label for s in self.servers) or 'none'}; hosts file: "
            f"{', '.join(sorted(self.pinned)) or 'no entry'}; DNS: {', '.join(sorted(self.dns_values)) or 'nothing'}; "
            f"site: {sites or 'not tried'}"
        )


def dns_values(servers: Sequence[ServerFacts], refs: References, target: Target) -> frozenset[str]:
    values: set[str] = set()
    for f in servers:
        r = f.ev.resolution
        if r and r.answered:
            values |= resolve_chain(r.answers, target.name, target.rdtype).values
    for a in refs.answering_authorities:
        values |= resolve_chain(a.exchange.answers, target.name, target.rdtype).values
    return frozenset(values)


class HostFacts(msgspec.Struct, frozen=True):
    """The DNS server host, as ``runbook server`` saw it (checks.host's findings)."""

    addresses: tuple[str, ...]
    port: int
    daemons: tuple[Daemon, ...]
    other_namespaces: tuple[Daemon, ...]
    units: tuple[dict[str, str], ...]
    udp: tuple[Listener, ...]
    tcp: tuple[Listener, ...]
    invalid_configs: tuple[ConfigCheck, ...]
    load: Load
    controls: tuple[ControlView, ...]
    """The daemons' own views (control channels) that show signs of overload."""
    firewall_blocks: tuple[str, ...]
    named: dict[str, tuple[str, ...]]
    """address -> the running daemons whose command line or configuration names it."""
    oom: tuple[OomKill, ...] = ()
    """DNS daemons the kernel's OOM killer killed (its log)."""

    def listening(self, address: str, proto: str) -> list[Listener]:
        wild = ("0.0.0.0", "::") if ":" not in address else ("::",)
        entries = self.udp if proto == "udp" else self.tcp
        return [e for e in entries if e.address in (address, *wild)]

    @property
    def daemon_names(self) -> frozenset[str]:
        return frozenset(d.name for d in self.daemons)

    @property
    def foreign(self) -> list[Listener]:
        """Listeners on the DNS port at the addresses that are not DNS daemons: the port is taken."""
        return [
            e
            for a in self.addresses
            for proto in ("udp", "tcp")
            for e in self.listening(a, proto)
            if e.process and not e.dns_daemon
        ]

    @property
    def unserved(self) -> list[str]:
        """The addresses where nothing listens on the port, by protocol (``203.0.113.2 udp``)."""
        return [f"{a} {proto}" for a in self.addresses for proto in ("udp", "tcp") if not self.listening(a, proto)]

    @property
    def loopback_only(self) -> list[str]:
        """Daemons that listen on the port on loopback only (not systemd-resolved: a local stub by design)."""
        out = []
        for d in self.daemons:
            if d.name == "systemd-resolved":
                continue
            mine = [e.address for e in (*self.udp, *self.tcp) if d.pid in (e.pid, e.daemon_pid)]
            if mine and all(a.startswith("127.") or a == "::1" for a in mine):
                out.append(f"{d.name} listens on {', '.join(sorted(set(mine)))} only")
        return out

    @property
    def overload(self) -> list[str]:
        reasons = []
        udp = self.load.udp
        # The DNS port's own sockets' drops where they could be read; else every UDP socket's of the namespace.
        at_port = self.load.port_drops
        dropped, came = (at_port if at_port is not None else udp.get("RcvbufErrors", 0)), udp.get("InDatagrams", 0)
        where = f"at port {self.port}" if at_port is not None else "(all UDP sockets of this host)"
        # A few datagrams lost to a burst are not an overload: at least 10, and 1 in 1,000 of what came in.
        if dropped >= 10 and dropped * 1000 >= came:
            reasons.append(
                f"the kernel dropped {dropped} UDP datagrams {where} in {self.load.window_s:g} s for a full "
                "receive buffer (the daemon does not read fast enough)"
            )
        ct = self.load.conntrack
        if ct.count is not None and ct.max and ct.count > 0.9 * ct.max:
            reasons.append(f"the conntrack table is {ct.count}/{ct.max} full: new flows are dropped")
        for name, cpu in self.load.cpu_percent.items():
            if cpu >= 90:
                reasons.append(f"{name} uses {cpu:.0f}% of a CPU")
        for d in self.daemons:
            if d.fds and d.fd_limit and d.fds > 0.9 * d.fd_limit:
                reasons.append(f"{d.name} has {d.fds} of its {d.fd_limit} open files")
        for view in self.controls:
            reasons += [f"{view.daemon} says {sign}" for sign in view.signs]
        return reasons

    @property
    def failed_units(self) -> list[str]:
        return [
            f"{u.get('Id')} {u.get('ActiveState')} ({how_it_ended(u)})"
            for u in self.units
            if u.get("ActiveState") in ("failed", "inactive") and u.get("Result") != "success"
        ]

    def seen(self) -> str:
        return (
            f"daemons: {', '.join(sorted(self.daemon_names)) or 'none'}; unserved: {', '.join(self.unserved) or 'none'}"
            f"; invalid configs: {len(self.invalid_configs)}; firewall blocks: {len(self.firewall_blocks)}"
        )


def how_it_ended(unit: Mapping[str, str]) -> str:
    """systemd's words for the main process's end: an exit status, a signal by name, the OOM killer."""
    result, code, status = unit.get("Result"), unit.get("ExecMainCode"), unit.get("ExecMainStatus")
    restarts = f", restarts {unit.get('NRestarts')}"
    if result == "oom-kill":
        return f"killed by the kernel's OOM killer{restarts}"
    if code in ("2", "3") and status and status.isdigit():  # CLD_KILLED, CLD_DUMPED: the status is a signal
        name = signal.Signals(int(status)).name if int(status) in signal.valid_signals() else f"signal {status}"
        return f"result {result}, killed by {name}{' (core dumped)' if code == '3' else ''}{restarts}"
    return f"result {result}, exit {status}{restarts}"
