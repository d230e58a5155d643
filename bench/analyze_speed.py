"""How fast `runbook analyze` reads a large capture, beside tcpdump reading the same file in the same run.

Builds the capture in the lab: dnsperf (Debian's) sends queries from the client's namespace to the lab's
unbound as fast as it can while tcpdump writes the traffic to a pcap, until the capture holds at least
``--packets`` DNS packets (queries and answers). Then, on that file, one after the other:

- the baseline: ``tcpdump -nn -r FILE > /dev/null`` (tcpdump decoding every packet, printing nothing);
- ``runbook analyze FILE --format json --no-record > /dev/null``.

It prints both wall times, the packets per second of each, the ratio (goal: analyze within 5x of tcpdump) and
analyze's peak memory (maximum RSS: the capture is streamed, never loaded whole).

    sudo .venv/bin/python bench/analyze_speed.py [--packets 1000000] [--keep FILE]
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.lab.lab import RESOLVER, ZONE, Lab  # noqa: E402


def build_capture(lab: Lab, path: Path, packets: int) -> int:
    queries = path.with_suffix(".queries")
    names = [ZONE, f"www.{ZONE}", f"missing.{ZONE}", f"mail.{ZONE}"]
    queries.write_text("".join(f"{name} A\n" for name in names))
    tcpdump = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            lab.client,
            "tcpdump",
            "-Z",
            "root",
            "-i",
            "c0",
            "-B",
            "65536",
            "-s",
            "0",
            "-w",
            str(path),
            "port",
            "53",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert tcpdump.stderr is not None
    tcpdump.stderr.readline()
    try:
        subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                lab.client,
                "dnsperf",
                "-s",
                RESOLVER,
                "-d",
                str(queries),
                "-n",
                str(packets // len(names) // 2 + 1000),
                "-c",
                "4",
                "-q",
                "500",
                "-t",
                "2",
            ],
            check=True,
            capture_output=True,
        )
        time.sleep(0.5)
    finally:
        tcpdump.send_signal(2)
        _, err = tcpdump.communicate(timeout=30)
    captured = [line for line in err.decode().splitlines() if "packets captured" in line]
    return int(captured[0].split()[0]) if captured else 0


def timed(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and the child's peak RSS (MiB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="keep the capture at this path")
    args = parser.parse_args()
    if os.geteuid() != 0 or not shutil.which("dnsperf") or not shutil.which("tcpdump"):
        print("needs root, dnsperf and tcpdump (apt-get install dnsperf tcpdump)", file=sys.stderr)
        return 3
    for folder in ("runbook", "checks", "reports"):
        compileall.compile_dir(ROOT / folder, quiet=1)
    work = Path(tempfile.mkdtemp(prefix="runbook-analyze-bench-"))
    path = args.keep or work / "dnsperf.pcap"
    lab = Lab().up()
    try:
        count = build_capture(lab, path, args.packets)
    finally:
        lab.down()
    size = path.stat().st_size / 2**20
    print(f"capture: {count} packets, {size:.0f} MiB ({path})")
    base, _ = timed(["tcpdump", "-nn", "-r", str(path)])
    mine, rss = timed([sys.executable, "-m", "runbook", "analyze", str(path), "--format", "json", "--no-record"])
    print(f"  tcpdump -nn -r (baseline)   {base:7.2f} s   {count / base:10,.0f} packets/s")
    print(f"  runbook analyze             {mine:7.2f} s   {count / mine:10,.0f} packets/s   {mine / base:.1f}x tcpdump")
    print(f"  analyze's peak memory       {rss:7.0f} MiB (the capture is {size:.0f} MiB)")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
