"""Step 3, ``udp53``: the browser's query over UDP, and what came back.

The query is the one a stub resolver sends (RD=1, no EDNS unless resolv.conf asks for ``edns0``), so the
packet log shows the same line as the seed's tcpdump. Silence is retried (tenacity, within the budget);
an answer or an ICMP error is final on the first try.
"""

from __future__ import annotations

import asyncio
from typing import Any

from checks import wire
from runbook.context import Clock, Context
from runbook.model import Finding, Server, Status


async def run(ctx: Context) -> list[Finding]:
    return list(await asyncio.gather(*(_probe(ctx, server) for server in ctx.servers)))


def _stub_uses_edns(ctx: Context) -> bool:
    options = ctx.resolv.options if ctx.resolv else {}
    return bool(options.get("edns0") or options.get("trust-ad"))


async def _probe(ctx: Context, server: Server) -> Finding:
    clock = Clock()
    target = ctx.settings.target
    query = wire.make_query(target.name, target.rdtype, edns=_stub_uses_edns(ctx))
    tries = await wire.udp_attempts(server, query, ctx.time_left(), ctx.settings.udp_attempts)
    last = tries[-1]
    evidence: dict[str, Any] = last.to_evidence()
    evidence["attempts"] = [t.to_evidence() for t in tries]
    evidence["sent"] = len(tries)
    evidence["packets"] = [line for t in tries for line in t.packets]
    status, summary = _judge(last, server, len(tries))
    return ctx.finding(server.key, status, summary, evidence, server=server, clock=clock)


def _judge(ex: wire.Exchange, server: Server, sent: int) -> tuple[Status, str]:
    where = f"UDP {server.label}"
    if ex.outcome == wire.ANSWER and ex.response is not None:
        ev = wire.message_evidence(ex.response)
        flags = " ".join(f for f in ("aa", "tc", "ra", "ad") if ev[f]) or "none"
        status = Status.CRITICAL if ev["rcode"] == "REFUSED" else Status.OK
        return status, f"{where}: answered {ev['rcode']} in {(ex.rtt_s or 0) * 1000:.1f} ms (flags {flags})"
    if ex.outcome == wire.ICMP and ex.error is not None:
        err = ex.error
        origin = "the server itself" if err.to_evidence(server.host)["from_server"] else err.offender
        return Status.CRITICAL, (
            f"{where}: ICMP {err.name} ({err.type}/{err.code}) from {origin}, "
            f"{(ex.rtt_s or 0) * 1000:.1f} ms after the query"
        )
    if ex.outcome == wire.TIMEOUT:
        return Status.CRITICAL, f"{where}: no answer and no ICMP error to {sent} quer{'y' if sent == 1 else 'ies'}"
    if ex.outcome == wire.MALFORMED:
        return Status.CRITICAL, f"{where}: {ex.detail}"
    return Status.CRITICAL, f"{where}: the query could not be sent: {ex.detail} ({wire.errno_of(ex)})"
