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
from pathlib import Path
from typing import Any

from checks import netfilter
from runbook.context import Clock, Context
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


async def read_rulesets(timeout: float) -> tuple[list[netfilter.Table], list[str], list[str]]:
    """Every table of every backend, the sources read, and what could not be read (with why)."""
    commands = {
        "nft-json": ["nft", "-j", "list", "ruleset"],
        "nft-text": ["nft", "-a", "list", "ruleset"],
        "iptables-nft": ["iptables-nft-save"],
        "ip6tables-nft": ["ip6tables-nft-save"],
        "iptables-legacy": ["iptables-legacy-save"],
        "ip6tables-legacy": ["ip6tables-legacy-save"],
    }
    results = dict(zip(commands, await asyncio.gather(*(_run(c, timeout) for c in commands.values())), strict=True))
    problems = [f"{name}: {why}" for name, (out, why) in results.items() if why]
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
            continue
        parsed = [t for t in parsed if any(c.rules or c.policy != "accept" for c in t.chains.values())]
        tables += parsed
        read.append(name)
        if name.endswith("-nft"):
            xt_tables |= {(t.family, t.name) for t in parsed}
    nft_json, nft_text = results["nft-json"][0], results["nft-text"][0] or ""
    if nft_json:
        try:
            # Tables iptables-nft wrote are read from its own output: nft shows their matches as xt.
            tables += netfilter.parse_nft(json.loads(nft_json), nft_text, skip_tables=xt_tables)
            read.append("nftables")
        except (ValueError, KeyError, TypeError, netfilter.RulesetError) as e:
            problems.append(f"nft: the ruleset is in a form this reader does not know ({type(e).__name__}: {e})")
    return tables, read, problems


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
    tables, read, problems = await read_rulesets(min(TOOL_TIMEOUT, max(0.5, ctx.time_left())))
    if not read:
        # Decided from what the tools said, not from the uid: root without CAP_NET_ADMIN is refused too,
        # and root on a host without nft has nothing to be refused.
        denied = [p for p in problems if NOT_PERMITTED in p]
        summary = (
            f"reading the firewall rules was not permitted (it needs root or CAP_NET_ADMIN); by hand: "
            f"`sudo sh -c '{BY_HAND}'`"
            if denied
            else "no firewall ruleset could be read: " + "; ".join(problems)
        )
        return [
            ctx.finding(
                "rules",
                Status.SKIPPED,
                summary,
                {"reason": "not permitted" if denied else "no ruleset", "problems": problems, "by_hand": BY_HAND},
                clock=clock,
            )
        ]
    ephemeral = _ephemeral()
    findings = await asyncio.gather(*(_server(ctx, s, tables, read, problems, ephemeral) for s in ctx.servers))
    return list(findings)


async def _server(
    ctx: Context,
    server: Server,
    tables: list[netfilter.Table],
    read: list[str],
    problems: list[str],
    ephemeral: tuple[int, int],
) -> Finding:
    clock = Clock()
    local = _local_address(server)
    dev = await _route_dev(server)
    if local is None:
        return ctx.finding(
            server.key,
            Status.UNKNOWN,
            f"no route to {server.host} to evaluate the rules for",
            {"sources": read, "problems": problems},
            server=server,
            clock=clock,
        )
    me, them = ipaddress.ip_address(local.split("%", 1)[0]), server.ip
    family = 6 if server.is_ipv6 else 4
    paths: dict[str, Any] = {}
    blocked: list[str] = []
    unsure: list[str] = []
    # A server on this host (loopback, or one of its own addresses): the query also comes in to the daemon
    # through input, and the answer leaves it through output, on the loopback interface.
    local_server = me == them or them.is_loopback
    dns = (server.port, server.port)
    for proto in ("udp", "tcp"):
        packets = [
            ("query", netfilter.Packet("output", family, proto, me, them, ephemeral, dns, "new", oif=dev)),
            ("answer", netfilter.Packet("input", family, proto, them, me, dns, ephemeral, "established", iif=dev)),
        ]
        if local_server:
            packets += [
                ("query_in", netfilter.Packet("input", family, proto, me, them, ephemeral, dns, "new", iif=dev)),
                (
                    "answer_out",
                    netfilter.Packet("output", family, proto, them, me, dns, ephemeral, "established", oif=dev),
                ),
            ]
        for direction, packet in packets:
            label = f"{proto.upper()} {direction.replace('_', ' ')}"
            try:
                decision = netfilter.evaluate(tables, packet)
            except netfilter.RulesetError as e:
                paths[f"{proto}_{direction}"] = {"verdict": "unknown", "error": str(e)}
                unsure.append(f"{label}: {e}")
                continue
            paths[f"{proto}_{direction}"] = {
                "verdict": decision.verdict,
                "rule": decision.rule,
                "policy": decision.policy_of,
                "may_match": list(decision.may_match),
                "passed": list(decision.passed),
                "certain": decision.certain,
            }
            if decision.blocks:
                blocked.append(f"{label}: {_cite(decision)}")
            elif decision.verdict == "queue":
                unsure.append(f"{label}: handed to a userspace program, {_cite(decision)}")
            elif decision.may_match:
                risky = [m for m in decision.may_match if m.get("verdict") in netfilter.FINAL | {"jump", "goto"}]
                if risky:
                    unsure.append(f"{label}: may be stopped by {_rule_words(risky[0])}")
    evidence = {
        "sources": read,
        "problems": problems,
        "local_address": local,
        "interface": dev,
        "ephemeral_ports": list(ephemeral),
        "paths": paths,
        "blocks": bool(blocked),
        "uncertain": unsure,
    }
    if blocked:
        return ctx.finding(
            server.key,
            Status.CRITICAL,
            f"this host's firewall blocks DNS to {server.host}: " + "; ".join(blocked),
            evidence,
            server=server,
            clock=clock,
        )
    allowed = paths.get("udp_query", {})
    why = _rule_words(allowed["passed"][-1]) if allowed.get("passed") else "no rule on the way"
    if unsure:
        return ctx.finding(
            server.key,
            Status.WARNING,
            f"this host's firewall lets DNS to {server.host} through, unless: " + "; ".join(unsure),
            evidence,
            server=server,
            clock=clock,
        )
    return ctx.finding(
        server.key,
        Status.OK,
        f"this host's firewall lets DNS to {server.host} out and back in"
        + (" (and in to and out of the server on this host)" if local_server else "")
        + f" (UDP query: {why})",
        evidence,
        server=server,
        clock=clock,
    )


def _rule_words(rule: dict[str, Any] | Any) -> str:
    if not isinstance(rule, dict):
        return "?"
    where = f"{rule.get('source')} {rule.get('family')} {rule.get('table')} {rule.get('chain')}"
    if "policy" in rule and "rule" not in rule:
        return f"the policy {rule['policy']} of {where}"
    handle = f" handle {rule.get('handle')}" if rule.get("handle") else ""
    return f"{where}{handle}: `{rule.get('rule')}`"


def _cite(decision: netfilter.Decision) -> str:
    if decision.rule is not None:
        return f"{decision.verdict} by {_rule_words(dict(decision.rule))}"
    return f"{decision.verdict} by {_rule_words(dict(decision.policy_of or {}))}"
