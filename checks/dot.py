"""Step 9, ``dot``: DNS over TLS (RFC 7858) on port 853 of each server: does an encrypted channel work
where port 53 does not?

A workaround while port 53 is down (clients that can use DoT keep resolving), and evidence about what a
filter blocks: a path that drops port 53 but lets 853 through filters by port, not by host. The handshake
is checked as a strict client would (the system's CAs, the certificate against the server's address); a
certificate that does not verify is reported with the reason, and the channel is then tried as an
opportunistic client would (RFC 8310: encrypted, not authenticated). The query and the answer are
dnspython messages, framed as RFC 7858 says, on asyncio's TLS stream: ``dns.asyncquery.tls`` would do the
same, but importing it costs a quarter of a second (its HTTPS and QUIC stack), on the event loop that times
every other probe.
"""

from __future__ import annotations

import asyncio
import errno as errno_mod
import hashlib
import ssl
import struct
import time
from typing import Any

import msgspec
from msgspec.structs import replace

from checks import wire
from runbook.context import Clock, Context
from runbook.evidence import ANSWER, LOCAL_ERROR, RESET, TIMEOUT, Certificate, DotProbe, Exchange
from runbook.model import Finding, Server, Status

DOT_PORT = 853
TLS_ERROR = "tls-error"


async def run(ctx: Context) -> list[Finding]:
    return list(await asyncio.gather(*(_probe(ctx, server) for server in ctx.servers)))


async def _probe(ctx: Context, server: Server) -> Finding:
    clock = Clock()
    evidence = DotProbe(transport="tls", outcome=TIMEOUT)
    started = time.monotonic()
    connecting = asyncio.create_task(_connect(server, ctx.time_left()))
    if not await _worth_waiting(ctx, server, connecting):
        connecting.cancel()
        waited = time.monotonic() - started
        evidence = replace(evidence, detail=f"no connection within {waited:.2f} s, while port 53 answered")
        return ctx.finding(server.key, *_judge(evidence, server), evidence, server=server, clock=clock)
    try:
        reader, writer, verify_error = await connecting
    except (TimeoutError, OSError, ssl.SSLError) as e:
        evidence = _failure(evidence, e, time.monotonic() - started)
        return ctx.finding(server.key, *_judge(evidence, server), evidence, server=server, clock=clock)
    evidence = _tls_facts(evidence, writer, verify_error, time.monotonic() - started)
    target = ctx.settings.target
    asked = time.monotonic()
    try:
        response = await asyncio.wait_for(
            _ask(reader, writer, wire.make_query(target.name, target.rdtype, edns=True)), max(0.05, ctx.time_left())
        )
    except (TimeoutError, OSError, EOFError, ValueError) as e:  # dns.exception.DNSException is a ValueError
        evidence = _failure(evidence, e, time.monotonic() - asked)
    else:
        message = msgspec.structs.asdict(wire.message_evidence(response))
        evidence = replace(evidence, outcome=ANSWER, rtt_s=round(time.monotonic() - asked, 6), **message)
    finally:
        writer.close()
    return ctx.finding(server.key, *_judge(evidence, server), evidence, server=server, clock=clock)


async def _worth_waiting(ctx: Context, server: Server, connecting: asyncio.Task[Any]) -> bool:
    """Wait for the TLS connection as long as it matters. Where port 53 fails, DoT is the workaround: the whole
    budget. Where port 53 answers, DoT is a side note, and a port 853 that stays silent must not hold the run
    up: once udp53 is done and this server answered it, the connection has until then to be made."""
    udp = ctx.running.get("udp53")
    if udp is None:
        return True
    done, _ = await asyncio.wait({connecting, udp}, timeout=ctx.time_left(), return_when=asyncio.FIRST_COMPLETED)
    if connecting in done or udp not in done:
        return True
    result = await udp
    answered = any(
        f.server == server.label and isinstance(f.evidence, Exchange) and f.evidence.answered for f in result.findings
    )
    return not answered or connecting.done()


async def _ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, query: Any) -> Any:
    """One DNS message over the TLS stream, framed as DNS over TCP (RFC 7858 §3.3), parsed by dnspython."""
    import dns.message

    wire_query = query.to_wire()
    writer.write(struct.pack("!H", len(wire_query)) + wire_query)
    await writer.drain()
    (length,) = struct.unpack("!H", await reader.readexactly(2))
    return dns.message.from_wire(await reader.readexactly(length))


_STRICT: ssl.SSLContext | None = None


def _strict_context() -> ssl.SSLContext:
    """A strict client's context (the system's CAs, the name checked); made once per process."""
    global _STRICT  # noqa: PLW0603 (a cache of an expensive, immutable-in-use value)
    if _STRICT is None:
        context = ssl.create_default_context()
        context.set_alpn_protocols(["dot"])
        _STRICT = context
    return _STRICT


def _opportunistic_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["dot"])
    return context


async def _connect(server: Server, budget: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str | None]:
    """A TLS connection to port 853: verified when the certificate allows, else opportunistic (with why)."""
    deadline = time.monotonic() + budget
    # Is anything listening? A plain connect tells in one round trip (an RST: not offered), before the system's
    # CAs are loaded: that takes tens of milliseconds, spent only where there is a TLS server to check, and in
    # a thread, not on the event loop that times the other probes.
    _, probe = await asyncio.wait_for(asyncio.open_connection(server.host, DOT_PORT), budget)
    probe.close()
    strict = _STRICT if _STRICT is not None else await asyncio.to_thread(_strict_context)

    async def connect(context: ssl.SSLContext) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        # The server is named by its address: no SNI is sent, and the certificate must name that address.
        return await asyncio.wait_for(
            asyncio.open_connection(server.host, DOT_PORT, ssl=context, server_hostname=server.host),
            max(0.05, deadline - time.monotonic()),
        )

    try:
        reader, writer = await connect(strict)
        return reader, writer, None
    except ssl.SSLCertVerificationError as e:
        reader, writer = await connect(_opportunistic_context())
        return reader, writer, str(e.verify_message or e.reason or e)


def _tls_facts(ev: DotProbe, writer: asyncio.StreamWriter, verify_error: str | None, handshake_s: float) -> DotProbe:
    tls = writer.get_extra_info("ssl_object")
    ev = replace(
        ev,
        handshake=True,
        handshake_s=round(handshake_s, 6),
        connect_rtt_s=round(handshake_s, 6),
        verified=verify_error is None,
        verify_error=verify_error,
    )
    if isinstance(tls, ssl.SSLObject):
        der = tls.getpeercert(binary_form=True)
        ev = replace(
            ev,
            tls_version=tls.version(),
            alpn=tls.selected_alpn_protocol(),
            certificate=certificate(der) if der else None,
        )
    return ev


def certificate(der: bytes) -> Certificate:
    """What a user checks in a certificate: who it names, who signed it, until when, its fingerprint."""
    fingerprint = hashlib.sha256(der).hexdigest()
    try:
        from cryptography import x509
    except ImportError:  # the fingerprint is still evidence
        return Certificate(sha256=fingerprint)
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as e:
        return Certificate(sha256=fingerprint, error=f"unreadable certificate: {e}")
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        san = [str(v) for v in names.get_values_for_type(x509.DNSName)] + [
            str(v) for v in names.get_values_for_type(x509.IPAddress)
        ]
    except x509.ExtensionNotFound:
        san = []
    return Certificate(
        sha256=fingerprint,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc.isoformat(),
        not_after=cert.not_valid_after_utc.isoformat(),
        self_signed=cert.issuer == cert.subject,
        san=tuple(san),
    )


def _failure(ev: DotProbe, e: BaseException, waited: float) -> DotProbe:
    if isinstance(e, ConnectionRefusedError):
        return replace(ev, outcome=RESET, detail="connection refused (RST): nothing serves DNS over TLS on 853")
    if isinstance(e, TimeoutError):
        return replace(ev, outcome=TIMEOUT, detail=f"no answer within {waited:.1f} s")
    if isinstance(e, ssl.SSLError):
        return replace(ev, outcome=TLS_ERROR, detail=f"TLS handshake failed: {e.reason or e}")
    if isinstance(e, OSError) and e.errno is not None:
        return replace(ev, outcome=LOCAL_ERROR, errno=errno_mod.errorcode.get(e.errno, str(e.errno)), detail=str(e))
    return replace(ev, outcome=TLS_ERROR, detail=f"{type(e).__name__}: {e}")


def _judge(ev: DotProbe, server: Server) -> tuple[Status, str]:
    where = f"DNS over TLS {server.host}:{DOT_PORT}"
    if ev.outcome == ANSWER:
        subject = ev.certificate.subject if ev.certificate else None
        named = f" {subject}" if subject else ""
        trust = (
            f"certificate{named} verified"
            if ev.verified
            else f"certificate{named} not verified ({ev.verify_error}): encrypted, not authenticated"
        )
        return Status.OK, (
            f"{where}: answered {ev.rcode} in {(ev.rtt_s or 0) * 1000:.1f} ms ({ev.tls_version}, {trust})"
        )
    if ev.handshake:
        return Status.WARNING, f"{where}: the TLS handshake succeeded, but the query failed: {ev.detail}"
    if ev.outcome == RESET:
        return Status.OK, f"{where}: not offered ({ev.detail})"
    if ev.outcome == TIMEOUT:
        return Status.OK, f"{where}: no connection ({ev.detail}): not offered here, or filtered"
    return Status.WARNING, f"{where}: {ev.detail}"
