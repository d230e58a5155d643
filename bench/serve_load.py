"""Capacity of `runbook serve`: healthy probes per second, latency, CPU per probe, memory over many probes.

Starts the lab and the exporter in the lab's client namespace (the `resolvers` module of
docs/prometheus/runbook.toml, firewall and web skipped), then an open-loop load generator in the same
namespace: requests start at a fixed rate whatever the answers do, as Prometheus scrapes do, so the
latency is what a scrape sees, not a queue the generator built. For each burst size (the module's `count`:
10, the default, and 0) and each rate offered it prints the healthy verdicts per second (read from each answer's
runbook_verdict), p50/p99 latency, the answers by HTTP status and verdict, the CPU the exporter and its workers
spent per probe, their memory every 1,000 probes (it must stay flat), and their open file descriptors before
and after. The baseline of the ratios is one probe alone (20 of them, one at a time), in the same run.

    sudo .venv/bin/python bench/serve_load.py [--rates 100,150] [--requests 10000] [--workers 2] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.lab.lab import ZONE, Lab  # noqa: E402

SERVE = "127.0.0.1:9115"
# Open loop: request i starts at i / rate seconds, on its own connection; answers are read as they come.
LOAD = r"""
import asyncio, json, sys, time
url_host, url_port, path, n, rate = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
results = []
async def one(i, start):
    await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
    t = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection(url_host, url_port)
        writer.write(f"GET {path} HTTP/1.0\r\nHost: x\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n".encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readline(), 30)
        body = await reader.read()
        writer.close()
        status = int(head.split()[1])
        verdict = next((l.split(b'code="')[1].split(b'"')[0].decode() for l in body.splitlines()
                        if l.startswith(b"runbook_verdict{") and l.endswith(b" 1.0")), "none")
    except Exception:
        status, verdict = 0, "none"
    results.append((i, status, time.perf_counter() - t, verdict))
    if len(results) % 1000 == 0:
        print(json.dumps({"done": len(results)}), flush=True)
async def main():
    start = time.perf_counter() + 0.1
    await asyncio.gather(*(one(i, start) for i in range(n)))
    print(json.dumps({"wall": time.perf_counter() - start, "results": results}), flush=True)
asyncio.run(main())
"""


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def cpu_s(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of the exporter and its workers."""
    times = [p.cpu_times() for p in tree(pid)]
    return sum(t.user for t in times), sum(t.system for t in times)


def rss_mib(pid: int) -> float:
    return sum(p.memory_info().rss for p in tree(pid)) / 2**20


def fds(pid: int) -> int:
    return sum(p.num_fds() for p in tree(pid))


def run_load(lab: Lab, pid: int, path: str, requests: int, rate: float) -> tuple[dict[str, object], list[float]]:
    host, port = SERVE.split(":")
    proc = subprocess.Popen(
        ["ip", "netns", "exec", lab.client, sys.executable, "-c", LOAD, host, port, path, str(requests), str(rate)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    memory = [rss_mib(pid)]
    result: dict[str, object] = {}
    for line in proc.stdout:
        doc = json.loads(line)
        if "done" in doc:
            memory.append(rss_mib(pid))
        else:
            result = doc
    proc.wait()
    return result, memory


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="100,150", help="probe requests started per second, one run each (a,b)")
    parser.add_argument("--requests", type=int, default=10_000, help="requests of each run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--counts", default="10,0", help="the module's burst sizes to measure (count)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("the lab needs root: run with sudo", file=sys.stderr)
        return 3
    docs = tomllib.loads((ROOT / "docs/prometheus/runbook.toml").read_text())["module"]["resolvers"]
    lab = Lab().up()
    try:
        for count in [int(c) for c in args.counts.split(",")]:
            config = lab.workdir / f"serve-{count}.toml"
            config.write_text(
                "[module.resolvers]\n"
                + "".join(f"{k} = {json.dumps(v)}\n" for k, v in docs.items() if k != "count")
                + f"count = {count}\n"
            )
            serving = lab.serving(
                SERVE, "--config", str(config), "--workers", str(args.workers), "--concurrency", str(args.concurrency)
            )
            with serving as server:
                pid = server.pid  # `ip netns exec` execs the command: this is the exporter itself
                path = f"/probe?target={ZONE}&module=resolvers"
                for _ in range(args.workers):  # every worker has imported the runbook: the baseline is a probe
                    assert lab.http_get(f"http://{SERVE}{path}")[0] == 200
                # The baseline: probes one at a time (4 a second), through the same load generator.
                quiet, _ = run_load(lab, pid, path, 20, 4.0)
                alone = sorted(r[2] for r in quiet["results"])[10]  # type: ignore[attr-defined]
                for rate in [float(r) for r in args.rates.split(",")]:
                    before_fds, cpu0 = fds(pid), cpu_s(pid)
                    load, memory = run_load(lab, pid, path, args.requests, rate)
                    cpu1 = cpu_s(pid)
                    cpu = (cpu1[0] - cpu0[0], cpu1[1] - cpu0[1])
                    time.sleep(1)
                    report(args, Measured(count, rate, alone, load, memory, cpu, (before_fds, fds(pid))))
    finally:
        lab.down()
    return 0


@dataclass(frozen=True)
class Measured:
    """One load run: the module's burst size, the rate asked, and what the exporter did."""

    count: int
    rate: float
    alone: float
    load: dict[str, object]
    memory: list[float]
    cpu: tuple[float, float]
    fds: tuple[int, int]


def report(args: argparse.Namespace, m: Measured) -> None:
    count, rate, alone, load, memory, cpu = m.count, m.rate, m.alone, m.load, m.memory, m.cpu
    before_fds, after_fds = m.fds
    results = load["results"]
    assert isinstance(results, list)
    wall = float(load["wall"])  # type: ignore[arg-type]
    latencies = sorted(t for _, _, t, _ in results)
    statuses: dict[int, int] = {}
    verdicts: dict[str, int] = {}
    for _, status, _, verdict in results:
        statuses[status] = statuses.get(status, 0) + 1
        verdicts[verdict] = verdicts.get(verdict, 0) + 1
    healthy = verdicts.get("healthy", 0)
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99) - 1]
    print(
        f"module count = {count}: {args.requests} probe requests started at {rate:g}/s, "
        f"--workers {args.workers} --concurrency {args.concurrency}"
    )
    print(f"  one probe alone (baseline)   {alone:.3f} s (median of 20, one at a time)")
    print(f"  healthy probes per second    {healthy / wall:.1f} ({healthy} verdicts healthy in {wall:.1f} s)")
    print(f"  latency p50 / p99            {p50:.3f} s / {p99:.3f} s  ({p50 / alone:.1f}x / {p99 / alone:.1f}x alone)")
    print(f"  answers by HTTP status       {dict(sorted(statuses.items()))}")
    print(f"  verdicts                     {dict(sorted(verdicts.items()))}")
    user, system = (c / max(1, len(results)) * 1000 for c in cpu)
    cpu_words = f"{user + system:.1f} ms (user {user:.1f}, system {system:.1f}; the exporter and its workers)"
    print(f"  CPU per probe                {cpu_words}")
    print(f"  memory every 1,000 probes    {', '.join(f'{m:.0f}' for m in memory)} MiB")
    print(f"  open fds                     {before_fds} before, {after_fds} after\n")


if __name__ == "__main__":
    sys.exit(main())
