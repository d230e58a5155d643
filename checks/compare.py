"""Step 6, ``compare``: ask the same question of other resolvers and of the zone's authoritative servers.

The authoritative servers are given (--authoritative) or discovered: the zone and its NS set are looked up
through every configured server and --resolver at once, and the first that answers is used. Each
authoritative server is then asked directly (RD=0) for the name and for
the zone's SOA: its answer, whether it is authoritative (AA), its serial. The verdict's comparison of the
configured servers' answers with these is the diagnosis' job; this step records what each server said.
"""

from __future__ import annotations

import asyncio
import time

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import msgspec

from checks import wire
from runbook.answers import describe
from runbook.context import Clock, Context
from runbook.evidence import Authorities, Compared, Discovery, NameServer, extend
from runbook.model import Finding, Server, Status, rfc3339


async def run(ctx: Context) -> list[Finding]:
    clock = Clock()
    findings: list[Finding] = []
    discovery: Discovery
    auths: list[tuple[Server, str | None]]
    if ctx.settings.authoritative:
        auths = [(s, None) for s in ctx.settings.authoritative]
        discovery = Discovery(source="command line")
    else:
        discovery = await _discover(ctx)
        auths = [(Server(addr), ns.name) for ns in discovery.nameservers for addr in ns.addresses]
    resolver_jobs = [_ask_resolver(ctx, s) for s in ctx.settings.resolvers]
    auth_jobs = [_ask_authority(ctx, s, name, discovery.zone) for s, name in auths]
    results = await asyncio.gather(*resolver_jobs, *auth_jobs)
    findings.extend(results)
    findings.append(_authorities_summary(ctx, discovery, list(results[len(resolver_jobs) :]), clock))
    return findings


# Discoveries this process made, by (resolvers asked, name): reused within their TTL when the settings allow it
# (runbook serve probes the same names again and again; a run on the command line always discovers afresh).
_DISCOVERED: dict[tuple[tuple[str, ...], str], tuple[float, float, Discovery]] = {}
_MAX_DISCOVERED = 4096


async def _discover(ctx: Context) -> Discovery:
    """The zone of the name and its name servers' addresses, through whichever resolver answers first."""
    via = list(dict.fromkeys((*ctx.servers, *ctx.settings.resolvers)))
    if not via:
        return Discovery(error="no resolver to ask")
    keep = ctx.settings.discovery_cache_s
    key = (tuple(s.label for s in via), ctx.settings.target.name)
    cached = _DISCOVERED.get(key) if keep > 0 else None
    if cached is not None and cached[0] > time.monotonic():
        expires, found_at, found = cached
        return msgspec.structs.replace(
            found, cached=True, found_at=rfc3339(found_at), reused_for_s=round(expires - time.monotonic(), 3)
        )
    found = await _discover_fresh(ctx, via)
    if keep > 0 and found.nameservers:
        now = time.monotonic()
        if len(_DISCOVERED) >= _MAX_DISCOVERED:  # many names (*.zone targets): forget the expired, then all
            for old in [k for k, (expires, _, _) in _DISCOVERED.items() if expires <= now]:
                del _DISCOVERED[old]
            if len(_DISCOVERED) >= _MAX_DISCOVERED:
                _DISCOVERED.clear()
        _DISCOVERED[key] = (now + min(keep, float(found.ttl_s or 0)), time.time(), found)
    return found


async def _discover_fresh(ctx: Context, via: list[Server]) -> Discovery:
    tasks = [asyncio.create_task(_discover_through(ctx, s)) for s in via]
    errors: list[str] = []
    try:
        for next_done in asyncio.as_completed(tasks):
            try:
                found = await next_done
            except DiscoveryError as e:
                errors.append(str(e))
                continue
            return found
    finally:
        for t in tasks:
            t.cancel()
    return Discovery(error="; ".join(errors) or "no answer")


class DiscoveryError(Exception):
    """The zone or its name servers could not be found through one resolver."""


async def _query(server: Server, name: dns.name.Name, rdtype: str, timeout: float) -> dns.message.Message:
    exchanges = await wire.ask(server, wire.make_query(name.to_text(), rdtype, edns=True), timeout)
    final = exchanges[-1]
    if final.response is None:
        raise DiscoveryError(f"{server.label}: {_failure(final)}")
    if final.response.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        raise DiscoveryError(f"{server.label} answers {dns.rcode.to_text(final.response.rcode())}")
    return final.response


async def _zone_of(ctx: Context, server: Server, name: dns.name.Name) -> dns.name.Name:
    """The zone that holds ``name``: the first name up from it with its own SOA, or the owner of the SOA a
    negative answer carries (not one reached through a CNAME: that is another zone's)."""
    while True:
        response = await _query(server, name, "SOA", max(0.05, ctx.time_left()))
        if any(r.rdtype == dns.rdatatype.SOA and r.name == name for r in response.answer):
            return name
        redirected = any(r.rdtype == dns.rdatatype.CNAME for r in response.answer)
        soa = [r for r in response.authority if r.rdtype == dns.rdatatype.SOA and name.is_subdomain(r.name)]
        if soa and not redirected:
            zone: dns.name.Name = soa[0].name
            return zone
        if name == dns.name.root:
            raise DiscoveryError(f"{server.label}: no SOA found for the name or any parent")
        name = name.parent()


async def _discover_through(ctx: Context, server: Server) -> Discovery:
    """Walk up from the name to the zone that holds it (the first name with its own SOA, or the owner of the
    SOA a negative answer carries), then read the zone's NS set and the name servers' addresses. Through our
    own probe, so that a resolver that is down fails at once (its ICMP error) instead of on a timer."""
    zone = await _zone_of(ctx, server, dns.name.from_text(ctx.settings.target.name))
    response = await _query(server, zone, "NS", max(0.05, ctx.time_left()))
    targets = sorted({r.target for rrset in response.answer if rrset.rdtype == dns.rdatatype.NS for r in rrset})
    if not targets:
        raise DiscoveryError(f"{server.label}: no NS records for {zone}")
    ttls = [rrset.ttl for rrset in response.answer if rrset.rdtype == dns.rdatatype.NS]
    glue: dict[dns.name.Name, list[str]] = {}
    for rrset in response.additional:
        if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            glue.setdefault(rrset.name, []).extend(r.address for r in rrset)
            ttls.append(rrset.ttl)

    async def addresses(ns: dns.name.Name) -> NameServer:
        if ns in glue:
            return NameServer(name=ns.to_text(), addresses=tuple(glue[ns]))
        found: list[str] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = await _query(server, ns, rdtype, max(0.05, ctx.time_left()))
            except DiscoveryError:
                continue
            for rrset in answer.answer:
                if rrset.name == ns and rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                    found += [r.address for r in rrset]
                    ttls.append(rrset.ttl)
        return NameServer(name=ns.to_text(), addresses=tuple(found))

    nameservers = await asyncio.gather(*(addresses(ns) for ns in targets))
    return Discovery(
        source=f"NS through {server.label}",
        zone=zone.to_text(),
        nameservers=tuple(nameservers),
        ttl_s=min(ttls, default=0),
    )


def _failure(ex: wire.Exchange) -> str:
    if ex.error is not None:
        return f"ICMP {ex.error.name} from {ex.error.offender}"
    return ex.detail or ex.outcome


async def _ask_resolver(ctx: Context, server: Server) -> Finding:
    clock = Clock()
    target = ctx.settings.target
    exchanges = await wire.ask(
        server, wire.make_query(target.name, target.rdtype, edns=True, nsid=True), ctx.time_left()
    )
    evidence = extend(exchanges[-1].to_evidence(), Compared, role="resolver")
    status, summary = _judge(exchanges[-1], f"resolver {server.label}", target.name, target.rdtype)
    return ctx.finding(server.key, status, summary, evidence, server=server, clock=clock)


# The zone's own answers this process was given, by (server, name, type, zone): reused within their TTL, at most
# discovery_cache_s, when the settings allow it (runbook serve: at 100 probes/s, asking the zone's servers on
# every probe would be 200 queries/s from one address, which authoritative servers rate-limit, NSD's RRL at 200/s
# by default, and rightly). Only a clean answer is kept; a failure is asked again at the next probe.
_AUTHORITY: dict[tuple[str, str, str, str | None], tuple[float, float, Finding]] = {}


async def _ask_authority(ctx: Context, server: Server, ns_name: str | None, zone: str | None) -> Finding:
    clock = Clock()
    target = ctx.settings.target
    keep = ctx.settings.discovery_cache_s
    key = (server.key, target.name.lower(), target.rdtype, zone)
    cached = _AUTHORITY.get(key) if keep > 0 else None
    if cached is not None and cached[0] > time.monotonic():
        expires, asked_at, found = cached
        evidence = msgspec.structs.replace(
            found.evidence, cached=True, asked_at=rfc3339(asked_at), reused_for_s=round(expires - time.monotonic(), 3)
        )
        summary = f"{found.summary}; asked at {rfc3339(asked_at)}, reused within its TTL"
        return ctx.finding(f"auth/{server.key}", found.status, summary, evidence, server=server, clock=clock)
    finding, ttl = await _ask_authority_now(ctx, server, ns_name, zone, clock)
    if keep > 0 and ttl is not None and ttl > 0 and finding.status is Status.OK:
        now = time.monotonic()
        if len(_AUTHORITY) >= _MAX_DISCOVERED:
            _AUTHORITY.clear()
        _AUTHORITY[key] = (now + min(keep, float(ttl)), clock.wall, finding)
    return finding


async def _ask_authority_now(
    ctx: Context, server: Server, ns_name: str | None, zone: str | None, clock: Clock
) -> tuple[Finding, int | None]:
    """The server's answer, asked now, and how long it may be reused: the smallest TTL of its answer, or of
    its SOA for a negative answer (None: not to be reused)."""
    target = ctx.settings.target
    query = wire.make_query(target.name, target.rdtype, edns=True, nsid=True, recursive=False)
    jobs = [wire.ask(server, query, ctx.time_left())]
    if zone:
        jobs.append(wire.ask(server, wire.make_query(zone, "SOA", edns=True, recursive=False), ctx.time_left()))
    answers = await asyncio.gather(*jobs)
    final = answers[0][-1]
    serial = None
    if len(answers) > 1 and answers[1][-1].response is not None:
        soa = answers[1][-1].response.get_rrset(
            answers[1][-1].response.answer, dns.name.from_text(zone or "."), dns.rdataclass.IN, dns.rdatatype.SOA
        )
        serial = soa[0].serial if soa else None
    label = f"authoritative {server.label}" + (f" ({ns_name})" if ns_name else "")
    status, summary = _judge(final, label, target.name, target.rdtype)
    lame = _lame(final)
    evidence = extend(
        final.to_evidence(), Compared, role="authoritative", ns_name=ns_name, soa_serial=serial, lame=lame
    )
    if lame:
        status = Status.WARNING if final.outcome == wire.ANSWER else Status.CRITICAL
        summary = f"{label}: lame ({lame})"
    finding = ctx.finding(f"auth/{server.key}", status, summary, evidence, server=server, clock=clock)
    return finding, _reusable_for(final)


def _reusable_for(ex: wire.Exchange) -> int | None:
    response = ex.response
    if ex.outcome != wire.ANSWER or response is None or response.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return None
    records = response.answer or [r for r in response.authority if r.rdtype == dns.rdatatype.SOA]
    return min((r.ttl for r in records), default=None)


def _lame(ex: wire.Exchange) -> str | None:
    """Why an authoritative server does not serve the zone properly, or None."""
    if ex.outcome != wire.ANSWER or ex.response is None:
        if ex.outcome == wire.LOCAL_ERROR:
            return f"not reachable from this host ({wire.errno_of(ex)})"
        return "unreachable: " + (f"ICMP {ex.error.name}" if ex.error else ex.outcome)
    m = wire.message_evidence(ex.response)
    if m.rcode == "REFUSED":
        return "answers REFUSED"
    if m.rcode in ("SERVFAIL", "NOTIMP", "FORMERR"):
        return f"answers {m.rcode}"
    if not m.aa and not (m.rcode == "NOERROR" and not m.answers and m.authority):
        return "answers without the AA flag"
    return None


def _judge(ex: wire.Exchange, label: str, qname: str, qtype: str) -> tuple[Status, str]:
    if ex.outcome == wire.ANSWER and ex.response is not None:
        m = wire.message_evidence(ex.response)
        rtt = f"{(ex.rtt_s or 0) * 1000:.1f} ms"
        if m.rcode == "NOERROR" and m.answers:
            return Status.OK, f"{label}: {describe(m.answers, qname, qtype)} ({rtt})"
        if m.rcode == "NOERROR":
            return Status.OK, f"{label}: no {qtype} records (NODATA, {rtt})"
        if m.rcode == "NXDOMAIN":
            return Status.OK, f"{label}: the name does not exist (NXDOMAIN, {rtt})"
        ede = "; ".join(e.words for e in m.ede)
        return Status.CRITICAL, f"{label}: {m.rcode}" + (f" ({ede})" if ede else "")
    if ex.outcome == wire.ICMP and ex.error is not None:
        return Status.CRITICAL, f"{label}: ICMP {ex.error.name} from {ex.error.offender}"
    return Status.CRITICAL, f"{label}: {ex.detail or ex.outcome}"


def _authorities_summary(ctx: Context, discovery: Discovery, results: list[Finding], clock: Clock) -> Finding:
    found = [f.evidence for f in results if isinstance(f.evidence, Compared)]
    serials = {str(f.server): e.soa_serial for f, e in zip(results, found, strict=True) if e.soa_serial is not None}
    lame = {str(f.server): e.lame for f, e in zip(results, found, strict=True) if e.lame}
    evidence = extend(
        discovery,
        Authorities,
        servers=tuple(str(f.server) for f in results),
        soa_serials=serials,
        serials_agree=len(set(serials.values())) <= 1,
        lame=lame,
    )
    if not results:
        why = discovery.error or "no name server addresses"
        return ctx.finding(
            "authoritative",
            Status.WARNING,
            f"the zone's authoritative servers could not be found ({why})",
            evidence,
            clock=clock,
        )
    source = discovery.source
    if discovery.cached:
        source += f", found at {discovery.found_at} and reused within its TTL"
    parts = [f"{len(results)} authoritative server(s) for {discovery.zone or 'the zone'} ({source})"]
    status = Status.OK
    if lame:
        status = Status.WARNING if len(lame) < len(results) else Status.CRITICAL
        parts.append(f"{len(lame)} lame: " + ", ".join(f"{k} {v}" for k, v in lame.items()))
    if not evidence.serials_agree:
        status = max(status, Status.WARNING, key=lambda s: s.rank)
        parts.append("SOA serials differ: " + ", ".join(f"{k} {v}" for k, v in serials.items()))
    elif serials:
        parts.append(f"SOA serial {next(iter(serials.values()))} everywhere")
    return ctx.finding("authoritative", status, "; ".join(parts), evidence, clock=clock)
