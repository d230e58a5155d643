"""``runbook server``: the evidence on the DNS server itself. Reads only; changes nothing.

The DNS daemons running in this host's network namespace (psutil; a process in another namespace, such as a
container's, is not this server's daemon), their systemd units where systemd runs, who listens on the DNS
port (UDP and TCP, which address, which process), each daemon's own configuration checker, the kernel's UDP
receive errors and the conntrack table over a short window, the daemon's CPU, memory and open files against
its limit, and the last errors of its log. Each is one finding; :mod:`runbook.rules` judges them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from msgspec.structs import replace

from runbook.evidence import (
    ConfigCheck,
    Conntrack,
    Daemon,
    Daemons,
    Journal,
    Listener,
    Listeners,
    Load,
    LogFiles,
    OomKill,
    OomKills,
    Units,
)
from runbook.facts import how_it_ended
from runbook.model import Finding, Status

# Process names of DNS servers -> (unit names, config option in the command line, checker, packaged config)
DAEMONS: dict[str, dict[str, Any]] = {
    "unbound": {
        "units": ("unbound",),
        "opt": ("-c",),
        "check": ["unbound-checkconf", "{conf}"],
        "conf": "/etc/unbound/unbound.conf",
    },
    "named": {
        "units": ("named", "bind9"),
        "opt": ("-c",),
        "check": ["named-checkconf", "-z", "{conf}"],
        "conf": "/etc/bind/named.conf",
    },
    "knotd": {
        "units": ("knot",),
        "opt": ("-c", "--config"),
        "check": ["knotc", "-c", "{conf}", "conf-check"],
        "conf": "/etc/knot/knot.conf",
    },
    "nsd": {"units": ("nsd",), "opt": ("-c",), "check": ["nsd-checkconf", "{conf}"], "conf": "/etc/nsd/nsd.conf"},
    "dnsmasq": {
        "units": ("dnsmasq",),
        "opt": ("-C", "--conf-file"),
        "check": ["dnsmasq", "--test", "--conf-file={conf}"],
        "conf": "/etc/dnsmasq.conf",
    },
    "pdns_server": {"units": ("pdns",), "opt": (), "check": None, "conf": None},
    "pdns_recursor": {"units": ("pdns-recursor",), "opt": (), "check": None, "conf": None},
    "coredns": {"units": ("coredns",), "opt": ("-conf",), "check": None, "conf": None},
    "systemd-resolved": {"units": ("systemd-resolved",), "opt": (), "check": None, "conf": None},
}
LOG_LINES = 10


def _netns(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def daemons() -> Finding:
    """The DNS daemons of this network namespace, with their load against their limits."""
    import psutil

    mine = _netns("self")
    found: list[Daemon] = []
    elsewhere: list[Daemon] = []
    hidden = 0
    for proc in psutil.process_iter(["pid", "ppid", "name", "cmdline", "username"]):
        name = dns_name(proc.info["name"] or "", proc.info["cmdline"])
        if name is None or _daemon_root(proc, name) != proc.pid:  # a daemon's own children are the daemon
            continue
        netns = _netns(proc.pid)
        # Another user's process, read without root: counted as this host's, and said so.
        entry = _daemon_entry(proc, name, None if netns else "unknown (run as root to tell containers apart)")
        hidden += netns is None
        (found if netns in (None, mine) else elsewhere).append(entry)
    evidence = Daemons(daemons=tuple(found), other_namespaces=tuple(elsewhere), netns_unreadable=hidden)
    if not found:
        where = f"; {len(elsewhere)} in other network namespaces (containers), not this server's" if elsewhere else ""
        return Finding("daemons/running", "daemons", Status.CRITICAL, f"no DNS daemon runs here{where}", evidence)
    words = ", ".join(
        f"{d.name} (pid {d.pid}"
        + (f", {d.cpu_percent:.0f}% CPU, {d.fds}/{d.fd_limit} files" if d.fds is not None else "")
        + ")"
        for d in found
    )
    if hidden:
        words += f"; the network namespace of {hidden} could not be read without root"
    return Finding("daemons/running", "daemons", Status.OK, f"running: {words}", evidence)


def dns_name(name: str, cmdline: list[str] | None = None) -> str | None:
    """The DNS daemon a process is, or None. NSD names its processes "nsd: main", "nsd: xfrd", "nsd: server 1"."""
    for candidate in (name, name.split(":", 1)[0].strip(), os.path.basename(cmdline[0]) if cmdline else ""):
        if candidate in DAEMONS:
            return candidate
    return None


def _daemon_root(proc: Any, name: str) -> int:
    """The pid of the daemon ``proc`` belongs to: its furthest ancestor that is the same daemon."""
    import psutil

    root = proc.pid
    with contextlib.suppress(psutil.Error):
        for parent in proc.parents():
            with contextlib.suppress(psutil.Error):
                if dns_name(parent.name(), parent.cmdline()) != name:
                    break
                root = parent.pid
    return int(root)


def _daemon_entry(proc: Any, name: str, netns: str | None) -> Daemon:
    import psutil

    cmdline = proc.info["cmdline"] or []
    entry = Daemon(
        pid=proc.pid,
        name=name,
        cmdline=tuple(cmdline),
        user=proc.info["username"],
        config=config_of(name, cmdline),
        netns=netns,
    )
    with contextlib.suppress(psutil.Error, OSError):
        return replace(
            entry,
            cpu_percent=proc.cpu_percent(interval=None),
            rss_mib=round(proc.memory_info().rss / 2**20, 1),
            fds=proc.num_fds(),
            fd_limit=proc.rlimit(psutil.RLIMIT_NOFILE)[0],
        )
    return entry


def config_of(name: str, cmdline: list[str]) -> str | None:
    """The configuration file the process was started with (its command line), else the packaged one."""
    spec = DAEMONS[name]
    for i, arg in enumerate(cmdline):
        for opt in spec["opt"]:
            if arg == opt and i + 1 < len(cmdline):
                return cmdline[i + 1]
            if arg.startswith(opt + "="):
                return arg.split("=", 1)[1]
            if opt == "-c" and arg.startswith("-c") and len(arg) > 2:
                return arg[2:]
    return spec["conf"] if spec["conf"] and os.path.exists(spec["conf"]) else None


def units() -> Finding | None:
    """The DNS daemons' systemd units, where systemd runs: active state, result, exit status, restarts."""
    if not Path("/run/systemd/system").is_dir() or not shutil.which("systemctl"):
        return None
    names = [f"{u}.service" for spec in DAEMONS.values() for u in spec["units"]]
    props = "Id,LoadState,ActiveState,SubState,Result,ExecMainCode,ExecMainStatus,NRestarts"
    out = _run(["systemctl", "show", f"--property={props}", *names], 5)
    found = []
    for block in out.get("stdout", "").split("\n\n"):
        unit = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if unit.get("LoadState") == "loaded":
            found.append(unit)
    failed = [
        u for u in found if u.get("ActiveState") in ("failed", "inactive") or u.get("Result") not in (None, "success")
    ]
    status = Status.WARNING if failed else Status.OK
    words = "; ".join(f"{u['Id']} {u.get('ActiveState')}/{u.get('SubState')} ({how_it_ended(u)})" for u in found)
    summary = f"systemd: {words or 'no DNS unit'}"
    return Finding("daemons/units", "daemons", status, summary, Units(units=tuple(found)))


# The kernel's own line when it kills a process for memory: "Out of memory: Killed process 1234 (unbound) ...".
OOM_LINE = re.compile(r"Killed process (\d+) \(([^)]+)\)")


def oom_kills(text: str) -> list[OomKill]:
    """The DNS daemons the kernel's OOM killer killed, from kernel log text (dmesg or journalctl -k)."""
    out = []
    for line in text.splitlines():
        m = OOM_LINE.search(line)
        name = dns_name(m.group(2)) if m else None
        if m and name is not None:
            out.append(OomKill(pid=int(m.group(1)), name=name, line=line.strip()[:500]))
    return out[-LOG_LINES:]


def kernel_oom() -> Finding | None:
    """OOM kills of DNS daemons in the kernel's log (dmesg; journalctl -k where dmesg is restricted)."""
    for argv in (["dmesg", "--time-format", "iso"], ["journalctl", "-k", "--no-pager", "-o", "short-iso", "-b"]):
        if shutil.which(argv[0]) is None:
            continue
        out = _run(argv, 5)
        if out.get("exit") == 0:
            kills = oom_kills(out["stdout"])
            if not kills:
                return None
            who = ", ".join(f"{k.name} (pid {k.pid})" for k in kills)
            summary = f"the kernel's log (this machine's, containers' included) says its OOM killer killed {who}"
            return Finding("daemons/oom", "daemons", Status.WARNING, summary, OomKills(kills=tuple(kills)))
    return None


def listeners(port: int) -> Finding:
    """Who listens on the DNS port in this namespace, by protocol, address and process."""
    import psutil

    udp: list[Listener] = []
    tcp: list[Listener] = []
    names: dict[int, str] = {}
    roots: dict[int, tuple[str | None, int]] = {}
    for conn in psutil.net_connections(kind="inet"):
        if not conn.laddr or conn.laddr.port != port:
            continue
        if conn.type == 2 and not conn.raddr:  # SOCK_DGRAM, not connected
            bucket = udp
        elif conn.type == 1 and conn.status == psutil.CONN_LISTEN:
            bucket = tcp
        else:
            continue
        pid = conn.pid
        if pid is not None and pid not in names:
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                names[pid] = proc.name()
                daemon = dns_name(names[pid], proc.cmdline())
                roots[pid] = (daemon, _daemon_root(proc, daemon) if daemon else pid)
        process = names.get(pid) if pid else None
        daemon, root = roots.get(pid, (None, pid)) if pid else (None, None)
        bucket.append(
            Listener(
                address=conn.laddr.ip,
                pid=pid,
                process=process,
                dns_daemon=daemon is not None,
                daemon=daemon,
                daemon_pid=root,
            )
        )
    udp, tcp = _unique(udp), _unique(tcp)
    evidence = Listeners(port=port, udp=tuple(udp), tcp=tuple(tcp))
    if not udp and not tcp:
        return Finding("listeners/port", "listeners", Status.CRITICAL, f"nothing listens on port {port}", evidence)
    words = "; ".join(
        f"{proto.upper()} " + ", ".join(f"{e.address} ({e.process or 'pid ?'})" for e in lst)
        for proto, lst in (("udp", udp), ("tcp", tcp))
        if lst
    )
    return Finding("listeners/port", "listeners", Status.OK, f"port {port}: {words}", evidence)


def _unique(entries: list[Listener]) -> list[Listener]:
    return list({(e.address, e.pid): e for e in entries}.values())


def config_checks(running: Sequence[Daemon], units: Sequence[Mapping[str, str]]) -> list[Finding]:
    """Each daemon's own checker on the configuration it was started with. When none runs, the packaged
    configuration of each daemon whose systemd unit failed or keeps restarting: an installed daemon that is
    not meant to run (its unit inactive, or no systemd) says nothing about this outage."""
    targets = {d.name: d.config for d in running}
    if not targets:
        wanted = {
            u["Id"].removesuffix(".service")
            for u in units
            if u.get("ActiveState") in ("failed", "activating") or u.get("Result") not in (None, "success")
        }
        targets = {
            name: spec["conf"]
            for name, spec in DAEMONS.items()
            if spec["conf"] and os.path.exists(spec["conf"]) and wanted & set(spec["units"])
        }
    out = []
    for name, conf in targets.items():
        check = DAEMONS[name]["check"]
        if not check or not conf or not shutil.which(check[0]):
            continue
        argv = [part.format(conf=conf) for part in check]
        result = _run(argv, 10)
        text = (result.get("stdout", "") + result.get("stderr", "")).strip().splitlines()
        evidence = ConfigCheck(
            daemon=name, config=conf, checker=tuple(argv), exit=result.get("exit"), output=tuple(text[:LOG_LINES])
        )
        if result.get("exit") == 0:
            out.append(
                Finding(f"config/{name}", "config", Status.OK, f"{name}: {conf} checks out ({argv[0]})", evidence)
            )
        elif os.geteuid() != 0:
            # An ordinary user cannot read what the daemon reads (its keys, its included files): a failure here
            # does not prove the configuration invalid.
            first = next((line for line in text if line.strip()), "no output")
            words = f"{name}: {conf} could not be checked as an ordinary user ({first}): run as root"
            out.append(Finding(f"config/{name}", "config", Status.UNKNOWN, words, evidence))
        else:
            first = next((line for line in text if line.strip()), "no output")
            out.append(
                Finding(f"config/{name}", "config", Status.CRITICAL, f"{name}: {conf} is invalid: {first}", evidence)
            )
    return out


def _snmp_udp() -> dict[str, int]:
    try:
        lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Udp:")]
    except OSError:
        return {}
    return dict(zip(lines[0][1:], (int(v) for v in lines[1][1:]), strict=False)) if len(lines) >= 2 else {}


def _read_int(path: str) -> int | None:
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None


def _port_drops(port: int) -> dict[str, int] | None:
    """The kernel's drop counter of each UDP socket bound to ``port`` (/proc/net/udp and udp6, by inode), or None
    where they cannot be read. The namespace's RcvbufErrors count every UDP socket's; these, the DNS port's."""
    found: dict[str, int] = {}
    read = False
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        read = True
        for line in lines:
            fields = line.split()
            if len(fields) >= 13 and int(fields[1].rsplit(":", 1)[1], 16) == port:
                found[fields[9]] = int(fields[-1])
    return found if read else None


def load(window: float, running: Sequence[Daemon], port: int = 53) -> Finding:
    """The kernel's UDP errors over ``window`` seconds (the namespace's, and the DNS port's sockets' drops),
    conntrack's use, the daemons' CPU over the window."""
    import psutil

    before, drops_before = _snmp_udp(), _port_drops(port)
    procs = []
    for d in running:
        with contextlib.suppress(psutil.Error):
            p = psutil.Process(d.pid)
            p.cpu_percent(interval=None)
            procs.append((d, p))
    time.sleep(window)
    after, drops_after = _snmp_udp(), _port_drops(port)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in ("InDatagrams", "RcvbufErrors", "InErrors", "NoPorts")}
    port_drops = None  # a socket made during the window counts from 0; one closed during it is left out
    if drops_before is not None and drops_after is not None:
        port_drops = sum(n - drops_before.get(inode, 0) for inode, n in drops_after.items())
    cpu = {}
    for d, p in procs:
        with contextlib.suppress(psutil.Error):
            cpu[d.name] = p.cpu_percent(interval=None)
    conntrack = Conntrack(
        count=_read_int("/proc/sys/net/netfilter/nf_conntrack_count"),
        max=_read_int("/proc/sys/net/netfilter/nf_conntrack_max"),
    )
    rate = delta["InDatagrams"] / window
    evidence = Load(
        window_s=window,
        udp=delta,
        port_drops=port_drops,
        udp_in_per_s=round(rate, 1),
        conntrack=conntrack,
        cpu_percent=cpu,
    )
    words = (
        f"over {window:g} s: {rate:.0f} UDP datagrams/s in, {delta['RcvbufErrors']} receive-buffer errors"
        + (f" ({port_drops} dropped at port {port}'s sockets)" if port_drops is not None else "")
        + f", {delta['NoPorts']} to closed ports"
    )
    if conntrack.count is not None and conntrack.max:
        words += f"; conntrack {conntrack.count}/{conntrack.max}"
    if cpu:
        words += "; CPU " + ", ".join(f"{n} {c:.0f}%" for n, c in cpu.items())
    return Finding("load/kernel", "load", Status.OK, words, evidence)


# Where each daemon's configuration names its own log file (a path, not syslog or standard error).
LOG_FILE_OPTIONS: dict[str, str] = {
    "unbound": r"^\s*logfile:\s*\"?([^\"\s#]+)",
    "nsd": r"^\s*logfile:\s*\"?([^\"\s#]+)",
    "knotd": r"^\s*-?\s*target:\s*\"?(/[^\"\s#]+)",
    "dnsmasq": r"^\s*log-facility=(/\S+)",
    "named": r"^\s*file\s+\"(/[^\"]+)\"",
}
# The lines of a log file worth quoting: the daemons' own words for trouble.
TROUBLE = re.compile(r"\b(error|fatal|fail|crit|warn|refused|denied|cannot|could not|unable)", re.IGNORECASE)
TAIL_BYTES = 65_536


def log_files(running: Sequence[Daemon]) -> Finding | None:
    """The last lines that speak of trouble in the log files the daemons' configurations name (the end of each
    file only: a server under attack may have a large log)."""
    lines: list[str] = []
    read: dict[str, str] = {}
    unread: dict[str, str] = {}
    for d in running:
        for path in _log_paths(d):
            if not os.path.isabs(path):  # relative to the daemon's own directory or chroot: not guessed
                unread[path] = "a relative path (the daemon's directory is not known here)"
                continue
            try:
                tail = _tail(path)
            except OSError as e:
                unread[path] = f"unreadable ({e.strerror})" + (": run as root" if e.errno == errno.EACCES else "")
                continue
            read[path] = d.name
            lines += [f"{d.name}: {line[:500]}" for line in tail if TROUBLE.search(line)][-LOG_LINES:]
    if not read and not unread:
        return None
    lines = lines[-LOG_LINES:]
    evidence = LogFiles(files=read, unread=unread, lines=tuple(lines))
    if not read:
        words = "; ".join(f"{p}: {why}" for p, why in unread.items())
        return Finding(
            "log/files", "log", Status.UNKNOWN, f"the daemons' log files could not be read: {words}", evidence
        )
    where = ", ".join(read)
    if not lines:
        return Finding("log/files", "log", Status.OK, f"no warnings or errors at the end of {where}", evidence)
    summary = f"{len(lines)} warnings and errors at the end of {where}: {lines[-1]}"
    return Finding("log/files", "log", Status.WARNING, summary, evidence)


def _log_paths(d: Daemon) -> list[str]:
    pattern, conf = LOG_FILE_OPTIONS.get(d.name), d.config
    if not pattern or not conf:
        return []
    try:
        return list(dict.fromkeys(re.findall(pattern, Path(conf).read_text(errors="replace"), re.MULTILINE)))
    except OSError:
        return []


def _tail(path: str) -> list[str]:
    """The lines of the file's last TAIL_BYTES (a first line cut by the seek is left out)."""
    with open(path, "rb") as f:
        start = max(0, os.fstat(f.fileno()).st_size - TAIL_BYTES)
        f.seek(start)
        text = f.read().decode(errors="replace").splitlines()
    return text[1:] if start else text


def logs(unit_names: list[str]) -> Finding | None:
    """The last warnings and errors of the DNS units' journal, a bounded number of lines."""
    if not unit_names or not shutil.which("journalctl"):
        return None
    args = ["journalctl", "--no-pager", "-o", "short-iso", "-p", "warning", "-n", str(LOG_LINES), "--since", "-1h"]
    for unit in unit_names:
        args += ["-u", unit]
    result = _run(args, 5)
    lines = [line for line in result.get("stdout", "").splitlines() if line and not line.startswith("--")]
    if not lines:
        return None
    return Finding(
        "log/journal",
        "log",
        Status.WARNING,
        f"{len(lines)} warnings and errors in the last hour: " + lines[-1],
        Journal(lines=tuple(lines)),
    )


def _run(argv: list[str], timeout: float) -> dict[str, Any]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"exit": None, "stdout": "", "stderr": str(e)}
    return {"exit": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}


def names_address(entry: Daemon, address: str) -> bool:
    """Does the daemon's command line or configuration name ``address``?"""
    if any(address in arg for arg in entry.cmdline):
        return True
    conf = entry.config
    if not conf:
        return False
    try:
        return (
            re.search(rf"(?<![\d.]){re.escape(address)}(?![\d.])", Path(conf).read_text(errors="replace")) is not None
        )
    except OSError:
        return False
