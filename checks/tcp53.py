"""Step 4, ``tcp53``: the same question over TCP, with the connect classified.

A SYN-ACK, an RST (a closed port: the host is up, nothing listens), an ICMP error (a reject rule or a
router) or silence (dropped). The kernel retransmits the SYN itself, so nothing here is retried.
"""

from __future__ import annotations

import asyncio
from typing import Any

from checks import wire
from runbook.context import Clock, Context
from runbook.model import Finding, Server, Status


async def run(ctx: Context) -> list[Finding]:
    return list(await asyncio.gather(*(_probe(ctx, server) for server in ctx.servers)))


async def _probe(ctx: Context, server: Server) -> Finding:
    clock = Clock()
    target = ctx.settings.target
    query = wire.make_query(target.name, target.rdtype, edns=True)
    ex = await wire.tcp_exchange(server, query, ctx.time_left())
    evidence: dict[str, Any] = ex.to_evidence()
    evidence["packets"] = ex.packets
    where = f"TCP {server.label}"
    if ex.outcome == wire.ANSWER and ex.response is not None:
        rcode = wire.message_evidence(ex.response)["rcode"]
        status = Status.CRITICAL if rcode == "REFUSED" else Status.OK
        summary = (
            f"{where}: connected in {(ex.connect_rtt_s or 0) * 1000:.1f} ms, "
            f"answered {rcode} in {(ex.rtt_s or 0) * 1000:.1f} ms"
        )
    elif ex.outcome == wire.RESET and ex.connect_rtt_s is None:
        status, summary = Status.CRITICAL, f"{where}: connection refused with RST: the host is up, nothing listens"
    elif ex.outcome == wire.ICMP and ex.error is not None:
        origin = "the server itself" if ex.error.to_evidence(server.host)["from_server"] else ex.error.offender
        status, summary = (
            Status.CRITICAL,
            f"{where}: ICMP {ex.error.name} ({ex.error.type}/{ex.error.code}) from {origin}",
        )
    elif ex.outcome == wire.TIMEOUT:
        status, summary = Status.CRITICAL, f"{where}: {ex.detail} within {ctx.settings.timeout:g} s"
    else:
        status, summary = Status.CRITICAL, f"{where}: {ex.detail or ex.outcome} ({wire.errno_of(ex)})"
    return ctx.finding(server.key, status, summary, evidence, server=server, clock=clock)
