"""The runbook as data: the ordered steps of DESIGN §2 that exist so far, with what each one needs.

A new check is one module in ``checks/`` and one line here.
"""

from __future__ import annotations

from dataclasses import dataclass

from checks import compare, firewall, hostconf, ping, resolve, tcp53, udp53, web
from runbook.context import Check


@dataclass(frozen=True)
class Step:
    id: str
    title: str
    check: Check
    needs: tuple[str, ...] = ()
    network: bool = True
    """A network step probes servers; it is skipped when there is no server to probe."""


RUNBOOK: tuple[Step, ...] = (
    Step("hostconf", "Local resolver setup", hostconf.run, network=False),
    Step("resolve", "Resolve the name", resolve.run),
    Step("udp53", "DNS over UDP port 53", udp53.run),
    Step("tcp53", "DNS over TCP port 53", tcp53.run),
    Step("ping", "Is the server host up?", ping.run),
    Step("compare", "Other resolvers and the authoritative servers", compare.run),
    Step("firewall", "This host's firewall rules for DNS", firewall.run),
    Step("web", "Can the site be reached?", web.run, needs=("resolve",)),
)
STEP_IDS = tuple(s.id for s in RUNBOOK)
