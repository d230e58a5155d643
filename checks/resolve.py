"""Step 2, ``resolve``: resolve the name the way the browser did.

Through each server as a stub resolver would (one patient UDP try with EDNS0 and NSID, then TCP when the
answer is truncated), and through the system's own getaddrinfo (hosts file, nsswitch and all).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from typing import Any

import dns.flags

from checks import wire
from runbook.context import Clock, Context
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
    ex = await wire.udp_exchange(server, query, ctx.time_left())
    exchanges = [ex]
    if ex.outcome == wire.ANSWER and ex.response is not None and ex.response.flags & dns.flags.TC:
        exchanges.append(await wire.tcp_exchange(server, query, ctx.time_left()))
    final = exchanges[-1]
    evidence: dict[str, Any] = final.to_evidence()
    evidence["truncated_over_udp"] = len(exchanges) > 1
    evidence["packets"] = [line for e in exchanges for line in e.packets]
    if len(exchanges) > 1:
        evidence["udp"] = ex.to_evidence()
    status, summary = _judge(final, server, target.display)
    return ctx.finding(server.key, status, summary, evidence, server=server, clock=clock)


def _judge(ex: wire.Exchange, server: Server, name: str) -> tuple[Status, str]:
    via = f"through {server.label}"
    if ex.outcome == wire.ANSWER and ex.response is not None:
        ev = wire.message_evidence(ex.response)
        rcode = ev["rcode"]
        ms = f"{(ex.rtt_s or 0) * 1000:.1f} ms"
        if rcode == "NOERROR" and ev["answers"]:
            values = ", ".join(a["value"] for a in ev["answers"])
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
    """getaddrinfo in a daemon thread: glibc's own timeouts can be far longer than our budget, and a
    thread left behind must not hold the process at exit."""
    clock = Clock()
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    name = ctx.settings.target.name.rstrip(".") or "."
    family = socket.AF_INET6 if ctx.settings.target.rdtype == "AAAA" else socket.AF_UNSPEC

    def deliver(result: Any) -> None:
        if not future.done():
            future.set_result(result)

    def lookup() -> None:
        try:
            result: Any = socket.getaddrinfo(name, None, family, socket.SOCK_STREAM, 0, socket.AI_CANONNAME)
        except OSError as e:
            result = e
        with contextlib.suppress(RuntimeError):  # the run is over: nobody waits for the result
            loop.call_soon_threadsafe(deliver, result)

    threading.Thread(target=lookup, name="getaddrinfo", daemon=True).start()
    started = time.monotonic()
    try:
        result = await asyncio.wait_for(future, ctx.time_left())
    except TimeoutError:
        waited = time.monotonic() - started
        return ctx.finding(
            "system",
            Status.CRITICAL,
            f"getaddrinfo({name}) gave no result within {waited:.1f} s",
            {"function": "getaddrinfo", "outcome": "timeout", "waited_s": round(waited, 6)},
            clock=clock,
        )
    if isinstance(result, OSError):
        code = getattr(socket, "EAI_NONAME", None)
        reason = result.strerror or str(result)
        return ctx.finding(
            "system",
            Status.CRITICAL,
            f"getaddrinfo({name}) failed: {reason}",
            {
                "function": "getaddrinfo",
                "outcome": "error",
                "error": reason,
                "errno": result.errno,
                "noname": result.errno == code,
            },
            clock=clock,
        )
    addresses = list(dict.fromkeys(str(info[4][0]) for info in result))
    canon = next((info[3] for info in result if info[3]), None)
    return ctx.finding(
        "system",
        Status.OK,
        f"getaddrinfo({name}): {', '.join(addresses)}",
        {
            "function": "getaddrinfo",
            "outcome": "answer",
            "addresses": addresses,
            "canonical_name": canon,
            "rtt_s": round(time.monotonic() - started, 6),
        },
        clock=clock,
    )
