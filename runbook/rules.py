"""The diagnosis as one declared table of rules. Pure: no I/O, no clock.

Each rule names its verdict code and status, the evidence it needs (every condition must hold), the
evidence that would contradict it (none may hold), its confidence, its explanation in the voice of the
incident report, and its next steps. **Table order is the precedence**: when several rules match — on one
server or on several — the earliest is the verdict and every other match goes to ``verdict.also``. A
``fallback`` rule is considered only when no other rule of its scope matched (healthy; "fits no pattern").

Two scopes: ``server`` rules are asked of each configured server's facts (:class:`~runbook.facts.ServerFacts`),
``run`` rules of the whole run's (:class:`~runbook.facts.RunFacts`). A condition's test returns something
truthy when it holds; a string it returns is quoted by ``--explain`` as the evidence seen.

The order, in short: a failure of this host first (it hides everything behind it), then a dead service,
then the network's failures, then answers that are wrong (forged before failing: a forged answer is the
worse news), then the site itself, then warnings, then what fits no pattern.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import msgspec

from runbook.answers import DISAGREE
from runbook.evidence import HOST_UNREACHABLE, PORT_UNREACHABLE, PROHIBITED
from runbook.facts import DAEMON_UNITS, HostFacts, RunFacts, ServerFacts, answer_words, tcp_words
from runbook.model import Status, VerdictCode

C = VerdictCode
Scope = Literal["server", "run", "host"]


class Condition(msgspec.Struct, frozen=True):
    text: str
    test: Callable[[Any], object]


def on(text: str, test: Callable[[ServerFacts], object]) -> Condition:
    """A condition on one server's facts."""
    return Condition(text, test)


def on_run(text: str, test: Callable[[RunFacts], object]) -> Condition:
    """A condition on the whole run's facts."""
    return Condition(text, test)


class Rule(msgspec.Struct, frozen=True):
    id: str
    code: VerdictCode
    status: Status
    scope: Scope
    needs: tuple[Condition, ...]
    unless: tuple[Condition, ...]
    confidence: Callable[[Any], str]
    explain: Callable[[Any], str]
    steps: Callable[[Any], tuple[str, ...]]
    fallback: bool = False
    cites: Callable[[Any], tuple[str, ...]] | None = None
    """The findings a run rule rests on (a server rule rests on the server's own)."""
    workaround: bool = False
    """Port 53 fails: where DNS over TLS answers, the explanation says so and the next steps give the
    workaround (and the evidence: a filter of port 53, not of the host)."""


def server_rule(  # noqa: PLR0913 (one keyword per field of a rule)
    id: str,
    code: VerdictCode,
    status: Status,
    *,
    needs: tuple[Condition, ...],
    unless: tuple[Condition, ...] = (),
    confidence: str | Callable[[ServerFacts], str],
    explain: Callable[[ServerFacts], str],
    steps: Callable[[ServerFacts], tuple[str, ...]],
    fallback: bool = False,
    workaround: bool = False,
) -> Rule:
    conf = confidence if callable(confidence) else (lambda _f, c=confidence: c)
    if workaround:
        explain, steps = _with_dot(explain), _with_dot_steps(steps)
    if code is C.MISMATCH:
        explain = _with_authority_claim(explain)
    return Rule(
        id, code, status, "server", needs, unless, conf, explain, _with_check(steps), fallback, workaround=workaround
    )


def run_rule(
    id: str,
    code: VerdictCode,
    status: Status,
    *,
    needs: tuple[Condition, ...],
    confidence: str | Callable[[RunFacts], str],
    explain: Callable[[RunFacts], str],
    steps: Callable[[RunFacts], tuple[str, ...]],
    cites: Callable[[RunFacts], tuple[str, ...]],
) -> Rule:
    conf = confidence if callable(confidence) else (lambda _f, c=confidence: c)
    return Rule(id, code, status, "run", needs, (), conf, explain, steps, cites=cites)


def host_rule(
    id: str,
    code: VerdictCode,
    status: Status,
    *,
    needs: tuple[Condition, ...],
    explain: Callable[[HostFacts], str],
    steps: Callable[[HostFacts], tuple[str, ...]],
    fallback: bool = False,
) -> Rule:
    """A rule of ``runbook server``: asked of the server host's own evidence."""
    return Rule(id, code, status, "host", needs, (), lambda _f: "high", explain, steps, fallback, cites=lambda _f: ())


def on_host(text: str, test: Callable[[HostFacts], object]) -> Condition:
    return Condition(text, test)


def _with_authority_claim(explain: Callable[[ServerFacts], str]) -> Callable[[ServerFacts], str]:
    def words(f: ServerFacts) -> str:
        claim = f.claims_authority
        return f"{explain(f)}; {claim}: its own data overrides the zone" if claim else explain(f)

    return words


def _with_dot(explain: Callable[[ServerFacts], str]) -> Callable[[ServerFacts], str]:
    def words(f: ServerFacts) -> str:
        text = explain(f)
        if not f.dot_answer:
            return text
        return (
            f"{text.rstrip('.')}. Meanwhile {f.dot_words}: DNS itself works there, so what fails is port 53 "
            "alone, and clients that can use DNS over TLS keep resolving."
        )

    return words


def _with_dot_steps(steps: Callable[[ServerFacts], tuple[str, ...]]) -> Callable[[ServerFacts], tuple[str, ...]]:
    def with_workaround(f: ServerFacts) -> tuple[str, ...]:
        if not f.dot_answer:
            return steps(f)
        name = f.target.name.rstrip(".") or "."
        return (
            *steps(f),
            f"Until port 53 is fixed, clients that support it can use DNS over TLS on {f.server.host}:853 "
            f"(systemd-resolved with DNSOverTLS=opportunistic, Android Private DNS); check it: "
            f"`dig +tls @{f.server.host} {name} {f.target.rdtype}`",
        )

    return with_workaround


def _with_check(steps: Callable[[ServerFacts], tuple[str, ...]]) -> Callable[[ServerFacts], tuple[str, ...]]:
    """Every server verdict ends with the command that proves the fix from here."""
    return lambda f: (*steps(f), f"Check the fix from here: `{f.dig}`")


# -- conditions, named once and shared -------------------------------------------------------------------
NO_UDP_ANSWER = on("the server gave no answer over UDP", lambda f: not f.answers)
UDP_ANSWERED = on("the server answers over UDP", lambda f: f.answers and f"{len(f.answers)} answer(s)")
UDP_SILENT = on(
    "every UDP query timed out (no answer, no ICMP error)", lambda f: f.udp_silent and f"{f.sent} sent, none answered"
)
HOST_UP = on("something proves the host is up (ping, a TCP handshake or RST, its own ICMP)", lambda f: f.ev.host_up)
ALIVE = on("the daemon answers id.server CH TXT (it is alive)", lambda f: f.alive and f"answered {f.alive.rcode}")
EPERM = on("this host refused to send the query (EPERM)", lambda f: f.eperm and f.eperm.errno)
UDP_RULE = on("a rule of this host's firewall stops UDP DNS to the server", lambda f: f.udp_block and f.udp_block.words)
TCP_RULE = on("a rule of this host's firewall stops TCP DNS to the server", lambda f: f.tcp_block and f.tcp_block.words)
TCP_FAILED = on("TCP got no answer", lambda f: f.tcp_failed and tcp_words(f.tcp))
TCP_OPEN_SILENT = on(
    "TCP connects (SYN-ACK) but the query gets no answer", lambda f: f.tcp_connected_silent and tcp_words(f.tcp)
)
TCP_PATH_ICMP = on(
    "TCP is refused with ICMP by a filter (prohibited, or from another address)",
    lambda f: f.tcp_path_block and f"ICMP {f.tcp_path_block.name} from {f.tcp_path_block.offender}",
)
TCP_LOST = on("TCP timed out while UDP loses packets too (the same loss)", lambda f: f.tcp_lost and f.loss)
TCP_BUSY = on("TCP connected, then failed, at a resolver answering SERVFAIL", lambda f: f.tcp_busy)


def _icmp_is(kind: str, from_server: bool | None = None) -> Callable[[ServerFacts], object]:
    def test(f: ServerFacts) -> object:
        i = f.icmp
        if not i or i.kind != kind or (from_server is not None and i.from_server != from_server):
            return False
        return f"ICMP {i.typecode} {i.name} from {i.offender}"

    return test


ICMP_PORT_FROM_SERVER = on("UDP drew ICMP port unreachable from the server itself", _icmp_is(PORT_UNREACHABLE, True))
ICMP_PROHIBITED = on("UDP drew ICMP administratively prohibited", _icmp_is(PROHIBITED))
ICMP_PORT_FROM_OTHER = on(
    "UDP drew ICMP port unreachable from another address than the server", _icmp_is(PORT_UNREACHABLE, False)
)
ICMP_HOST = on("UDP drew ICMP host or net unreachable", _icmp_is(HOST_UNREACHABLE))
ICMP_OTHER = on(
    "UDP drew another ICMP error",
    lambda f: f.icmp and f.icmp.kind not in (PORT_UNREACHABLE, PROHIBITED, HOST_UNREACHABLE) and f.icmp.name,
)
ANY_ICMP = on("UDP drew an ICMP error", lambda f: f.icmp and f.icmp.name)
LOCAL_ERROR = on(
    "the query could not leave this host",
    lambda f: f.local_error and f"{f.local_error.errno}: {f.local_error.detail}",
)
ALL_REFUSED = on("every answer is REFUSED", lambda f: f.answers and all(r == "REFUSED" for r in f.rcodes))
SERVFAIL = on("the answer is SERVFAIL", lambda f: f.rcode == "SERVFAIL")
NXDOMAIN = on("the answer is NXDOMAIN", lambda f: f.rcode == "NXDOMAIN")
RECORDS = on("the answer has records (NOERROR)", lambda f: f.records and f.answer)
NOERROR = on("the answer is NOERROR", lambda f: f.rcode == "NOERROR")
NODATA = on("the answer is NODATA (NOERROR, no record)", lambda f: f.nodata)
TRUNCATED = on("the judged answer is truncated (TC=1): its content is partial", lambda f: f.mine and f.mine.tc)
DNSSEC_SIGN = on(
    "EDE says DNSSEC failed, or CD=1 (no validation) gets an answer",
    lambda f: f.dnssec_ede or (f.cd_answer and f"CD=1: {answer_words(f.cd_answer, f.target)}"),
)
AUTHS_FOUND = on("the zone's authoritative servers were found", lambda f: f.refs.authorities)
AUTHS_ALL_FAIL = on(
    "every authoritative server fails",
    lambda f: f.refs.authorities and not f.auths and "; ".join(f"{a.server}: {a.failure}" for a in f.refs.authorities),
)
AUTHS_ANSWER = on("authoritative servers answer", lambda f: f.auths and f.auth_words)
AUTHS_NXDOMAIN = on(
    "every answering authoritative server says NXDOMAIN",
    lambda f: f.auths and all(a.exchange.rcode == "NXDOMAIN" for a in f.auths) and f.auth_words,
)
AUTHS_HAVE_RECORDS = on("the authoritative servers answer with records", lambda f: f.auth_records and f.auth_words)
AUTHS_SAY_NONE = on(
    "every answering authoritative server says, with AA, there is no such record",
    lambda f: f.auths and len(f.auth_negative) == len(f.auths) and f.auth_words,
)
AUTHS_DISJOINT = on("the answer shares nothing with the authoritative servers'", lambda f: f.auth_disagree)
EXPECT_GIVEN = on("--expect gives the right addresses", lambda f: f.refs.expect and ", ".join(f.refs.expect))
EXPECT_MISSED = on("the answer has none of the --expect addresses", lambda f: f.expected == DISAGREE)
OTHERS_DISJOINT = on(
    "every other --resolver answers otherwise", lambda f: f.others_disagree and ", ".join(r.server for r in f.others)
)
CHANNEL = on("UDP and TCP answers differ in content", lambda f: f.channel_change)
BURST_DEGRADED = on("the burst measured loss or latency over the thresholds", lambda f: f.degraded)


# -- explanations and next steps ---------------------------------------------------------------------------
def _local_firewall(f: ServerFacts) -> str:
    if f.eperm:
        seen = f"this host refused to send the query to {f.where} ({f.eperm.errno})"
    elif f.icmp:
        seen = f"queries to {f.where} draw ICMP {f.icmp.name} from {f.icmp.offender}"
    else:
        seen = f"queries to {f.where} get no answer"
    rule = f.udp_block.words if f.udp_block else ""
    why = f", and its firewall says why: {rule}" if rule else ": a local firewall rule drops or rejects it"
    return f"DNS is blocked on this host: {seen}{why}"


def _service_down(f: ServerFacts) -> str:
    i = f.icmp
    assert i is not None
    if f.dot_answer:
        return (
            f"UDP {f.port} on {f.server.host} is unreachable (ICMP {i.typecode} {i.name} from the server itself), "
            f"yet the DNS daemon runs: it answers DNS over TLS on port 853. It does not listen on port "
            f"{f.server.port} (its interface or port settings), or a rule on the server rejects port "
            f"{f.server.port} only. {_service_down_tcp(f)}"
        )
    return (
        f"UDP {f.port} on {f.server.host} is unreachable (ICMP {i.typecode} {i.name} from the server itself): the "
        f"host is up{f.up_words}, so the DNS service is not running or not listening. {_service_down_tcp(f)}"
    )


def _service_down_tcp(f: ServerFacts) -> str:
    port = f.server.port
    if f.tcp_outcome == "reset":
        return f"TCP {port} answers with RST as well: nothing listens on port {port}, so the daemon is stopped."
    if f.tcp_outcome == "icmp":
        return (
            f"TCP {port} draws an ICMP error instead of an RST: a closed port would answer RST, so a firewall "
            "`reject` rule on the server is likely; it sends the same ICMP port unreachable for UDP."
        )
    if f.tcp_outcome == "answer":
        return f"TCP {port} answers: the daemon runs but does not listen on UDP {port} (or a rule rejects UDP only)."
    return (
        "A default nftables/iptables `reject` rule on the server sends the same ICMP error; "
        f"TCP {port} could not tell them apart ({tcp_words(f.tcp)})."
    )


def _server_check(f: ServerFacts) -> str:
    """The other half of the incident: the command that, run on the server, names the cause."""
    port = "" if f.server.port == 53 else f" --port {f.server.port}"
    return (
        f"On {f.server.host}: `runbook server --address {f.server.host}{port}` checks the daemon, what listens on "
        f"port {f.server.port}, its configuration, the server's own firewall and its load, and names the cause"
    )


def _service_down_steps(f: ServerFacts) -> tuple[str, ...]:
    h, p = f.server.host, f.server.port
    steps = [
        _server_check(f),
        f"On {h}: is the DNS daemon running? `systemctl status unbound named bind9 knot nsd dnsmasq` "
        f"(whichever serves DNS there), and its log: `journalctl --since '-15 min' {DAEMON_UNITS}`",
        f"On {h}: what listens on port {p}? `ss -lnup 'sport = :{p}'` and `ss -lntp 'sport = :{p}'`",
    ]
    if f.tcp_outcome != "reset":
        steps.append(
            f"On {h}: look for a reject rule for port {p}: `nft list ruleset | grep -n 'dport {p}'`, "
            f"`iptables -S | grep -- '--dport {p}'`"
        )
    steps.append(
        "Before restarting a crashed daemon, read its log for a flood of queries (a DDoS) or changed "
        "configuration (an attack redirecting users)"
    )
    return tuple(steps)


def _blocked_icmp(f: ServerFacts) -> str:
    i = f.icmp
    assert i is not None
    who = "the server's own firewall" if i.from_server else f"{i.offender}, a device between here and {f.server.host},"
    return f"DNS to {f.where} is blocked: {who} answered the query with ICMP {i.typecode} {i.name}" + (
        "" if i.from_server else "; the query never reached the server"
    )


def _blocked_icmp_steps(f: ServerFacts) -> tuple[str, ...]:
    i, s = f.icmp, f.server
    return (
        f"On {i.offender if i else s.host}: find the rule that rejects DNS: `nft list ruleset` / `iptables -S` "
        f"(look for a reject of udp dport {s.port}), or the ACL of that router or firewall",
        f"Confirm the path from here: `tracepath -n {s.host}` or `traceroute -U -p {s.port} -n {s.host}`",
    )


def _blocked_tcp_icmp(f: ServerFacts) -> str:
    i = f.tcp_path_block
    return (
        f"UDP {f.port} on {f.where} gets no answer ({f.sent} queries), and TCP {f.port} is refused by "
        f"{i.offender if i else '?'} with ICMP {i.name if i else '?'}: a firewall in the path blocks DNS"
    )


def _hung(f: ServerFacts) -> str:
    return (
        f"Queries to UDP {f.port} on {f.server.host} time out ({f.sent} sent, no answer, no ICMP error), and TCP "
        f"{f.port} accepts the connection but never answers the query: the DNS daemon listens but does not serve "
        "— hung, or overloaded by a flood of queries (a DDoS) — unless a firewall also drops UDP"
    )


def _hung_steps(f: ServerFacts) -> tuple[str, ...]:
    h, p = f.server.host, f.server.port
    return (
        _server_check(f),
        f"On {h}: look at the DNS daemon's load and log (`top`, `journalctl --since '-15 min' {DAEMON_UNITS}`), "
        f"and at the query rate (`tcpdump -ni any -c 1000 port {p}`); restart it if it is hung",
        f"On {h} and the firewalls in between: look for drop rules on udp dport {p}",
    )


def _filtered(f: ServerFacts) -> str:
    if f.tcp_outcome == "answer":
        tcp = f" TCP {f.port} answers, so only UDP is dropped."
    else:
        tcp = f" TCP {f.port}: {tcp_words(f.tcp)}." if f.tcp else ""
    return (
        f"Queries to UDP {f.port} on {f.server.host} time out ({f.sent} sent, no answer, no ICMP error) while the "
        f"host is up{f.up_words}: a firewall drops DNS packets silently.{tcp}"
    )


def _filtered_steps(f: ServerFacts) -> tuple[str, ...]:
    h, p = f.server.host, f.server.port
    return (
        _server_check(f),
        f"On {h} and on the firewalls in between: look for drop rules on udp/tcp dport {p} "
        "(`nft list ruleset`, `iptables -S`, cloud security groups)",
        f"Find where the packets stop: `traceroute -U -p {p} -n {h}`; on {h}, "
        f"`tcpdump -ni any port {p}` shows whether the queries arrive",
    )


def _unreachable_icmp(f: ServerFacts) -> str:
    i = f.icmp or f.tcp_icmp
    who = i.offender if i and i.offender else "this host"
    return f"{f.server.host} cannot be reached: {who} reported ICMP {i.typecode if i else ''} {i.name if i else ''}"


def _reach_steps(f: ServerFacts) -> tuple[str, ...]:
    h = f.server.host
    i = f.icmp or f.tcp_icmp
    who = i.offender if i and i.offender else "here"
    return (
        f"Check that {h} is up and on the network (console, hypervisor, link); from {who}: "
        f"`ip route get {h}`, `ip neigh show {h}`, `tracepath -n {h}`",
    )


def _silent_confidence(f: ServerFacts) -> str:
    return "high" if f.ev.host_up is False and f.tcp_outcome == "timeout" else "low"


def _silent(f: ServerFacts) -> str:
    doubt = "" if _silent_confidence(f) == "high" else "; a firewall dropping everything would look the same"
    return (
        f"Nothing answers from {f.server.host}: DNS over UDP ({f.sent} queries) and TCP time out{f.down_words}{doubt}"
    )


def _tcp_fallback(f: ServerFacts) -> str:
    head = f"{f.where} answers over UDP in {f.rtt_ms:.1f} ms, but"
    if f.tcp_block:
        return f"{head} TCP {f.port} fails ({tcp_words(f.tcp)}): this host's firewall stops it: {f.tcp_block.words}" + (
            " — and the answer is truncated (TC=1)" if f.truncated else ""
        )
    if f.truncated:
        return (
            f"{head} truncated (TC=1), and TCP {f.port} fails ({tcp_words(f.tcp)}): the full answer for "
            f"{f.target.display} cannot be fetched, so lookups of it fail"
        )
    return f"{head} TCP {f.port} fails ({tcp_words(f.tcp)}): answers too large for UDP (truncated) could not be fetched"


def _tcp_fallback_steps(f: ServerFacts) -> tuple[str, ...]:
    h, p = f.server.host, f.server.port
    if f.tcp_block:
        return (f"Let tcp to port {p} of {h} out on this host (`nft -a list ruleset`, `iptables-save`)",)
    return (
        f"Allow TCP {f.port} to {h} (RFC 7766 requires it): check the firewalls on the way and on {h} for tcp "
        f"dport {p}, and that the daemon listens on TCP (`ss -lntp 'sport = :{p}'`)",
    )


def _mismatch_steps(f: ServerFacts) -> tuple[str, ...]:
    h = f.server.host
    return (
        f"Ask the zone's own servers and compare: {f.dig_auth}; who runs {h}, and was its configuration or its "
        "forwarders changed?",
        f"On {h}: look for local data or forwarding overriding the zone (unbound `local-data`, dnsmasq `address=`, "
        "BIND response policy zones), and for signs of compromise",
        "Until it is fixed, point clients at a resolver that answers correctly",
    )


def _channel_steps(f: ServerFacts) -> tuple[str, ...]:
    s, t = f.server, f.target
    return (
        f"Find what answers for {s.host}: `traceroute -U -p {s.port} -n {s.host}` and `dig +tcp @{s.host} "
        f"-p {s.port} {t.name.rstrip('.') or '.'} {t.rdtype}` from another network",
        *_mismatch_steps(f),
    )


def _says_none(f: ServerFacts) -> str:
    neg = f.auth_negative
    said = (
        "does not exist (NXDOMAIN)"
        if neg and neg[0].exchange.rcode == "NXDOMAIN"
        else f"has no {f.target.rdtype} record"
    )
    return (
        f"{f.server.label} answers {f.target.display} with {f.answer}, but the zone's authoritative servers say "
        f"it {said} ({f.auth_words}): the resolver makes up the answer — NXDOMAIN redirection, or a hijack of the name"
    )


def _dnssec(f: ServerFacts) -> str:
    how = []
    if f.cd_answer:
        how.append(f"asked again with CD=1 (no validation) it answers {answer_words(f.cd_answer, f.target)}")
    if f.ede:
        how.append(f"it says {f.ede}")
    return (
        f"{f.server.label} answers SERVFAIL for {f.target.display}, but " + "; ".join(how) + ": the answer fails "
        "DNSSEC validation (a broken chain of trust, expired signatures or missing keys)"
    )


def _dnssec_steps(f: ServerFacts) -> tuple[str, ...]:
    q, t = f.target.name, f.target.rdtype
    return (
        f"Check the zone's signatures and DS records: `delv @{f.server.host} {q} {t}`, `dig {q} DNSKEY +dnssec`, "
        f"`dig {q} DS +trace`",
        "On the zone's signer: are the RRSIGs current and does the parent's DS match a DNSKEY?",
    )


def _ede_note(f: ServerFacts) -> str:
    return f" ({f.ede})" if f.ede else ""


def _failing_auths(f: ServerFacts) -> str:
    return "; ".join(f"{a.server}: {a.failure}" for a in f.refs.authorities)


def _restore_auths(f: ServerFacts) -> tuple[str, ...]:
    return (
        "Restore the zone's authoritative servers: " + ", ".join(a.server for a in f.refs.authorities),
        f"Check each one directly: {f.dig_auth}",
    )


def _servfail(f: ServerFacts) -> str:
    head = f"{f.server.label} answers SERVFAIL for {f.target.display}{_ede_note(f)}"
    if f.auths:
        return (
            f"{head}, while the authoritative servers answer from here ({f.auth_words}): the resolver cannot reach "
            "them, or rejects their answers"
        )
    return f"{head}; the zone's authoritative servers could not be checked"


def _alive_words(f: ServerFacts) -> str:
    rcode = f.alive.rcode if f.alive else "?"
    return (
        f"{f.server.label} is alive (it answers id.server CH TXT with {rcode}) but gave no answer at all for "
        f"{f.target.display} ({f.sent} queries): it is still waiting on the zone's servers"
    )


def _stuck(f: ServerFacts) -> str:
    if f.refs.authorities and not f.auths:
        return f"{_alive_words(f)}, and the zone's authoritative servers fail ({_failing_auths(f)})"
    if f.auths:
        return (
            f"{_alive_words(f)}; the authoritative servers answer from here, so the resolver cannot reach them "
            "(its own network path or firewall)"
        )
    error = f" ({f.refs.discovery_error})" if f.refs.discovery_error else ""
    return f"{_alive_words(f)}; the zone's authoritative servers could not be checked{error}"


def _stuck_steps(f: ServerFacts) -> tuple[str, ...]:
    if f.refs.authorities and not f.auths:
        return _restore_auths(f)
    if f.auths:
        return (f"From {f.server.host}: {f.dig_auth}, and check its outgoing firewall for port 53",)
    return (f"Find the zone's servers and ask them, from a host with another resolver: {f.dig_auth}",)


def _degraded_steps(f: ServerFacts) -> tuple[str, ...]:
    h, p = f.server.host, f.server.port
    return (
        f"On {h}: look at the query rate and the daemon's load (`tcpdump -ni any -c 1000 port {p}`, `top`); on the "
        "path: interface errors and drops (`ip -s link`)",
        f"Measure again over a longer time: `dnsping -c 100 -p {p} -s {h} {f.target.name}`",
    )


def _lost_words(f: ServerFacts) -> str:
    return (
        f"TCP {f.port} also timed out ({tcp_words(f.tcp)}) while {f.loss} of the UDP queries went unanswered: read "
        "as the same loss, not as a blocked port"
    )


def _healthy(f: ServerFacts) -> str:
    tcp_answered = any(e.answered for e in f.ev.tcp if e.transport == "tcp")
    over = " and TCP" if tcp_answered else "" if f.ev.tcp else " (TCP not tested)"
    agreed = f", as {f.verified_by} say" if f.verified_by else ""
    up = f"; the host answers {f.ping_method}" if f.pinged else ""
    claim = f"; {f.claims_authority} (its own data, which agrees with the zone today)" if f.claims_authority else ""
    return f"{f.server.label} answers on UDP ({f.rtt_ms:.1f} ms){over}{agreed}{up}{claim}"


def _no_steps(_f: object) -> tuple[str, ...]:
    return ()


def _hosts_override(r: RunFacts) -> str:
    assert r.hosts is not None
    lines = ", ".join(f"line {e.line}: {e.text}" for e in r.hosts.entries)
    gives = ", ".join(sorted(r.dns_values)) if r.dns_values else "no answer to compare"
    return (
        f"{r.hosts.path} pins {r.target.display} to {', '.join(sorted(r.pinned))} ({lines}), while DNS gives "
        f"{gives}: programs on this host go where the hosts file says, whatever DNS answers"
    )


def _hosts_steps(r: RunFacts) -> tuple[str, ...]:
    path = r.hosts.path if r.hosts else "/etc/hosts"
    return (
        f"Remove or correct the entry in {path} if it is stale (a leftover of a migration or a test), or find who "
        "added it (an attack redirecting users edits this file too)",
        f"Check what the system resolves: `getent ahosts {r.target.name.rstrip('.')}`",
    )


def _site_down(r: RunFacts) -> str:
    words = "; ".join(s.summary for s in r.sites)
    return (
        f"DNS works, the site does not: {r.target.display} resolves, but its address does not accept connections "
        f"({words})"
    )


def _site_steps(r: RunFacts) -> tuple[str, ...]:
    return (
        "On the web server: is the web service running and listening (`ss -ltnp 'sport = :443'`, "
        "`systemctl status nginx apache2`)? Is a firewall or load balancer in front of it dropping connections?",
        f"Check from here: `curl -sv https://{r.target.name.rstrip('.')}/ -o /dev/null`",
    )


def _no_resolver_steps(r: RunFacts) -> tuple[str, ...]:
    return (
        "Add a nameserver line with your DNS resolver's address to /etc/resolv.conf, or give the server to "
        f"diagnose: runbook diagnose {r.target.display} --server followed by its address",
        "See which resolver this host was meant to use (systemd-resolved, NetworkManager, DHCP): "
        "`resolvectl status`, `nmcli dev show`",
    )


CRIT, WARN, UNK, OK = Status.CRITICAL, Status.WARNING, Status.UNKNOWN, Status.OK
_NO_SERVER = on_run("no server to diagnose", lambda r: not r.servers)

# -- THE TABLE: order is precedence ---------------------------------------------------------------------
RULES: tuple[Rule, ...] = (
    run_rule(
        "no-resolver",
        C.NO_RESOLVER,
        UNK,
        needs=(_NO_SERVER,),
        confidence="high",
        explain=lambda r: (
            f"No DNS server to diagnose: {r.no_server_words}, and none was given with --server "
            "(glibc would try 127.0.0.1)"
        ),
        steps=_no_resolver_steps,
        cites=lambda r: r.hostconf_ids,
    ),
    server_rule(
        "local-firewall",
        C.LOCAL_FIREWALL,
        CRIT,
        needs=(NO_UDP_ANSWER, on("EPERM on send, or a local rule stopping UDP DNS", lambda f: f.eperm or f.udp_block)),
        confidence=lambda f: "high" if f.eperm or (f.udp_block and f.udp_block.certain) else "medium",
        explain=_local_firewall,
        steps=lambda f: (
            "Fix the rule on this host (`nft -a list ruleset`, `iptables-save`, `iptables-legacy-save`): it must let "
            f"udp and tcp to port {f.server.port} of {f.server.host} out, and the answers back in (ct state "
            "established)",
        ),
        workaround=True,
    ),
    server_rule(
        "service-down",
        C.SERVICE_DOWN,
        CRIT,
        needs=(NO_UDP_ANSWER, ICMP_PORT_FROM_SERVER),
        confidence=lambda f: "high" if f.tcp_outcome in ("reset", "icmp", "answer") or f.ev.host_up else "medium",
        explain=_service_down,
        steps=_service_down_steps,
        workaround=True,
    ),
    server_rule(
        "blocked-by-icmp",
        C.BLOCKED_IN_PATH,
        CRIT,
        needs=(
            NO_UDP_ANSWER,
            on(
                "UDP drew ICMP prohibited, or port unreachable from another address",
                lambda f: ICMP_PROHIBITED.test(f) or ICMP_PORT_FROM_OTHER.test(f),
            ),
        ),
        confidence="high",
        explain=_blocked_icmp,
        steps=_blocked_icmp_steps,
        workaround=True,
    ),
    server_rule(
        "blocked-tcp-icmp",
        C.BLOCKED_IN_PATH,
        CRIT,
        needs=(UDP_SILENT, TCP_PATH_ICMP),
        unless=(ALIVE,),
        confidence="medium",
        explain=_blocked_tcp_icmp,
        steps=lambda f: (
            f"On {f.tcp_path_block.offender if f.tcp_path_block else f.server.host}: find the rules for port "
            f"{f.server.port}: `nft list ruleset` / `iptables -S`",
        ),
        workaround=True,
    ),
    server_rule(
        "filtered-hung-daemon",
        C.PORT_FILTERED,
        CRIT,
        needs=(UDP_SILENT, HOST_UP, TCP_OPEN_SILENT),
        unless=(ALIVE, TCP_PATH_ICMP),
        confidence="medium",
        explain=_hung,
        steps=_hung_steps,
        workaround=True,
    ),
    server_rule(
        "filtered-drop",
        C.PORT_FILTERED,
        CRIT,
        needs=(UDP_SILENT, HOST_UP),
        unless=(ALIVE, TCP_PATH_ICMP, TCP_OPEN_SILENT),
        confidence=lambda f: "high" if f.pinged else "medium",
        explain=_filtered,
        steps=_filtered_steps,
        workaround=True,
    ),
    server_rule(
        "unreachable-icmp",
        C.UNREACHABLE,
        CRIT,
        needs=(NO_UDP_ANSWER, ICMP_HOST),
        confidence="high",
        explain=_unreachable_icmp,
        steps=_reach_steps,
        workaround=True,
    ),
    server_rule(
        "unreachable-local-error",
        C.UNREACHABLE,
        CRIT,
        needs=(NO_UDP_ANSWER, LOCAL_ERROR),
        unless=(EPERM, ANY_ICMP),
        confidence="high",
        explain=lambda f: (
            f"The query to {f.where} could not leave this host "
            f"({f.local_error.errno if f.local_error else '?'}: {f.local_error.detail if f.local_error else ''})"
        ),
        steps=lambda f: (f"Check this host's routes and addresses: `ip route get {f.server.host}`, `ip addr`",),
        workaround=True,
    ),
    server_rule(
        "unreachable-tcp-icmp",
        C.UNREACHABLE,
        CRIT,
        needs=(
            UDP_SILENT,
            on(
                "TCP drew ICMP host or net unreachable",
                lambda f: f.tcp_icmp and f.tcp_icmp.kind == HOST_UNREACHABLE and f.tcp_icmp.name,
            ),
        ),
        unless=(ALIVE, HOST_UP),
        confidence="high",
        explain=_unreachable_icmp,
        steps=_reach_steps,
        workaround=True,
    ),
    server_rule(
        "unreachable-silent",
        C.UNREACHABLE,
        CRIT,
        needs=(UDP_SILENT,),
        unless=(ALIVE, HOST_UP, on("TCP drew an ICMP error", lambda f: f.tcp_icmp)),
        confidence=_silent_confidence,
        explain=_silent,
        steps=_reach_steps,
        workaround=True,
    ),
    server_rule(
        "refused",
        C.REFUSED,
        CRIT,
        needs=(ALL_REFUSED,),
        confidence="high",
        explain=lambda f: (
            f"{f.where} answers, but REFUSED the query: it will not resolve {f.target.display} for this client"
        ),
        steps=lambda f: (
            f"On {f.server.host}: check who may query it (unbound `access-control`, BIND `allow-query`/"
            "`allow-recursion`, dnsmasq `--listen-address`/`--interface`) and that the zone is served",
        ),
    ),
    server_rule(
        "mismatch-by-channel",
        C.MISMATCH,
        CRIT,
        needs=(UDP_ANSWERED, CHANNEL),
        confidence="high",
        explain=lambda f: (
            f"{f.server.label} answers {f.target.display} differently by channel: {f.channel_change} — "
            "something on the path rewrites one of them (interception or a transparent DNS proxy), or the server is "
            "tampered with"
        ),
        steps=_channel_steps,
    ),
    server_rule(
        "mismatch-nxdomain-vs-records",
        C.MISMATCH,
        CRIT,
        needs=(UDP_ANSWERED, NXDOMAIN, AUTHS_HAVE_RECORDS),
        confidence="high",
        explain=lambda f: (
            f"{f.server.label} says {f.target.display} does not exist (NXDOMAIN), but the authoritative "
            f"servers answer {f.auth_words}: a stale negative cache, or a resolver that lies"
        ),
        steps=lambda f: (
            f"On {f.server.host}: flush the name from the cache (unbound: `unbound-control flush {f.target.name}`; "
            f"BIND: `rndc flushname {f.target.name}`) and ask again; if it persists, the resolver is tampered with",
        ),
    ),
    server_rule(
        "mismatch-made-up-answer",
        C.MISMATCH,
        CRIT,
        needs=(UDP_ANSWERED, RECORDS, AUTHS_SAY_NONE),
        unless=(EXPECT_GIVEN, TRUNCATED),
        confidence="high",
        explain=_says_none,
        steps=_mismatch_steps,
    ),
    server_rule(
        "mismatch-hidden-records",
        C.MISMATCH,
        CRIT,
        needs=(UDP_ANSWERED, NODATA, AUTHS_HAVE_RECORDS),
        unless=(EXPECT_GIVEN, TRUNCATED),
        confidence="high",
        explain=lambda f: (
            f"{f.server.label} says {f.target.display} has no {f.target.rdtype} record (NODATA), but the "
            f"zone's authoritative servers answer {f.auth_words}: the resolver hides the records, or serves a stale "
            "cache"
        ),
        steps=_mismatch_steps,
    ),
    server_rule(
        "mismatch-expect",
        C.MISMATCH,
        CRIT,
        needs=(UDP_ANSWERED, EXPECT_GIVEN, EXPECT_MISSED),
        unless=(TRUNCATED,),
        confidence="high",
        explain=lambda f: (
            f"{f.server.label} answers {f.target.display} with {f.answer}, none of the expected "
            f"{', '.join(f.refs.expect)}: possible hijack or redirection of users"
        ),
        steps=_mismatch_steps,
    ),
    server_rule(
        "mismatch-authoritative",
        C.MISMATCH,
        CRIT,
        needs=(UDP_ANSWERED, RECORDS, AUTHS_HAVE_RECORDS, AUTHS_DISJOINT),
        unless=(EXPECT_GIVEN, TRUNCATED),
        confidence="high",
        explain=lambda f: (
            f"{f.server.label} answers {f.target.display} with {f.answer}, but the zone's authoritative "
            f"servers say {f.auth_words}: the sets share nothing — possible hijack or redirection of users"
        ),
        steps=_mismatch_steps,
    ),
    server_rule(
        "mismatch-resolvers",
        C.MISMATCH,
        CRIT,
        needs=(UDP_ANSWERED, NOERROR, OTHERS_DISJOINT),
        unless=(EXPECT_GIVEN, AUTHS_HAVE_RECORDS, TRUNCATED),
        confidence="medium",
        explain=lambda f: (
            f"{f.server.label} answers {f.target.display} with {f.answer}, but every other resolver says "
            "otherwise (" + "; ".join(f"{r.server}: {answer_words(r.exchange, f.target)}" for r in f.others) + "): "
            "possible hijack or redirection; the authoritative servers could not be checked"
        ),
        steps=_mismatch_steps,
    ),
    server_rule(
        "dnssec",
        C.DNSSEC,
        CRIT,
        needs=(UDP_ANSWERED, SERVFAIL, DNSSEC_SIGN),
        confidence="high",
        explain=_dnssec,
        steps=_dnssec_steps,
    ),
    server_rule(
        "servfail-authorities-fail",
        C.UPSTREAM,
        CRIT,
        needs=(UDP_ANSWERED, SERVFAIL, AUTHS_ALL_FAIL),
        unless=(DNSSEC_SIGN,),
        confidence="high",
        explain=lambda f: (
            f"{f.server.label} answers SERVFAIL for {f.target.display}, and the zone's authoritative "
            f"servers fail too: {_failing_auths(f)}{_ede_note(f)}"
        ),
        steps=_restore_auths,
    ),
    server_rule(
        "servfail",
        C.UPSTREAM,
        CRIT,
        needs=(UDP_ANSWERED, SERVFAIL),
        unless=(DNSSEC_SIGN, AUTHS_ALL_FAIL),
        confidence=lambda f: "medium" if f.auths else "low",
        explain=_servfail,
        steps=lambda f: (
            f"On {f.server.host}: read the resolver's log for the upstream errors; {f.dig_auth} from {f.server.host}",
        ),
    ),
    server_rule(
        "waiting-upstream",
        C.UPSTREAM,
        CRIT,
        needs=(UDP_SILENT, ALIVE),
        confidence=lambda f: "high" if f.refs.authorities and not f.auths else "medium",
        explain=_stuck,
        steps=_stuck_steps,
    ),
    server_rule(
        "nxdomain",
        C.NXDOMAIN,
        CRIT,
        needs=(UDP_ANSWERED, NXDOMAIN, AUTHS_NXDOMAIN),
        confidence="high",
        explain=lambda f: (
            f"{f.target.display} does not exist: {f.server.label} answers NXDOMAIN, and so do the "
            f"zone's authoritative servers ({', '.join(a.server for a in f.auths)})"
        ),
        steps=lambda f: (
            "Check the name for typos; if it should exist, add it to the zone and check the zone's serial reached "
            f"every authoritative server ({f.dig_auth})",
        ),
    ),
    host_rule(
        "config-invalid",
        C.CONFIG_INVALID,
        CRIT,
        needs=(
            on_host(
                "a daemon's own checker rejects its configuration",
                lambda h: "; ".join(f"{c.daemon}: {c.config}" for c in h.invalid_configs),
            ),
        ),
        explain=lambda h: (
            "The DNS daemon's configuration is invalid, which keeps it from starting or from serving: "
            + "; ".join(f"`{' '.join(c.checker)}` says: {(c.output or ('?',))[0]}" for c in h.invalid_configs)
        ),
        steps=lambda h: tuple(
            f"Fix the line the checker names in {c.config}, then check it again: `{' '.join(c.checker)}`, and "
            f"restart {c.daemon}"
            for c in h.invalid_configs
        ),
    ),
    host_rule(
        "port-taken",
        C.PORT_TAKEN,
        CRIT,
        needs=(
            on_host(
                "another process holds the DNS port at the address",
                lambda h: ", ".join(f"{e.process} (pid {e.pid}) on {e.address}" for e in h.foreign),
            ),
        ),
        explain=lambda h: (
            f"Port {h.port} at {', '.join(h.addresses)} is held by another program: "
            + ", ".join(f"{e.process} (pid {e.pid}) on {e.address}" for e in h.foreign)
            + ": the DNS daemon cannot bind it"
        ),
        steps=lambda h: (
            f"Free the port: stop the program that holds it (`ss -lnup 'sport = :{h.port}'`, `ss -lntp 'sport = "
            f":{h.port}'` show it; `kill` its pid or disable its service), then start the DNS daemon",
        ),
    ),
    host_rule(
        "not-listening",
        C.DAEMON_NOT_LISTENING,
        CRIT,
        needs=(
            on_host("a DNS daemon runs", lambda h: ", ".join(sorted(h.daemon_names))),
            on_host(
                "the address is not served on UDP or TCP, and a running daemon is meant to serve it (it names "
                "the address, or listens on loopback only)",
                lambda h: h.unserved and (any(h.named.values()) or h.loopback_only) and ", ".join(h.unserved),
            ),
        ),
        explain=lambda h: (
            f"The DNS daemon runs but does not listen where clients reach it: nothing serves "
            f"{', '.join(h.unserved)} on port {h.port}" + (f"; {'; '.join(h.loopback_only)}" if h.loopback_only else "")
        ),
        steps=lambda h: (
            "Fix the daemon's listen addresses (unbound `interface:`, BIND `listen-on`, knot `listen:`, nsd "
            f"`ip-address:`, dnsmasq `--listen-address`) to include {', '.join(h.addresses)}, then restart it",
            f"Check: `ss -lnup 'sport = :{h.port}'` and `ss -lntp 'sport = :{h.port}'`",
        ),
    ),
    host_rule(
        "not-running",
        C.DAEMON_NOT_RUNNING,
        CRIT,
        needs=(
            on_host(
                "nothing listens on the port at the address",
                lambda h: h.addresses and all(not h.listening(a, p) for a in h.addresses for p in ("udp", "tcp")),
            ),
            on_host(
                "no running DNS daemon is meant to serve the address",
                lambda h: not any(h.named.values()) and not h.loopback_only,
            ),
        ),
        explain=lambda h: (
            f"No DNS daemon serves {', '.join(h.addresses)} on port {h.port}: it is not running"
            + (f" ({'; '.join(h.failed_units)})" if h.failed_units else "")
            + "".join(f"; the kernel's OOM killer killed {k.name} (pid {k.pid})" for k in h.oom)
            + (f"; running here: {', '.join(sorted(h.daemon_names))}, for other addresses" if h.daemon_names else "")
            + (
                f"; {len(h.other_namespaces)} DNS daemon(s) run in other network namespaces (containers), which do not "
                "serve this host's addresses"
                if h.other_namespaces
                else ""
            )
        ),
        steps=lambda h: (
            "Start the DNS daemon and read why it stopped: `systemctl status unbound named bind9 knot nsd dnsmasq`, "
            f"`journalctl --since '-1 h' {DAEMON_UNITS}` (an OOM kill, a crash, a changed configuration?)",
            "Before restarting, look for a flood of queries (a DDoS) in the log and the query rate",
        ),
    ),
    host_rule(
        "server-firewall",
        C.SERVER_FIREWALL,
        CRIT,
        needs=(
            on_host(
                "this host's firewall stops DNS coming in or its answers going out",
                lambda h: "; ".join(h.firewall_blocks),
            ),
        ),
        explain=lambda h: "The server's own firewall blocks DNS: " + "; ".join(h.firewall_blocks),
        steps=lambda h: (
            f"Let udp and tcp port {h.port} in, and the answers out, on this host (`nft -a list ruleset`, "
            "`iptables-save`): the deciding rule is quoted above",
        ),
    ),
    host_rule(
        "overloaded",
        C.OVERLOADED,
        CRIT,
        needs=(on_host("the kernel or the daemon shows overload", lambda h: "; ".join(h.overload)),),
        explain=lambda h: (
            "The DNS server is overloaded: "
            + "; ".join(h.overload)
            + f" ({h.load.udp_in_per_s:.0f} UDP datagrams/s in)"
        ),
        steps=lambda h: (
            f"Find who sends the load: `tcpdump -ni any -c 10000 udp port {h.port}` (or `runbook analyze --live "
            "IFACE`): a flood from few sources, random subdomains, ANY queries?",
            "Raise the receive buffer (`net.core.rmem_max`, unbound `so-rcvbuf`), add threads, rate-limit (unbound "
            "`ratelimit`, BIND `rate-limit`)",
        ),
    ),
    run_rule(
        "site-down",
        C.SITE_DOWN,
        CRIT,
        needs=(
            on_run("the name is a website (--web, or web = true)", lambda r: r.website),
            on_run(
                "no address of the site accepts connections on 443 or 80",
                lambda r: r.sites and not any(s.reachable for s in r.sites) and "; ".join(s.summary for s in r.sites),
            ),
        ),
        confidence="high",
        explain=_site_down,
        steps=_site_steps,
        cites=lambda r: tuple(s.finding for s in r.sites),
    ),
    run_rule(
        "hosts-override",
        C.HOSTS_OVERRIDE,
        WARN,
        needs=(
            on_run("the record type is A or AAAA", lambda r: r.target.rdtype in ("A", "AAAA")),
            on_run("the hosts file pins the name", lambda r: r.pinned and ", ".join(sorted(r.pinned))),
            on_run(
                "DNS gives addresses the hosts file does not", lambda r: not (r.dns_values and r.pinned <= r.dns_values)
            ),
        ),
        confidence=lambda r: "high" if r.dns_values else "medium",
        explain=_hosts_override,
        steps=_hosts_steps,
        cites=lambda r: (r.hosts.finding,) if r.hosts else (),
    ),
    server_rule(
        "tcp-blocked-here",
        C.TCP_FALLBACK,
        WARN,
        needs=(UDP_ANSWERED, TCP_FAILED, TCP_RULE),
        confidence=lambda f: "high" if f.truncated else "medium",
        explain=_tcp_fallback,
        steps=_tcp_fallback_steps,
        workaround=True,
    ),
    server_rule(
        "tcp-fails",
        C.TCP_FALLBACK,
        WARN,
        needs=(UDP_ANSWERED, TCP_FAILED),
        unless=(TCP_RULE, TCP_LOST, TCP_BUSY),
        confidence=lambda f: "high" if f.truncated else "medium",
        explain=_tcp_fallback,
        steps=_tcp_fallback_steps,
        workaround=True,
    ),
    server_rule(
        "degraded",
        C.DEGRADED,
        WARN,
        needs=(UDP_ANSWERED, BURST_DEGRADED),
        confidence="high",
        explain=lambda f: (
            f"Answers from {f.server.label} arrive, slowly or lossily: {f.degraded} — congestion, or a "
            "server under load such as a DDoS" + (f"; {_lost_words(f)}" if f.tcp_lost else "")
        ),
        steps=_degraded_steps,
    ),
    server_rule(
        "degraded-tcp-lost",
        C.DEGRADED,
        WARN,
        needs=(UDP_ANSWERED, TCP_LOST),
        unless=(BURST_DEGRADED,),
        confidence="medium",
        explain=lambda f: f"{f.where} answers over UDP in {f.rtt_ms:.1f} ms, but not every time; {_lost_words(f)}",
        steps=lambda f: _degraded_steps(f)[::-1],
    ),
    server_rule(
        "nxdomain-unconfirmed",
        C.INCONCLUSIVE,
        UNK,
        needs=(UDP_ANSWERED, NXDOMAIN),
        unless=(AUTHS_NXDOMAIN, AUTHS_HAVE_RECORDS),
        confidence="medium",
        explain=lambda f: (
            f"{f.server.label} says {f.target.display} does not exist (NXDOMAIN); the authoritative "
            "servers could not confirm it"
        ),
        steps=lambda f: (f"Check the name for typos, and ask the zone's authoritative servers: {f.dig_auth}",),
    ),
    server_rule(
        "nodata",
        C.INCONCLUSIVE,
        UNK,
        needs=(UDP_ANSWERED, NODATA),
        unless=(AUTHS_HAVE_RECORDS, EXPECT_GIVEN),
        confidence="medium",
        explain=lambda f: (
            f"{f.server.label} answers NODATA: {f.target.display} exists but has no {f.target.rdtype} "
            "record" + (f" (the authoritative servers agree: {f.auth_words})" if f.auths else "")
        ),
        steps=lambda f: (f"Add the {f.target.rdtype} record to the zone if users need it; check with {f.dig_auth}",),
    ),
    server_rule(
        "other-icmp",
        C.INCONCLUSIVE,
        UNK,
        needs=(NO_UDP_ANSWER, ICMP_OTHER),
        confidence="low",
        explain=lambda f: (
            f"DNS to {f.where} drew ICMP {f.icmp.typecode if f.icmp else ''} "
            f"{f.icmp.name if f.icmp else ''} from {f.icmp.offender if f.icmp else ''}, which fits no known pattern"
        ),
        steps=lambda f: ("Capture the exchange: `tcpdump -ni any 'port 53 or icmp or icmp6'`",),
    ),
    host_rule(
        "host-healthy",
        C.HEALTHY,
        OK,
        needs=(
            on_host("a DNS daemon runs", lambda h: ", ".join(sorted(h.daemon_names))),
            on_host("it listens on UDP and TCP at every address", lambda h: not h.unserved),
        ),
        explain=lambda h: (
            f"{', '.join(sorted(h.daemon_names))} runs and listens on port {h.port} at "
            f"{', '.join(h.addresses)} over UDP and TCP; its configuration checks out, nothing stops DNS in this "
            "host's firewall, and the kernel shows no overload"
        ),
        steps=lambda h: (
            "Nothing to fix on this server. If clients still fail, diagnose from a client: "
            "`runbook diagnose NAME --server` with this server's address",
        ),
        fallback=True,
    ),
    host_rule(
        "host-no-pattern",
        C.INCONCLUSIVE,
        UNK,
        needs=(),
        explain=lambda h: f"The server's evidence fits no known pattern ({h.seen()})",
        steps=lambda h: ("Read the findings above",),
        fallback=True,
    ),
    server_rule(
        "healthy",
        C.HEALTHY,
        OK,
        needs=(UDP_ANSWERED, RECORDS),
        confidence="high",
        explain=_healthy,
        steps=_no_steps,
        fallback=True,
    ),
    server_rule(
        "no-pattern",
        C.INCONCLUSIVE,
        UNK,
        needs=(),
        confidence="low",
        explain=lambda f: (
            f"{f.server.label} answers {f.answer}, which fits no known pattern"
            if f.answers
            else f"The probes of {f.where} gave no usable evidence"
            + ("" if f.ev.udp else " (the UDP probe did not run)")
        ),
        steps=lambda f: ("Read the findings, and rerun with a longer `--timeout`",),
        fallback=True,
    ),
)


def _precedence() -> tuple[tuple[VerdictCode, Status], ...]:
    order: dict[VerdictCode, Status] = {}
    for rule in RULES:
        order.setdefault(rule.code, rule.status)
    order[C.STEP_RESULT] = UNK  # nominal: one step's command; its status is the step's own
    healthy = order.pop(C.HEALTHY)
    return (*order.items(), (C.HEALTHY, healthy))


PRECEDENCE: tuple[tuple[VerdictCode, Status], ...] = _precedence()
"""Every code with its status, in the table's order (healthy last): the one precedence."""
STATUS: dict[str, Status] = {code.value: status for code, status in PRECEDENCE}
RANK: dict[str, int] = {rule.id: i for i, rule in enumerate(RULES)}
