"""Findings -> verdict. Pure: no I/O, no clock; the same findings always give the same verdict.

Each server is assessed on its own evidence (every UDP and TCP exchange any step made with it, and the
ping of its host); the run's verdict is the most important failing server's diagnosis, by the precedence
table below, with every other pattern in ``also`` and the cost to the user of a partial failure spelled
out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from runbook.answers import AGREE, DISAGREE, UNKNOWN, compare, describe, matches_expected, resolve_chain
from runbook.hostfiles import ResolvConf
from runbook.model import Finding, Server, Status, StepResult, Target, Verdict, worst

HEALTHY = "healthy"
SERVICE_DOWN = "dns-service-down"
PORT_FILTERED = "dns-port-filtered"
BLOCKED_IN_PATH = "dns-blocked-in-path"
LOCAL_FIREWALL = "local-firewall-blocks-dns"
UNREACHABLE = "dns-server-unreachable"
REFUSED = "resolver-refused"
TCP_FALLBACK = "tcp-fallback-blocked"
MISMATCH = "dns-answer-mismatch"
DNSSEC = "dnssec-validation-failure"
UPSTREAM = "upstream-servfail"
NXDOMAIN = "nxdomain"
SITE_DOWN = "site-unreachable-dns-ok"
HOSTS_OVERRIDE = "hosts-file-override"
DEGRADED = "dns-degraded"
NO_RESOLVER = "no-resolver-configured"
INCONCLUSIVE = "inconclusive"
STEP_RESULT = "step-result"
"""One step's command (``runbook ping``...) whose evidence supports no diagnosis: its status is the step's."""

# The one precedence table: when servers fail differently, the earlier code is the verdict and the
# others go to ``also``. A failure of this host comes first (it hides everything behind it), then a
# dead service, then the network's failures, then answers that are wrong (forged before failing, since a
# forged answer is the worse news), then the site itself, then warnings.
PRECEDENCE: tuple[tuple[str, Status], ...] = (
    (LOCAL_FIREWALL, Status.CRITICAL),
    (SERVICE_DOWN, Status.CRITICAL),
    (BLOCKED_IN_PATH, Status.CRITICAL),
    (PORT_FILTERED, Status.CRITICAL),
    (UNREACHABLE, Status.CRITICAL),
    (REFUSED, Status.CRITICAL),
    (MISMATCH, Status.CRITICAL),
    (DNSSEC, Status.CRITICAL),
    (UPSTREAM, Status.CRITICAL),
    (NXDOMAIN, Status.CRITICAL),
    (SITE_DOWN, Status.CRITICAL),
    (HOSTS_OVERRIDE, Status.WARNING),
    (TCP_FALLBACK, Status.WARNING),
    (DEGRADED, Status.WARNING),
    (INCONCLUSIVE, Status.UNKNOWN),
    (NO_RESOLVER, Status.UNKNOWN),
    (STEP_RESULT, Status.UNKNOWN),  # nominal: its status is the step's own
    (HEALTHY, Status.OK),
)
STATUS: Mapping[str, Status] = dict(PRECEDENCE)
_RANK = {code: i for i, (code, _) in enumerate(PRECEDENCE)}
_CONFIDENCE = ("low", "medium", "high")

_STEP_ORDER = {step: i for i, step in enumerate(("hostconf", "resolve", "udp53", "tcp53", "ping", "compare", "web"))}
# EDE (RFC 8914) codes that mean the answer failed DNSSEC validation.
EDE_DNSSEC = frozenset({6, 7, 8, 9, 10, 11, 12})

# Failures a stub resolver notices at once (an ICMP error or an answer), and moves past at no cost.
FAILS_FAST = frozenset({SERVICE_DOWN, REFUSED, LOCAL_FIREWALL})


@dataclass
class Evidence:
    """Everything the findings say about one server."""

    server: Server
    udp: list[Mapping[str, Any]] = field(default_factory=list)
    tcp: list[Mapping[str, Any]] = field(default_factory=list)
    ping: Mapping[str, Any] | None = None
    resolution: Mapping[str, Any] | None = None
    """The resolve step's answer (EDNS0, TCP when truncated): what the comparison reads."""
    burst: Mapping[str, Any] | None = None
    firewall: Mapping[str, Any] | None = None
    """The firewall step's evaluation of this host's rules for the server."""
    udp_sent: int | None = None
    """How many queries the UDP probe (udp53) sent: the count its own finding states."""
    liveness: Mapping[str, Any] | None = None
    """The answer to ``id.server CH TXT`` when the question itself got none: is the daemon alive?"""
    finding_ids: list[str] = field(default_factory=list)

    @property
    def host_up(self) -> bool | None:
        """True when anything proves the host is up, False when ping saw nothing, None when unknown."""
        if self.ping and self.ping.get("received"):
            return True
        if any(
            e.get("outcome") in ("answer", "reset", "connected", "closed") or e.get("connect_rtt_s") is not None
            for e in self.tcp
        ):
            return True
        if any(_icmp(e) and _icmp(e).get("from_server") for e in (*self.udp, *self.tcp)):
            return True
        if self.ping and self.ping.get("sent"):
            return False
        return None


def _measured_loss(ev: Evidence) -> str | None:
    """How much UDP loss was measured ("30%", "1 of 4"), or None when every query was answered."""
    burst = ev.burst or {}
    if burst.get("loss"):
        return f"{burst['loss']:.0%}"
    udp_timeouts = sum(1 for e in ev.udp if e.get("outcome") == "timeout")
    return f"{udp_timeouts} of {len(ev.udp)}" if udp_timeouts else None


def _icmp(exchange: Mapping[str, Any]) -> Mapping[str, Any]:
    value = exchange.get("icmp")
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class Assessment:
    server: Server | None
    """None for a pattern of the whole run (the hosts file, the site)."""
    code: str
    confidence: str
    summary: str
    next_steps: tuple[str, ...]
    findings: tuple[str, ...]
    verified_by: str | None = None
    """For a healthy answer: the independent source it agreed with, or None when nothing could check it."""


def gather(servers: Sequence[Server], findings: Sequence[Finding]) -> dict[Server, Evidence]:
    by_label = {s.label: Evidence(s) for s in servers}
    by_host: dict[str, list[Evidence]] = {}
    for ev in by_label.values():
        by_host.setdefault(ev.server.host, []).append(ev)
    for f in findings:
        e = f.evidence
        if f.step == "ping":
            for ev in by_host.get(f.id.split("/", 1)[1], []):
                ev.ping = e
                ev.finding_ids.append(f.id)
            continue
        if f.server not in by_label:
            continue
        ev = by_label[f.server]
        if f.step == "udp53":
            ev.udp.extend(e.get("attempts", [e]))
            ev.udp_sent = e.get("sent")
            ev.burst = e.get("burst")
            ev.liveness = e.get("liveness")
        elif f.step == "tcp53":
            ev.tcp.append(e)
        elif f.step == "firewall":
            ev.firewall = e
        elif f.step == "resolve":
            ev.resolution = e
            if isinstance(e.get("udp"), Mapping):
                ev.udp.append(e["udp"])
            (ev.tcp if e.get("transport") == "tcp" else ev.udp).append(e)
        else:
            continue
        ev.finding_ids.append(f.id)
    return {by_label[s.label].server: by_label[s.label] for s in servers}


def assess(ev: Evidence, target: Target, refs: References | None = None) -> Assessment:
    """One server's diagnosis from its own evidence, and the comparison of its answer with ``refs``."""
    refs = refs or References()
    s = ev.server
    where = f"{s.host}" if s.port == 53 else s.label
    port = f"port {s.port}"
    ids = tuple(ev.finding_ids)
    dig = f"dig @{s.host} -p {s.port} {target.name.rstrip('.') or '.'} {target.rdtype}"

    def result(code: str, confidence: str, summary: str, *steps: str) -> Assessment:
        return Assessment(s, code, confidence, summary, (*steps, f"Check the fix from here: `{dig}`"), ids)

    answers = [e for e in ev.udp if e.get("outcome") == "answer"]
    if not answers and ev.burst and isinstance(ev.burst.get("first_answer"), Mapping):
        answers = [ev.burst["first_answer"]]  # only the burst got through: a lossy server, not a dead one
    icmps = [_icmp(e) for e in ev.udp if e.get("outcome") == "icmp"]
    local = [e for e in ev.udp if e.get("outcome") == "local-error"]
    tcp = next((e for e in ev.tcp if e.get("outcome") == "answer"), ev.tcp[0] if ev.tcp else None)
    tcp_outcome = tcp.get("outcome") if tcp else None
    ping = _ping_words(ev)

    blocking = _local_block(ev.firewall, "udp")
    eperm = [e for e in local if e.get("errno") in ("EPERM", "EACCES")]
    if not answers and (eperm or blocking):
        rule, certain = blocking or ("", False)
        seen = (
            f"this host refused to send the query to {where} ({eperm[0].get('errno')})"
            if eperm
            else f"queries to {where} get no answer"
            if not icmps
            else f"queries to {where} draw ICMP {icmps[0].get('name')} from {icmps[0].get('offender')}"
        )
        return result(
            LOCAL_FIREWALL,
            "high" if eperm or certain else "medium",
            f"DNS is blocked on this host: {seen}"
            + (f", and its firewall says why: {rule}" if rule else ": a local firewall rule drops or rejects it"),
            f"Fix the rule on this host (`nft -a list ruleset`, `iptables-save`, `iptables-legacy-save`): it must let "
            f"udp and tcp to port {s.port} of {s.host} out, and the answers back in (ct state established)",
        )

    if answers:
        rcodes = [e.get("rcode") for e in answers]
        rtt = min((e.get("rtt_s") or 0.0) for e in answers) * 1000
        if all(r == "REFUSED" for r in rcodes):
            return result(
                REFUSED,
                "high",
                f"{where} answers, but REFUSED the query: it will not resolve {target.display} for this client",
                f"On {s.host}: check who may query it (unbound `access-control`, BIND `allow-query`/"
                "`allow-recursion`, dnsmasq `--listen-address`/`--interface`) and that the zone is served",
            )
        truncated = any(e.get("tc") for e in answers)
        tcp_rule = _local_block(ev.firewall, "tcp")
        # A TCP timeout while UDP loses packets too is the same loss, not a block: only an RST, an ICMP error
        # or a local rule proves TCP is stopped when the path is lossy.
        loss = _measured_loss(ev)
        tcp_lost = tcp_outcome == "timeout" and loss is not None and not tcp_rule
        # Connected, then no answer (still waiting, or the connection closed on a failure) from a resolver
        # that answers SERVFAIL: the TCP query failed upstream like the UDP ones; the port is not blocked.
        tcp_busy = (
            tcp_outcome in ("timeout", "closed")
            and tcp is not None
            and tcp.get("connect_rtt_s") is not None
            and "SERVFAIL" in rcodes
        )
        if tcp_outcome != "answer" and tcp is not None and tcp_rule:
            return result(
                TCP_FALLBACK,
                "high" if truncated else "medium",
                f"{where} answers over UDP in {rtt:.1f} ms, but TCP {port} fails ({_tcp_words(tcp)}): this host's "
                f"firewall stops it: {tcp_rule[0]}" + (" — and the answer is truncated (TC=1)" if truncated else ""),
                f"Let tcp to port {s.port} of {s.host} out on this host (`nft -a list ruleset`, `iptables-save`)",
            )
        if tcp_outcome != "answer" and tcp is not None and not tcp_lost and not tcp_busy:
            return result(
                TCP_FALLBACK,
                "high" if truncated else "medium",
                (
                    f"{where} answers over UDP in {rtt:.1f} ms, but truncated (TC=1), and TCP {port} fails "
                    f"({_tcp_words(tcp)}): the full answer for {target.display} cannot be fetched, so lookups of "
                    "it fail"
                    if truncated
                    else f"{where} answers over UDP in {rtt:.1f} ms, but TCP {port} fails ({_tcp_words(tcp)}): "
                    "answers too large for UDP (truncated) could not be fetched"
                ),
                f"Allow TCP {port} to {s.host} (RFC 7766 requires it): check the firewalls on the way and on "
                f"{s.host} for tcp dport {s.port}, and that the daemon listens on TCP (`ss -lntp 'sport = :{s.port}'`)",
            )
        judged = _answered(ev, target, refs, result, rtt, ping.healthy)
        if not tcp_lost or judged.code not in (HEALTHY, DEGRADED):
            return judged
        lost = (
            f"TCP {port} also timed out ({_tcp_words(tcp)}) while {loss} of the UDP queries went unanswered: "
            "read as the same loss, not as a blocked port"
        )
        if judged.code == DEGRADED:
            return replace(judged, summary=f"{judged.summary}; {lost}")
        return result(
            DEGRADED,
            "medium",
            f"{where} answers over UDP in {rtt:.1f} ms, but not every time; {lost}",
            f"Measure again over a longer time: `dnsping -c 100 -p {s.port} -s {s.host} {target.name}`",
            f"On the path to {s.host}: interface errors and drops (`ip -s link`), and the server's load",
        )

    if icmps:
        first = next((i for i in icmps if i.get("from_server")), icmps[0])
        name, kind = first.get("name"), first.get("kind")
        offender = first.get("offender")
        typecode = f"{first.get('type')}/{first.get('code')}"
        from_server = bool(first.get("from_server"))
        if kind == "port-unreachable" and from_server:
            why = _service_down_tcp(tcp, s)
            return result(
                SERVICE_DOWN,
                "high" if tcp_outcome in ("reset", "icmp", "answer") or ev.host_up else "medium",
                f"UDP {port} on {s.host} is unreachable (ICMP {typecode} {name} from the server itself): the host is "
                f"up{ping.up}, so the DNS service is not running or not listening. {why}",
                *_service_down_steps(tcp, s),
            )
        if kind == "prohibited" or (kind == "port-unreachable" and not from_server):
            who = "the server's own firewall" if from_server else f"{offender}, a device between here and {s.host},"
            return result(
                BLOCKED_IN_PATH,
                "high",
                f"DNS to {where} is blocked: {who} answered the query with ICMP {typecode} {name}"
                + ("" if from_server else "; the query never reached the server"),
                f"On {offender}: find the rule that rejects DNS: `nft list ruleset` / `iptables -S` (look for a "
                f"reject of udp dport {s.port}), or the ACL of that router or firewall",
                f"Confirm the path from here: `tracepath -n {s.host}` or `traceroute -U -p {s.port} -n {s.host}`",
            )
        if kind == "host-unreachable":
            who = "this host" if offender is None else offender
            return result(
                UNREACHABLE,
                "high",
                f"{s.host} cannot be reached: {who} reported ICMP {typecode} {name} for it",
                f"Check that {s.host} is up and on the network (console, hypervisor, link); from {who}: "
                f"`ip route get {s.host}` and `ip neigh show {s.host}`",
            )
        return result(
            INCONCLUSIVE,
            "low",
            f"DNS to {where} drew ICMP {typecode} {name} from {offender}, which fits no known pattern",
            "Capture the exchange: `tcpdump -ni any 'port 53 or icmp or icmp6'`",
        )

    if local:
        errno = local[0].get("errno")
        return result(
            UNREACHABLE,
            "high",
            f"The query to {where} could not leave this host ({errno}: {local[0].get('detail')})",
            f"Check this host's routes and addresses: `ip route get {s.host}`, `ip addr`",
        )

    if ev.udp and all(e.get("outcome") == "timeout" for e in ev.udp):
        sent = ev.udp_sent or len(ev.udp)
        if ev.liveness and ev.liveness.get("outcome") == "answer":
            return _stuck_upstream(ev, target, refs, result, sent)
        tcp_icmp = _icmp(tcp) if tcp else {}
        if (
            tcp_icmp
            and (tcp_icmp.get("kind") == "prohibited" or not tcp_icmp.get("from_server"))
            and tcp_icmp.get("kind") != "host-unreachable"
        ):
            return result(
                BLOCKED_IN_PATH,
                "medium",
                f"UDP {port} on {where} gets no answer ({sent} queries), and TCP {port} is refused by "
                f"{tcp_icmp.get('offender')} with ICMP {tcp_icmp.get('name')}: a firewall in the path blocks DNS",
                f"On {tcp_icmp.get('offender')}: find the rules for port {s.port}: `nft list ruleset` / `iptables -S`",
            )
        if ev.host_up:
            if tcp is not None and tcp_outcome == "timeout" and tcp.get("connect_rtt_s") is not None:
                # The port is open (SYN-ACK) yet nothing answers: the daemon is there but not serving.
                return result(
                    PORT_FILTERED,
                    "medium",
                    f"Queries to UDP {port} on {s.host} time out ({sent} sent, no answer, no ICMP error), and TCP "
                    f"{port} accepts the connection but never answers the query: the DNS daemon listens but does "
                    "not serve — hung, or overloaded by a flood of queries (a DDoS) — unless a firewall also drops "
                    "UDP",
                    f"On {s.host}: look at the DNS daemon's load and log (`top`, "
                    f"`journalctl --since '-15 min' {DAEMON_UNITS}`), and at the query rate "
                    f"(`tcpdump -ni any -c 1000 port {s.port}`); restart it if it is hung",
                    f"On {s.host} and the firewalls in between: look for drop rules on udp dport {s.port}",
                )
            tcp_note = (
                f" TCP {port} answers, so only UDP is dropped."
                if tcp_outcome == "answer"
                else f" TCP {port}: {_tcp_words(tcp)}."
                if tcp
                else ""
            )
            return result(
                PORT_FILTERED,
                "high" if ev.ping and ev.ping.get("received") else "medium",
                f"Queries to UDP {port} on {s.host} time out ({sent} sent, no answer, no ICMP error) while the host "
                f"is up{ping.up}: a firewall drops DNS packets silently.{tcp_note}",
                f"On {s.host} and on the firewalls in between: look for drop rules on udp/tcp dport {s.port} "
                "(`nft list ruleset`, `iptables -S`, cloud security groups)",
                f"Find where the packets stop: `traceroute -U -p {s.port} -n {s.host}`; on {s.host}, "
                f"`tcpdump -ni any port {s.port}` shows whether the queries arrive",
            )
        if tcp_icmp.get("kind") == "host-unreachable":
            return result(
                UNREACHABLE,
                "high",
                f"{s.host} cannot be reached: {tcp_icmp.get('offender')} reports ICMP {tcp_icmp.get('name')}",
                f"Check that {s.host} is up and on the network; `ip route get {s.host}`",
            )
        confidence = "high" if ev.host_up is False and tcp_outcome == "timeout" else "low"
        return result(
            UNREACHABLE,
            confidence,
            f"Nothing answers from {s.host}: DNS over UDP ({sent} queries) and TCP time out{ping.down}"
            + ("" if confidence == "high" else "; a firewall dropping everything would look the same"),
            f"Check that {s.host} is up and reachable (console, hypervisor, link); from here: "
            f"`ip route get {s.host}`, `tracepath -n {s.host}`",
        )

    return result(
        INCONCLUSIVE,
        "low",
        f"The probes of {where} gave no usable evidence" + ("" if ev.udp else " (the UDP probe did not run)"),
        "Read the findings, and rerun with a longer `--timeout`",
    )


@dataclass(frozen=True)
class References:
    """What a configured server's answer is compared with."""

    authorities: tuple[Mapping[str, Any], ...] = ()
    """The authoritative servers' findings' evidence (with ``server``)."""
    resolvers: tuple[Mapping[str, Any], ...] = ()
    """The other resolvers' (--resolver) findings' evidence."""
    expect: tuple[str, ...] = ()
    discovery_error: str | None = None

    @property
    def answering_authorities(self) -> list[Mapping[str, Any]]:
        return [a for a in self.authorities if a.get("outcome") == "answer" and not a.get("lame")]


def _local_block(firewall: Mapping[str, Any] | None, proto: str) -> tuple[str, bool] | None:
    """The local rule that stops ``proto`` DNS to the server (its words, and whether it is certain)."""
    if not firewall:
        return None
    paths = firewall.get("paths", {})
    words = {
        "query": "the query going out",
        "answer": "the answer coming back",
        "query_in": "the query coming in to the server on this host",
        "answer_out": "the answer leaving the server on this host",
    }
    for direction, what in words.items():
        path = paths.get(f"{proto}_{direction}") or {}
        if path.get("verdict") in ("drop", "reject"):
            rule = path.get("rule") or path.get("policy") or {}
            where = f"{rule.get('source')} {rule.get('family')} {rule.get('table')} {rule.get('chain')}"
            text = (
                f"`{rule.get('rule')}` (handle {rule.get('handle')})"
                if rule.get("rule")
                else f"policy {rule.get('policy')}"
            )
            return f"{path['verdict']} of {what} by {where}: {text}", bool(path.get("certain"))
    return None


def _answer_words(e: Mapping[str, Any], target: Target) -> str:
    if e.get("rcode") != "NOERROR":
        return str(e.get("rcode"))
    return describe(e.get("answers", []), target.name, target.rdtype) if e.get("answers") else "NODATA"


def _answered(
    ev: Evidence,
    target: Target,
    refs: References,
    result: Callable[..., Assessment],
    rtt: float,
    healthy_words: str,
) -> Assessment:
    """A server that answers over UDP and TCP: is its answer right?"""
    s = ev.server
    changed = _channel_change(ev, target)
    if changed:
        return result(
            MISMATCH,
            "high",
            f"{s.label} answers {target.display} differently by channel: {changed} — something on the path "
            "rewrites one of them (interception or a transparent DNS proxy), or the server is tampered with",
            f"Find what answers for {s.host}: `traceroute -U -p {s.port} -n {s.host}` and `dig +tcp @{s.host} "
            f"-p {s.port} {target.name.rstrip('.') or '.'} {target.rdtype}` from another network",
            *_mismatch_steps(s, target, refs),
        )
    mine = ev.resolution if ev.resolution and ev.resolution.get("outcome") == "answer" else None
    if mine is None:
        mine = next(e for e in (*ev.udp, *ev.tcp) if e.get("outcome") == "answer")
    rcode = mine.get("rcode")
    qname, qtype = target.name, target.rdtype
    auths = refs.answering_authorities
    dig_auth = _dig_auth(refs, target)
    auth_words = "; ".join(f"{a.get('server')}: {_answer_words(a, target)}" for a in auths) or "none answered"

    if rcode == "SERVFAIL":
        cd = ev.resolution.get("cd_retry") if ev.resolution else None
        ede = [x for x in mine.get("ede", []) if isinstance(x, Mapping)]
        ede_words = ", ".join(f"EDE {x.get('code')} {x.get('text') or ''}".strip() for x in ede)
        dnssec_ede = [x for x in ede if x.get("code") in EDE_DNSSEC]
        if dnssec_ede or (isinstance(cd, Mapping) and cd.get("rcode") == "NOERROR"):
            how = []
            if isinstance(cd, Mapping) and cd.get("rcode") == "NOERROR":
                how.append(f"asked again with CD=1 (no validation) it answers {_answer_words(cd, target)}")
            if ede_words:
                how.append(f"it says {ede_words}")
            return result(
                DNSSEC,
                "high",
                f"{s.label} answers SERVFAIL for {target.display}, but " + "; ".join(how) + ": the answer fails "
                "DNSSEC validation (a broken chain of trust, expired signatures or missing keys)",
                f"Check the zone's signatures and DS records: `delv @{s.host} {qname} {qtype}`, "
                f"`dig {qname} DNSKEY +dnssec`, `dig {target.name} DS +trace`",
                "On the zone's signer: are the RRSIGs current and does the parent's DS match a DNSKEY?",
            )
        failing = [a for a in refs.authorities if a not in auths]
        if refs.authorities and not auths:
            return result(
                UPSTREAM,
                "high",
                f"{s.label} answers SERVFAIL for {target.display}, and the zone's authoritative servers fail too: "
                + "; ".join(f"{a.get('server')}: {a.get('lame') or a.get('outcome')}" for a in failing)
                + (f" ({ede_words})" if ede_words else ""),
                "Restore the zone's authoritative servers: " + ", ".join(str(a.get("server")) for a in failing),
                f"Check each one directly: {dig_auth}",
            )
        return result(
            UPSTREAM,
            "medium" if auths else "low",
            f"{s.label} answers SERVFAIL for {target.display}"
            + (f" ({ede_words})" if ede_words else "")
            + (
                f", while the authoritative servers answer from here ({auth_words}): the resolver cannot reach them, "
                "or rejects their answers"
                if auths
                else "; the zone's authoritative servers could not be checked"
            ),
            f"On {s.host}: read the resolver's log for the upstream errors; {dig_auth} from {s.host}",
        )

    expected = matches_expected(mine.get("answers", []), refs.expect, qname, qtype) if rcode == "NOERROR" else UNKNOWN
    auth_has_records = [a for a in auths if a.get("rcode") == "NOERROR" and a.get("answers")]
    if rcode == "NXDOMAIN":
        if auths and all(a.get("rcode") == "NXDOMAIN" for a in auths):
            return result(
                NXDOMAIN,
                "high",
                f"{target.display} does not exist: {s.label} answers NXDOMAIN, and so do the zone's "
                f"authoritative servers ({', '.join(str(a.get('server')) for a in auths)})",
                f"Check the name for typos; if it should exist, add it to the zone and check the zone's serial "
                f"reached every authoritative server ({dig_auth})",
            )
        if auth_has_records:
            return result(
                MISMATCH,
                "high",
                f"{s.label} says {target.display} does not exist (NXDOMAIN), but the authoritative servers answer "
                f"{auth_words}: a stale negative cache, or a resolver that lies",
                f"On {s.host}: flush the name from the cache (unbound: `unbound-control flush {qname}`; BIND: "
                f"`rndc flushname {qname}`) and ask again; if it persists, the resolver is tampered with",
            )
        return result(
            INCONCLUSIVE,
            "medium",
            f"{s.label} says {target.display} does not exist (NXDOMAIN); the authoritative servers could not "
            "confirm it",
            f"Check the name for typos, and ask the zone's authoritative servers: {dig_auth}",
        )

    # The zone's own servers say, with authority (AA: not a referral to a zone below), that there is no such
    # record: NXDOMAIN, or NOERROR with nothing.
    auth_negative = [
        a
        for a in auths
        if a.get("aa") and (a.get("rcode") == "NXDOMAIN" or (a.get("rcode") == "NOERROR" and not a.get("answers")))
    ]
    if rcode == "NOERROR":
        if mine.get("answers") and auths and len(auth_negative) == len(auths) and not refs.expect:
            said = (
                "does not exist (NXDOMAIN)" if auth_negative[0].get("rcode") == "NXDOMAIN" else f"has no {qtype} record"
            )
            return result(
                MISMATCH,
                "high",
                f"{s.label} answers {target.display} with {_answer_words(mine, target)}, but the zone's "
                f"authoritative servers say it {said} ({auth_words}): the resolver makes up the answer — "
                "NXDOMAIN redirection, or a hijack of the name",
                *_mismatch_steps(s, target, refs),
            )
        if not mine.get("answers") and auth_has_records and not refs.expect:
            return result(
                MISMATCH,
                "high",
                f"{s.label} says {target.display} has no {qtype} record (NODATA), but the zone's authoritative "
                f"servers answer {auth_words}: the resolver hides the records, or serves a stale cache",
                *_mismatch_steps(s, target, refs),
            )
        if refs.expect and expected == DISAGREE:
            return result(
                MISMATCH,
                "high",
                f"{s.label} answers {target.display} with {_answer_words(mine, target)}, none of the expected "
                f"{', '.join(refs.expect)}: possible hijack or redirection of users",
                *_mismatch_steps(s, target, refs),
            )
        if not refs.expect and auth_has_records:
            verdict = compare(mine.get("answers", []), [a.get("answers", []) for a in auth_has_records], qname, qtype)
            if verdict == DISAGREE:
                return result(
                    MISMATCH,
                    "high",
                    f"{s.label} answers {target.display} with {_answer_words(mine, target)}, but the zone's "
                    f"authoritative servers say {auth_words}: the sets share nothing — possible hijack or "
                    "redirection of users",
                    *_mismatch_steps(s, target, refs),
                )
        others = [r for r in refs.resolvers if r.get("outcome") == "answer" and r.get("answers")]
        if not refs.expect and not auth_has_records and others:
            verdict = compare(mine.get("answers", []), [r.get("answers", []) for r in others], qname, qtype)
            if verdict == DISAGREE:
                return result(
                    MISMATCH,
                    "medium",
                    f"{s.label} answers {target.display} with {_answer_words(mine, target)}, but every other "
                    f"resolver says otherwise ("
                    + "; ".join(f"{r.get('server')}: {_answer_words(r, target)}" for r in others)
                    + "): possible hijack or redirection; the authoritative servers could not be checked",
                    *_mismatch_steps(s, target, refs),
                )
        if not mine.get("answers"):
            return result(
                INCONCLUSIVE,
                "medium",
                f"{s.label} answers NODATA: {target.display} exists but has no {qtype} record"
                + (f" (the authoritative servers agree: {auth_words})" if auths else ""),
                f"Add the {qtype} record to the zone if users need it; check with {dig_auth}",
            )

    if ev.burst and ev.burst.get("degraded"):
        return result(
            DEGRADED,
            "high",
            f"Answers from {s.label} arrive, slowly or lossily: {ev.burst['degraded']} — congestion, or a server "
            "under load such as a DDoS",
            f"On {s.host}: look at the query rate and the daemon's load (`tcpdump -ni any -c 1000 port {s.port}`, "
            "`top`); on the path: interface errors and drops (`ip -s link`)",
            f"Measure again over a longer time: `dnsping -c 100 -p {s.port} -s {s.host} {qname}`",
        )
    verified_by = _verified_by(mine, refs, auth_has_records, target)
    agreed = f", as {verified_by} say" if verified_by else ""
    tcp_answered = any(e.get("outcome") == "answer" for e in ev.tcp if e.get("transport") == "tcp")
    over = " and TCP" if tcp_answered else "" if ev.tcp else " (TCP not tested)"
    healthy = result(HEALTHY, "high", f"{s.label} answers on UDP ({rtt:.1f} ms){over}{agreed}{healthy_words}")
    return replace(healthy, verified_by=verified_by)


def _channel_change(ev: Evidence, target: Target) -> str:
    """The same question over UDP and over TCP, to the same server, answered with different content: the
    two quoted, or '' when they agree. Sets that legitimately vary (a CDN handing out a few of many addresses)
    vary between the UDP answers too: a change counts only when the UDP answers agree with each other and
    TCP's shares nothing with any of them (or says NXDOMAIN where they give records, or the reverse)."""
    qname, qtype = target.name, target.rdtype
    usable = ("NOERROR", "NXDOMAIN")
    udp = [e for e in ev.udp if e.get("outcome") == "answer" and e.get("rcode") in usable]
    tcp = [
        e for e in ev.tcp if e.get("transport") == "tcp" and e.get("outcome") == "answer" and e.get("rcode") in usable
    ]
    if len(udp) < 2 or not tcp:
        return ""
    first, t = udp[0], tcp[0]
    if any(u.get("rcode") != first.get("rcode") for u in udp):
        return ""
    if first.get("rcode") != t.get("rcode"):
        differ = bool(first.get("answers") or t.get("answers"))
    elif first.get("answers") and t.get("answers"):
        steady = all(compare(u.get("answers", []), [first.get("answers", [])], qname, qtype) == AGREE for u in udp)
        differ = steady and all(
            compare(t.get("answers", []), [u.get("answers", [])], qname, qtype) == DISAGREE for u in udp
        )
    else:
        differ = False
    if not differ:
        return ""
    return f"over UDP {_answer_words(first, target)} ({len(udp)} answers alike), over TCP {_answer_words(t, target)}"


def _verified_by(
    mine: Mapping[str, Any],
    refs: References,
    auth_has_records: Sequence[Mapping[str, Any]],
    target: Target,
) -> str | None:
    """The independent source a healthy answer agrees with: --expect, the zone's own servers (asked directly,
    which an interceptor of this resolver's traffic does not answer for), or another resolver."""
    answers = mine.get("answers", [])
    if refs.expect:
        return "the addresses given with --expect"
    name, rdtype = target.name, target.rdtype
    if auth_has_records and compare(answers, [a.get("answers", []) for a in auth_has_records], name, rdtype) == AGREE:
        return "the zone's authoritative servers (" + ", ".join(str(a.get("server")) for a in auth_has_records) + ")"
    others = [r for r in refs.resolvers if r.get("outcome") == "answer" and r.get("answers")]
    if answers and others and compare(answers, [r.get("answers", []) for r in others], name, rdtype) == AGREE:
        return "the other resolvers (" + ", ".join(str(r.get("server")) for r in others) + ")"
    return None


def _stuck_upstream(
    ev: Evidence, target: Target, refs: References, result: Callable[..., Assessment], sent: int
) -> Assessment:
    """The daemon answers, but not this question: it is waiting on the zone's servers."""
    s = ev.server
    auths = refs.answering_authorities
    alive = (
        f"{s.label} is alive (it answers id.server CH TXT with {ev.liveness.get('rcode') if ev.liveness else '?'}) "
        f"but gave no answer at all for {target.display} ({sent} queries): it is still waiting on the zone's "
        "servers"
    )
    dig_auth = _dig_auth(refs, target)
    if refs.authorities and not auths:
        failing = "; ".join(f"{a.get('server')}: {a.get('lame') or a.get('outcome')}" for a in refs.authorities)
        return result(
            UPSTREAM,
            "high",
            f"{alive}, and the zone's authoritative servers fail ({failing})",
            "Restore the zone's authoritative servers: " + ", ".join(str(a.get("server")) for a in refs.authorities),
            f"Check each one directly: {dig_auth}",
        )
    if auths:
        return result(
            UPSTREAM,
            "medium",
            f"{alive}; the authoritative servers answer from here, so the resolver cannot reach them "
            "(its own network path or firewall)",
            f"From {s.host}: {dig_auth}, and check its outgoing firewall for port 53",
        )
    return result(
        UPSTREAM,
        "medium",
        f"{alive}; the zone's authoritative servers could not be checked"
        + (f" ({refs.discovery_error})" if refs.discovery_error else ""),
        f"Find the zone's servers and ask them, from a host with another resolver: {dig_auth}",
    )


def _dig_auth(refs: References, target: Target) -> str:
    """Commands that ask the zone's authoritative servers directly: the ones this run found, by address and
    port, or (none found) dig's own walk down the delegation."""
    qname, qtype = target.name.rstrip(".") or ".", target.rdtype
    labels = list(dict.fromkeys(str(a.get("server")) for a in refs.authorities if a.get("server")))[:3]
    commands = []
    for label in labels:
        host, _, port = label.rpartition(":")
        host = host.strip("[]")
        commands.append(f"`dig @{host} -p {port} {qname} {qtype} +norec`")
    return ", ".join(commands) if commands else f"`dig +trace {qname} {qtype}`"


DAEMON_UNITS = "-u unbound -u named -u bind9 -u knot -u nsd -u dnsmasq"


def _mismatch_steps(s: Server, target: Target, refs: References) -> tuple[str, ...]:
    return (
        f"Ask the zone's own servers and compare: {_dig_auth(refs, target)}; who runs {s.host}, and "
        "was its configuration or its forwarders changed?",
        f"On {s.host}: look for local data or forwarding overriding the zone (unbound `local-data`, dnsmasq "
        "`address=`, BIND response policy zones), and for signs of compromise",
        "Until it is fixed, point clients at a resolver that answers correctly",
    )


@dataclass(frozen=True)
class _PingWords:
    up: str
    down: str
    healthy: str


def _ping_words(ev: Evidence) -> _PingWords:
    p = ev.ping
    if not p:
        return _PingWords("", "", "")
    method = "ping" if str(p.get("method", "")).startswith("icmp") else "a TCP connect"
    if p.get("received"):
        ms = (p.get("rtt_avg_s") or 0) * 1000
        up = f" (it answers {method}: {p.get('received')}/{p.get('sent')}, {ms:.1f} ms)"
        return _PingWords(up, "", f"; the host answers {method}")
    if p.get("sent"):
        return _PingWords("", f", and {method} gets no reply ({p.get('sent')} sent)", "")
    return _PingWords("", "", "")


def _tcp_words(tcp: Mapping[str, Any] | None) -> str:
    if not tcp:
        return "not tested"
    outcome = tcp.get("outcome")
    if outcome == "reset":
        return "connection refused with RST"
    if outcome == "icmp":
        i = _icmp(tcp)
        return f"ICMP {i.get('name')} from {i.get('offender')}"
    if outcome == "timeout":
        return str(tcp.get("detail") or "timed out")
    return str(tcp.get("detail") or outcome)


def _service_down_tcp(tcp: Mapping[str, Any] | None, s: Server) -> str:
    outcome = tcp.get("outcome") if tcp else None
    if outcome == "reset":
        return f"TCP {s.port} answers with RST as well: nothing listens on port {s.port}, so the daemon is stopped."
    if outcome == "icmp":
        return (
            f"TCP {s.port} draws an ICMP error instead of an RST: a closed port would answer RST, so a firewall "
            "`reject` rule on the server is likely; it sends the same ICMP port unreachable for UDP."
        )
    if outcome == "answer":
        return (
            f"TCP {s.port} answers: the daemon runs but does not listen on UDP {s.port} (or a rule rejects UDP only)."
        )
    return (
        "A default nftables/iptables `reject` rule on the server sends the same ICMP error; "
        f"TCP {s.port} could not tell them apart ({_tcp_words(tcp)})."
    )


def _service_down_steps(tcp: Mapping[str, Any] | None, s: Server) -> tuple[str, ...]:
    outcome = tcp.get("outcome") if tcp else None
    steps = [
        f"On {s.host}: is the DNS daemon running? `systemctl status unbound named bind9 knot nsd dnsmasq` "
        f"(whichever serves DNS there), and its log: `journalctl --since '-15 min' {DAEMON_UNITS}`",
        f"On {s.host}: what listens on port {s.port}? "
        f"`ss -lnup 'sport = :{s.port}'` and `ss -lntp 'sport = :{s.port}'`",
    ]
    if outcome != "reset":
        steps.append(
            f"On {s.host}: look for a reject rule for port {s.port}: `nft list ruleset | grep -n 'dport {s.port}'`, "
            f"`iptables -S | grep -- '--dport {s.port}'`"
        )
    steps.append(
        "Before restarting a crashed daemon, read its log for a flood of queries (a DDoS) or changed "
        "configuration (an attack redirecting users)"
    )
    return tuple(steps)


# Failures of availability: when other servers answer, what they cost users depends on the order clients
# ask in. Wrong answers (a mismatch, a failed validation) are never made milder by a healthy neighbour.
AVAILABILITY = frozenset({SERVICE_DOWN, PORT_FILTERED, BLOCKED_IN_PATH, UNREACHABLE, REFUSED, TCP_FALLBACK})


@dataclass(frozen=True)
class _Impact:
    words: str
    waits: bool
    """Some lookups wait for a silent server: users feel it."""


def _impact(order: Sequence[Server], by_server: Mapping[Server, Assessment], resolv: ResolvConf | None) -> _Impact:
    """What a partial failure costs a stub resolver that tries the servers in ``order``."""
    good = [s for s in order if by_server[s].code == HEALTHY]
    bad = [s for s in order if by_server[s].code != HEALTHY]
    if not good or not bad:
        return _Impact("", waits=True)
    waits = False
    words = [
        f"{len(bad)} of {len(order)} servers fail; lookups still succeed through {', '.join(s.label for s in good)}"
    ]
    timeout = resolv.timeout_s if resolv else None
    rotate = bool(resolv and resolv.options.get("rotate"))
    first_good = order.index(good[0])
    for s in bad:
        a = by_server[s]
        if a.code in FAILS_FAST:
            words.append(f"{s.label} fails fast ({a.code}), so clients move past it at once")
        elif rotate:
            waits = True
            words.append(
                f"with `options rotate`, about 1 lookup in {len(order)} first waits {timeout:g} s for {s.label}"
                if timeout
                else f"some lookups first wait for {s.label}"
            )
        elif order.index(s) < first_good:
            waits = True
            wait = f"{timeout:g} s (resolv.conf timeout)" if timeout else "the client's timeout"
            words.append(
                f"{s.label} is asked first and stays silent, so every lookup waits {wait} before asking {good[0].label}"
            )
        else:
            words.append(f"{s.label} is asked only when the servers before it fail")
    return _Impact("; ".join(words) + ".", waits)


def references(findings: Sequence[Finding], expect: Sequence[str] = ()) -> References:
    auths = tuple(
        {**f.evidence, "server": f.server}
        for f in findings
        if f.step == "compare" and f.evidence.get("role") == "authoritative"
    )
    others = tuple(
        {**f.evidence, "server": f.server}
        for f in findings
        if f.step == "compare" and f.evidence.get("role") == "resolver"
    )
    summary = next((f for f in findings if f.id == "compare/authoritative"), None)
    error = summary.evidence.get("error") if summary else None
    return References(auths, others, tuple(expect), str(error) if error else None)


def _hosts_override(
    findings: Sequence[Finding], evidence: Mapping[Server, Evidence], refs: References, target: Target
) -> Assessment | None:
    if target.rdtype not in ("A", "AAAA"):
        return None
    hosts = next((f for f in findings if f.id == "hostconf/hosts"), None)
    entries = [e for e in (hosts.evidence.get("entries", []) if hosts else []) if isinstance(e, Mapping)]
    if not hosts or not entries:
        return None
    pinned = {str(e.get("address")) for e in entries}
    dns_values: set[str] = set()
    for ev in evidence.values():
        if ev.resolution and ev.resolution.get("outcome") == "answer":
            dns_values |= resolve_chain(ev.resolution.get("answers", []), target.name, target.rdtype).values
    for a in refs.answering_authorities:
        dns_values |= resolve_chain(a.get("answers", []), target.name, target.rdtype).values
    if dns_values and pinned <= dns_values:
        return None
    path = hosts.evidence.get("path")
    lines = ", ".join(f"line {e.get('line')}: {e.get('text')}" for e in entries)
    gives = ", ".join(sorted(dns_values)) if dns_values else "no answer to compare"
    return Assessment(
        None,
        HOSTS_OVERRIDE,
        "high" if dns_values else "medium",
        f"{path} pins {target.display} to {', '.join(sorted(pinned))} ({lines}), while DNS gives {gives}: "
        "programs on this host go where the hosts file says, whatever DNS answers",
        (
            f"Remove or correct the entry in {path} if it is stale (a leftover of a migration or a test), "
            "or find who added it (an attack redirecting users edits this file too)",
            f"Check what the system resolves: `getent ahosts {target.name.rstrip('.')}`",
        ),
        (hosts.id,),
    )


def _site_down(findings: Sequence[Finding], target: Target, website: bool) -> Assessment | None:
    """The site refuses connections: a verdict only for a name declared a website (--web)."""
    web = [f for f in findings if f.step == "web" and "reachable" in f.evidence]
    if not website or not web or any(f.evidence.get("reachable") for f in web):
        return None
    words = "; ".join(f.summary for f in web)
    return Assessment(
        None,
        SITE_DOWN,
        "high",
        f"DNS works, the site does not: {target.display} resolves, but its address does not accept connections "
        f"({words})",
        (
            "On the web server: is the web service running and listening (`ss -ltnp 'sport = :443'`, "
            "`systemctl status nginx apache2`)? Is a firewall or load balancer in front of it dropping connections?",
            f"Check from here: `curl -sv https://{target.name.rstrip('.')}/ -o /dev/null`",
        ),
        tuple(f.id for f in web),
    )


def diagnose(
    target: Target,
    servers: Sequence[Server],
    findings: Sequence[Finding],
    resolv: ResolvConf | None = None,
    expect: Sequence[str] = (),
    *,
    website: bool = False,
) -> Verdict:
    """The verdict of a run. ``resolv`` is given when the servers came from it (for the impact words);
    ``expect`` holds the addresses the name must resolve to, when the user knows them; ``website`` says
    the name is a website, so that a site refusing connections is a verdict of its own."""
    if not servers:
        where = f" in {resolv.path}" if resolv else ""
        invalid = [line for line in (resolv.ignored if resolv else ()) if line.split()[0] == "nameserver"]
        what = (
            f"the nameserver line{'s' if len(invalid) > 1 else ''}{where} "
            f"({'; '.join(repr(line) for line in invalid)}) {'are' if len(invalid) > 1 else 'is'} invalid and "
            "ignored by glibc (resolv.conf takes a bare IP address: no port, no name)"
            if invalid
            else f"there is no nameserver{where}"
        )
        return Verdict(
            NO_RESOLVER,
            STATUS[NO_RESOLVER],
            "high",
            f"No DNS server to diagnose: {what}, and none was given with --server (glibc would try 127.0.0.1)",
            tuple(f.id for f in findings if f.step == "hostconf"),
            (
                "Add a nameserver line with your DNS resolver's address to /etc/resolv.conf, or give the server "
                f"to diagnose: runbook diagnose {target.display} --server followed by its address",
                "See which resolver this host was meant to use (systemd-resolved, NetworkManager, DHCP): "
                "`resolvectl status`, `nmcli dev show`",
            ),
        )
    # The verdict depends on the findings, not on the order in which concurrent steps delivered them.
    findings = sorted(findings, key=lambda f: (_STEP_ORDER.get(f.step, len(_STEP_ORDER)), f.id))
    evidence = gather(servers, findings)
    refs = references(findings, expect)
    assessments = {s: assess(evidence[s], target, refs) for s in servers}
    run_level = [
        a for a in (_hosts_override(findings, evidence, refs, target), _site_down(findings, target, website)) if a
    ]
    failing = sorted([*(a for a in assessments.values() if a.code != HEALTHY), *run_level], key=lambda a: _RANK[a.code])
    if not failing:
        answers = _answers(evidence[servers[0]])
        summary = f"{target.display} resolves" + (f" to {answers}" if answers else "")
        summary += ": " + "; ".join(a.summary for a in assessments.values())
        unverified = [a for a in assessments.values() if not a.verified_by]
        verify_steps: tuple[str, ...] = ()
        if unverified:
            why = f" ({refs.discovery_error})" if refs.discovery_error else ""
            summary += (
                f". Not verified: nothing independent confirmed the answer of "
                f"{', '.join(a.server.label for a in unverified if a.server)} — the zone's authoritative servers "
                f"could not be asked{why}"
            )
            verify_steps = (
                f"Verify the answer against a source you trust: run again with --expect and the address "
                f"{target.display} should have, or --resolver with a resolver you trust, or --authoritative "
                "with the zone's own server",
            )
        web = [f for f in findings if f.step == "web" and f.evidence.get("reachable")]
        if web:
            summary += "; the site accepts connections (" + "; ".join(f.summary for f in web) + ")"
        closed = [f for f in findings if f.step == "web" and f.evidence.get("reachable") is False]
        if closed and not web:
            addresses = ", ".join(str(f.evidence.get("address")) for f in closed)
            summary += (
                f"; nothing accepts connections on 443 or 80 at {addresses}, which is not counted: if "
                f"{target.display} is a website, run with --web"
            )
        return Verdict(
            HEALTHY,
            Status.OK,
            "high",
            summary,
            tuple(i for a in assessments.values() for i in a.findings) + tuple(f.id for f in web),
            (
                *verify_steps,
                "Nothing to fix in DNS. If users still cannot reach the site, test the site itself "
                "and the resolvers their own networks use.",
            ),
            servers={s.label: HEALTHY for s in servers},
            verified=not unverified,
        )
    primary = failing[0]
    group = [a for a in failing if a.code == primary.code]
    impact = _impact(servers, assessments, resolv) if len(servers) > 1 and primary.server else _Impact("", True)
    summary = " ".join(a.summary for a in group) + (f" {impact.words}" if impact.words else "")
    status = STATUS[primary.code]
    if impact.words and not impact.waits and all(a.code in AVAILABILITY for a in failing):
        # Clients get their answers at no cost (the failing server fails fast, or is asked only after a good
        # one): worth a warning to fix, not a page.
        status = Status.WARNING
        summary += " Users do not notice it yet: a warning, not an outage."
    confidence = min((a.confidence for a in group), key=_CONFIDENCE.index)
    also = []
    for a in failing:
        if a.code != primary.code:
            entry = {"code": a.code, "status": STATUS[a.code].value, "summary": a.summary}
            if a.server is not None:
                entry["server"] = a.server.label
            also.append(entry)
    steps = list(dict.fromkeys(step for a in group for step in a.next_steps))
    return Verdict(
        primary.code,
        status,
        confidence,
        summary,
        tuple(dict.fromkeys(i for a in group for i in a.findings)),
        tuple(steps),
        tuple(also),
        servers={s.label: assessments[s].code for s in servers},
    )


def _answers(ev: Evidence) -> str:
    for e in ([ev.resolution] if ev.resolution else []) + ev.udp + ev.tcp:
        values = [a.get("value") for a in e.get("answers", []) if isinstance(a, Mapping)]
        if values:
            return ", ".join(str(v) for v in dict.fromkeys(values))
    return ""


def step_verdict(command: str, findings: Sequence[Finding], supports: frozenset[str], full: Verdict) -> Verdict:
    """The verdict of one step's command: the diagnosis when its code is one the step's evidence can
    support, else a ``step-result`` whose status is the worst of the step's own findings."""
    if full.code in supports:
        return full
    mine = [f for f in findings if f.step != "hostconf" or command == "hostconf"]
    status = worst([f.status for f in mine], default=Status.UNKNOWN)
    if status in (Status.SKIPPED, Status.ERROR):
        status = Status.UNKNOWN
    bad = [f for f in mine if f.status.rank > 0]
    shown = bad or mine
    summary = f"runbook {command}: " + ("; ".join(f.summary for f in shown) if shown else "nothing was found")
    return Verdict(
        STEP_RESULT,
        status,
        "high",
        summary + " (one step alone: `runbook diagnose` weighs it with the other steps)",
        tuple(f.id for f in shown),
        (),
        servers={},
    )


def interrupted_verdict(results: Sequence[StepResult], after_s: float) -> Verdict:
    """A run stopped half-way draws no conclusion from half the evidence: it says what finished."""
    done = [r.id for r in results if not (r.reason or "").startswith("interrupted")]
    cut = [r.id for r in results if (r.reason or "").startswith("interrupted")]
    return Verdict(
        INCONCLUSIVE,
        Status.UNKNOWN,
        "low",
        f"Interrupted after {after_s:.2f} s, before {', '.join(cut) or 'the end'} finished: no verdict is drawn "
        f"from part of the evidence. Finished: {', '.join(done) or 'nothing'}; their findings are above.",
        tuple(f.id for r in results for f in r.findings),
        ("Run it again to the end for a verdict",),
    )
