"""Step 1, ``hostconf``: the local resolver setup the browser's lookup went through.

resolv.conf (already read by the engine, once), the /etc/hosts entries for the name, the ``hosts:``
order of nsswitch.conf, and the systemd-resolved stub with the upstreams it hides.
"""

from __future__ import annotations

from pathlib import Path

from runbook.context import Clock, Context
from runbook.hostfiles import parse_hosts, parse_nsswitch_hosts, read_resolv_conf
from runbook.model import Finding, Status


def _read(path: Path) -> tuple[str | None, str | None]:
    try:
        return path.read_text(encoding="utf-8", errors="replace"), None
    except OSError as e:
        return None, f"cannot read {path}: {e.strerror or e}"


async def run(ctx: Context) -> list[Finding]:
    settings = ctx.settings
    findings: list[Finding] = []

    clock = Clock()
    conf = ctx.resolv
    if conf is None:
        findings.append(
            ctx.finding(
                "resolv.conf",
                Status.WARNING,
                ctx.resolv_error or "resolv.conf was not read",
                {"path": str(settings.resolv_conf), "error": ctx.resolv_error},
                clock=clock,
            )
        )
    else:
        evidence = conf.to_evidence()
        notes: list[str] = []
        status = Status.OK
        invalid = [line for line in conf.ignored if line.split()[0] == "nameserver"]
        if invalid:
            status = Status.WARNING
            notes.append(
                "invalid nameserver line(s), ignored by glibc (an IP address only, no port or name): "
                + "; ".join(repr(line) for line in invalid)
            )
        if not conf.nameservers:
            status = Status.WARNING
            notes.append("no usable nameserver line: glibc would fall back to 127.0.0.1")
        if len(conf.nameservers) > 3:
            status = Status.WARNING
            notes.append(f"{len(conf.nameservers)} nameservers, but glibc uses only the first 3")
        if conf.systemd_stub:
            upstream_path = settings.systemd_resolv_conf
            try:
                upstream = read_resolv_conf(upstream_path)
                evidence["systemd_upstreams"] = list(upstream.nameservers)
                notes.append(
                    "systemd-resolved stub: the real upstream servers are "
                    + (", ".join(upstream.nameservers) or "not listed")
                    + f" ({upstream_path})"
                )
            except Exception as e:  # the upstream file is optional evidence
                evidence["systemd_upstreams_error"] = str(e)
                notes.append("systemd-resolved stub: its upstream servers could not be read")
        servers = ", ".join(conf.nameservers[:3]) or "none"
        opts = " ".join(k if v is True else f"{k}:{v}" for k, v in conf.options.items())
        summary = f"{conf.path}: nameservers {servers}" + (f"; options {opts}" if opts else "")
        if notes:
            summary += "; " + "; ".join(notes)
        findings.append(ctx.finding("resolv.conf", status, summary, evidence, clock=clock))

    clock = Clock()
    text, error = _read(settings.hosts_file)
    if text is None:
        findings.append(
            ctx.finding(
                "hosts",
                Status.WARNING,
                error or "",
                {"path": str(settings.hosts_file), "error": error},
                clock=clock,
            )
        )
    else:
        name = ctx.settings.target.name
        entries = parse_hosts(text, name.rstrip(".")) + (
            parse_hosts(text, ctx.settings.target.display) if ctx.settings.target.display != name else []
        )
        unique = list({e.line_no: e for e in entries}.values())
        evidence_entries = [
            {"line": e.line_no, "address": e.address, "names": list(e.names), "text": e.line} for e in unique
        ]
        if evidence_entries:
            addrs = ", ".join(e.address for e in unique)
            summary = f"{settings.hosts_file} pins {ctx.settings.target.display} to {addrs}: DNS is not asked"
            status = Status.WARNING
        else:
            summary = f"{settings.hosts_file} has no entry for {ctx.settings.target.display}"
            status = Status.OK
        findings.append(
            ctx.finding(
                "hosts",
                status,
                summary,
                {"path": str(settings.hosts_file), "entries": evidence_entries},
                clock=clock,
            )
        )

    clock = Clock()
    text, error = _read(settings.nsswitch_conf)
    sources = parse_nsswitch_hosts(text) if text is not None else None
    if sources is None:
        summary = f"{settings.nsswitch_conf}: no hosts line (glibc default: dns [!UNAVAIL=return] files)"
        findings.append(
            ctx.finding(
                "nsswitch",
                Status.OK,
                summary,
                {"path": str(settings.nsswitch_conf), "hosts": None, "error": error},
                clock=clock,
            )
        )
    else:
        uses_dns = any(s in ("dns", "resolve") for s in sources)
        status = Status.OK if uses_dns else Status.WARNING
        summary = f"hosts: {' '.join(sources)}" + ("" if uses_dns else " (DNS is not consulted)")
        findings.append(
            ctx.finding(
                "nsswitch", status, summary, {"path": str(settings.nsswitch_conf), "hosts": sources}, clock=clock
            )
        )
    return findings
