"""Step 5, ``ping``: is the server host up at all?

ICMP echo through icmplib: raw sockets as root, unprivileged ICMP sockets where ping_group_range lets
this group use them, and otherwise a TCP connect to the DNS port (a SYN-ACK or an RST both prove the
host is up). The finding says which was used. Never retried: loss is the measurement.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import weakref
from pathlib import Path

import msgspec

from checks import wire
from runbook.context import Clock, Context
from runbook.evidence import Ping
from runbook.model import Finding, Server, Status

RAW = "icmp-raw"
UNPRIVILEGED = "icmp-unprivileged"
TCP_CONNECT = "tcp-connect"


def choose_method(euid: int, groups: set[int], group_range: tuple[int, int] | None) -> str:
    """Raw ICMP as root; unprivileged ICMP when one of our groups is in ping_group_range; else TCP."""
    if euid == 0:
        return RAW
    if group_range and any(group_range[0] <= g <= group_range[1] for g in groups):
        return UNPRIVILEGED
    return TCP_CONNECT


def _group_range() -> tuple[int, int] | None:
    try:
        low, high = Path("/proc/sys/net/ipv4/ping_group_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return None


async def run(ctx: Context) -> list[Finding]:
    method = choose_method(os.geteuid(), {os.getegid(), *os.getgroups()}, _group_range())
    hosts: dict[str, Server] = {}
    for server in ctx.servers:
        hosts.setdefault(server.host, server)
    return list(await asyncio.gather(*(_ping(ctx, server, method) for server in hosts.values())))


async def _ping(ctx: Context, server: Server, method: str) -> Finding:
    clock = Clock()
    count = ctx.settings.ping_count
    if method != TCP_CONNECT:
        try:
            evidence = await _icmp(ctx, server, method, count)
        except Exception as e:  # icmplib's errors are translated here, once
            if type(e).__name__ != "SocketPermissionError":
                return ctx.finding(
                    server.host,
                    Status.ERROR,
                    f"ping {server.host}: {type(e).__name__}: {e}",
                    Ping(method=method, error=f"{type(e).__name__}: {e}"),
                    server=server,
                    clock=clock,
                )
            method = TCP_CONNECT
        else:
            return _finding(ctx, server, evidence, clock)
    ex = await wire.tcp_exchange(server, None, ctx.time_left())
    up = ex.outcome in (wire.CONNECTED, wire.RESET) or (ex.outcome == wire.ICMP and ex.from_server())
    evidence = Ping(
        method=TCP_CONNECT,
        port=server.port,
        sent=1,
        received=int(up),
        loss=0.0 if up else 1.0,
        outcome=ex.outcome,
        rtt_min_s=ex.rtt_s if up else None,
        rtt_avg_s=ex.rtt_s if up else None,
        rtt_max_s=ex.rtt_s if up else None,
        rtt_stddev_s=0.0 if up else None,
        why="ICMP echo needs root or a group in net.ipv4.ping_group_range",
    )
    return _finding(ctx, server, evidence, clock)


# Pings of one host in flight on this event loop, by (host, method, count): a probe that asks while another
# is measuring the same host joins that measurement. Under ``runbook serve`` many probes run at once, and
# every raw ICMP socket receives every echo reply on the host: without this, the work grows with the square
# of the probes in flight, and the target gets a ping per probe.
_Flights = dict[tuple[str, str, int], "asyncio.Task[Ping]"]
_IN_FLIGHT: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Flights] = weakref.WeakKeyDictionary()


async def _icmp(ctx: Context, server: Server, method: str, count: int) -> Ping:
    loop = asyncio.get_running_loop()
    flights = _IN_FLIGHT.setdefault(loop, {})
    key = (server.host, method, count)
    task = flights.get(key)
    joined = task is not None
    if task is None:
        task = asyncio.ensure_future(_echo(ctx, server, method, count))
        flights[key] = task
        task.add_done_callback(lambda _: flights.pop(key, None))
    evidence = await asyncio.shield(task)
    # Measured once for the probes of this host in flight together: said so.
    return msgspec.structs.replace(evidence, shared=True) if joined else evidence


async def _echo(ctx: Context, server: Server, method: str, count: int) -> Ping:
    from icmplib import async_ping

    per_reply = max(0.05, ctx.time_left() / count - ctx.settings.ping_interval)
    host = await async_ping(
        server.host.split("%", 1)[0],
        count=count,
        interval=ctx.settings.ping_interval,
        timeout=per_reply,
        privileged=method == RAW,
    )
    rtts = [r / 1000 for r in host.rtts]
    return Ping(
        method=method,
        sent=host.packets_sent,
        received=host.packets_received,
        loss=round(host.packet_loss, 4),
        rtt_min_s=round(min(rtts), 6) if rtts else None,
        rtt_avg_s=round(statistics.fmean(rtts), 6) if rtts else None,
        rtt_max_s=round(max(rtts), 6) if rtts else None,
        rtt_stddev_s=round(statistics.pstdev(rtts), 6) if rtts else None,
    )


def _finding(ctx: Context, server: Server, ev: Ping, clock: Clock) -> Finding:
    how = {
        "icmp-raw": "ICMP echo",
        "icmp-unprivileged": "ICMP echo (unprivileged)",
        "tcp-connect": f"TCP connect to port {server.port}",
    }[ev.method]
    if ev.received:
        ms = (ev.rtt_avg_s or 0) * 1000
        summary = f"{server.host} is up: {ev.received}/{ev.sent} replies to {how}, avg {ms:.1f} ms"
        status = Status.OK if not ev.loss else Status.WARNING
    elif not ev.sent:
        # Nothing left this host (no route, a local rule): that says nothing about the server host.
        summary = f"{server.host}: no {how} could be sent from this host"
        status = Status.UNKNOWN
    else:
        summary = f"{server.host}: no reply to {ev.sent} {how}" + (" probes" if ev.sent > 1 else "")
        status = Status.CRITICAL
    return ctx.finding(server.host, status, summary, ev, server=server, clock=clock)
