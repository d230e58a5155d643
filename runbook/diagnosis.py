"""Findings -> verdict. Pure: no I/O, no clock; the same findings always give the same verdict.

The rules are one declared table (:mod:`runbook.rules`); this module applies it. Each configured server's
facts are asked every rule of the server scope, the run's facts every rule of the run scope; a server's own
verdict is its first match in table order, and the run's verdict is the first match of all, with every other
match in ``also`` and the cost to the user of a partial failure spelled out. ``explain=True`` keeps, for
every rule, whether it matched and on which evidence (``--explain``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec
from msgspec.structs import replace

from runbook.facts import HostFacts, RunFacts, ServerFacts, dns_values
from runbook.gather import Hosts, References, Site, gather
from runbook.hostfiles import ResolvConf
from runbook.model import Finding, Server, Status, StepResult, Target, Verdict, VerdictCode, worst
from runbook.rules import PRECEDENCE, RANK, RULES, STATUS, Condition, Rule

C = VerdictCode
# The codes by their old names, for the modules and tests that name them.
HEALTHY, SERVICE_DOWN, PORT_FILTERED = C.HEALTHY, C.SERVICE_DOWN, C.PORT_FILTERED
BLOCKED_IN_PATH, LOCAL_FIREWALL, UNREACHABLE = C.BLOCKED_IN_PATH, C.LOCAL_FIREWALL, C.UNREACHABLE
REFUSED, TCP_FALLBACK, MISMATCH, DNSSEC = C.REFUSED, C.TCP_FALLBACK, C.MISMATCH, C.DNSSEC
UPSTREAM, NXDOMAIN, SITE_DOWN, HOSTS_OVERRIDE = C.UPSTREAM, C.NXDOMAIN, C.SITE_DOWN, C.HOSTS_OVERRIDE
DEGRADED, NO_RESOLVER, INCONCLUSIVE, STEP_RESULT = C.DEGRADED, C.NO_RESOLVER, C.INCONCLUSIVE, C.STEP_RESULT
__all__ = ["PRECEDENCE", "STATUS", "diagnose", "interrupted_verdict", "step_verdict"]

_CONFIDENCE = ("low", "medium", "high")
_STEP_ORDER = {
    step: i for i, step in enumerate(("hostconf", "resolve", "udp53", "tcp53", "ping", "compare", "web", "dot"))
}
# Failures a stub resolver notices at once (an ICMP error or an answer), and moves past at no cost.
FAILS_FAST = frozenset({SERVICE_DOWN, REFUSED, LOCAL_FIREWALL})


class Match(msgspec.Struct, frozen=True):
    """A rule that matched, on one server (or on the run), with its words."""

    rule: Rule
    server: Server | None
    confidence: str
    summary: str
    next_steps: tuple[str, ...]
    findings: tuple[str, ...]

    @property
    def code(self) -> VerdictCode:
        return self.rule.code


class Test(msgspec.Struct, frozen=True):
    """One condition of one rule, as --explain shows it."""

    text: str
    holds: bool
    seen: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"text": self.text, "holds": self.holds, **({"seen": self.seen} if self.seen else {})}


class RuleCheck(msgspec.Struct, frozen=True):
    """A rule asked of one server (or of the run): did it match, and on which evidence."""

    rule: str
    code: str
    server: str | None
    matched: bool
    considered: bool
    needs: tuple[Test, ...]
    unless: tuple[Test, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "code": self.code,
            "server": self.server,
            "matched": self.matched,
            "considered": self.considered,
            "needs": [t.to_dict() for t in self.needs],
            "unless": [t.to_dict() for t in self.unless],
        }


def _test(condition: Condition, facts: object) -> Test:
    seen = condition.test(facts)
    return Test(condition.text, bool(seen), seen if isinstance(seen, str) else "")


def _holds(rule: Rule, facts: object) -> bool:
    return all(c.test(facts) for c in rule.needs) and not any(c.test(facts) for c in rule.unless)


def _check(rule: Rule, facts: object, server: str | None, considered: bool) -> RuleCheck:
    needs = tuple(_test(c, facts) for c in rule.needs)
    unless = tuple(_test(c, facts) for c in rule.unless)
    matched = considered and all(t.holds for t in needs) and not any(t.holds for t in unless)
    return RuleCheck(rule.id, rule.code.value, server, matched, considered, needs, unless)


def _match(rule: Rule, facts: ServerFacts | RunFacts | HostFacts, server: Server | None, ids: tuple[str, ...]) -> Match:
    return Match(rule, server, rule.confidence(facts), rule.explain(facts), rule.steps(facts), ids)


def _apply(
    scope: str,
    facts: ServerFacts | RunFacts | HostFacts,
    server: Server | None,
    ids: tuple[str, ...],
    explain: list[RuleCheck] | None,
) -> list[Match]:
    """Every rule of ``scope`` that matches ``facts``, in table order; the first fallback that holds only when
    no other rule did."""
    rules = [r for r in RULES if r.scope == scope]
    matched = [r for r in rules if not r.fallback and _holds(r, facts)]
    fallback = None if matched else next((r for r in rules if r.fallback and _holds(r, facts)), None)
    if explain is not None:
        label = server.label if server else None
        last = RANK[fallback.id] if fallback else len(RULES)
        explain.extend(_check(r, facts, label, not r.fallback or (not matched and RANK[r.id] <= last)) for r in rules)
    return [_match(r, facts, server, ids) for r in (*matched, *([fallback] if fallback else []))]


def diagnose(
    target: Target,
    servers: Sequence[Server],
    findings: Sequence[Finding],
    resolv: ResolvConf | None = None,
    expect: Sequence[str] = (),
    *,
    website: bool = False,
    explain: bool = False,
) -> Verdict:
    """The verdict of a run. ``resolv`` is given when the servers came from it (for the impact words);
    ``expect`` holds the addresses the name must resolve to, when the user knows them; ``website`` says
    the name is a website, so that a site refusing connections is a verdict of its own; ``explain`` keeps
    every rule's test in ``verdict.explain``."""
    # The verdict depends on the findings, not on the order in which concurrent steps delivered them.
    findings = sorted(findings, key=lambda f: (_STEP_ORDER.get(f.step, len(_STEP_ORDER)), f.id))
    checks: list[RuleCheck] | None = [] if explain else None
    refs = References.from_findings(findings, expect)
    evidence = gather(servers, findings)
    facts = {s: ServerFacts(evidence[s], target, refs) for s in servers}
    by_server = {s: _apply("server", facts[s], s, evidence[s].finding_ids, checks) for s in servers}
    run = _run_facts(
        target, servers, findings=findings, facts=list(facts.values()), refs=refs, resolv=resolv, website=website
    )
    run_level = _apply("run", run, None, (), checks)
    matches = sorted([*(m for ms in by_server.values() for m in ms), *run_level], key=lambda m: RANK[m.rule.id])
    failing = [m for m in matches if m.code != HEALTHY]
    codes = {s.label: by_server[s][0].code.value for s in servers}
    if failing:
        verdict = _failing_verdict(failing, servers, {s: ms[0] for s, ms in by_server.items()}, resolv, codes)
    else:
        verdict = _healthy_verdict(target, [by_server[s][0] for s in servers], facts, refs, findings)
    if checks is not None:
        verdict = replace(verdict, explain=tuple(c.to_dict() for c in checks))
    return verdict


def _run_facts(
    target: Target,
    servers: Sequence[Server],
    *,
    findings: Sequence[Finding],
    facts: Sequence[ServerFacts],
    refs: References,
    resolv: ResolvConf | None,
    website: bool,
) -> RunFacts:
    where = f" in {resolv.path}" if resolv else ""
    invalid = [line for line in (resolv.ignored if resolv else ()) if line.split()[0] == "nameserver"]
    many = len(invalid) > 1
    words = (
        f"the nameserver line{'s' if many else ''}{where} ({'; '.join(repr(line) for line in invalid)}) "
        f"{'are' if many else 'is'} invalid and ignored by glibc (resolv.conf takes a bare IP address: no port, "
        "no name)"
        if invalid
        else f"there is no nameserver{where}"
    )
    return RunFacts(
        target,
        tuple(servers),
        Hosts.from_findings(findings),
        Site.from_findings(findings),
        website,
        dns_values(facts, refs, target),
        words,
        tuple(f.id for f in findings if f.step == "hostconf"),
    )


def _failing_verdict(
    failing: Sequence[Match],
    servers: Sequence[Server],
    primaries: Mapping[Server, Match],
    resolv: ResolvConf | None,
    codes: Mapping[str, str],
) -> Verdict:
    primary = failing[0]
    group = [m for m in failing if m.code == primary.code]
    impact = _impact(servers, primaries, resolv) if len(servers) > 1 and primary.server else _Impact("", True)
    summary = " ".join(dict.fromkeys(m.summary for m in group)) + (f" {impact.words}" if impact.words else "")
    status = STATUS[primary.code]
    if impact.words and not impact.waits and all(m.code in AVAILABILITY for m in failing):
        # Clients get their answers at no cost (the failing server fails fast, or is asked only after a good
        # one): worth a warning to fix, not a page.
        status = Status.WARNING
        summary += " Users do not notice it yet: a warning, not an outage."
    also = [
        {"code": m.code.value, "status": STATUS[m.code].value, "summary": m.summary}
        | ({"server": m.server.label} if m.server else {})
        for m in failing
        if m.code != primary.code
    ]
    return Verdict(
        primary.code.value,
        status,
        min((m.confidence for m in group), key=_CONFIDENCE.index),
        summary,
        tuple(dict.fromkeys(i for m in group for i in m.findings)),
        tuple(dict.fromkeys(step for m in group for step in m.next_steps)),
        tuple(also),
        servers=codes,
    )


def _healthy_verdict(
    target: Target,
    healthy: Sequence[Match],
    facts: Mapping[Server, ServerFacts],
    refs: References,
    findings: Sequence[Finding],
) -> Verdict:
    first = next(iter(facts.values()))
    summary = f"{target.display} resolves" + (f" to {first.values}" if first.values else "")
    summary += ": " + "; ".join(m.summary for m in healthy)
    unverified = [s for s, f in facts.items() if not f.verified_by]
    verify_steps: tuple[str, ...] = ()
    if unverified:
        why = f" ({refs.discovery_error})" if refs.discovery_error else ""
        summary += (
            f". Not verified: nothing independent confirmed the answer of {', '.join(s.label for s in unverified)} "
            f"— the zone's authoritative servers could not be asked{why}"
        )
        verify_steps = (
            f"Verify the answer against a source you trust: run again with --expect and the address {target.display} "
            "should have, or --resolver with a resolver you trust, or --authoritative with the zone's own server",
        )
    sites = Site.from_findings(findings)
    open_ = [x for x in sites if x.reachable]
    if open_:
        summary += "; the site accepts connections (" + "; ".join(x.summary for x in open_) + ")"
    elif sites:
        summary += (
            f"; nothing accepts connections on 443 or 80 at {', '.join(x.address for x in sites)}, which is not "
            f"counted: if {target.display} is a website, run with --web"
        )
    return Verdict(
        HEALTHY.value,
        Status.OK,
        "high",
        summary,
        tuple(i for m in healthy for i in m.findings) + tuple(x.finding for x in open_),
        (
            *verify_steps,
            "Nothing to fix in DNS. If users still cannot reach the site, test the site itself and the resolvers "
            "their own networks use.",
        ),
        servers={s.label: HEALTHY.value for s in facts},
        verified=not unverified,
    )


# Failures of availability: when other servers answer, what they cost users depends on the order clients
# ask in. Wrong answers (a mismatch, a failed validation) are never made milder by a healthy neighbour.
AVAILABILITY = frozenset({SERVICE_DOWN, PORT_FILTERED, BLOCKED_IN_PATH, UNREACHABLE, REFUSED, TCP_FALLBACK})


class _Impact(msgspec.Struct, frozen=True):
    words: str
    waits: bool
    """Some lookups wait for a silent server: users feel it."""


def _impact(order: Sequence[Server], by_server: Mapping[Server, Match], resolv: ResolvConf | None) -> _Impact:
    """What a partial failure costs a stub resolver that tries the servers in ``order``."""
    good = [s for s in order if by_server[s].code == HEALTHY]
    bad = [s for s in order if by_server[s].code != HEALTHY]
    if not good or not bad:
        return _Impact("", waits=True)
    waits = False
    words = [
        f"{len(bad)} of {len(order)} servers fail; lookups still succeed through {', '.join(s.label for s in good)}"
    ]
    timeout = resolv.timeout_s if resolv else None
    rotate = bool(resolv and resolv.options.get("rotate"))
    first_good = order.index(good[0])
    for s in bad:
        a = by_server[s]
        if a.code in FAILS_FAST:
            words.append(f"{s.label} fails fast ({a.code}), so clients move past it at once")
        elif rotate:
            waits = True
            words.append(
                f"with `options rotate`, about 1 lookup in {len(order)} first waits {timeout:g} s for {s.label}"
                if timeout
                else f"some lookups first wait for {s.label}"
            )
        elif order.index(s) < first_good:
            waits = True
            wait = f"{timeout:g} s (resolv.conf timeout)" if timeout else "the client's timeout"
            words.append(
                f"{s.label} is asked first and stays silent, so every lookup waits {wait} before asking {good[0].label}"
            )
        else:
            words.append(f"{s.label} is asked only when the servers before it fail")
    return _Impact("; ".join(words) + ".", waits)


def step_verdict(command: str, findings: Sequence[Finding], supports: frozenset[str], full: Verdict) -> Verdict:
    """The verdict of one step's command: the diagnosis when its code is one the step's evidence can
    support, else a ``step-result`` whose status is the worst of the step's own findings."""
    if full.code in supports:
        return full
    mine = [f for f in findings if f.step != "hostconf" or command == "hostconf"]
    status = worst([f.status for f in mine], default=Status.UNKNOWN)
    if status in (Status.SKIPPED, Status.ERROR):
        status = Status.UNKNOWN
    bad = [f for f in mine if f.status.rank > 0]
    shown = bad or mine
    summary = f"runbook {command}: " + ("; ".join(f.summary for f in shown) if shown else "nothing was found")
    return Verdict(
        STEP_RESULT,
        status,
        "high",
        summary + " (one step alone: `runbook diagnose` weighs it with the other steps)",
        tuple(f.id for f in shown),
        (),
        servers={},
    )


def interrupted_verdict(results: Sequence[StepResult], after_s: float) -> Verdict:
    """A run stopped half-way draws no conclusion from half the evidence: it says what finished."""
    done = [r.id for r in results if not (r.reason or "").startswith("interrupted")]
    cut = [r.id for r in results if (r.reason or "").startswith("interrupted")]
    return Verdict(
        INCONCLUSIVE,
        Status.UNKNOWN,
        "low",
        f"Interrupted after {after_s:.2f} s, before {', '.join(cut) or 'the end'} finished: no verdict is drawn "
        f"from part of the evidence. Finished: {', '.join(done) or 'nothing'}; their findings are above.",
        tuple(f.id for r in results for f in r.findings),
        ("Run it again to the end for a verdict",),
    )


def diagnose_host(facts: HostFacts, finding_ids: Sequence[str], *, explain: bool = False) -> Verdict:
    """The verdict of ``runbook server``: the host rules of the table, asked of the server's own evidence."""
    checks: list[RuleCheck] | None = [] if explain else None
    matches = _apply("host", facts, None, tuple(finding_ids), checks)
    failing = [m for m in matches if m.code != HEALTHY]
    primary = (failing or matches)[0]
    also = [
        {"code": m.code.value, "status": STATUS[m.code].value, "summary": m.summary}
        for m in failing
        if m.code != primary.code
    ]
    group = [m for m in failing if m.code == primary.code] or [primary]
    verdict = Verdict(
        primary.code.value,
        STATUS[primary.code],
        primary.confidence,
        " ".join(dict.fromkeys(m.summary for m in group)),
        tuple(finding_ids),
        tuple(dict.fromkeys(step for m in group for step in m.next_steps)),
        tuple(also),
        servers={a: primary.code.value for a in facts.addresses},
    )
    return replace(verdict, explain=tuple(c.to_dict() for c in checks)) if checks is not None else verdict
