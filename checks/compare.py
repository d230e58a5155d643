"""Step 6, ``compare``: ask the same question of other resolvers and of the zone's authoritative servers.

The authoritative servers are given (--authoritative) or discovered: the zone and its NS set are looked up
through every configured server and --resolver at once, and the first that answers is used (dnspython's
resolver does the walking). Each authoritative server is then asked directly (RD=0) for the name and for
the zone's SOA: its answer, whether it is authoritative (AA), its serial. The verdict's comparison of the
configured servers' answers with these is the diagnosis' job; this step records what each server said.
"""

from __future__ import annotations

import asyncio
from typing import Any

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype

from checks import wire
from runbook.answers import describe
from runbook.context import Clock, Context
from runbook.model import Finding, Server, Status


async def run(ctx: Context) -> list[Finding]:
    clock = Clock()
    findings: list[Finding] = []
    discovery: dict[str, Any]
    if ctx.settings.authoritative:
        auths = [(s, None) for s in ctx.settings.authoritative]
        discovery = {"source": "command line", "zone": None, "nameservers": []}
    else:
        discovery = await _discover(ctx)
        auths = [
            (Server(addr), ns["name"]) for ns in discovery.get("nameservers", []) for addr in ns.get("addresses", [])
        ]
    resolver_jobs = [_ask_resolver(ctx, s) for s in ctx.settings.resolvers]
    auth_jobs = [_ask_authority(ctx, s, name, discovery.get("zone")) for s, name in auths]
    results = await asyncio.gather(*resolver_jobs, *auth_jobs)
    findings.extend(results)
    findings.append(_authorities_summary(ctx, discovery, list(results[len(resolver_jobs) :]), clock))
    return findings


async def _discover(ctx: Context) -> dict[str, Any]:
    """The zone of the name and its name servers' addresses, through whichever resolver answers first."""
    via = list(dict.fromkeys((*ctx.servers, *ctx.settings.resolvers)))
    if not via:
        return {"source": "none", "zone": None, "nameservers": [], "error": "no resolver to ask"}
    tasks = [asyncio.create_task(_discover_through(ctx, s)) for s in via]
    errors: list[str] = []
    try:
        for next_done in asyncio.as_completed(tasks):
            try:
                found = await next_done
            except (dns.exception.DNSException, OSError) as e:
                errors.append(_why(e))
                continue
            return found
    finally:
        for t in tasks:
            t.cancel()
    return {"source": "none", "zone": None, "nameservers": [], "error": "; ".join(errors) or "no answer"}


async def _discover_through(ctx: Context, server: Server) -> dict[str, Any]:
    import dns.asyncresolver
    import dns.nameserver

    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [dns.nameserver.Do53Nameserver(server.host, server.port)]
    lifetime = max(0.05, ctx.time_left() * 0.6)
    resolver.lifetime = resolver.timeout = lifetime
    zone = await dns.asyncresolver.zone_for_name(ctx.settings.target.name, resolver=resolver, lifetime=lifetime)
    ns_answer = await resolver.resolve(zone, "NS", lifetime=max(0.05, ctx.time_left() * 0.6))
    names = sorted(r.target.to_text() for r in ns_answer)

    async def addresses(ns: str) -> dict[str, Any]:
        found: list[str] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = await resolver.resolve(ns, rdtype, lifetime=max(0.05, ctx.time_left() * 0.6))
            except dns.exception.DNSException:
                continue
            found.extend(r.address for r in answer)
        return {"name": ns, "addresses": found}

    nameservers = await asyncio.gather(*(addresses(ns) for ns in names))
    return {"source": f"NS through {server.label}", "zone": zone.to_text(), "nameservers": list(nameservers)}


async def _ask_resolver(ctx: Context, server: Server) -> Finding:
    clock = Clock()
    target = ctx.settings.target
    exchanges = await wire.ask(
        server, wire.make_query(target.name, target.rdtype, edns=True, nsid=True), ctx.time_left()
    )
    evidence: dict[str, Any] = {"role": "resolver", **exchanges[-1].to_evidence()}
    status, summary = _judge(exchanges[-1], f"resolver {server.label}", target.name, target.rdtype)
    return ctx.finding(server.key, status, summary, evidence, server=server, clock=clock)


async def _ask_authority(ctx: Context, server: Server, ns_name: str | None, zone: str | None) -> Finding:
    clock = Clock()
    target = ctx.settings.target
    query = wire.make_query(target.name, target.rdtype, edns=True, nsid=True, recursive=False)
    jobs = [wire.ask(server, query, ctx.time_left())]
    if zone:
        jobs.append(wire.ask(server, wire.make_query(zone, "SOA", edns=True, recursive=False), ctx.time_left()))
    answers = await asyncio.gather(*jobs)
    final = answers[0][-1]
    evidence: dict[str, Any] = {"role": "authoritative", "ns_name": ns_name, **final.to_evidence()}
    if len(answers) > 1 and answers[1][-1].response is not None:
        soa = answers[1][-1].response.get_rrset(
            answers[1][-1].response.answer, dns.name.from_text(zone or "."), dns.rdataclass.IN, dns.rdatatype.SOA
        )
        evidence["soa_serial"] = soa[0].serial if soa else None
    label = f"authoritative {server.label}" + (f" ({ns_name})" if ns_name else "")
    status, summary = _judge(final, label, target.name, target.rdtype)
    lame = _lame(final)
    evidence["lame"] = lame
    if lame:
        status = Status.WARNING if final.outcome == wire.ANSWER else Status.CRITICAL
        summary = f"{label}: lame ({lame})"
    return ctx.finding(f"auth/{server.key}", status, summary, evidence, server=server, clock=clock)


def _lame(ex: wire.Exchange) -> str | None:
    """Why an authoritative server does not serve the zone properly, or None."""
    if ex.outcome != wire.ANSWER or ex.response is None:
        if ex.outcome == wire.LOCAL_ERROR:
            return f"not reachable from this host ({wire.errno_of(ex)})"
        return "unreachable: " + (f"ICMP {ex.error.name}" if ex.error else ex.outcome)
    ev = wire.message_evidence(ex.response)
    if ev["rcode"] == "REFUSED":
        return "answers REFUSED"
    if ev["rcode"] in ("SERVFAIL", "NOTIMP", "FORMERR"):
        return f"answers {ev['rcode']}"
    if not ev["aa"] and not (ev["rcode"] == "NOERROR" and not ev["answers"] and ev["authority"]):
        return "answers without the AA flag"
    return None


def _judge(ex: wire.Exchange, label: str, qname: str, qtype: str) -> tuple[Status, str]:
    if ex.outcome == wire.ANSWER and ex.response is not None:
        ev = wire.message_evidence(ex.response)
        rtt = f"{(ex.rtt_s or 0) * 1000:.1f} ms"
        if ev["rcode"] == "NOERROR" and ev["answers"]:
            return Status.OK, f"{label}: {describe(ev['answers'], qname, qtype)} ({rtt})"
        if ev["rcode"] == "NOERROR":
            return Status.OK, f"{label}: no {qtype} records (NODATA, {rtt})"
        if ev["rcode"] == "NXDOMAIN":
            return Status.OK, f"{label}: the name does not exist (NXDOMAIN, {rtt})"
        ede = "; ".join(f"EDE {e['code']} {e['text'] or ''}".strip() for e in ev.get("ede", []))
        return Status.CRITICAL, f"{label}: {ev['rcode']}" + (f" ({ede})" if ede else "")
    if ex.outcome == wire.ICMP and ex.error is not None:
        return Status.CRITICAL, f"{label}: ICMP {ex.error.name} from {ex.error.offender}"
    return Status.CRITICAL, f"{label}: {ex.detail or ex.outcome}"


def _authorities_summary(ctx: Context, discovery: dict[str, Any], results: list[Finding], clock: Clock) -> Finding:
    serials = {f.server: f.evidence.get("soa_serial") for f in results if f.evidence.get("soa_serial") is not None}
    lame = {f.server: f.evidence.get("lame") for f in results if f.evidence.get("lame")}
    evidence = {
        **discovery,
        "servers": [f.server for f in results],
        "soa_serials": serials,
        "serials_agree": len(set(serials.values())) <= 1,
        "lame": lame,
    }
    if not results:
        why = discovery.get("error") or "no name server addresses"
        return ctx.finding(
            "authoritative",
            Status.WARNING,
            f"the zone's authoritative servers could not be found ({why})",
            evidence,
            clock=clock,
        )
    parts = [
        f"{len(results)} authoritative server(s) for {discovery.get('zone') or 'the zone'} ({discovery.get('source')})"
    ]
    status = Status.OK
    if lame:
        status = Status.WARNING if len(lame) < len(results) else Status.CRITICAL
        parts.append(f"{len(lame)} lame: " + ", ".join(f"{k} {v}" for k, v in lame.items()))
    if not evidence["serials_agree"]:
        status = max(status, Status.WARNING, key=lambda s: s.rank)
        parts.append("SOA serials differ: " + ", ".join(f"{k} {v}" for k, v in serials.items()))
    elif serials:
        parts.append(f"SOA serial {next(iter(serials.values()))} everywhere")
    return ctx.finding("authoritative", status, "; ".join(parts), evidence, clock=clock)


def _why(e: BaseException) -> str:
    """dnspython's resolver errors in the words of the report."""
    import dns.resolver

    words = {
        dns.resolver.NXDOMAIN: "the name does not exist",
        dns.resolver.NoAnswer: "no answer of that type",
        dns.resolver.NoNameservers: "the resolver failed (SERVFAIL or REFUSED)",
        dns.resolver.NoRootSOA: "no zone found for the name (no SOA record on the way to the root)",
        dns.resolver.LifetimeTimeout: "no answer in time",
    }
    for kind, text in words.items():
        if isinstance(e, kind):
            return text
    return f"{type(e).__name__}: {e}"
