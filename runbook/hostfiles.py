"""Parsers of the host's resolver files: resolv.conf, hosts and nsswitch.conf.

The parsers are pure (text in, data out) and follow glibc's reading of the files: ``#`` and ``;`` start
comments, the last ``domain``/``search`` line wins, only the first three nameservers are used (MAXNS),
options accumulate.
"""

from __future__ import annotations

import contextlib
import ipaddress
from pathlib import Path

import msgspec

from runbook.errors import InputError
from runbook.evidence import ResolvConfFacts
from runbook.model import Server

GLIBC_MAXNS = 3
SYSTEMD_STUBS = frozenset({"127.0.0.53", "127.0.0.54"})


class ResolvConf(msgspec.Struct, frozen=True):
    path: str
    nameservers: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    options: dict[str, str | bool] = msgspec.field(default_factory=dict)
    ignored: tuple[str, ...] = ()
    """Lines glibc would not use (malformed, unknown keywords, nameservers past the third)."""
    symlink_target: str | None = None

    @property
    def servers(self) -> tuple[Server, ...]:
        return tuple(Server(ns) for ns in self.nameservers[:GLIBC_MAXNS])

    @property
    def timeout_s(self) -> float:
        """glibc's per-try timeout (``options timeout:N``, default 5 s, at most 30)."""
        value = self.options.get("timeout")
        return float(min(int(value), 30)) if isinstance(value, str) and value.isdigit() else 5.0

    @property
    def attempts(self) -> int:
        value = self.options.get("attempts")
        return min(int(value), 5) if isinstance(value, str) and value.isdigit() else 2

    @property
    def systemd_stub(self) -> bool:
        return bool(SYSTEMD_STUBS & set(self.nameservers)) or "systemd/resolve" in (self.symlink_target or "")

    def to_evidence(self) -> ResolvConfFacts:
        return ResolvConfFacts(
            path=self.path,
            nameservers=tuple(self.nameservers),
            used_nameservers=tuple(s.host for s in self.servers),
            search=tuple(self.search),
            options=dict(self.options),
            ignored_lines=tuple(self.ignored),
            symlink_target=self.symlink_target,
            systemd_resolved_stub=self.systemd_stub,
        )


def parse_resolv_conf(text: str, path: str = "/etc/resolv.conf") -> ResolvConf:
    nameservers: list[str] = []
    search: tuple[str, ...] = ()
    options: dict[str, str | bool] = {}
    ignored: list[str] = []
    for line in text.splitlines():
        body = line.split("#", 1)[0].split(";", 1)[0].strip()
        if not body:
            continue
        keyword, *args = body.split()
        if keyword == "nameserver" and len(args) >= 1:
            addr = args[0]
            try:
                ipaddress.ip_address(addr.split("%", 1)[0])
            except ValueError:
                ignored.append(line.strip())
                continue
            if len(nameservers) >= GLIBC_MAXNS:
                ignored.append(line.strip())
            nameservers.append(addr)
        elif keyword in ("search", "domain") and args:
            search = tuple(args) if keyword == "search" else (args[0],)
        elif keyword == "options":
            for opt in args:
                key, sep, value = opt.partition(":")
                options[key] = value if sep else True
        elif keyword in ("sortlist", "lookup", "family"):
            continue
        else:
            ignored.append(line.strip())
    return ResolvConf(path, tuple(nameservers), search, options, tuple(ignored))


def read_resolv_conf(path: Path) -> ResolvConf:
    """Read and parse a resolv.conf; an unreadable file is an :class:`InputError`."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from None
    conf = parse_resolv_conf(text, str(path))
    if path.is_symlink():
        conf = ResolvConf(conf.path, conf.nameservers, conf.search, conf.options, conf.ignored, str(path.resolve()))
    return conf


class HostsEntry(msgspec.Struct, frozen=True):
    line_no: int
    address: str
    names: tuple[str, ...]
    line: str


def parse_hosts(text: str, name: str) -> list[HostsEntry]:
    """The entries of a hosts file that carry ``name`` (case-insensitive, trailing dot ignored)."""
    wanted = {n.lower().rstrip(".") for n in _name_forms(name)}
    found: list[HostsEntry] = []
    for no, line in enumerate(text.splitlines(), 1):
        body = line.split("#", 1)[0].strip()
        if not body:
            continue
        address, *names = body.split()
        try:
            ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            continue
        if any(n.lower().rstrip(".") in wanted for n in names):
            found.append(HostsEntry(no, address, tuple(names), line.strip()))
    return found


def _name_forms(name: str) -> set[str]:
    forms = {name}
    with contextlib.suppress(UnicodeError):
        forms.add(name.encode("idna").decode("ascii"))
    with contextlib.suppress(UnicodeError):
        forms.add(name.rstrip(".").encode("ascii").decode("idna"))
    return forms


def parse_nsswitch_hosts(text: str) -> list[str] | None:
    """The sources of the ``hosts:`` line, in order (``[NOTFOUND=return]`` actions kept), or None."""
    for line in text.splitlines():
        body = line.split("#", 1)[0].strip()
        if body.startswith("hosts:"):
            return body[len("hosts:") :].split()
    return None
