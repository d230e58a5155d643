"""Does the same outage always get the same verdict? Every lab scenario, diagnosed again and again.

For each scenario of ``bench/verdict_time.py`` (real failures in the lab's namespaces, plus a slow and lossy
link), ``runbook diagnose`` runs ``--repeat`` times (20 by default) in the client namespace. The figure is
how many runs gave the modal verdict (goal: 20/20 everywhere), with the verdicts seen and the median wall
time. A verdict that flips between runs of one outage is a defect as serious as a wrong one. Needs root;
everything it sends stays inside the lab.

    sudo .venv/bin/python bench/stability.py [--repeat 20] [--timeout 2] [--only SUBSTRING,...]
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from verdict_time import _verdict, scenarios, timed

from tests.lab.lab import Lab


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20, help="runs per scenario (default 20)")
    parser.add_argument("--timeout", type=float, default=2.0, help="runbook --timeout (default 2 s)")
    parser.add_argument("--keep", type=Path, help="write here the JSON of every run not on the expected verdict")
    parser.add_argument("--only", default="", help="only the scenarios whose name contains one of these (a,b)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("the lab needs root: run with sudo", file=sys.stderr)
        return 3
    runbook = [sys.executable, "-m", "runbook"]
    lab = Lab().up()
    unstable = 0
    try:
        header = f"{'scenario':36} {'expected':26} {'modal':>7}  {'median':>7}  verdicts seen"
        print(header)
        print("-" * len(header))
        for name, expected, condition, qname, extra in scenarios(lab):
            if not any(part in name for part in args.only.split(",")):
                continue
            seen: collections.Counter[str] = collections.Counter()
            times = []
            with condition():
                for _ in range(args.repeat):
                    argv = [*runbook, "diagnose", qname, "--format", "json", "--no-record"]
                    took, proc = timed(lab, [*argv, "--timeout", str(args.timeout), *extra])
                    times.append(took)
                    got = _verdict(proc.stdout)
                    seen[got] += 1
                    if args.keep and got != expected:
                        args.keep.mkdir(parents=True, exist_ok=True)
                        (args.keep / f"{name.replace(' ', '-')}-{sum(seen.values())}.json").write_text(proc.stdout)
            modal, count = seen.most_common(1)[0]
            unstable += count != args.repeat or modal != expected
            mark = "" if modal == expected else "  WRONG"
            verdicts = ", ".join(f"{v} x{n}" for v, n in seen.most_common())
            median = statistics.median(times)
            print(f"{name:36} {expected:26} {count:>3}/{args.repeat:<3} {median:6.2f}s  {verdicts}{mark}")
    finally:
        lab.down()
    print(f"\n{unstable} scenario(s) not {args.repeat}/{args.repeat} on the expected verdict")
    return 1 if unstable else 0


if __name__ == "__main__":
    sys.exit(main())
