"""How long the firewall step takes on large rulesets: 1,000, 10,000 and 20,000 rules, read once, evaluated per
server.

Builds a ruleset of N rules (an output chain of accepts for other addresses and ports, a user chain, a
named set, and at the end the drop of UDP 53 that decides), then measures, in this process:

- the baseline: ``json.loads`` of the ``nft -j`` document (what any reader of the ruleset pays);
- parsing it into the evaluator's model, and evaluating the 4 packets of one server (UDP/TCP, query and
  answer) for 1 and for 10 servers: the ruleset is read once, whatever the number of servers.

As root it also loads the ruleset into a network namespace of its own and times the real reading of it
(``nft -j list ruleset`` and the iptables-save variants, concurrently) as the step does it. Rule texts are
fetched afterwards for the cited chains only (``nft -a list chain``).

    python bench/firewall_eval.py [--rules 1000,10000,20000]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from checks import netfilter


def ruleset_text(n: int) -> str:
    lines = [
        "table inet bench {",
        "  set blocked { type ipv4_addr; flags interval; elements = { 192.0.2.0/24 } }",
        "  chain user { ip daddr @blocked drop; return; }",
        "  chain out { type filter hook output priority 0; policy accept;",
    ]
    for i in range(n - 2):
        a, b = divmod(i, 250)
        lines.append(f"    ip daddr 10.{a % 250}.{b}.1 tcp dport {1024 + i % 30000} accept")
    lines += ["    jump user", "    udp dport 53 counter drop", "  }", "}"]
    return "\n".join(lines) + "\n"


def ruleset_json(n: int) -> dict[str, object]:
    items: list[dict[str, object]] = [
        {"table": {"family": "inet", "name": "bench"}},
        {
            "set": {
                "family": "inet",
                "table": "bench",
                "name": "blocked",
                "elem": [{"prefix": {"addr": "192.0.2.0", "len": 24}}],
            }
        },
        {"chain": {"family": "inet", "table": "bench", "name": "user"}},
        {"chain": {"family": "inet", "table": "bench", "name": "out", "hook": "output", "prio": 0, "policy": "accept"}},
    ]

    def rule(chain: str, handle: int, expr: list[object]) -> dict[str, object]:
        return {"rule": {"family": "inet", "table": "bench", "chain": chain, "handle": handle, "expr": expr}}

    for i in range(n - 2):
        a, b = divmod(i, 250)
        items.append(
            rule(
                "out",
                i + 10,
                [
                    {
                        "match": {
                            "op": "==",
                            "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                            "right": f"10.{a % 250}.{b}.1",
                        }
                    },
                    {
                        "match": {
                            "op": "==",
                            "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                            "right": 1024 + i % 30000,
                        }
                    },
                    {"accept": None},
                ],
            )
        )
    items.append(rule("out", n + 10, [{"jump": {"target": "user"}}]))
    items.append(
        rule(
            "out",
            n + 11,
            [
                {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 53}},
                {"counter": None},
                {"drop": None},
            ],
        )
    )
    return {"nftables": items}


def packets(servers: int) -> list[netfilter.Packet]:
    me = ipaddress.ip_address("198.51.100.15")
    out = []
    for i in range(servers):
        server = ipaddress.ip_address(f"203.0.113.{i + 2}")
        for proto in ("udp", "tcp"):
            out.append(netfilter.Packet("output", 4, proto, me, server, (32768, 60999), (53, 53), "new", oif="eth0"))
            out.append(
                netfilter.Packet("input", 4, proto, server, me, (53, 53), (32768, 60999), "established", iif="eth0")
            )
    return out


def best(f: object, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        f()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def measure(n: int) -> None:
    text = json.dumps(ruleset_json(n))
    baseline = best(lambda: json.loads(text))
    document = json.loads(text)

    def parse_as_the_step_does() -> None:
        with netfilter.no_gc():
            netfilter.parse_nft(document)

    parse = best(parse_as_the_step_does)
    tables = netfilter.parse_nft(document)
    decision = netfilter.evaluate(tables, packets(1)[0])
    assert decision.verdict == "drop", decision
    one = best(lambda: [netfilter.evaluate(tables, p) for p in packets(1)])
    ten = best(lambda: [netfilter.evaluate(tables, p) for p in packets(10)])
    read = real_read(n) if os.geteuid() == 0 else None
    print(
        f"{n:>7} rules {len(text) / 1e6:6.1f} MB   json.loads {baseline * 1000:7.1f} ms   parse {parse * 1000:7.1f} ms "
        f"({parse / baseline:.2f}x)   evaluate 1 server {one * 1000:6.1f} ms ({one / baseline:.2f}x), 10 servers "
        f"{ten * 1000:6.1f} ms   real read {f'{read * 1000:.0f} ms' if read is not None else '(needs root)'}"
    )


def real_read(n: int) -> float:
    """The step's own reading, in a namespace holding the ruleset: nft -j and the iptables-saves, at once."""
    ns = f"rbkbench{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=ruleset_text(n), text=True, check=True)
        code = (
            "import asyncio,time; from checks import firewall; t=time.perf_counter(); "
            "r=asyncio.run(firewall.read_rulesets(60)); assert not r.unread, r.problems; "
            "print(f'{time.perf_counter()-t:.3f}')"
        )
        out = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        return float(out.stdout.strip())
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", default="1000,10000,20000", help="ruleset sizes, one measurement each (a,b)")
    args = parser.parse_args()
    print("best of 5; the baseline of the ratios is json.loads of the same nft -j document")
    for n in [int(x) for x in args.rules.split(",")]:
        measure(n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
