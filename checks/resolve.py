"""Step 2, ``resolve``: resolve the name the way the browser did.

Through each server as a stub resolver would (one patient UDP try with EDNS0 and NSID, then TCP when the
answer is truncated), and through the system's own getaddrinfo (hosts file, nsswitch and all).
"""

from __future__ import annotations

import asyncio
import socket
import time

import dns.rcode

from checks import blocking, wire
from runbook.context import Clock, Context
from runbook.evidence import Resolution, SystemLookup, extend
from runbook.model import Finding, Server, Status


async def run(ctx: Context) -> list[Finding]:
    jobs = [_through_server(ctx, server) for server in ctx.servers]
    if ctx.settings.system_lookup:
        # Only when the servers diagnosed are the system's own: otherwise getaddrinfo would ask other
        # servers (those of /etc/resolv.conf) than the ones under diagnosis.
        jobs.append(_through_system(ctx))
    return list(await asyncio.gather(*jobs))


async def _through_server(ctx: Context, server: Server) -> Finding:
    clock = Clock()
    target = ctx.settings.target
    query = wire.make_query(target.name, target.rdtype, edns=True, nsid=True)
    exchanges = await wire.ask(server, query, ctx.time_left())
    final = exchanges[-1]
    cd: list[wire.Exchange] = []
    if final.response is not None and final.response.rcode() == dns.rcode.SERVFAIL:
        # Would the answer come if the resolver did not validate it? (RFC 4035 CD bit)
        cd = await wire.ask(server, wire.make_query(target.name, target.rdtype, edns=True, cd=True), ctx.time_left())
    evidence = extend(
        final.to_evidence(),
        Resolution,
        truncated_over_udp=len(exchanges) > 1,
        packets=tuple(line for e in (*exchanges, *cd) for line in e.packets),
        udp=exchanges[0].to_evidence() if len(exchanges) > 1 else None,
        cd_retry=cd[-1].to_evidence() if cd else None,
    )
    status, summary = _judge(final, server, target.display)
    if evidence.cd_retry is not None and evidence.cd_retry.rcode == "NOERROR":
        summary += "; with CD=1 (no validation) it answers: a DNSSEC validation failure"
    return ctx.finding(server.key, status, summary, evidence, server=server, clock=clock)


def _judge(ex: wire.Exchange, server: Server, name: str) -> tuple[Status, str]:
    via = f"through {server.label}"
    if ex.outcome == wire.ANSWER and ex.response is not None:
        m = wire.message_evidence(ex.response)
        rcode = m.rcode
        ms = f"{(ex.rtt_s or 0) * 1000:.1f} ms"
        if rcode == "NOERROR" and m.answers:
            values = ", ".join(a.value for a in m.answers)
            return Status.OK, f"{name} {via}: {values} ({ms}, {ex.transport.upper()})"
        if rcode == "NOERROR":
            return Status.WARNING, f"{name} {via}: no records of that type (NODATA, {ms})"
        return Status.CRITICAL, f"{name} {via}: {rcode} ({ms})"
    return Status.CRITICAL, f"{name} {via}: no answer ({_failure(ex)})"


def _failure(ex: wire.Exchange) -> str:
    if ex.outcome == wire.ICMP and ex.error is not None:
        return f"ICMP {ex.error.name} from {ex.error.offender}"
    if ex.outcome == wire.TIMEOUT:
        return f"timed out over {ex.transport.upper()}"
    return ex.detail or ex.outcome


async def _through_system(ctx: Context) -> Finding:
    """getaddrinfo, as every program on this host resolves (hosts file, nsswitch and all)."""
    clock = Clock()
    name = ctx.settings.target.name.rstrip(".") or "."
    family = socket.AF_INET6 if ctx.settings.target.rdtype == "AAAA" else socket.AF_UNSPEC
    started = time.monotonic()
    try:
        result = await blocking.call(
            lambda: socket.getaddrinfo(name, None, family, socket.SOCK_STREAM, 0, socket.AI_CANONNAME),
            ctx.time_left(),
            "getaddrinfo",
        )
    except TimeoutError:
        waited = time.monotonic() - started
        return ctx.finding(
            "system",
            Status.CRITICAL,
            f"getaddrinfo({name}) gave no result within {waited:.1f} s",
            SystemLookup(outcome="timeout", waited_s=round(waited, 6)),
            clock=clock,
        )
    if isinstance(result, BaseException):
        reason = getattr(result, "strerror", None) or str(result)
        return ctx.finding(
            "system",
            Status.CRITICAL,
            f"getaddrinfo({name}) failed: {reason}",
            SystemLookup(outcome="error", error=reason, errno=getattr(result, "errno", None)),
            clock=clock,
        )
    addresses = list(dict.fromkeys(str(info[4][0]) for info in result))
    canon = next((info[3] for info in result if info[3]), None)
    return ctx.finding(
        "system",
        Status.OK,
        f"getaddrinfo({name}): {', '.join(addresses)}",
        SystemLookup(
            outcome="answer",
            addresses=tuple(addresses),
            canonical_name=canon,
            rtt_s=round(time.monotonic() - started, 6),
        ),
        clock=clock,
    )
