"""``runbook server``: on the DNS server itself, the cause. Reads only; changes nothing on the server.

Gathers :mod:`checks.host`'s evidence (the configuration checkers and this host's firewall run while the load
is measured over ``window`` seconds), asks the host rules of the table (:mod:`runbook.rules`), and makes a run
document of command ``server`` that reads with the client's as one incident.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time

from msgspec.structs import replace

from checks import control, host
from runbook import __version__
from runbook.config import Settings
from runbook.diagnosis import diagnose_host
from runbook.errors import InputError
from runbook.evidence import (
    ConfigCheck,
    ControlView,
    Daemon,
    Daemons,
    E,
    Failure,
    Listeners,
    Load,
    OomKills,
    Units,
)
from runbook.facts import HostFacts
from runbook.model import Finding, Run, Server, Status, Target, steps_of

STEPS = (
    ("daemons", "The DNS daemons of this host"),
    ("listeners", "Who listens on the DNS port"),
    ("config", "The daemons' own configuration checks"),
    ("firewall", "This host's firewall for DNS coming in"),
    ("control", "The daemons' own view (their control channels)"),
    ("load", "Load, and signs of an attack"),
    ("log", "The daemons' recent errors"),
)


def check(addresses: tuple[str, ...], port: int, window: float, *, explain: bool = False) -> Run:
    if not 0 < window <= 60:
        raise InputError(f"--window {window:g} is out of range: give more than 0 and at most 60 seconds")
    started_wall, started = time.time(), time.monotonic()
    running = host.daemons()
    oom = host.kernel_oom()
    listening = host.listeners(port)
    daemons = list(running.evidence.daemons) if isinstance(running.evidence, Daemons) else []
    assert isinstance(listening.evidence, Listeners)
    addresses = addresses or _default_addresses(listening.evidence)
    units = host.units()
    unit_list = list(units.evidence.units) if units and isinstance(units.evidence, Units) else []
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        configs = pool.submit(host.config_checks, daemons, unit_list)
        walls = pool.submit(_firewall, addresses, port, max(1.0, window))
        first = control.read(daemons)  # the daemons' counters at the start of the window, and at its end
        load = host.load(window, daemons, port)
        views = control.findings(daemons, first, control.read(daemons), window)
        findings = [
            running,
            *(f for f in (oom, units) if f),
            listening,
            *configs.result(),
            *walls.result(),
            *views,
            load,
        ]
    unit_ids = [u["Id"] for u in unit_list]
    findings += [log for log in (host.logs(unit_ids), host.log_files(daemons)) if log is not None]
    facts = _facts(addresses, port, findings, daemons)
    verdict = diagnose_host(facts, [f.id for f in findings], explain=explain)
    steps = steps_of(STEPS, findings, "nothing to report")
    from runbook.model import new_run_id

    return Run(
        run_id=new_run_id(started_wall),
        tool_version=__version__,
        target=Target(".", "this server"),
        servers=tuple(Server(a, port) for a in addresses),
        servers_from="runbook server (this host)",
        started_at=started_wall,
        duration_s=time.monotonic() - started,
        steps=steps,
        verdict=verdict,
        options={"window_s": window, "port": port},
        command="server",
    )


def _default_addresses(listening: Listeners) -> tuple[str, ...]:
    """Without --address: the non-loopback addresses a daemon listens on, else this host's own."""
    import psutil

    seen = [e.address for e in (*listening.udp, *listening.tcp)]
    found = [a for a in dict.fromkeys(seen) if not a.startswith("127.") and a not in ("::1", "0.0.0.0", "::")]
    if found:
        return tuple(found)
    own = [
        a.address
        for addrs in psutil.net_if_addrs().values()
        for a in addrs
        if a.family.name == "AF_INET" and not a.address.startswith("127.")
    ]
    if not own:
        raise InputError("this host has no address but loopback: give the one clients use with --address")
    return tuple(own[:1])


def _firewall(addresses: tuple[str, ...], port: int, budget: float) -> list[Finding]:
    """The existing evaluator, for a server on this host: the query coming in, the answer going out."""
    from checks import firewall
    from runbook.context import Context
    from runbook.model import Target as T

    settings = replace(Settings(T(".", ".")), timeout=budget)
    servers = tuple(Server(a, port) for a in addresses)

    async def run() -> list[Finding]:
        ctx = Context("firewall", settings, servers, None, None, time.monotonic() + budget)
        return await firewall.run(ctx)

    try:
        return asyncio.run(run())
    except Exception as e:  # the firewall's evidence is optional: say why it is missing
        summary = f"the rules could not be read: {e}"
        return [Finding("firewall/error", "firewall", Status.UNKNOWN, summary, Failure(error=str(e)))]


def _facts(addresses: tuple[str, ...], port: int, findings: list[Finding], daemons: list[Daemon]) -> HostFacts:
    def kind(kind: type[E]) -> list[E]:
        return [f.evidence for f in findings if isinstance(f.evidence, kind)]

    listening = kind(Listeners)[0]
    running = kind(Daemons)
    units = kind(Units)
    return HostFacts(
        addresses=addresses,
        port=port,
        daemons=tuple(daemons),
        other_namespaces=running[0].other_namespaces if running else (),
        units=units[0].units if units else (),
        udp=listening.udp,
        tcp=listening.tcp,
        invalid_configs=tuple(
            f.evidence for f in findings if isinstance(f.evidence, ConfigCheck) and f.status is Status.CRITICAL
        ),
        load=kind(Load)[0],
        controls=tuple(v for v in kind(ControlView) if v.signs),
        oom=tuple(k for o in kind(OomKills) for k in o.kills),
        firewall_blocks=tuple(f.summary for f in findings if f.step == "firewall" and f.status is Status.CRITICAL),
        named={a: tuple(d.name for d in daemons if host.names_address(d, a)) for a in addresses},
    )
