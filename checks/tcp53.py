"""Step 4, ``tcp53``: the same question over TCP, with the connect classified.

A SYN-ACK, an RST (a closed port: the host is up, nothing listens), an ICMP error (a reject rule or a
router) or silence (dropped). The kernel retransmits the SYN itself, so a silent SYN is not retried. A
connection that opened and then closed, or stayed silent, without an answer is tried once more while the budget
lasts, as a stub resolver would: a busy server turns connections away when its TCP slots are full (unbound's
``incoming-num-tcp``, BIND's ``tcp-clients``), and one such connection is not a TCP service that is stopped.
Every attempt is in the evidence.
"""

from __future__ import annotations

import asyncio

from checks import wire
from runbook.context import Clock, Context
from runbook.evidence import TcpProbe, extend
from runbook.model import Finding, Server, Status


async def run(ctx: Context) -> list[Finding]:
    return list(await asyncio.gather(*(_probe(ctx, server) for server in ctx.servers)))


async def _probe(ctx: Context, server: Server) -> Finding:
    clock = Clock()
    target = ctx.settings.target
    query = wire.make_query(target.name, target.rdtype, edns=True)
    tries = [await wire.tcp_exchange(server, query, ctx.time_left())]
    if tries[0].outcome in (wire.TIMEOUT, wire.CLOSED) and tries[0].connect_rtt_s is not None and ctx.time_left() > 0.1:
        tries.append(await wire.tcp_exchange(server, query, ctx.time_left()))
    ex = next((t for t in tries if t.outcome == wire.ANSWER), tries[-1])
    evidence = extend(
        ex.to_evidence(),
        TcpProbe,
        packets=tuple(line for t in tries for line in t.packets),
        attempts=tuple(t.to_evidence() for t in tries) if len(tries) > 1 else (),
    )
    where = f"TCP {server.label}"
    if ex.outcome == wire.ANSWER and ex.response is not None:
        rcode = wire.message_evidence(ex.response).rcode
        status = Status.CRITICAL if rcode == "REFUSED" else Status.OK
        summary = (
            f"{where}: connected in {(ex.connect_rtt_s or 0) * 1000:.1f} ms, "
            f"answered {rcode} in {(ex.rtt_s or 0) * 1000:.1f} ms"
        )
        if len(tries) > 1:
            summary += f" (at the second connection: the first was {tries[0].detail})"
    elif ex.outcome == wire.RESET and ex.connect_rtt_s is None:
        status, summary = Status.CRITICAL, f"{where}: connection refused with RST: the host is up, nothing listens"
    elif ex.outcome == wire.ICMP and ex.error is not None:
        origin = "the server itself" if ex.from_server() else ex.error.offender
        status, summary = (
            Status.CRITICAL,
            f"{where}: ICMP {ex.error.name} ({ex.error.type}/{ex.error.code}) from {origin}",
        )
    elif ex.outcome == wire.TIMEOUT:
        waited = f"{ex.waited_s:.2f} s" if ex.waited_s is not None else f"{ctx.settings.timeout:g} s"
        status, summary = Status.CRITICAL, f"{where}: {ex.detail} within {waited}"
    else:
        status, summary = Status.CRITICAL, f"{where}: {ex.detail or ex.outcome} ({wire.errno_of(ex)})"
    return ctx.finding(server.key, status, summary, evidence, server=server, clock=clock)
