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
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.lab.lab import RESOLVER, RESOLVER2, ROUTER_SERVER_SIDE, ZONE, Lab


def ruleset(hook: str, rule: str) -> str:
    return f"table inet rbk {{ chain {hook} {{ type filter hook {hook} priority 0; {rule}; }}; }}\n"


def scenarios(lab: Lab) -> list[tuple[str, str, Callable[[], contextlib.AbstractContextManager[None]]]]:
    """(name, expected verdict, the condition) for each scenario of the spine's issue."""
    two = f"nameserver {RESOLVER}\nnameserver {RESOLVER2}\n"
    return [
        ("healthy", "healthy", contextlib.nullcontext),
        ("daemon stopped (the seed)", "dns-service-down", lambda: lab.stopped("unbound")),
        (
            "server drops port 53",
            "dns-port-filtered",
            lambda: lab.nft(lab.dns, ruleset("input", "meta l4proto { tcp, udp } th dport 53 drop")),
        ),
        (
            "router rejects, admin-prohibited",
            "dns-blocked-in-path",
            lambda: lab.nft(
                lab.router,
                ruleset("forward", "meta l4proto { tcp, udp } th dport 53 reject with icmp type admin-prohibited"),
            ),
        ),
        ("server link down", "dns-server-unreachable", lambda: lab.link_down(lab.dns, "d0", ROUTER_SERVER_SIDE)),
        (
            "two servers, the 2nd stopped",
            "dns-service-down",
            lambda: _both(lab.resolv_conf(two), lab.stopped("dnsmasq")),
        ),
    ]


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


def manual_sequence(lab: Lab, dnsping: str) -> list[tuple[str, float]]:
    """The commands an engineer types, in order, with their default options."""
    steps = [
        ("dig", ["dig", f"@{RESOLVER}", ZONE]),
        ("dig +tcp", ["dig", "+tcp", f"@{RESOLVER}", ZONE]),
        ("ping -c 3", ["ping", "-c", "3", RESOLVER]),
        ("dnsping -c 3", [dnsping, "-c", "3", "-s", RESOLVER, ZONE]),
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
    bindir = Path(sys.executable).parent
    dnsping = shutil.which("dnsping", path=f"{bindir}:{os.environ.get('PATH', '')}") or "dnsping"
    runbook = [sys.executable, "-m", "runbook"]

    lab = Lab().up()
    try:
        version = statistics.median(timed(lab, [*runbook, "--version"])[0] for _ in range(args.repeat))
        print(f"runbook --version: {version:.3f} s (median of {args.repeat})\n")
        header = f"{'scenario':34} {'verdict':24} {'runbook':>9} {'manual':>9} {'ratio':>7}   manual steps"
        print(header)
        print("-" * len(header))
        for name, expected, condition in scenarios(lab):
            with condition():
                times, verdicts = [], set()
                for _ in range(args.repeat):
                    took, proc = timed(
                        lab, [*runbook, "diagnose", ZONE, "--format", "json", "--timeout", str(args.timeout)]
                    )
                    times.append(took)
                    verdicts.add(_verdict(proc.stdout))
                manual = [] if args.skip_manual else manual_sequence(lab, dnsping)
            ours = statistics.median(times)
            total = sum(t for _, t in manual)
            got = ",".join(sorted(verdicts))
            mark = "" if verdicts == {expected} else f"  (expected {expected})"
            ratio = f"{total / ours:6.1f}x" if manual else "    -"
            detail = ", ".join(f"{n} {t:.2f}" for n, t in manual)
            print(f"{name:34} {got:24} {ours:8.3f}s {total:8.2f}s {ratio}   {detail}{mark}")
    finally:
        lab.down()
    return 0


def _verdict(stdout: str) -> str:
    import json

    try:
        return str(json.loads(stdout)["verdict"]["code"])
    except (ValueError, KeyError):
        return "no-json"


if __name__ == "__main__":
    sys.exit(main())
