"""Step 7, ``firewall``: does this host's own firewall let the query out and the answer back in?

The rulesets are read once per run, with the real tools, as argument lists with timeouts: ``nft -j list
ruleset`` (and ``nft -a list ruleset`` for the rule texts), ``iptables-save`` and ``ip6tables-save`` of the
nf_tables backend (whose rules nft shows only as ``xt``) and of the legacy one, which can hold other rules
at the same time. For each server and each of UDP and TCP, the query leaving (output, ct state new) and the
answer coming back (input, ct state established) are evaluated by :mod:`checks.netfilter`.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import json
import os
import shutil
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
from msgspec.structs import replace

from checks import netfilter
from runbook.context import Clock, Context
from runbook.evidence import Citation, FirewallPath, FirewallPaths, RulesUnread
from runbook.model import Finding, Server, Status

TOOL_TIMEOUT = 5.0
BY_HAND = "nft -a list ruleset; iptables-save; iptables-legacy-save"
# cron and systemd timers run with a PATH that lacks the sbin directories where Debian puts nft and iptables.
SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
# What the tools print when the kernel refuses to show the rules to an unprivileged process.
_DENIED = ("operation not permitted", "permission denied")
NOT_PERMITTED = "not permitted"


def find_tool(name: str) -> str | None:
    """The tool on $PATH, else in the sbin directories (cron's PATH is /usr/bin:/bin)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), *SBIN])
    return shutil.which(name, path=path)


async def _run(argv: list[str], timeout: float) -> tuple[str | None, str | None]:
    """(stdout, None) or (None, why not). A refusal by the kernel says ``not permitted`` in its reason."""
    tool = find_tool(argv[0])
    if tool is None:
        return None, f"{argv[0]} is not installed"
    try:
        proc = await asyncio.create_subprocess_exec(
            tool,
            *argv[1:],
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
        )
    except OSError as e:
        if e.errno in (errno.EPERM, errno.EACCES):
            return None, f"{argv[0]}: {NOT_PERMITTED} ({e.strerror})"
        return None, f"{argv[0]}: {e.strerror}"
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return None, f"{' '.join(argv)} did not finish in {timeout:g} s"
    if proc.returncode != 0:
        why = err.decode(errors="replace").strip()[:200] or f"exit {proc.returncode}"
        if any(word in why.lower() for word in _DENIED):
            return None, f"{' '.join(argv)}: {NOT_PERMITTED} ({why})"
        return None, f"{' '.join(argv)}: {why}"
    return out.decode(errors="replace"), None


class Rulesets(msgspec.Struct):
    """What was read of this host's rules: the tables, the sources read, and what could not be read."""

    tables: list[netfilter.Table]
    read: list[str]
    problems: list[str]
    unread: list[str]
    """Backends that exist here but could not be read: a rule there could block DNS unseen."""


_ABSENT = "is not installed"


async def read_rulesets(timeout: float) -> Rulesets:
    """Every table of every backend, read once and concurrently: ``nft -j`` (whose rule texts are fetched
    later, only for the chains a verdict cites) and the four ``iptables-save`` of both backends."""
    commands = {
        "nft": ["nft", "-j", "list", "ruleset"],
        "iptables-nft": ["iptables-nft-save"],
        "ip6tables-nft": ["ip6tables-nft-save"],
        "iptables-legacy": ["iptables-legacy-save"],
        "ip6tables-legacy": ["ip6tables-legacy-save"],
    }
    results = dict(zip(commands, await asyncio.gather(*(_run(c, timeout) for c in commands.values())), strict=True))
    problems = [f"{name}: {why}" for name, (out, why) in results.items() if why]
    unread = [name for name, (_, why) in results.items() if why and _ABSENT not in why]
    tables: list[netfilter.Table] = []
    read: list[str] = []
    xt_tables: set[tuple[str, str]] = set()
    for name, family in (("iptables-nft", 4), ("ip6tables-nft", 6), ("iptables-legacy", 4), ("ip6tables-legacy", 6)):
        out = results[name][0]
        if not out:
            continue
        try:
            parsed = netfilter.parse_iptables_save(out, name, family)
        except netfilter.RulesetError as e:
            problems.append(f"{name}: {e}")
            unread.append(name)
            continue
        parsed = [t for t in parsed if any(c.rules or c.policy != "accept" for c in t.chains.values())]
        tables += parsed
        read.append(name)
        if name.endswith("-nft"):
            xt_tables |= {(t.family, t.name) for t in parsed}
    nft_json = results["nft"][0]
    if nft_json:
        try:
            # Tables iptables-nft wrote are read from its own output: nft shows their matches as xt.
            with netfilter.no_gc():
                tables += netfilter.parse_nft(json.loads(nft_json), "", skip_tables=xt_tables)
            read.append("nftables")
        except (ValueError, KeyError, TypeError, netfilter.RulesetError) as e:
            problems.append(f"nft: the ruleset is in a form this reader does not know ({type(e).__name__}: {e})")
            unread.append("nft")
    return Rulesets(tables, read, problems, unread)


async def _cite_texts(cited: list[Citation], timeout: float) -> dict[tuple[str, str, str, str], str]:
    """The rule texts nft prints (``nft -a list chain``), for the nftables rules a verdict cites: one small
    listing per chain, instead of a second listing of the whole ruleset."""
    chains = sorted({(str(c.family), str(c.table), str(c.chain)) for c in cited if c.source == "nftables"})
    listings = await asyncio.gather(*(_run(["nft", "-a", "list", "chain", *chain], timeout) for chain in chains))
    texts: dict[tuple[str, str, str, str], str] = {}
    for out, _ in listings:  # `list chain` prints the chain inside its table: the keys are the ruleset's own
        texts.update(netfilter.nft_texts(out or ""))
    return texts


def _local_address(server: Server) -> str | None:
    """The source address the kernel picks for the server (a UDP connect sends nothing)."""
    family = socket.AF_INET6 if server.is_ipv6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((server.host, server.port))
            local = str(s.getsockname()[0])
    except OSError:
        return None
    return local


async def _route_dev(server: Server) -> str | None:
    out, _ = await _run(["ip", "-j", "route", "get", server.host.split("%", 1)[0]], TOOL_TIMEOUT)
    try:
        routes = json.loads(out or "[]")
        return str(routes[0].get("dev")) if routes else None
    except (ValueError, AttributeError, IndexError):
        return None


def _ephemeral() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


async def run(ctx: Context) -> list[Finding]:
    clock = Clock()
    # The budget is the step's (--timeout): a large ruleset takes nft a while to list.
    rulesets = await read_rulesets(max(0.5, ctx.time_left()))
    if not rulesets.read:
        # Decided from what the tools said, not from the uid: root without CAP_NET_ADMIN is refused too,
        # and root on a host without nft has nothing to be refused.
        denied = [p for p in rulesets.problems if NOT_PERMITTED in p]
        summary = (
            f"reading the firewall rules was not permitted (it needs root or CAP_NET_ADMIN); by hand: "
            f"`sudo sh -c '{BY_HAND}'`"
            if denied
            else "no firewall ruleset could be read: " + "; ".join(rulesets.problems)
        )
        return [
            ctx.finding(
                "rules",
                Status.SKIPPED,
                summary,
                RulesUnread(
                    reason="not permitted" if denied else "no ruleset",
                    problems=tuple(rulesets.problems),
                    by_hand=BY_HAND,
                ),
                clock=clock,
            )
        ]
    devices = await asyncio.gather(*(_route_dev(s) for s in ctx.servers))
    fields = _known_fields(rulesets.tables)
    judged = [_evaluate(s, dev, rulesets.tables, fields) for s, dev in zip(ctx.servers, devices, strict=True)]
    cited = [c for found in judged if found for path in found[1].values() for c in _citations(path)]
    texts = await _cite_texts(cited, max(0.2, ctx.time_left()))
    return [
        _finding(ctx, server, dev, (found[0], _with_texts(found[1], texts)) if found else None, rulesets, clock)
        for server, dev, found in zip(ctx.servers, devices, judged, strict=True)
    ]


def _known_fields(tables: list[netfilter.Table]) -> dict[str, Any]:
    """What the packets of this process carry: marks and priority 0 unless some rule sets them, and this
    process's own uid and gid (meta skuid, for what it sends)."""
    changed = netfilter.mangled(tables)
    return {
        "mark": None if "meta mark" in changed else 0,
        "ct_mark": None if "ct mark" in changed else 0,
        "priority": None if "meta priority" in changed else 0,
        "uid": os.geteuid(),
        "gid": os.getegid(),
        "natted": None if "nat" in changed else False,
    }


def _evaluate(
    server: Server, dev: str | None, tables: list[netfilter.Table], fields: dict[str, Any]
) -> tuple[Route, dict[str, FirewallPath]] | None:
    """Each path of the exchange (UDP and TCP; the query out, the answer back in; and for a server on this
    host, the query in and the answer out) and what the rules do to it. None when there is no route."""
    local = _local_address(server)
    if local is None:
        return None
    me, them = ipaddress.ip_address(local.split("%", 1)[0]), server.ip
    family = 6 if server.is_ipv6 else 4
    ephemeral, dns = _ephemeral(), (server.port, server.port)
    # A server on this host (loopback, or one of its own addresses): the query also comes in to the daemon
    # through input, and the answer leaves it through output.
    local_server = me == them or them.is_loopback
    paths: dict[str, FirewallPath] = {}
    them_type = "local" if local_server else "unicast"
    for proto in ("udp", "tcp"):

        def packet(hook: str, query: bool, state: str, proto: str = proto) -> netfilter.Packet:
            """The query goes from this host to the server, the answer back; hook says where it is seen."""
            src, dst = (me, them) if query else (them, me)
            sport, dport = (ephemeral, dns) if query else (dns, ephemeral)
            src_type, dst_type = ("local", them_type) if query else (them_type, "local")
            return netfilter.Packet(
                hook,
                family,
                proto,
                src,
                dst,
                sport,
                dport,
                state,
                iif=dev if hook == "input" else None,
                oif=dev if hook == "output" else None,
                saddr_type=src_type,
                daddr_type=dst_type,
                **fields,
            )

        packets = [("query", packet("output", True, "new")), ("answer", packet("input", False, "established"))]
        if local_server:
            packets += [
                ("query_in", packet("input", True, "new")),
                ("answer_out", packet("output", False, "established")),
            ]
        for direction, pkt in packets:
            paths[f"{proto}_{direction}"] = _decide(tables, pkt)
    return Route(local, local_server), paths


class Route(msgspec.Struct, frozen=True):
    local_address: str
    local_server: bool
    """The server is on this host (loopback, or one of its own addresses)."""


def _decide(tables: list[netfilter.Table], packet: netfilter.Packet) -> FirewallPath:
    try:
        decision = netfilter.evaluate(tables, packet)
    except netfilter.RulesetError as e:
        return FirewallPath(verdict="unknown", certain=False, error=str(e))
    return FirewallPath(
        verdict=decision.verdict,
        rule=decision.rule,
        policy=decision.policy_of,
        may_match=decision.may_match,
        passed=decision.passed,
        certain=decision.certain,
    )


def _citations(path: FirewallPath) -> list[Citation]:
    return [c for c in (path.rule, *path.may_match, *path.passed) if c is not None]


Texts = Mapping[tuple[str, str, str, str], str]


def _with_texts(paths: dict[str, FirewallPath], texts: Texts) -> dict[str, FirewallPath]:
    """The paths with the rule texts nft prints in place of the ones rebuilt from its JSON."""

    def cite(c: Citation | None) -> Citation | None:
        if c is None or c.source != "nftables":
            return c
        text = texts.get((str(c.family), str(c.table), str(c.chain), str(c.handle)))
        return replace(c, rule=text) if text else c

    return {
        name: replace(
            p,
            rule=cite(p.rule),
            may_match=tuple(filter(None, map(cite, p.may_match))),
            passed=tuple(filter(None, map(cite, p.passed))),
        )
        for name, p in paths.items()
    }


_RISKY = netfilter.FINAL | {"jump", "goto", "unknown", "map"}


def _finding(
    ctx: Context,
    server: Server,
    dev: str | None,
    found: tuple[Route, dict[str, FirewallPath]] | None,
    rulesets: Rulesets,
    clock: Clock,
) -> Finding:
    if found is None:
        return ctx.finding(
            server.key,
            Status.UNKNOWN,
            f"no route to {server.host} to evaluate the rules for",
            FirewallPaths(sources=tuple(rulesets.read), problems=tuple(rulesets.problems)),
            server=server,
            clock=clock,
        )
    about, paths = found
    blocked, unsure = _read_paths(paths)
    evidence = FirewallPaths(
        sources=tuple(rulesets.read),
        problems=tuple(rulesets.problems),
        unread=tuple(rulesets.unread),
        local_address=about.local_address,
        interface=dev,
        ephemeral_ports=_ephemeral(),
        paths=paths,
        blocks=bool(blocked),
        uncertain=tuple(unsure),
    )
    unread = f"; the {', '.join(rulesets.unread)} rules could not be read, and may block it" if rulesets.unread else ""
    if blocked:
        summary = f"this host's firewall blocks DNS to {server.host}: " + "; ".join(blocked)
        return ctx.finding(server.key, Status.CRITICAL, summary, evidence, server=server, clock=clock)
    if unsure:
        summary = f"this host's firewall lets DNS to {server.host} through, unless: " + "; ".join(unsure) + unread
        return ctx.finding(server.key, Status.WARNING, summary, evidence, server=server, clock=clock)
    if rulesets.unread:
        # Never "ok" on half the rules: what could not be read is said, here and not only in the evidence.
        summary = (
            f"this host's {', '.join(rulesets.read)} rules let DNS to {server.host} through, but the "
            f"{', '.join(rulesets.unread)} rules could not be read ("
            + "; ".join(p for p in rulesets.problems if p.split(":", 1)[0] in rulesets.unread)
            + "): they may block it"
        )
        return ctx.finding(server.key, Status.UNKNOWN, summary, evidence, server=server, clock=clock)
    allowed = paths.get("udp_query")
    why = allowed.passed[-1].words if allowed and allowed.passed else "no rule on the way"
    here = " (and in to and out of the server on this host)" if about.local_server else ""
    summary = f"this host's firewall lets DNS to {server.host} out and back in{here} (UDP query: {why})"
    return ctx.finding(server.key, Status.OK, summary, evidence, server=server, clock=clock)


def _read_paths(paths: dict[str, FirewallPath]) -> tuple[list[str], list[str]]:
    """The paths a rule stops, and those it may stop (or that could not be decided), in words."""
    blocked: list[str] = []
    unsure: list[str] = []
    for name, path in paths.items():
        proto, _, direction = name.partition("_")
        label = f"{proto.upper()} {direction.replace('_', ' ')}"
        if path.verdict == "unknown":
            unsure.append(f"{label}: {path.error}")
        elif path.stops:
            blocked.append(f"{label}: {_cite(path)}")
        elif path.verdict == "queue":
            unsure.append(f"{label}: handed to a userspace program, {_cite(path)}")
        else:
            risky = [m for m in path.may_match if m.verdict in _RISKY]
            if risky:
                unsure.append(f"{label}: may be stopped by {risky[0].words}")
    return blocked, unsure


def _cite(path: FirewallPath) -> str:
    return f"{path.verdict} by {path.cited.words if path.cited else '?'}"
