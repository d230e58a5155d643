"""Netfilter rulesets, and what they do to one packet. Pure: text and JSON in, decisions out.

Two readers build one model: ``nft -j list ruleset`` (with the rule texts of ``nft -a list ruleset``) and
``iptables-save`` (the legacy backend, or the nf_tables one whose rules nft only shows as ``xt``). The
evaluator walks the base chains of a hook in priority order, follows jump, goto and return, applies the
policies, and answers for each rule match True, False or None, "may match": a mark, a rate limit or an
interface it cannot know. It never guesses silently: every may-match rule on the way is reported.

    accept in a base chain ends that chain only (the next base chain still sees the packet);
    drop, reject and queue end the packet's way for good.
"""

from __future__ import annotations

import contextlib
import gc
import ipaddress
import shlex
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import msgspec
from msgspec.structs import replace

from checks import nftexpr
from runbook.evidence import Citation

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Tri = bool | None

FINAL = frozenset({"drop", "reject", "queue"})
PROTO_NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1, "ipv6-icmp": 58, "icmpv6": 58, "sctp": 132, "gre": 47, "esp": 50}
IPTABLES_HOOKS = {
    "INPUT": "input",
    "OUTPUT": "output",
    "FORWARD": "forward",
    "PREROUTING": "prerouting",
    "POSTROUTING": "postrouting",
}
IPTABLES_PRIORITY = {"raw": -300, "mangle": -150, "filter": 0, "security": 50}


class RulesetError(Exception):
    """A ruleset in a form this reader does not know."""


class Packet(msgspec.Struct, frozen=True):
    """One packet of the DNS exchange, as netfilter sees it at ``hook``."""

    hook: str
    family: int
    proto: str
    saddr: Address
    daddr: Address
    sport: tuple[int, int]
    """A range: the ephemeral side of the exchange is any port of ip_local_port_range."""
    dport: tuple[int, int]
    ct_state: str
    iif: str | None = None
    oif: str | None = None
    mark: int | None = 0
    """The packet mark: 0 for an ordinary socket's packets, None (unknown) where some rule sets marks."""
    ct_mark: int | None = 0
    priority: int | None = 0
    uid: int | None = None
    """The sending socket's owner, for packets this host sends (meta skuid)."""
    gid: int | None = None
    saddr_type: str | None = None
    """The route type of the source address, as addrtype and fib name it: ``local`` (an address of this
    host) or ``unicast``; None when not known."""
    daddr_type: str | None = None
    natted: bool | None = False
    """Whether NAT rewrote the connection (the snat/dnat bits of ct status): False where no rule does NAT."""


Match = Callable[[Packet], Tri]
# (the value of the map's key that selects it, verdict, jump/goto target)
MapEntry = tuple[Any, str, str | None]


class Rule(msgspec.Struct):
    source: str
    family: str
    table: str
    chain: str
    handle: str | None
    text: str
    matches: list[tuple[Match, str]] = msgspec.field(default_factory=list)
    verdict: str | None = None
    """accept, drop, reject, queue, jump, goto, return, continue; ``map`` for a verdict map; ``unknown`` for a
    statement this reader does not model (it might decide); None for a rule that only counts or logs."""
    target: str | None = None
    vmap: tuple[Callable[[Packet], Any], tuple[MapEntry, ...]] | None = None
    sets: frozenset[str] = frozenset()
    """What the rule changes on the packet (``meta mark``, ``ct mark``, ``meta priority``)."""

    def cite(self) -> Citation:
        return Citation(
            source=self.source,
            family=self.family,
            table=self.table,
            chain=self.chain,
            handle=self.handle,
            rule=self.text,
        )


class Chain(msgspec.Struct):
    name: str
    rules: list[Rule] = msgspec.field(default_factory=list)
    hook: str | None = None
    priority: int = 0
    policy: str = "accept"


class Table(msgspec.Struct):
    source: str
    family: str
    name: str
    chains: dict[str, Chain] = msgspec.field(default_factory=dict)

    def applies_to(self, family: int) -> bool:
        return self.family in ("inet", "ip" if family == 4 else "ip6")


class Decision(msgspec.Struct, frozen=True):
    verdict: str
    """accept, drop, reject or queue."""
    rule: Citation | None
    """The rule that decided, or None when a chain's policy did."""
    policy_of: Citation | None = None
    may_match: tuple[Citation, ...] = ()
    """Rules on the way that might match, whose verdict could change the outcome."""
    passed: tuple[Citation, ...] = ()
    """The accepting rule or policy of each base chain the packet went through."""

    @property
    def blocks(self) -> bool:
        """Dropped or rejected. A queued packet is handed to a userspace program, which decides: unknown."""
        return self.verdict in ("drop", "reject")

    @property
    def certain(self) -> bool:
        return not self.may_match


# -- matching -------------------------------------------------------------------------------------------


_tri_all = nftexpr.tri_all


def _not(value: Tri) -> Tri:
    return None if value is None else not value


class ValueSet(msgspec.Struct, frozen=True):
    """The right-hand side of a match: single values, prefixes and ranges."""

    values: frozenset[Any] = frozenset()
    networks: tuple[Network, ...] = ()
    ranges: tuple[tuple[int, int], ...] = ()

    def contains_address(self, addr: Address) -> bool:
        return addr in self.values or any(addr in n for n in self.networks if n.version == addr.version)

    def port_coverage(self, ports: tuple[int, int]) -> Tri:
        """True if every port of ``ports`` is in the set, False if none is, None if some are."""
        spans = [v for v in self.values if isinstance(v, int)] + [nftexpr.Span(a, b) for a, b in self.ranges]
        return nftexpr.coverage(nftexpr.Ports(*ports), spans)

    def contains(self, value: Any) -> bool:
        return value in self.values


def _proto_in(proto: str, value: ValueSet | None) -> Tri:
    if value is None:
        return None
    return value.contains(proto) or value.contains(PROTO_NUMBERS.get(proto, -1))


# -- nftables -------------------------------------------------------------------------------------------

_NFT_VERDICTS = ("accept", "drop", "reject", "queue", "jump", "goto", "return", "continue")
_XT_TARGETS = {"ACCEPT": "accept", "DROP": "drop", "REJECT": "reject", "RETURN": "return", "NFQUEUE": "queue"}


def nft_texts(listing: str) -> dict[tuple[str, str, str, str], str]:
    """(family, table, chain, handle) -> the rule as ``nft -a list ruleset`` prints it."""
    texts: dict[tuple[str, str, str, str], str] = {}
    family = table = chain = ""
    for raw in listing.splitlines():
        line = raw.strip()
        if line.startswith("table "):
            parts = line.split()
            family, table = parts[1], parts[2]
        elif line.startswith("chain "):
            chain = line.split()[1]
        elif "# handle " in line and chain and not line.startswith(("set ", "map ", "type ")):
            body, handle = line.rsplit("# handle ", 1)
            texts[(family, table, chain, handle.strip())] = body.strip()
        elif line == "}":
            pass
    return texts


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """The cyclic garbage collector paused: a ruleset's parse builds hundreds of thousands of objects that
    are not garbage, and the collections they would trigger cost more than the parse itself."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def parse_nft(
    document: Mapping[str, Any], listing: str = "", skip_tables: Iterable[tuple[str, str]] = ()
) -> list[Table]:
    """Tables of ``nft -j list ruleset``; ``skip_tables`` ((family, name)) are read from iptables-save."""
    items = document.get("nftables")
    if not isinstance(items, list):
        raise RulesetError("the JSON has no 'nftables' list")
    texts = nft_texts(listing)
    skip = set(skip_tables)
    tables, sets = _declarations(items)
    for item in items:
        if "rule" not in item:
            continue
        r = item["rule"]
        key = (r["family"], r["table"])
        if key in skip:
            continue
        chain = tables[key].chains.get(r["chain"])
        if chain is None:
            raise RulesetError(f"rule in an unknown chain {r['chain']}")
        chain.rules.append(_nft_rule(r, texts, sets.get(key, {})))
    return [t for k, t in tables.items() if k not in skip]


_Sets = dict[tuple[str, str], dict[str, tuple[Any, ...]]]


def _declarations(items: list[Any]) -> tuple[dict[tuple[str, str], Table], _Sets]:
    """The tables with their chains, and the named sets and maps, of ``nft -j``'s list."""
    tables: dict[tuple[str, str], Table] = {}
    sets: _Sets = {}
    for item in items:
        if not isinstance(item, dict):
            raise RulesetError(f"an element of an unknown form: {item!r}")
        if "table" in item:
            t = item["table"]
            tables[(t["family"], t["name"])] = Table("nftables", t["family"], t["name"])
        elif "set" in item or "map" in item:
            s = item.get("set") or item["map"]
            sets.setdefault((s["family"], s["table"]), {})[s["name"]] = _set_elements(s)
        elif "chain" in item:
            c = item["chain"]
            table = tables.get((c["family"], c["table"]))
            if table is None:
                raise RulesetError(f"chain {c.get('name')} of an unknown table")
            table.chains[c["name"]] = Chain(
                c["name"], hook=c.get("hook"), priority=_prio(c.get("prio", 0)), policy=c.get("policy", "accept")
            )
    return tables, sets


def _nft_rule(
    r: Mapping[str, Any], texts: Mapping[tuple[str, str, str, str], str], sets: Mapping[str, tuple[Any, ...]]
) -> Rule:
    handle = str(r.get("handle", ""))
    text = texts.get((r["family"], r["table"], r["chain"], handle)) or _describe_expr(r.get("expr", []))
    rule = Rule("nftables", r["family"], r["table"], r["chain"], handle, text)
    for expr in r.get("expr", []):
        try:
            _nft_expr(rule, expr, sets)
        except (nftexpr.Unmodelled, ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
            # This rule alone becomes "may match", with the expression named; the rest is evaluated.
            why = str(e) if isinstance(e, nftexpr.Unmodelled) else f"{nftexpr.describe(expr)} ({e})"
            rule.matches.append((_may, f"not modelled: {why}"))
            if rule.verdict is None:
                rule.verdict = _verdict_of(r.get("expr", []))
    return rule


def _prio(value: Any) -> int:
    names = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100}
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return names.get(value, 0)
    return 0


def _may(packet: Packet) -> Tri:
    return None


def _set_elements(s: Mapping[str, Any]) -> tuple[Any, ...]:
    """A named set's elements; a map's keys. A set of a form this reader does not know holds UNKNOWN: the
    rules that use it may match, and nothing else is lost."""
    try:
        return tuple(nftexpr.element(e[0] if isinstance(e, list) else e) for e in s.get("elem", []))
    except (nftexpr.Unmodelled, ValueError, KeyError, TypeError, IndexError):
        return (nftexpr.UNKNOWN,)


# Statements that neither decide nor depend on anything the evaluator would need to know.
_INERT = frozenset(
    {
        "counter",
        "log",
        "notrack",
        "set",
        "ct helper",
        "ct timeout",
        "ct expectation",
        "snat",
        "dnat",
        "masquerade",
        "redirect",
        "dup",
        "flow",
        "secmark",
        "last",
        "synproxy",
        "tproxy",
        "fwd",
        "comment",
    }
)


def _verdict_of(exprs: Sequence[Any]) -> str:
    """The verdict a rule ends with, read without understanding the rest; ``unknown`` when none is clear."""
    for e in reversed(exprs):
        if isinstance(e, dict):
            for verdict in _NFT_VERDICTS:
                if verdict in e:
                    return verdict if verdict not in ("jump", "goto") else "unknown"
    return "unknown"


def _nft_expr(rule: Rule, expr: Mapping[str, Any], sets: Mapping[str, tuple[Any, ...]]) -> None:
    if rule.verdict is not None:
        return
    if "match" in expr:
        rule.matches.append((nftexpr.match(expr["match"], sets), nftexpr.describe(expr["match"].get("left"))))
        return
    for verdict in _NFT_VERDICTS:
        if verdict in expr:
            rule.verdict = verdict
            if verdict in ("jump", "goto"):
                rule.target = expr[verdict]["target"]
            return
    for statement, read in _NFT_STATEMENTS.items():
        if statement in expr:
            read(rule, expr[statement])
            return
    name = next(iter(expr), "")
    if name in ("limit", "quota", "meter") or "numgen" in str(expr) or name == "ct count":
        rule.matches.append((_may, "a rate limit"))
        return
    if name in ("snat", "dnat", "masquerade", "redirect"):
        rule.sets = rule.sets | {"nat"}
        return
    if name in _INERT:
        return
    raise nftexpr.Unmodelled(f"the statement {name!r}")


def _nft_vmap(rule: Rule, vmap: Mapping[str, Any]) -> None:
    key = nftexpr.getter(vmap["key"])
    data = vmap["data"]
    if isinstance(data, str):
        raise nftexpr.Unmodelled(f"the verdict map {data} (a named map)")
    entries = []
    for item in data["set"]:
        k, v = item if isinstance(item, list) else (item["elem"]["val"], item["elem"]["data"])
        verdict = next(name for name in _NFT_VERDICTS if name in v)
        target = v[verdict].get("target") if isinstance(v[verdict], dict) else None
        entries.append((nftexpr.element(k), verdict, target))
    rule.vmap, rule.verdict = (key, tuple(entries)), "map"


def _nft_mangle(rule: Rule, mangle: Mapping[str, Any]) -> None:
    key = mangle.get("key", {})
    name = next(iter(key), "") if isinstance(key, dict) else ""
    field_key = key.get(name, {}).get("key") if isinstance(key.get(name), dict) else None
    rule.sets = rule.sets | {f"{name} {field_key}"}


def _nft_xt(rule: Rule, xt: Mapping[str, Any]) -> None:
    if xt.get("type") == "target" and xt.get("name") in _XT_TARGETS:
        rule.verdict = _XT_TARGETS[xt["name"]]
    else:
        rule.matches.append((_may, f"xt {xt.get('name')}"))


_NFT_STATEMENTS: dict[str, Callable[[Rule, Mapping[str, Any]], None]] = {
    "vmap": _nft_vmap,
    "mangle": _nft_mangle,
    "xt": _nft_xt,
}


def mangled(tables: Sequence[Table]) -> frozenset[str]:
    """The packet fields some rule changes (``meta mark``, ``ct mark``, ``meta priority``, and ``nat`` for
    address translation): their value cannot be assumed to be that of an ordinary socket's packet."""
    return frozenset(x for t in tables for c in t.chains.values() for r in c.rules for x in r.sets)


def _describe_expr(expr: Sequence[Mapping[str, Any]]) -> str:
    return " ".join(next(iter(e)) for e in expr if isinstance(e, dict) and e)


# -- iptables-save --------------------------------------------------------------------------------------


def parse_iptables_save(text: str, source: str, family: int) -> list[Table]:
    """``iptables-save`` (or ``ip6tables-save``) output: its tables, chains, policies and rules."""
    tables: list[Table] = []
    table: Table | None = None
    fam = "ip" if family == 4 else "ip6"
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("[") and "] " in line:  # iptables-save -c: counters first
            line = line.split("] ", 1)[1]
        if not line or line.startswith("#") or line == "COMMIT":
            continue
        if line.startswith("*"):
            table = Table(source, fam, line[1:])
            tables.append(table)
        elif line.startswith(":"):
            if table is None:
                raise RulesetError(f"line {no}: a chain before any table")
            name, policy = line[1:].split()[:2]
            hook = IPTABLES_HOOKS.get(name)
            table.chains[name] = Chain(
                name,
                hook=hook if table.name in IPTABLES_PRIORITY else None,
                priority=IPTABLES_PRIORITY.get(table.name, 0),
                policy=policy.lower() if policy != "-" else "accept",
            )
        elif line.startswith("-A "):
            if table is None:
                raise RulesetError(f"line {no}: a rule before any table")
            rule = _iptables_rule(line, table, source, no)
            table.chains.setdefault(rule.chain, Chain(rule.chain)).rules.append(rule)
        else:
            raise RulesetError(f"line {no} of {source} is not iptables-save output: {line[:60]!r}")
    return tables


def _iptables_rule(line: str, table: Table, source: str, no: int) -> Rule:
    try:
        tokens = shlex.split(line)
    except ValueError as e:
        raise RulesetError(f"line {no}: {e}") from None
    rule = Rule(source, table.family, table.name, tokens[1], str(no), line)
    i, negate = 2, False
    while i < len(tokens):
        tok = tokens[i]
        if tok == "!":
            negate = True
            i += 1
            continue
        if tok in ("-j", "--jump", "-g", "--goto"):
            _iptables_target(rule, tok, tokens[i + 1] if i + 1 < len(tokens) else "", table)
            i += 2
            # target options (--reject-with ...) run to the end of the rule
            while i < len(tokens) and tokens[i].startswith("--"):
                i += 2
        else:
            i += _iptables_option(rule, tokens, i, negate)
        negate = False
    return rule


def _iptables_option(rule: Rule, tokens: Sequence[str], i: int, negate: bool) -> int:
    """Read the option at ``tokens[i]`` into ``rule``; how many tokens it took."""
    tok = tokens[i]
    arg = tokens[i + 1] if i + 1 < len(tokens) else ""
    build = _IPTABLES_MATCHES.get(tok)
    if build is not None:
        match, label = build(tok, arg)
        rule.matches.append((_maybe_not(match, negate), label))
        return 2
    if tok == "-c":
        return 3
    if tok in ("-m", "--match", "--comment") or not tok.startswith("-"):
        return 2  # a module's options are read as they come
    # An option of a match this reader does not know (mark, set, limit, recent, ...): may match.
    values = 1
    while i + values < len(tokens) and not tokens[i + values].startswith("-") and tokens[i + values] != "!":
        values += 1
    rule.matches.append((lambda p: None, tok))
    return values


def _iptables_target(rule: Rule, tok: str, target: str, table: Table) -> None:
    if tok in ("-g", "--goto"):
        rule.verdict, rule.target = "goto", target
    elif target in _XT_TARGETS:
        rule.verdict = _XT_TARGETS[target]
    elif target in ("LOG", "NFLOG", "MARK", "CONNMARK", "CLASSIFY", "TRACE", "CT", "NOTRACK", "AUDIT"):
        rule.verdict = None  # does not decide; its options follow
        changes = {"MARK": "meta mark", "CONNMARK": "ct mark", "CLASSIFY": "meta priority"}
        if target in changes:
            rule.sets = frozenset({changes[target]})
    elif target in ("DNAT", "SNAT", "MASQUERADE", "REDIRECT", "TPROXY"):
        rule.verdict = None
        rule.sets = frozenset({"nat"})
    elif target.isupper() and target not in table.chains:
        rule.matches.append((lambda p: None, f"target {target}"))
    else:
        rule.verdict, rule.target = "jump", target


def _m_proto(tok: str, arg: str) -> tuple[Match, str]:
    value = ValueSet(frozenset({arg.lower(), int(arg) if arg.isdigit() else arg.lower()}))
    return (lambda p: _proto_in(p.proto, value)), f"-p {arg}"


def _m_address(tok: str, arg: str) -> tuple[Match, str]:
    nets = tuple(ipaddress.ip_network(a, strict=False) for a in arg.split(","))
    is_src = tok in ("-s", "--source")

    def addr(p: Packet) -> Tri:
        a = p.saddr if is_src else p.daddr
        return any(a in n for n in nets if n.version == a.version)

    return addr, tok


def _m_interface(tok: str, arg: str) -> tuple[Match, str]:
    out = tok in ("-o", "--out-interface")

    def iface(p: Packet) -> Tri:
        have = p.oif if out else p.iif
        if have is None:
            return None
        return have.startswith(arg[:-1]) if arg.endswith("+") else have == arg

    return iface, tok


def _m_port(tok: str, arg: str) -> tuple[Match, str]:
    spans = []
    for part in arg.split(","):
        a, colon, b = part.partition(":")
        spans.append((int(a or 0), int(b or 65535) if colon else int(a)))
    value = ValueSet(ranges=tuple(spans))
    dest = tok.startswith("--d")

    def port(p: Packet) -> Tri:
        if p.proto not in ("udp", "tcp"):
            return False
        return value.port_coverage(p.dport if dest else p.sport)

    return port, tok


def _m_state(tok: str, arg: str) -> tuple[Match, str]:
    states = frozenset(s.lower() for s in arg.split(","))
    return (lambda p: p.ct_state in states), tok


def _m_addrtype(tok: str, arg: str) -> tuple[Match, str]:
    kinds = frozenset(k.lower() for k in arg.split(","))
    dst = tok == "--dst-type"

    def addrtype(p: Packet) -> Tri:
        have = p.daddr_type if dst else p.saddr_type
        return None if have is None else have in kinds

    return addrtype, f"addrtype {tok}"


_IPTABLES_MATCHES: dict[str, Callable[[str, str], tuple[Match, str]]] = {
    **dict.fromkeys(("-p", "--protocol"), _m_proto),
    **dict.fromkeys(("-s", "--source", "-d", "--destination"), _m_address),
    **dict.fromkeys(("-i", "--in-interface", "-o", "--out-interface"), _m_interface),
    **dict.fromkeys(("--dport", "--sport", "--destination-port", "--source-port", "--dports", "--sports"), _m_port),
    **dict.fromkeys(("--ctstate", "--state"), _m_state),
    **dict.fromkeys(("--dst-type", "--src-type"), _m_addrtype),
}


def _maybe_not(m: Match, negate: bool) -> Match:
    return (lambda p: _not(m(p))) if negate else m


# -- evaluation -----------------------------------------------------------------------------------------


class _Walk(msgspec.Struct):
    may_match: list[Citation] = msgspec.field(default_factory=list)
    depth: int = 0


def evaluate(tables: Sequence[Table], packet: Packet) -> Decision:
    """What the rules of every table do to ``packet`` at its hook."""
    base = sorted(
        ((c, t) for t in tables if t.applies_to(packet.family) for c in t.chains.values() if c.hook == packet.hook),
        key=lambda ct: ct[0].priority,
    )
    walk = _Walk()
    passed: list[Citation] = []
    for chain, table in base:
        verdict, rule = _run_chain(chain, table, packet, walk)
        if verdict is None:  # fell off the end: the policy decides
            policy = Citation(
                source=table.source, family=table.family, table=table.name, chain=chain.name, policy=chain.policy
            )
            if chain.policy in FINAL:
                return Decision(chain.policy, None, policy, tuple(walk.may_match), tuple(passed))
            passed.append(policy)
            continue
        if verdict in FINAL:
            return Decision(verdict, rule.cite() if rule else None, None, tuple(walk.may_match), tuple(passed))
        passed.append(rule.cite() if rule else Citation())
    return Decision("accept", passed[-1] if passed else None, None, tuple(walk.may_match), tuple(passed))


def _run_chain(chain: Chain, table: Table, packet: Packet, walk: _Walk) -> tuple[str | None, Rule | None]:
    """(verdict, deciding rule); verdict None when the chain returns or ends without one."""
    walk.depth += 1
    if walk.depth > 64:
        raise RulesetError(f"chain {chain.name}: jumps nested more than 64 deep (a loop?)")
    try:
        for rule in chain.rules:
            matched = _tri_all(m(packet) for m, _ in rule.matches)
            if matched is False or rule.verdict in (None, "continue"):
                continue
            verdict, target, matched = _rule_verdict(rule, packet, matched)
            if verdict is None:
                continue
            if matched is None or verdict == "unknown":
                unknown = tuple(d for m, d in rule.matches if m(packet) is None) or ("a statement",)
                walk.may_match.append(replace(rule.cite(), verdict=verdict, unknown=unknown))
                continue
            if verdict == "return":
                return None, None
            if verdict in ("jump", "goto"):
                goal = table.chains.get(target or "")
                if goal is None:  # a chain this listing does not have: only this rule is in doubt
                    walk.may_match.append(replace(rule.cite(), verdict=verdict, unknown=(f"chain {target}",)))
                    continue
                result, decider = _run_chain(goal, table, packet, walk)
                if result is not None:
                    return result, decider
                if verdict == "goto":
                    return None, None
                continue
            return verdict, rule
        return None, None
    finally:
        walk.depth -= 1


def _rule_verdict(rule: Rule, packet: Packet, matched: Tri) -> tuple[str | None, str | None, Tri]:
    """A rule's verdict for the packet: its own, or the one its verdict map gives the packet's key."""
    if rule.vmap is None:
        return rule.verdict, rule.target, matched
    key, entries = rule.vmap
    value = key(packet)
    if value is nftexpr.ABSENT:
        return None, None, False
    maybe: tuple[str, str | None] | None = None
    for elem, verdict, target in entries:
        found = nftexpr.member(value, elem)
        if found is True:
            return verdict, target, matched
        if found is None and (maybe is None or verdict in FINAL):
            maybe = (verdict, target)
    if maybe is None:
        return None, None, False
    return maybe[0], maybe[1], None
