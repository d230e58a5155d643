"""How long until the on-call engineer knows? ``runbook diagnose`` against the manual sequence, in the lab.

For each scenario of the lab (a real failure made for real), this runs, in the client namespace:

- ``runbook diagnose yummyrecipesforme.com`` (process wall time, the median of --repeat runs), and
- the baseline, in the same process: the commands an engineer would type one after the other, with
  their default options: ``dig``, ``dig +tcp``, ``ping -c 3`` and ``dnsping -c 3`` (dnsdiag).

It prints the wall times and the ratio baseline / runbook, plus ``runbook --version``. Needs root (the
lab builds network namespaces); everything it sends stays inside them.

    sudo .venv/bin/python bench/verdict_time.py [--repeat 5] [--timeout 2] [--skip-manual]
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.lab.lab import (  # noqa: E402
    AUTH,
    BIG_TXT,
    EXTRA_RESOLVERS,
    RESOLVER,
    RESOLVER2,
    ROGUE,
    ROUTER_SERVER_SIDE,
    SIGNED_ZONE,
    SLOW,
    ZONE,
    Lab,
)


def ruleset(hook: str, rule: str) -> str:
    return f"table inet rbk {{ chain {hook} {{ type filter hook {hook} priority 0; {rule}; }}; }}\n"


Condition = Callable[[], contextlib.AbstractContextManager[None]]


Scenario = tuple[str, str, Condition, str, list[str]]


def scenarios(lab: Lab) -> list[Scenario]:
    """(name, expected verdict, the condition, the name asked, extra arguments) for each scenario."""
    return [*_unavailable(lab), *_wrong_or_slow(lab), *_site_and_host(lab)]


def _unavailable(lab: Lab) -> list[Scenario]:
    two = f"nameserver {RESOLVER}\nnameserver {RESOLVER2}\n"
    return [
        ("healthy", "healthy", contextlib.nullcontext, ZONE, []),
        ("daemon stopped (the seed)", "dns-service-down", lambda: lab.stopped("unbound"), ZONE, []),
        (
            "server drops port 53",
            "dns-port-filtered",
            lambda: lab.nft(lab.dns, ruleset("input", "meta l4proto { tcp, udp } th dport 53 drop")),
            ZONE,
            [],
        ),
        (
            "router rejects, admin-prohibited",
            "dns-blocked-in-path",
            lambda: lab.nft(
                lab.router,
                ruleset("forward", "meta l4proto { tcp, udp } th dport 53 reject with icmp type admin-prohibited"),
            ),
            ZONE,
            [],
        ),
        (
            "server link down",
            "dns-server-unreachable",
            lambda: lab.link_down(lab.dns, "d0", ROUTER_SERVER_SIDE),
            ZONE,
            [],
        ),
        (
            "two servers, the 2nd stopped",
            "dns-service-down",
            lambda: _both(lab.resolv_conf(two), lab.stopped("dnsmasq")),
            ZONE,
            [],
        ),
    ]


def _wrong_or_slow(lab: Lab) -> list[Scenario]:
    fresh = f"fresh-{secrets.token_hex(3)}.{ZONE}"
    return [
        (
            "rogue resolver",
            "dns-answer-mismatch",
            lambda: _both(lab.running("rogue"), lab.resolv_conf(f"nameserver {ROGUE}\n")),
            ZONE,
            ["--resolver", RESOLVER],
        ),
        ("authoritative stopped", "upstream-servfail", lambda: lab.stopped("nsd"), fresh, ["--authoritative", AUTH]),
        ("name missing from the zone", "nxdomain", contextlib.nullcontext, f"missing.{ZONE}", []),
        ("broken chain of trust", "dnssec-validation-failure", contextlib.nullcontext, f"www.{SIGNED_ZONE}", []),
        (
            "truncated answer, TCP dropped",
            "tcp-fallback-blocked",
            lambda: lab.nft(lab.dns, ruleset("input", "tcp dport 53 drop")),
            BIG_TXT,
            ["--type", "TXT"],
        ),
        (
            "40% loss on the server",
            "dns-degraded",
            lambda: lab.nft(
                lab.dns, ruleset("input", f"ip daddr {RESOLVER} udp dport 53 numgen random mod 100 < 40 drop")
            ),
            ZONE,
            ["--count", "40"],
        ),
        (
            "400 ms delay (relay)",
            "dns-degraded",
            lambda: _both(lab.running("relay"), lab.resolv_conf(f"nameserver {SLOW}\n")),
            ZONE,
            [],
        ),
        (
            "400 ms delay, 30% of replies lost",
            "dns-degraded",
            lambda: _all(
                lab.running("relay"),
                lab.resolv_conf(f"nameserver {SLOW}\n"),
                lab.nft(
                    lab.dns,
                    ruleset(
                        "output",
                        f"ip saddr {SLOW} meta l4proto {{ tcp, udp }} th sport 53 numgen random mod 100 < 30 drop",
                    ),
                ),
            ),
            ZONE,
            [],
        ),
    ]


def _site_and_host(lab: Lab) -> list[Scenario]:
    return [
        ("web server stopped", "site-unreachable-dns-ok", lambda: lab.stopped("web"), ZONE, ["--web"]),
        (
            "hosts file override",
            "hosts-file-override",
            lambda: lab.hosts(f"127.0.0.1 localhost\n198.51.100.99 {ZONE}\n"),
            ZONE,
            [],
        ),
    ]


@contextlib.contextmanager
def _all(*conditions: contextlib.AbstractContextManager[None]) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for condition in conditions:
            stack.enter_context(condition)
        yield


@contextlib.contextmanager
def _both(a: contextlib.AbstractContextManager[None], b: contextlib.AbstractContextManager[None]) -> Iterator[None]:
    with a, b:
        yield


def timed(lab: Lab, argv: list[str], timeout: float = 120) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    proc = subprocess.run(
        ["ip", "netns", "exec", lab.client, *argv], capture_output=True, text=True, timeout=timeout, check=False
    )
    return time.perf_counter() - start, proc


def manual_sequence(lab: Lab, dnsping: str, name: str) -> list[tuple[str, float]]:
    """The commands an engineer types, in order, with their default options."""
    steps = [
        ("dig", ["dig", f"@{RESOLVER}", name]),
        ("dig +tcp", ["dig", "+tcp", f"@{RESOLVER}", name]),
        ("ping -c 3", ["ping", "-c", "3", RESOLVER]),
        ("dnsping -c 3", [dnsping, "-c", "3", "-s", RESOLVER, name]),
    ]
    return [(name, timed(lab, argv)[0]) for name, argv in steps]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runbook runs per scenario (median reported)")
    parser.add_argument("--timeout", type=float, default=2.0, help="runbook --timeout (default 2 s)")
    parser.add_argument("--skip-manual", action="store_true", help="do not run the manual baseline")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("the lab needs root: run with sudo", file=sys.stderr)
        return 3
    # An installed package runs from bytecode; an editable checkout under PYTHONDONTWRITEBYTECODE (this
    # machine sets it) would compile every module at every run and time the compiler, not the tool.
    for folder in ("runbook", "checks", "reports"):
        compileall.compile_dir(ROOT / folder, quiet=1)
    bindir = Path(sys.executable).parent
    dnsping = shutil.which("dnsping", path=f"{bindir}:{os.environ.get('PATH', '')}") or "dnsping"
    runbook = [sys.executable, "-m", "runbook"]

    lab = Lab().up()
    try:
        version = statistics.median(timed(lab, [*runbook, "--version"])[0] for _ in range(args.repeat))
        print(f"runbook --version: {version:.3f} s (median of {args.repeat})\n")
        header = f"{'scenario':34} {'verdict':26} {'runbook':>9} {'manual':>9} {'ratio':>7}   manual steps"
        print(header)
        print("-" * len(header))
        for name, expected, condition, qname, extra in scenarios(lab):
            with condition():
                times, verdicts = [], set()
                for _ in range(args.repeat):
                    argv = [*runbook, "diagnose", qname, "--format", "json", "--timeout", str(args.timeout), *extra]
                    took, proc = timed(lab, argv)
                    times.append(took)
                    verdicts.add(_verdict(proc.stdout))
                manual = [] if args.skip_manual else manual_sequence(lab, dnsping, qname)
            ours = statistics.median(times)
            total = sum(t for _, t in manual)
            got = ",".join(sorted(verdicts))
            mark = "" if verdicts == {expected} else f"  (expected {expected})"
            ratio = f"{total / ours:6.1f}x" if manual else "    -"
            detail = ", ".join(f"{n} {t:.2f}" for n, t in manual)
            print(f"{name:34} {got:26} {ours:8.3f}s {total:8.2f}s {ratio}   {detail}{mark}")
        compare_scaling(lab, runbook, args.repeat, args.timeout)
    finally:
        lab.down()
    return 0


def compare_scaling(lab: Lab, runbook: list[str], repeat: int, timeout: float) -> None:
    """The comparison asks every resolver at once: more resolvers should cost no more time."""
    print("\ncompare: --resolver count against the run's wall time (median; baseline: none)")
    base = None
    for count in (0, 2, 5, 10):
        extra = [arg for addr in EXTRA_RESOLVERS[:count] for arg in ("--resolver", addr)]
        took = statistics.median(
            timed(lab, [*runbook, "diagnose", ZONE, "--format", "json", "--timeout", str(timeout), *extra])[0]
            for _ in range(repeat)
        )
        base = base or took
        print(f"  {count:2} resolvers: {took:.3f} s  ({took / base:.2f}x the run without --resolver)")


def _verdict(stdout: str) -> str:
    import json

    try:
        return str(json.loads(stdout)["verdict"]["code"])
    except (ValueError, KeyError):
        return "no-json"


if __name__ == "__main__":
    sys.exit(main())
