"""Step 8, ``web``: the symptom customers saw. Once the name resolves, does the site accept connections?

For each address the servers gave (A/AAAA questions only): a TLS handshake on 443 with the name as SNI, and
an HTTP HEAD on 80 (http.client). A refused or silent port is recorded as such; a certificate that does not
verify still proves the site answers, and is said.
"""

from __future__ import annotations

import asyncio
import http.client
import ssl
import time

from checks import blocking
from runbook.answers import resolve_chain
from runbook.context import Clock, Context
from runbook.evidence import Connection, Resolution, SiteProbe
from runbook.model import Finding, Status

MAX_ADDRESSES = 4


def addresses(ctx: Context) -> list[str]:
    """The addresses the configured servers gave for the name, in the order they were first seen."""
    target = ctx.settings.target
    found: list[str] = []
    resolve = ctx.needs.get("resolve")
    for f in resolve.findings if resolve else ():
        if isinstance(f.evidence, Resolution) and f.evidence.answered and f.server:
            found.extend(sorted(resolve_chain(f.evidence.answers, target.name, target.rdtype).values))
    return list(dict.fromkeys(found))[:MAX_ADDRESSES]


async def run(ctx: Context) -> list[Finding]:
    if ctx.settings.target.rdtype not in ("A", "AAAA"):
        return []
    found = addresses(ctx)
    if not found:
        clock = Clock()
        return [
            ctx.finding("site", Status.SKIPPED, "no address to connect to: the name did not resolve", clock=clock)
        ]
    return list(await asyncio.gather(*(_probe(ctx, addr) for addr in found)))


async def _probe(ctx: Context, address: str) -> Finding:
    clock = Clock()
    host = ctx.settings.target.name.rstrip(".")
    https, http = await asyncio.gather(_tls(address, host, ctx.time_left()), _http(address, host, ctx.time_left()))
    reachable = https.connected or http.connected
    website = ctx.settings.website
    evidence = SiteProbe(address=address, https=https, http=http, reachable=reachable, website=website)
    words = f"443: {https.result}; 80: {http.result}"
    if reachable:
        return ctx.finding(address, Status.OK, f"{address} accepts connections ({words})", evidence, clock=clock)
    if not website:
        # Many names are not websites (an API, a mail host): what was seen is reported, and pages no one.
        return ctx.finding(
            address,
            Status.WARNING,
            f"{address} does not accept connections on 443 or 80 ({words}); not counted in the verdict: "
            "add --web when the name is a website",
            evidence,
            clock=clock,
        )
    return ctx.finding(
        address, Status.CRITICAL, f"{address} does not accept connections ({words})", evidence, clock=clock
    )


async def _tls(address: str, host: str, timeout: float) -> Connection:
    context = ssl.create_default_context()
    start = time.monotonic()
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(address, 443, ssl=context, server_hostname=host), timeout
        )
    except ssl.SSLCertVerificationError as e:
        return Connection(
            connected=True,
            result=f"TLS certificate not valid for {host} ({e.verify_message})",
            verified=False,
            rtt_s=round(time.monotonic() - start, 6),
        )
    except ssl.SSLError as e:
        return Connection(
            connected=True,
            result=f"TLS handshake failed ({e.reason})",
            verified=False,
            rtt_s=round(time.monotonic() - start, 6),
        )
    except TimeoutError:
        return Connection(connected=False, result="no answer (timeout)")
    except OSError as e:
        return Connection(connected=False, result=_refusal(e))
    peer = writer.get_extra_info("ssl_object")
    version = peer.version() if peer else None
    writer.close()
    return Connection(
        connected=True,
        result=f"TLS handshake ok ({version})",
        verified=True,
        tls_version=version,
        rtt_s=round(time.monotonic() - start, 6),
    )


async def _http(address: str, host: str, timeout: float) -> Connection:
    def head() -> tuple[int, str]:
        conn = http.client.HTTPConnection(address, 80, timeout=timeout)
        try:
            conn.request("HEAD", "/", headers={"Host": host, "User-Agent": "dns-runbook"})
            response = conn.getresponse()
            return response.status, response.reason
        finally:
            conn.close()

    start = time.monotonic()
    try:
        result = await blocking.call(head, timeout, "http-head")
    except TimeoutError:
        return Connection(connected=False, result="no answer (timeout)")
    if isinstance(result, OSError):
        return Connection(connected=False, result=_refusal(result))
    if isinstance(result, BaseException):
        return Connection(connected=True, result=f"connected, bad HTTP answer ({type(result).__name__})")
    status, reason = result
    return Connection(
        connected=True, result=f"HTTP {status} {reason}", status=status, rtt_s=round(time.monotonic() - start, 6)
    )


def _refusal(e: OSError) -> str:
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, TimeoutError):
        return "no answer (timeout)"
    return e.strerror or type(e).__name__
