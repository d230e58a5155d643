"""What ``runbook server`` costs the server it examines, quiet and under a flood.

In the lab's DNS server namespace, ``runbook server --window W`` runs on a quiet server (the baseline), then
while waves of dnsperf flood unbound from the client namespace, unbound with a 4 KiB receive buffer and short
of CPU (a busy loop per core at nice 10, unbound at nice 19: the kernel drops what it does not read in time).
The command itself runs at the default priority, as an administrator's would. For each it prints the wall
time, the CPU the command used (user + system, and as a share of one core over its wall time), its peak
memory (max RSS, from the kernel's accounting of the child), and the verdict; the ratio is flooded / quiet,
in the same run. Needs root (the lab).

    sudo .venv/bin/python bench/server_flood.py [--window 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.lab.lab import RESOLVER, Lab  # noqa: E402


@dataclass(frozen=True)
class Cost:
    wall: float
    cpu: float
    rss_mib: float
    verdict: str


def measure(lab: Lab, window: float) -> Cost:
    """One `runbook server`, its rusage from wait4: the command and every program it ran and waited for."""
    argv = ["server", "--address", RESOLVER, "--window", f"{window:g}", "--format", "json", "--no-record"]
    start = time.perf_counter()
    proc = subprocess.Popen(
        ["ip", "netns", "exec", lab.dns, sys.executable, "-m", "runbook", *argv], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, _, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = 0
    verdict = json.loads(out)["verdict"]["code"]
    return Cost(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, verdict)


def _bytecode() -> None:
    """An installed package runs from bytecode; this checkout under PYTHONDONTWRITEBYTECODE would compile every
    module at every run, and time the compiler."""
    for package in ("runbook", "checks", "reports"):
        compileall.compile_dir(ROOT / package, quiet=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("the lab needs root: run with sudo")
    _bytecode()
    lab = Lab().up()
    try:
        measure(lab, args.window)  # warm the page cache: the first import reads the files from disk
        quiet = [measure(lab, args.window) for _ in range(args.repeat)]
        with lab.unbound_with("so-rcvbuf: 4k"), lab.starved("unbound"), lab.flooding(RESOLVER):
            flooded = [measure(lab, args.window) for _ in range(args.repeat)]
    finally:
        lab.down()
    print(f"runbook server --window {args.window:g}, median of {args.repeat} (the quiet server is the baseline)")
    print(f"{'':<10} {'wall':>8} {'CPU':>8} {'of 1 core':>10} {'max RSS':>10}  verdicts")
    for label, runs in (("quiet", quiet), ("flooded", flooded)):
        wall, cpu = statistics.median(r.wall for r in runs), statistics.median(r.cpu for r in runs)
        rss = max(r.rss_mib for r in runs)
        verdicts = ", ".join(sorted({r.verdict for r in runs}))
        print(f"{label:<10} {wall:>7.2f}s {cpu:>7.2f}s {cpu / wall:>9.1%} {rss:>7.1f} MiB  {verdicts}")
    ratio = statistics.median(r.cpu for r in flooded) / statistics.median(r.cpu for r in quiet)
    print(f"CPU flooded / quiet: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
