"""Step 3, ``udp53``: the browser's query over UDP, and what came back.

The query is the one a stub resolver sends (RD=1, no EDNS unless resolv.conf asks for ``edns0``), so the
packet log shows the same line as the seed's tcpdump. Silence is retried (tenacity, within the budget);
an answer or an ICMP error is final on the first try.
"""

from __future__ import annotations

import asyncio

import dns.message
import msgspec

from checks import wire
from runbook.context import Clock, Context
from runbook.evidence import Burst, Thresholds, UdpProbe, extend
from runbook.evidence import Exchange as ExchangeEvidence
from runbook.model import Finding, Server, Status


async def run(ctx: Context) -> list[Finding]:
    return list(await asyncio.gather(*(_probe(ctx, server) for server in ctx.servers)))


def liveness_query() -> dns.message.Message:
    return dns.message.make_query("id.server.", "TXT", "CH")


def _stub_uses_edns(ctx: Context) -> bool:
    options = ctx.resolv.options if ctx.resolv else {}
    return bool(options.get("edns0") or options.get("trust-ad"))


async def _probe(ctx: Context, server: Server) -> Finding:
    clock = Clock()
    settings = ctx.settings
    target = settings.target
    edns = _stub_uses_edns(ctx)
    query = wire.make_query(target.name, target.rdtype, edns=edns)
    budget = ctx.time_left()
    first = await wire.udp_exchange(server, query, budget / max(1, settings.udp_attempts))
    tries = [first]
    stats: Burst | None = None
    live_evidence: ExchangeEvidence | None = None
    if first.outcome in (wire.ANSWER, wire.TIMEOUT):
        # The burst (loss and latency, like dnsping) runs alongside the retries of a silent first try: a
        # lossy server is then told apart from a dropped port, at no cost in time.
        burst = _start_burst(ctx, server, edns) if settings.burst_count > 0 else None
        liveness = None
        if first.outcome == wire.TIMEOUT:
            # Is the daemon alive at all? A question it answers without asking anyone else (RFC 4892):
            # any answer, even REFUSED, tells a resolver stuck waiting upstream from a hung or filtered one.
            liveness = asyncio.create_task(wire.udp_exchange(server, liveness_query(), ctx.time_left()))
            if settings.udp_attempts > 1:
                tries += await wire.udp_attempts(server, query, ctx.time_left(), settings.udp_attempts - 1)
        if burst is not None:
            stats = await burst
        if liveness is not None:
            live_evidence = (await liveness).to_evidence()
    last = next((t for t in reversed(tries) if t.outcome == wire.ANSWER), tries[-1])
    status, summary = _judge(last, server, len(tries))
    if live_evidence is not None and live_evidence.outcome == wire.ANSWER:
        summary += f"; yet it answers id.server CH TXT ({live_evidence.rcode}): the daemon is alive"
    if stats is not None:
        degraded = _degraded(stats, settings.max_loss, settings.max_rtt)
        stats = msgspec.structs.replace(
            stats, degraded=degraded, thresholds=Thresholds(max_loss=settings.max_loss, max_rtt_s=settings.max_rtt)
        )
        if degraded and status is Status.OK:
            status = Status.WARNING
        summary += f"; burst of {stats.sent}: " + (degraded or _burst_words(stats))
    evidence = extend(
        last.to_evidence(),
        UdpProbe,
        attempts=tuple(t.to_evidence() for t in tries),
        sent=len(tries),
        packets=tuple(line for t in tries for line in t.packets),
        liveness=live_evidence,
        burst=stats,
    )
    return ctx.finding(server.key, status, summary, evidence, server=server, clock=clock)


def _start_burst(ctx: Context, server: Server, edns: bool) -> asyncio.Task[Burst]:
    settings, target = ctx.settings, ctx.settings.target
    spread = settings.burst_count * settings.burst_interval
    wait = max(0.0, min(2 * settings.max_rtt, ctx.time_left() - spread))
    return asyncio.create_task(
        wire.burst(
            server,
            lambda: wire.make_query(target.name, target.rdtype, edns=edns),
            settings.burst_count,
            settings.burst_interval,
            wait,
        )
    )


def _judge(ex: wire.Exchange, server: Server, sent: int) -> tuple[Status, str]:
    where = f"UDP {server.label}"
    if ex.outcome == wire.ANSWER and ex.response is not None:
        m = wire.message_evidence(ex.response)
        flags = " ".join(f for f, on in (("aa", m.aa), ("tc", m.tc), ("ra", m.ra), ("ad", m.ad)) if on) or "none"
        status = Status.CRITICAL if m.rcode == "REFUSED" else Status.OK
        return status, f"{where}: answered {m.rcode} in {(ex.rtt_s or 0) * 1000:.1f} ms (flags {flags})"
    if ex.outcome == wire.ICMP and ex.error is not None:
        err = ex.error
        origin = "the server itself" if ex.from_server() else err.offender
        return Status.CRITICAL, (
            f"{where}: ICMP {err.name} ({err.type}/{err.code}) from {origin}, "
            f"{(ex.rtt_s or 0) * 1000:.1f} ms after the query"
        )
    if ex.outcome == wire.TIMEOUT:
        return Status.CRITICAL, f"{where}: no answer and no ICMP error to {sent} quer{'y' if sent == 1 else 'ies'}"
    if ex.outcome == wire.MALFORMED:
        return Status.CRITICAL, f"{where}: {ex.detail}"
    return Status.CRITICAL, f"{where}: the query could not be sent: {ex.detail} ({wire.errno_of(ex)})"


def _burst_words(stats: Burst) -> str:
    median = stats.rtt_median_s
    rtt = f", median {median * 1000:.1f} ms" if median is not None else ""
    return f"{stats.received}/{stats.sent} answered ({stats.loss:.0%} loss){rtt}"


def _degraded(stats: Burst, max_loss: float, max_rtt: float) -> str:
    """Why the burst counts as degraded, or '' when it does not."""
    reasons = []
    if stats.loss > max_loss:
        reasons.append(f"{stats.loss:.0%} lost (more than {max_loss:.0%})")
    median = stats.rtt_median_s
    if median is not None and median > max_rtt:
        reasons.append(f"median answer time {median * 1000:.0f} ms (more than {max_rtt * 1000:.0f} ms)")
    return "; ".join(reasons) and f"{_burst_words(stats)}: " + "; ".join(reasons)
