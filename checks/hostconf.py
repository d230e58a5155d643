"""Step 1, ``hostconf``: the local resolver setup the browser's lookup went through.

resolv.conf (already read by the engine, once), the /etc/hosts entries for the name, the ``hosts:``
order of nsswitch.conf, and the systemd-resolved stub with the upstreams it hides.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from runbook.context import Clock, Context
from runbook.evidence import HostsEntry, HostsFacts, NsswitchFacts, ResolvConfFacts
from runbook.hostfiles import parse_hosts, parse_nsswitch_hosts, read_resolv_conf
from runbook.model import Finding, Status


def _read(path: Path) -> tuple[str | None, str | None]:
    try:
        return path.read_text(encoding="utf-8", errors="replace"), None
    except OSError as e:
        return None, f"cannot read {path}: {e.strerror or e}"


async def run(ctx: Context) -> list[Finding]:
    return [_resolv_conf(ctx), _hosts(ctx), _nsswitch(ctx)]


def _resolv_conf(ctx: Context) -> Finding:
    settings = ctx.settings
    clock = Clock()
    conf = ctx.resolv
    if conf is None:
        return ctx.finding(
            "resolv.conf",
            Status.WARNING,
            ctx.resolv_error or "resolv.conf was not read",
            ResolvConfFacts(path=str(settings.resolv_conf), error=ctx.resolv_error),
            clock=clock,
        )
    evidence = conf.to_evidence()
    notes: list[str] = []
    invalid = [line for line in conf.ignored if line.split()[0] == "nameserver"]
    if invalid:
        notes.append(
            "invalid nameserver line(s), ignored by glibc (an IP address only, no port or name): "
            + "; ".join(repr(line) for line in invalid)
        )
    if not conf.nameservers:
        notes.append("no usable nameserver line: glibc would fall back to 127.0.0.1")
    if len(conf.nameservers) > 3:
        notes.append(f"{len(conf.nameservers)} nameservers, but glibc uses only the first 3")
    status = Status.WARNING if notes else Status.OK
    if conf.systemd_stub:
        note, evidence = _systemd_upstreams(settings.systemd_resolv_conf, evidence)
        notes.append(note)
    servers = ", ".join(conf.nameservers[:3]) or "none"
    opts = " ".join(k if v is True else f"{k}:{v}" for k, v in conf.options.items())
    summary = f"{conf.path}: nameservers {servers}" + (f"; options {opts}" if opts else "")
    if notes:
        summary += "; " + "; ".join(notes)
    return ctx.finding("resolv.conf", status, summary, evidence, clock=clock)


def _systemd_upstreams(upstream_path: Path, evidence: ResolvConfFacts) -> tuple[str, ResolvConfFacts]:
    """The servers the systemd-resolved stub hides (a note; the evidence gets them, or why not)."""
    try:
        upstream = read_resolv_conf(upstream_path)
    except Exception as e:  # the upstream file is optional evidence
        note = "systemd-resolved stub: its upstream servers could not be read"
        return note, msgspec.structs.replace(evidence, systemd_upstreams_error=str(e))
    note = (
        "systemd-resolved stub: the real upstream servers are "
        + (", ".join(upstream.nameservers) or "not listed")
        + f" ({upstream_path})"
    )
    return note, msgspec.structs.replace(evidence, systemd_upstreams=tuple(upstream.nameservers))


def _hosts(ctx: Context) -> Finding:
    settings, target = ctx.settings, ctx.settings.target
    clock = Clock()
    text, error = _read(settings.hosts_file)
    if text is None:
        failed = HostsFacts(path=str(settings.hosts_file), error=error)
        return ctx.finding("hosts", Status.WARNING, error or "", failed, clock=clock)
    entries = parse_hosts(text, target.name.rstrip(".")) + (
        parse_hosts(text, target.display) if target.display != target.name else []
    )
    unique = list({e.line_no: e for e in entries}.values())
    evidence_entries = tuple(
        HostsEntry(line=e.line_no, address=e.address, names=tuple(e.names), text=e.line) for e in unique
    )
    if evidence_entries:
        addrs = ", ".join(e.address for e in unique)
        summary = f"{settings.hosts_file} pins {target.display} to {addrs}: DNS is not asked"
        status = Status.WARNING
    else:
        summary = f"{settings.hosts_file} has no entry for {target.display}"
        status = Status.OK
    evidence = HostsFacts(path=str(settings.hosts_file), entries=evidence_entries)
    return ctx.finding("hosts", status, summary, evidence, clock=clock)


def _nsswitch(ctx: Context) -> Finding:
    path = ctx.settings.nsswitch_conf
    clock = Clock()
    text, error = _read(path)
    sources = parse_nsswitch_hosts(text) if text is not None else None
    if sources is None:
        summary = f"{path}: no hosts line (glibc default: dns [!UNAVAIL=return] files)"
        evidence = NsswitchFacts(path=str(path), error=error)
        return ctx.finding("nsswitch", Status.OK, summary, evidence, clock=clock)
    uses_dns = any(s in ("dns", "resolve") for s in sources)
    status = Status.OK if uses_dns else Status.WARNING
    summary = f"hosts: {' '.join(sources)}" + ("" if uses_dns else " (DNS is not consulted)")
    return ctx.finding("nsswitch", status, summary, NsswitchFacts(path=str(path), hosts=tuple(sources)), clock=clock)
