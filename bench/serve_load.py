"""Load on `runbook serve`: 1,000 probe requests, 50 at a time, against a lab target.

Starts the lab and the exporter (in the lab's client namespace, with docs/prometheus/runbook.toml and
--concurrency 8), then a load generator in the same namespace. Prints probes/s, p50/p99 latency, the
answers by status (a request that cannot get a probe slot within its scrape budget gets a 503), the highest
in-flight count the exporter reported (the bound must hold), its peak memory, and its open file
descriptors before and after (no leak). The baseline of the ratios is one probe alone, in the same run.

    sudo .venv/bin/python bench/serve_load.py [--requests 1000] [--parallel 50]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.lab.lab import ZONE, Lab  # noqa: E402

SERVE = "127.0.0.1:9115"
LOAD = r"""
import json, sys, time, threading, urllib.request, urllib.error
from concurrent.futures import ThreadPoolExecutor
url, n, parallel, metrics = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
peak = [0.0]
done = threading.Event()
def watch():
    while not done.is_set():
        try:
            text = urllib.request.urlopen(metrics, timeout=5).read().decode()
            for line in text.splitlines():
                if line.startswith("runbook_probes_in_flight "):
                    peak[0] = max(peak[0], float(line.split()[1]))
        except Exception:
            pass
        time.sleep(0.05)
def one(_):
    start = time.perf_counter()
    req = urllib.request.Request(url, headers={"X-Prometheus-Scrape-Timeout-Seconds": "10"})
    try:
        status = urllib.request.urlopen(req, timeout=30).status
    except urllib.error.HTTPError as e:
        status = e.code
    except Exception:
        status = 0
    return status, time.perf_counter() - start
threading.Thread(target=watch, daemon=True).start()
start = time.perf_counter()
with ThreadPoolExecutor(parallel) as pool:
    results = list(pool.map(one, range(n)))
wall = time.perf_counter() - start
done.set()
print(json.dumps({"wall": wall, "results": results, "peak_in_flight": peak[0]}))
"""


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--parallel", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("the lab needs root: run with sudo", file=sys.stderr)
        return 3
    lab = Lab().up()
    try:
        with lab.serving(
            SERVE, "--config", str(ROOT / "docs/prometheus/runbook.toml"), "--concurrency", str(args.concurrency)
        ) as server:
            url = f"http://{SERVE}/probe?target={ZONE}&module=resolvers"
            start = time.perf_counter()
            assert lab.http_get(url)[0] == 200
            alone = time.perf_counter() - start
            before = fds(server.pid)
            out = subprocess.run(
                [
                    "ip",
                    "netns",
                    "exec",
                    lab.client,
                    sys.executable,
                    "-c",
                    LOAD,
                    url,
                    str(args.requests),
                    str(args.parallel),
                    f"http://{SERVE}/metrics",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            load = json.loads(out)
            time.sleep(1)
            after = fds(server.pid)
            rss = peak_rss_mib(server.pid)
    finally:
        lab.down()
    results = load["results"]
    latencies = sorted(t for _, t in results)
    statuses: dict[int, int] = {}
    for status, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    ok = statuses.get(200, 0)
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99) - 1]
    print(f"{args.requests} probe requests, {args.parallel} at a time, exporter --concurrency {args.concurrency}")
    print(f"  one probe alone (baseline)   {alone:.3f} s")
    print(f"  wall time                    {load['wall']:.1f} s  -> {ok / load['wall']:.1f} probes/s")
    print(f"  latency p50 / p99            {p50:.3f} s / {p99:.3f} s  ({p50 / alone:.1f}x / {p99 / alone:.1f}x alone)")
    print(f"  answers by HTTP status       {dict(sorted(statuses.items()))}")
    print(f"  peak probes in flight        {load['peak_in_flight']:.0f} (bound {args.concurrency})")
    print(f"  exporter peak memory         {rss:.1f} MiB")
    print(f"  exporter open fds            {before} before, {after} after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
