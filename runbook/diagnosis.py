"""Findings -> verdict. Pure: no I/O, no clock; the same findings always give the same verdict.

Each server is assessed on its own evidence (every UDP and TCP exchange any step made with it, and the
ping of its host); the run's verdict is the most important failing server's diagnosis, by the precedence
table below, with every other pattern in ``also`` and the cost to the user of a partial failure spelled
out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runbook.hostfiles import ResolvConf
from runbook.model import Finding, Server, Status, Target, Verdict

HEALTHY = "healthy"
SERVICE_DOWN = "dns-service-down"
PORT_FILTERED = "dns-port-filtered"
BLOCKED_IN_PATH = "dns-blocked-in-path"
LOCAL_FIREWALL = "local-firewall-blocks-dns"
UNREACHABLE = "dns-server-unreachable"
REFUSED = "resolver-refused"
TCP_FALLBACK = "tcp-fallback-blocked"
NO_RESOLVER = "no-resolver-configured"
INCONCLUSIVE = "inconclusive"

# The one precedence table: when servers fail differently, the earlier code is the verdict and the
# others go to ``also``. A failure of this host comes first (it hides everything behind it), then a
# dead service, then the network's failures, then answers that are wrong, then warnings.
PRECEDENCE: tuple[tuple[str, Status], ...] = (
    (LOCAL_FIREWALL, Status.CRITICAL),
    (SERVICE_DOWN, Status.CRITICAL),
    (BLOCKED_IN_PATH, Status.CRITICAL),
    (PORT_FILTERED, Status.CRITICAL),
    (UNREACHABLE, Status.CRITICAL),
    (REFUSED, Status.CRITICAL),
    (TCP_FALLBACK, Status.WARNING),
    (INCONCLUSIVE, Status.UNKNOWN),
    (NO_RESOLVER, Status.UNKNOWN),
    (HEALTHY, Status.OK),
)
STATUS: Mapping[str, Status] = dict(PRECEDENCE)
_RANK = {code: i for i, (code, _) in enumerate(PRECEDENCE)}
_CONFIDENCE = ("low", "medium", "high")

_STEP_ORDER = {step: i for i, step in enumerate(("hostconf", "resolve", "udp53", "tcp53", "ping"))}

# Failures a stub resolver notices at once (an ICMP error or an answer), and moves past at no cost.
FAILS_FAST = frozenset({SERVICE_DOWN, REFUSED, LOCAL_FIREWALL})


@dataclass
class Evidence:
    """Everything the findings say about one server."""

    server: Server
    udp: list[Mapping[str, Any]] = field(default_factory=list)
    tcp: list[Mapping[str, Any]] = field(default_factory=list)
    ping: Mapping[str, Any] | None = None
    finding_ids: list[str] = field(default_factory=list)

    @property
    def host_up(self) -> bool | None:
        """True when anything proves the host is up, False when ping saw nothing, None when unknown."""
        if self.ping and self.ping.get("received"):
            return True
        if any(e.get("outcome") in ("answer", "reset", "connected", "closed") for e in self.tcp):
            return True
        if any(_icmp(e) and _icmp(e).get("from_server") for e in (*self.udp, *self.tcp)):
            return True
        if self.ping and self.ping.get("sent"):
            return False
        return None


def _icmp(exchange: Mapping[str, Any]) -> Mapping[str, Any]:
    value = exchange.get("icmp")
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class Assessment:
    server: Server
    code: str
    confidence: str
    summary: str
    next_steps: tuple[str, ...]
    findings: tuple[str, ...]


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
        elif f.step == "tcp53":
            ev.tcp.append(e)
        elif f.step == "resolve":
            if isinstance(e.get("udp"), Mapping):
                ev.udp.append(e["udp"])
            (ev.tcp if e.get("transport") == "tcp" else ev.udp).append(e)
        else:
            continue
        ev.finding_ids.append(f.id)
    return {by_label[s.label].server: by_label[s.label] for s in servers}


def assess(ev: Evidence, target: Target) -> Assessment:
    """One server's diagnosis from its evidence alone."""
    s = ev.server
    where = f"{s.host}" if s.port == 53 else s.label
    port = f"port {s.port}"
    ids = tuple(ev.finding_ids)
    dig = f"dig @{s.host} -p {s.port} {target.name.rstrip('.') or '.'} {target.rdtype}"

    def result(code: str, confidence: str, summary: str, *steps: str) -> Assessment:
        return Assessment(s, code, confidence, summary, (*steps, f"Check the fix from here: `{dig}`"), ids)

    answers = [e for e in ev.udp if e.get("outcome") == "answer"]
    icmps = [_icmp(e) for e in ev.udp if e.get("outcome") == "icmp"]
    local = [e for e in ev.udp if e.get("outcome") == "local-error"]
    tcp = next((e for e in ev.tcp if e.get("outcome") == "answer"), ev.tcp[0] if ev.tcp else None)
    tcp_outcome = tcp.get("outcome") if tcp else None
    ping = _ping_words(ev)

    if local and not answers and any(e.get("errno") in ("EPERM", "EACCES") for e in local):
        return result(
            LOCAL_FIREWALL,
            "high",
            f"This host refused to send the DNS query to {where} ({local[0].get('errno')}): a local firewall rule "
            f"drops or rejects UDP {port} before it leaves",
            "List this host's rules for the query: `nft list ruleset` and `iptables -S OUTPUT`; look for a "
            f"drop or reject of udp dport {s.port} (or of {s.host})",
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
        tcp_ok = tcp_outcome == "answer"
        if not tcp_ok and tcp is not None:
            return result(
                TCP_FALLBACK,
                "medium",
                f"{where} answers over UDP in {rtt:.1f} ms, but TCP {port} fails ({_tcp_words(tcp)}): answers too "
                "large for UDP (truncated) cannot be fetched, and zone transfers and some clients will fail",
                f"Allow TCP {port} to {s.host} (RFC 7766 requires it): check the firewalls on the way and on "
                f"{s.host} for tcp dport {s.port}, and that the daemon listens on TCP (`ss -lntp 'sport = :{s.port}'`)",
            )
        bad = [r for r in rcodes if r not in ("NOERROR", "NXDOMAIN")]
        if bad:
            return result(
                INCONCLUSIVE,
                "medium",
                f"{where} answers on UDP and TCP, but with {bad[0]}: the server works, its answer for "
                f"{target.display} does not (an upstream or DNSSEC failure)",
                f"Ask the zone's authoritative servers directly: `dig {target.name} NS`, then `dig @AUTH "
                f"{target.name} {target.rdtype}`; try `{dig} +cd` to test DNSSEC",
            )
        if "NXDOMAIN" in rcodes:
            return result(
                INCONCLUSIVE,
                "medium",
                f"{where} answers on UDP and TCP, and says {target.display} does not exist (NXDOMAIN)",
                f"Check the name for typos, and ask the zone's authoritative servers: `dig {target.name} SOA`",
            )
        return result(HEALTHY, "high", f"{where} answers on UDP ({rtt:.1f} ms) and TCP{ping.healthy}")

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
        sent = len(ev.udp)
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
                    f"On {s.host}: look at the DNS daemon's load and log (`top`, `journalctl -u <daemon>`), and at "
                    f"the query rate (`tcpdump -ni any -c 1000 port {s.port}`); restart it if it is hung",
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
        "(whichever serves DNS there), and its log: `journalctl -u <daemon> --since '-15 min'`",
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
        "configuration (an attack redirecting users), as the seed's team planned"
    )
    return tuple(steps)


def _impact(order: Sequence[Server], by_server: Mapping[Server, Assessment], resolv: ResolvConf | None) -> str:
    """What a partial failure costs a stub resolver that tries the servers in ``order``."""
    good = [s for s in order if by_server[s].code == HEALTHY]
    bad = [s for s in order if by_server[s].code != HEALTHY]
    if not good or not bad:
        return ""
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
            words.append(
                f"with `options rotate`, about 1 lookup in {len(order)} first waits {timeout:g} s for {s.label}"
                if timeout
                else f"some lookups first wait for {s.label}"
            )
        elif order.index(s) < first_good:
            wait = f"{timeout:g} s (resolv.conf timeout)" if timeout else "the client's timeout"
            words.append(
                f"{s.label} is asked first and stays silent, so every lookup waits {wait} before asking {good[0].label}"
            )
        else:
            words.append(f"{s.label} is asked only when the servers before it fail")
    return "; ".join(words) + "."


def diagnose(
    target: Target,
    servers: Sequence[Server],
    findings: Sequence[Finding],
    resolv: ResolvConf | None = None,
) -> Verdict:
    """The verdict of a run. ``resolv`` is given when the servers came from it (for the impact words)."""
    if not servers:
        where = f" in {resolv.path}" if resolv else ""
        return Verdict(
            NO_RESOLVER,
            STATUS[NO_RESOLVER],
            "high",
            f"No DNS server to diagnose: there is no nameserver{where} and none was given with --server "
            "(glibc would try 127.0.0.1)",
            tuple(f.id for f in findings if f.step == "hostconf"),
            (
                "Add a `nameserver ADDRESS` line to /etc/resolv.conf, or name the server: "
                f"`runbook diagnose {target.display} --server ADDRESS`",
            ),
        )
    # The verdict depends on the findings, not on the order in which concurrent steps delivered them.
    findings = sorted(findings, key=lambda f: (_STEP_ORDER.get(f.step, len(_STEP_ORDER)), f.id))
    evidence = gather(servers, findings)
    assessments = {s: assess(evidence[s], target) for s in servers}
    failing = sorted((a for a in assessments.values() if a.code != HEALTHY), key=lambda a: _RANK[a.code])
    if not failing:
        answers = _answers(evidence[servers[0]])
        summary = f"{target.display} resolves" + (f" to {answers}" if answers else "")
        summary += ": " + "; ".join(a.summary for a in assessments.values())
        return Verdict(
            HEALTHY,
            Status.OK,
            "high",
            summary,
            tuple(i for a in assessments.values() for i in a.findings),
            (
                "Nothing to fix in DNS. If users still cannot reach the site, test the site itself "
                "and the resolvers their own networks use.",
            ),
            servers={s.label: HEALTHY for s in servers},
        )
    primary = failing[0]
    group = [a for a in failing if a.code == primary.code]
    impact = _impact(servers, assessments, resolv) if len(servers) > 1 else ""
    summary = " ".join(a.summary for a in group) + (f" {impact}" if impact else "")
    confidence = min((a.confidence for a in group), key=_CONFIDENCE.index)
    also = []
    for a in failing:
        if a.code != primary.code:
            also.append(
                {"code": a.code, "status": STATUS[a.code].value, "server": a.server.label, "summary": a.summary}
            )
    steps = list(dict.fromkeys(step for a in group for step in a.next_steps))
    return Verdict(
        primary.code,
        STATUS[primary.code],
        confidence,
        summary,
        tuple(dict.fromkeys(i for a in group for i in a.findings)),
        tuple(steps),
        tuple(also),
        servers={s.label: assessments[s].code for s in servers},
    )


def _answers(ev: Evidence) -> str:
    for e in ev.udp + ev.tcp:
        values = [a.get("value") for a in e.get("answers", []) if isinstance(a, Mapping)]
        if values:
            return ", ".join(str(v) for v in dict.fromkeys(values))
    return ""
