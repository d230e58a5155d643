"""The runbook as data: the ordered steps of DESIGN §2 that exist so far, with what each one needs.

A new check is one module in ``checks/`` and one line here.
"""

from __future__ import annotations

import msgspec

from checks import compare, dot, firewall, hostconf, ping, resolve, tcp53, udp53, web
from runbook import diagnosis as d
from runbook.context import Check


class Step(msgspec.Struct, frozen=True):
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
    Step("dot", "DNS over TLS on port 853", dot.run),
)
STEP_IDS = tuple(s.id for s in RUNBOOK)


class SingleStep(msgspec.Struct, frozen=True):
    """``runbook COMMAND``: one step of the runbook alone (DESIGN §4)."""

    steps: tuple[str, ...]
    """The steps it runs, besides hostconf (which says where the servers came from)."""
    supports: frozenset[str]
    """The verdict codes its own evidence can support; any other diagnosis becomes a ``step-result``."""
    uses: frozenset[str] = frozenset()
    """The comparison options it reads (--resolver, --authoritative, --expect); others are refused."""


_SERVER_CODES = frozenset(
    {
        d.SERVICE_DOWN,
        d.PORT_FILTERED,
        d.BLOCKED_IN_PATH,
        d.LOCAL_FIREWALL,
        d.UNREACHABLE,
        d.REFUSED,
        d.TCP_FALLBACK,
        d.DEGRADED,
        d.INCONCLUSIVE,
        d.NO_RESOLVER,
    }
)
_ANSWER_CODES = frozenset({d.HEALTHY, d.DNSSEC, d.UPSTREAM, d.NXDOMAIN, d.MISMATCH})
SINGLE_STEPS: dict[str, SingleStep] = {
    "resolve": SingleStep(("resolve",), _SERVER_CODES | _ANSWER_CODES),
    "probe": SingleStep(("udp53", "tcp53"), _SERVER_CODES | _ANSWER_CODES),
    "ping": SingleStep(("ping",), frozenset({d.NO_RESOLVER})),
    "compare": SingleStep(
        ("resolve", "compare"), _SERVER_CODES | _ANSWER_CODES, frozenset({"resolver", "authoritative", "expect"})
    ),
    "firewall": SingleStep(("firewall",), frozenset({d.LOCAL_FIREWALL, d.NO_RESOLVER})),
    "hostconf": SingleStep((), frozenset({d.NO_RESOLVER, d.HOSTS_OVERRIDE})),
    "web": SingleStep(("resolve", "web"), frozenset({d.SITE_DOWN, d.NO_RESOLVER})),
}
