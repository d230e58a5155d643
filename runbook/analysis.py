"""``runbook analyze``: a capture read into findings, judged by the same rules as an active run.

The capture (pcap, pcapng or tcpdump's text) is read by :mod:`checks.capture`, the traffic by
:mod:`checks.analyze`; this module chooses what is diagnosed (the name, the servers), turns the analysis into
findings in the active steps' evidence shapes, and makes the run document (command ``analyze``), whose verdict
says when the failures were seen (the capture's window) and which query was the first to fail.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import IO

from msgspec.structs import replace

from checks.analyze import Analyzer, ServerStats
from checks.capture import Source, open_capture
from runbook import __version__
from runbook.config import DEFAULTS, parse_name, parse_server
from runbook.diagnosis import diagnose
from runbook.errors import InputError
from runbook.evidence import (
    AnyFlood,
    Burst,
    CapturedTcp,
    CapturedUdp,
    CaptureFile,
    Compared,
    Exchange,
    FailureWindow,
    Ping,
    SubdomainFlood,
    Talker,
    TrafficRate,
    Unsolicited,
    extend,
)
from runbook.model import Finding, Run, Server, Status, Target, Verdict, steps_of

STEPS = (
    ("capture", "The capture"),
    ("udp53", "DNS over UDP, as captured"),
    ("tcp53", "DNS over TCP, as captured"),
    ("ping", "ICMP echo, as captured"),
    ("compare", "The servers' answers, side by side"),
    ("traffic", "Load, and signs of an attack"),
)
FLOOD_NAMES = 1_000
"""Unique names under one zone in one capture above which a random-subdomain flood is reported."""
TOP_TALKER_SHARE = 0.5
ANY_SHARE = 0.1


def analyze(
    stream: IO[bytes],
    name: str,
    *,
    servers: Sequence[str] = (),
    qname: str | None = None,
    wait: float = 5.0,
    explain: bool = False,
) -> Run:
    started_wall, started = time.time(), time.monotonic()
    wanted = frozenset(parse_server(s).label for s in servers) | frozenset(parse_server(s).host for s in servers)
    target_filter = parse_name(qname).name if qname else None
    source = open_capture(stream, name)
    analyzer = Analyzer(wait, wanted, target_filter)
    for packet in source.packets:
        analyzer.feed(packet)
    analyzer.finish()
    target = _target(analyzer, qname)
    chosen = _servers(analyzer, target)
    if not chosen:
        raise InputError(f"no DNS query for {target.display} ({target.rdtype}) in {name}: nothing to diagnose")
    findings = _findings(source, analyzer, target, chosen, name)
    verdict = diagnose(target, chosen, findings, explain=explain)
    verdict = _with_window(verdict, analyzer, chosen)
    steps = steps_of(STEPS, findings, "nothing of this kind in the capture")
    return Run(
        run_id=_run_id(started_wall),
        tool_version=__version__,
        target=target,
        servers=tuple(chosen),
        servers_from=f"capture {name}",
        started_at=started_wall,
        duration_s=time.monotonic() - started,
        steps=steps,
        verdict=verdict,
        options={"wait_s": wait, "servers": list(servers), "name": qname},
        command="analyze",
    )


def _run_id(started: float) -> str:
    from runbook.model import new_run_id

    return new_run_id(started)


def _target(analyzer: Analyzer, qname: str | None) -> Target:
    """The name diagnosed: --name, else the one that failed most, else the most asked; its type, the one
    most asked for it."""
    chosen = parse_name(qname).name.lower() if qname else _busiest_name(analyzer)
    qtypes: Counter[str] = Counter()
    for stats in analyzer.servers.values():
        for (name, qtype), seen in stats.answers.items():
            if name == chosen:
                qtypes[qtype] += seen.count
        for e in stats.exchanges:
            if (e.qname or "").lower() == chosen and not e.answered:
                qtypes[str(e.qtype)] += 1
    target = parse_name(qname) if qname else parse_name(chosen.rstrip(".") or ".")
    return replace(target, rdtype=qtypes.most_common(1)[0][0] if qtypes else "A")


def _busiest_name(analyzer: Analyzer) -> str:
    asked: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    for stats in analyzer.servers.values():
        for (name, _), seen in stats.answers.items():
            asked[name] += seen.count
        for e in stats.exchanges:
            if not e.answered:
                failed[(e.qname or "").lower()] += 1
    pick = failed.most_common(1) or asked.most_common(1)
    if pick:
        return pick[0][0]
    open_at_end = sum(st.open_at_end for st in analyzer.servers.values())
    if open_at_end:
        raise InputError(
            f"the capture ends less than --wait {analyzer.wait:g} s after its {open_at_end} queries: none can be "
            "called answered or unanswered yet; capture for longer, or give a smaller --wait"
        )
    raise InputError("no DNS query in the capture (port 53): nothing to diagnose")


def _servers(analyzer: Analyzer, target: Target) -> list[Server]:
    """The servers asked about the target name, busiest first."""
    asked = [
        s
        for s in analyzer.servers.values()
        if any(_is_target(e, target) for e in (*s.exchanges, *s.tcp))
        or any(name == target.name.lower() for name, _ in s.answers)
    ]
    asked.sort(key=lambda s: -s.queries)
    return [parse_server(s.label) for s in asked]


def _is_target(e: Exchange, target: Target) -> bool:
    return (e.qname or "").lower() == target.name.lower() and (e.qtype or target.rdtype) == target.rdtype


def _findings(source: Source, analyzer: Analyzer, target: Target, servers: list[Server], name: str) -> list[Finding]:
    findings = [_capture_finding(source, analyzer, name)]
    for server in servers:
        stats = analyzer.servers[server.label]
        findings.append(_udp_finding(analyzer, stats, server, target))
        tcp = [e for e in stats.tcp if not e.answered or _is_target(e, target)]
        if tcp:
            findings.append(_tcp_finding(tcp, server))
    for host in dict.fromkeys(s.host for s in servers):
        if host in analyzer.pings:
            sent, received = analyzer.pings[host]
            evidence = Ping(method="icmp (captured)", sent=sent, received=received)
            status = Status.OK if received else Status.CRITICAL
            words = f"{host}: {received} of {sent} ICMP echo requests answered in the capture"
            findings.append(Finding(f"ping/{host}", "ping", status, words, evidence, server=host))
    findings += _compare_findings(analyzer, servers, target)
    findings += _traffic_findings(analyzer)
    return findings


def _clock(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S") if ts is not None else "?"


def _capture_finding(source: Source, analyzer: Analyzer, name: str) -> Finding:
    t = analyzer.traffic
    stats = source.stats
    evidence = CaptureFile(
        file=name,
        format=source.kind,
        link=source.link,
        frames=stats.get("frames", 0),
        undecoded=stats.get("undecoded", 0),
        queries=t.queries,
        responses=t.responses,
        first=t.first_ts,
        last=t.last_ts,
        damaged=stats.get("truncated"),
        wait_s=analyzer.wait,
    )
    summary = (
        f"{name}: {source.kind} ({source.link}), {stats.get('frames', 0)} packets, {t.queries} DNS queries and "
        f"{t.responses} answers between {_clock(t.first_ts)} and {_clock(t.last_ts)}"
    )
    status = Status.OK
    if stats.get("truncated"):
        status = Status.WARNING
        summary += f"; {stats['truncated']}: analysed up to the damage"
    return Finding("capture/file", "capture", status, summary, evidence)


def _udp_finding(analyzer: Analyzer, stats: ServerStats, server: Server, target: Target) -> Finding:
    mine = [e for e in stats.exchanges if _is_target(e, target)]
    sent = stats.queries
    lost = stats.timeouts + sum(stats.icmp.values())
    median = analyzer.rtt_median(stats)
    loss = round(lost / sent, 4) if sent else 0.0
    reasons = []
    if stats.answered and loss > DEFAULTS.max_loss:
        reasons.append(f"{loss:.0%} of the queries failed (more than {DEFAULTS.max_loss:.0%})")
    if median is not None and median > DEFAULTS.max_rtt:
        reasons.append(f"median answer time {median * 1000:.0f} ms (more than {DEFAULTS.max_rtt * 1000:.0f} ms)")
    first_answer = next((e for e in mine if e.answered), None)
    # The daemon answered other questions while this one got nothing: alive, as id.server CH TXT shows when
    # diagnose asks it.
    other = next((e for e in stats.exchanges if e.answered and not _is_target(e, target)), None)
    burst = Burst(
        sent=sent,
        received=stats.answered,
        loss=loss,
        rtt_median_s=None if median is None else round(median, 6),
        degraded=f"{stats.answered}/{sent} answered: " + "; ".join(reasons) if reasons else "",
        first_answer=first_answer,
        outcomes={"answer": stats.answered, "icmp": sum(stats.icmp.values()), "timeout": stats.timeouts},
    )
    evidence = extend(
        mine[0] if mine else Exchange(transport="udp", outcome="none"),
        CapturedUdp,
        attempts=tuple(mine),
        sent=len(mine),
        burst=burst,
        retransmissions=stats.retransmits,
        truncated=stats.truncated,
        rcodes=dict(stats.rcodes),
        unanswered_at_end=stats.open_at_end,
        tcp_unanswered_at_end=stats.tcp_open_at_end,
        window=FailureWindow(
            first_failure=stats.first_failure,
            last_failure=stats.last_failure,
            first_failed_id=stats.first_failed_id,
            failures=stats.failures,
        ),
        packets=tuple(stats.lines(target.name, target.rdtype)),
        source="capture",
        liveness=other if not first_answer else None,
    )
    return Finding(
        f"udp53/{server.key}",
        "udp53",
        _udp_status(stats),
        _udp_summary(stats, server, median),
        evidence,
        server=server.label,
    )


def _udp_status(stats: ServerStats) -> Status:
    if stats.answered == 0 and stats.failures:
        return Status.CRITICAL
    return Status.WARNING if stats.failures else Status.OK


def _udp_summary(stats: ServerStats, server: Server, median: float | None) -> str:
    parts = [f"UDP {server.label}: {stats.queries} queries, {stats.answered} answered"]
    if median is not None:
        parts.append(f"median {median * 1000:.1f} ms")
    for name, n in stats.icmp.most_common():
        parts.append(f"{n} drew ICMP {name}")
    if stats.timeouts:
        parts.append(f"{stats.timeouts} unanswered")
    if stats.retransmits:
        parts.append(f"{stats.retransmits} retransmitted")
    if stats.truncated:
        parts.append(f"{stats.truncated} truncated (TC=1)")
    bad = {k: v for k, v in stats.rcodes.items() if k != "NOERROR"}
    if bad:
        parts.append(", ".join(f"{v} {k}" for k, v in bad.items()))
    if stats.open_at_end:
        parts.append(f"{stats.open_at_end} still waiting when the capture ends")
    if stats.tcp_open_at_end:
        n = stats.tcp_open_at_end
        parts.append(f"{n} TCP connection{'s' if n > 1 else ''} without a SYN-ACK yet when the capture ends")
    if stats.failures:
        parts.append(f"failures between {_clock(stats.first_failure)} and {_clock(stats.last_failure)}")
    return "; ".join(parts)


def _tcp_finding(tcp: list[Exchange], server: Server) -> Finding:
    first = next((e for e in tcp if e.answered), tcp[0])
    outcomes = Counter(e.outcome for e in tcp)
    status = Status.OK if first.answered else Status.CRITICAL
    summary = f"TCP {server.label}: " + ", ".join(f"{n} {o}" for o, n in outcomes.items())
    evidence = extend(first, CapturedTcp, exchanges=tuple(tcp[:12]), source="capture")
    return Finding(f"tcp53/{server.key}", "tcp53", status, summary, evidence, server=server.label)


def _compare_findings(analyzer: Analyzer, servers: list[Server], target: Target) -> list[Finding]:
    """Where several servers answered the name, each answer is a reference for the others."""
    key_name = target.name.lower()
    answered = [
        (s, seen)
        for s in servers
        for (name, qtype), seen in analyzer.servers[s.label].answers.items()
        if name == key_name and qtype == target.rdtype
    ]
    if len(answered) < 2:
        return []
    out = []
    for server, seen in answered:
        values = ", ".join(a.value for a in seen.answers) or seen.rcode
        evidence = Compared(
            role="resolver",
            transport="udp",
            outcome="answer",
            rcode=seen.rcode,
            aa=seen.aa,
            answers=seen.answers,
            source="capture",
        )
        out.append(
            Finding(
                f"compare/{server.key}",
                "compare",
                Status.OK,
                f"{server.label} answered {target.display}: {values}",
                evidence,
                server=server.label,
            )
        )
    return out


def _traffic_findings(analyzer: Analyzer) -> list[Finding]:
    t = analyzer.traffic
    span = max(1e-6, (t.last_ts or 0) - (t.first_ts or 0))
    out = []
    top = t.sources.most_common(5)
    if t.queries:
        share = top[0][1] / t.queries if top else 0.0
        status = Status.WARNING if share > TOP_TALKER_SHARE and t.queries / span > 100 else Status.OK
        talkers = ", ".join(f"{src} {n} ({n / t.queries:.0%})" for src, n in top)
        out.append(
            Finding(
                "traffic/rate",
                "traffic",
                status,
                f"{t.queries} queries in {span:.1f} s ({t.queries / span:.1f}/s); top sources: {talkers}",
                TrafficRate(
                    queries=t.queries,
                    seconds=round(span, 6),
                    rate=round(t.queries / span, 3),
                    top_sources=tuple(Talker(source=s, queries=n) for s, n in top),
                ),
            )
        )
    out += _attack_signs(analyzer, span)
    return out


def _attack_signs(analyzer: Analyzer, span: float) -> list[Finding]:
    """Random-subdomain floods, ANY amplification, answers nobody asked for: counted, never guessed."""
    t = analyzer.traffic
    out: list[Finding] = []
    floods = sorted(
        ((len(names) + t.names_overflow[parent], parent) for parent, names in t.names.items()), reverse=True
    )
    if floods and floods[0][0] > FLOOD_NAMES:
        n, parent = floods[0]
        out.append(
            Finding(
                "traffic/subdomains",
                "traffic",
                Status.WARNING,
                f"{n} different names under {parent} asked ({n / span:.1f} new names/s): the shape of a "
                "random-subdomain flood",
                SubdomainFlood(zone=parent, unique_names=n),
            )
        )
    if t.any_queries and t.any_queries / max(1, t.queries) > ANY_SHARE:
        factor = t.any_answer_bytes / max(1, t.any_query_bytes)
        out.append(
            Finding(
                "traffic/any",
                "traffic",
                Status.WARNING,
                f"{t.any_queries} ANY queries ({t.any_queries / t.queries:.0%}); their answers are "
                f"{factor:.1f}x their size: the pattern of an amplification attack",
                AnyFlood(any_queries=t.any_queries, amplification=round(factor, 2)),
            )
        )
    if t.unsolicited:
        n = sum(t.unsolicited.values())
        out.append(
            Finding(
                "traffic/unsolicited",
                "traffic",
                Status.WARNING,
                f"{n} answers from addresses never asked ({', '.join(t.unsolicited)}): spoofed answers, "
                "or an interceptor on the path",
                Unsolicited(senders=dict(t.unsolicited), packets=tuple(t.unsolicited_lines)),
            )
        )
    return out


def _with_window(verdict: Verdict, analyzer: Analyzer, servers: list[Server]) -> Verdict:
    """The capture's window of the failures, like the incident report's "between 1:24 and 1:28 pm"."""
    failing = [analyzer.servers[s.label] for s in servers if analyzer.servers[s.label].failures]
    if not failing:
        return verdict
    first = min(failing, key=lambda s: s.first_failure or 0)
    last = max(s.last_failure or 0 for s in failing)
    total = sum(s.failures for s in failing)
    words = (
        f" In the capture, {total} quer{'y' if total == 1 else 'ies'} failed between {_clock(first.first_failure)} "
        f"and {_clock(last)}; the first was query id {first.first_failed_id} to {first.label}."
    )
    return replace(verdict, summary=verdict.summary.rstrip() + words)
