"""Settings of a run, and the validation of everything a user types into them.

Every parser here raises :class:`InputError` with one line that says what is wrong and what was given.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from runbook.errors import InputError
from runbook.model import Server, Target

SYSTEM_RESOLV_CONF = Path("/etc/resolv.conf")
DEFAULT_TIMEOUT = 2.0
MAX_TIMEOUT = 60.0
_CONTROL = re.compile(r"[\x00-\x20\x7f]")


@dataclass(frozen=True)
class Settings:
    """Everything one run needs to know, built by the CLI (or a test) before any I/O."""

    target: Target
    servers: tuple[Server, ...] = ()
    """Servers named on the command line; empty means: those of resolv.conf."""
    resolvers: tuple[Server, ...] = ()
    """Other resolvers to compare the answers with (--resolver)."""
    authoritative: tuple[Server, ...] = ()
    """The zone's authoritative servers (--authoritative); empty means: discover them from NS."""
    expect: tuple[str, ...] = ()
    """Addresses the name should resolve to (--expect): ground truth for the comparison."""
    skip: frozenset[str] = frozenset()
    """Steps switched off (--skip)."""
    timeout: float = DEFAULT_TIMEOUT
    """The budget of every network step; the steps run concurrently, so it bounds the whole run."""
    udp_attempts: int = 3
    burst_count: int = 10
    """Queries in the dnsping-like burst that measures loss and latency of a server that answers."""
    burst_interval: float = 0.02
    max_loss: float = 0.1
    """Loss above this share of the burst is degraded."""
    max_rtt: float = 0.25
    """A median answer time above this many seconds is degraded."""
    ping_count: int = 3
    ping_interval: float = 0.02
    resolv_conf: Path = SYSTEM_RESOLV_CONF
    hosts_file: Path = Path("/etc/hosts")
    nsswitch_conf: Path = Path("/etc/nsswitch.conf")
    systemd_resolv_conf: Path = Path("/run/systemd/resolve/resolv.conf")
    options: dict[str, object] = field(default_factory=dict)

    @property
    def system_lookup(self) -> bool:
        """Whether the system's own lookup (getaddrinfo) goes to the servers being diagnosed: only when
        they are those of the resolv.conf glibc reads."""
        return not self.servers and self.resolv_conf == SYSTEM_RESOLV_CONF

    @property
    def deadline_s(self) -> float:
        """The whole run's deadline: the step budget plus a margin for the work around the probes."""
        return self.timeout + 0.5


def parse_name(text: str) -> Target:
    """A domain name as typed (Unicode allowed) -> a :class:`Target` with its IDNA A-label form."""
    import dns.exception
    import dns.name

    raw = text.strip()
    if not raw or raw != text or _CONTROL.search(raw):
        raise InputError(f"invalid name {text!r}: it must not be empty or contain spaces or control characters")
    if raw == ".":
        return Target(name=".", display=".")
    if ".." in raw or raw.startswith("."):
        raise InputError(f"invalid name {text!r}: empty label")
    try:
        name = dns.name.from_text(raw)
    except dns.name.LabelTooLong:
        raise InputError(f"invalid name {text!r}: a label is longer than 63 octets") from None
    except dns.name.NameTooLong:
        raise InputError(f"invalid name {text!r}: longer than 253 characters") from None
    except dns.exception.DNSException as e:
        raise InputError(f"invalid name {text!r}: {e}") from None
    # Wire form 255 octets = 253 characters of text; dnspython checks the wire form.
    ascii_text = name.to_text(omit_final_dot=True)
    if len(ascii_text) > 253:
        raise InputError(f"invalid name {text!r}: longer than 253 characters")
    return Target(name=name.to_text(), display=raw.rstrip(".") or ".")


def parse_rdtype(text: str) -> str:
    import dns.rdatatype

    try:
        rdtype = dns.rdatatype.from_text(text.strip().upper())
    except (dns.rdatatype.UnknownRdatatype, ValueError):
        raise InputError(f"unknown record type {text!r} (try A, AAAA, MX, TXT, NS, SOA, ...)") from None
    if dns.rdatatype.is_metatype(rdtype) and rdtype != dns.rdatatype.ANY:
        raise InputError(f"record type {text!r} cannot be queried")
    return dns.rdatatype.to_text(rdtype)


def parse_server(text: str) -> Server:
    """``ADDR``, ``ADDR:PORT``, ``[V6]``, ``[V6]:PORT``, a bare IPv6 address, ``fe80::1%eth0``.

    Only addresses: a host name would have to be resolved through the very resolver under suspicion.
    """
    raw = text.strip()
    host, port_text = raw, None
    if raw.startswith("["):
        m = re.fullmatch(r"\[([^\]]+)\](?::(.*))?", raw)
        if not m:
            raise InputError(f"malformed server address {text!r}: expected [IPv6]:PORT")
        host, port_text = m.group(1), m.group(2)
    elif raw.count(":") == 1:
        host, port_text = raw.split(":")
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        raise InputError(f"malformed server address {text!r}: expected an IP address, optionally with :PORT") from None
    if "%" in host and not ipaddress.ip_address(host.split("%", 1)[0]).version == 6:
        raise InputError(f"malformed server address {text!r}: only IPv6 addresses take a %scope")
    port = 53
    if port_text is not None:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise InputError(f"malformed port in {text!r}: expected a number from 1 to 65535")
        port = int(port_text)
    return Server(host=host, port=port)


def parse_timeout(value: float) -> float:
    if not 0.05 <= value <= MAX_TIMEOUT:
        raise InputError(f"timeout {value:g} s is out of range: give 0.05 to {MAX_TIMEOUT:g} seconds")
    return value


def parse_address(text: str) -> str:
    """An IP address (for --expect), normalised."""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise InputError(f"malformed address {text!r}: expected an IPv4 or IPv6 address") from None


def parse_fraction(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise InputError(f"{name} {value:g} is out of range: give a share from 0 to 1 (0.1 is 10 %)")
    return value


def parse_positive(name: str, value: float, most: float) -> float:
    if not 0 < value <= most:
        raise InputError(f"{name} {value:g} is out of range: give more than 0 and at most {most:g}")
    return value


def parse_skip(names: Iterable[str], known: Sequence[str]) -> frozenset[str]:
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError(f"unknown step {unknown[0]!r} for --skip: the steps are {', '.join(known)}")
    return frozenset(names)
