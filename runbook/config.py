"""Settings of a run, and the validation of everything a user types into them.

Every parser here raises :class:`InputError` with one line that says what is wrong and what was given.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from runbook.errors import InputError
from runbook.model import Server, Target

SYSTEM_RESOLV_CONF = Path("/etc/resolv.conf")
MAX_TIMEOUT = 60.0
_CONTROL = re.compile(r"[\x00-\x20\x7f]")


class Settings(msgspec.Struct, frozen=True):
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
    timeout: float = 2.0
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
    packet_log: bool = True
    """Write the probes' packet lines (tcpdump notation) into the evidence; the exporter needs none."""
    discovery_cache_s: float = 0.0
    """Reuse this process's discovery of the zone's name servers for up to this long (and never past its DNS
    TTL); 0, a run on the command line, always discovers afresh. The exporter reuses it."""
    website: bool = False
    """The name is a website (--web, ``web = true``): a site that refuses connections is then critical."""
    origin: str = "command line"
    """Where servers named in these settings came from: the command line, or ``config FILE:LINE``."""
    explain: bool = False
    """Keep every rule's test in the verdict (--explain)."""
    options: dict[str, object] = msgspec.field(default_factory=dict)

    @property
    def system_lookup(self) -> bool:
        """Whether the system's own lookup (getaddrinfo) goes to the servers being diagnosed: only when
        they are those of the resolv.conf glibc reads."""
        return not self.servers and self.resolv_conf == SYSTEM_RESOLV_CONF

    @property
    def deadline_s(self) -> float:
        """The whole run's deadline: the step budget plus a margin for the work around the probes."""
        return self.timeout + 0.5


DEFAULTS = Settings(Target(".", "."))
"""The one place of every default: the CLI's options, build(), runbook.toml and the exporter's modules."""


def parse_verdict_code(text: str, what: str = "--verdict") -> str:
    """A verdict code as the rule table names it, or an error with the nearest code."""
    import difflib

    from runbook.diagnosis import STATUS

    if text in STATUS:
        return text
    near = difflib.get_close_matches(text, list(STATUS), n=1, cutoff=0.5)
    hint = f"did you mean {near[0]!r}?" if near else f"the codes are {', '.join(STATUS)}"
    raise InputError(f"{what} {text!r} is not a verdict code: {hint}")


def parse_name(text: str) -> Target:
    """A domain name as typed (Unicode allowed) -> a :class:`Target` with its IDNA A-label form."""
    import dns.exception
    import dns.name

    raw = text.strip()
    if not raw or raw != text or _CONTROL.search(raw):
        raise InputError(f"invalid name {text!r}: it must not be empty or contain spaces or control characters")
    _not_a_name(raw)
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


def _not_a_name(raw: str) -> None:
    """What people paste instead of a name (a URL, an e-mail address, host:port, an address, dig's @SERVER),
    refused with the likely intent rather than queried literally."""
    if raw.startswith("@"):
        raise InputError(
            f"{raw!r} is dig's way to name the server; here it is `--server {raw[1:]}` (runbook diagnose NAME "
            f"--server {raw[1:]})"
        )
    if "://" in raw or "/" in raw:
        host = re.sub(r"^[a-z][a-z0-9+.-]*://", "", raw, flags=re.I).split("/", 1)[0].rsplit("@", 1)[-1]
        host = re.sub(r":\d+$", "", host)
        raise InputError(f"{raw!r} is a URL, not a name: did you mean {host}?")
    if "@" in raw:
        raise InputError(f"{raw!r} is not a name: did you mean {raw.rsplit('@', 1)[1]}?")
    try:
        ipaddress.ip_address(raw.strip("[]").split("%", 1)[0])
    except ValueError:
        pass
    else:
        raise InputError(
            f"{raw!r} is an address, not a name: to find its name, use --type PTR; to diagnose the DNS server at "
            f"that address, give it with --server (runbook diagnose NAME --server {raw})"
        )
    m = re.fullmatch(r"(.+):(\d+)", raw)
    if m:
        raise InputError(
            f"{raw!r} has a port, which names do not: did you mean {m.group(1)}? (a DNS server's port goes with "
            f"--server ADDR:PORT)"
        )


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
        if ":" not in host:
            plain = host + (f":{port_text}" if port_text else "")
            raise InputError(f"malformed server address {text!r}: brackets are for IPv6 only; write {plain}")
    elif raw.count(":") == 1:
        host, port_text = raw.split(":")
    elif raw.count(":") > 1:
        _ambiguous_port(raw)
    if host.endswith("%"):
        raise InputError(f"malformed server address {text!r}: the %scope is empty (e.g. fe80::1%eth0)")
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


def _reverse_name(text: str) -> Target:
    """For --type PTR, an address stands for its reverse name (``4.3.2.1.in-addr.arpa.``)."""
    import dns.reversename

    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return parse_name(text)
    name = dns.reversename.from_address(str(address)).to_text()
    return Target(name=name, display=name.rstrip("."))


def _ambiguous_port(raw: str) -> None:
    """``::1:5305`` is an IPv6 address, and also ``::1`` with port 5305: say how to write either."""
    head, _, tail = raw.rpartition(":")
    if "%" in raw or not tail.isdigit() or not 1 <= int(tail) <= 65535:
        return
    try:
        ipaddress.ip_address(head)
    except ValueError:
        return
    raise InputError(
        f"ambiguous server address {raw!r}: for {head} port {tail} write [{head}]:{tail}; for the address "
        f"{raw} on port 53 write [{raw}]"
    )


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


def build(  # noqa: PLR0913 (one keyword per setting a user can give)
    name: str,
    *,
    rdtype: str = "A",
    servers: Sequence[str] = (),
    resolvers: Sequence[str] = (),
    authoritative: Sequence[str] = (),
    expect: Sequence[str] = (),
    skip: Sequence[str] = (),
    known_steps: Sequence[str] = (),
    timeout: float = DEFAULTS.timeout,
    count: int = DEFAULTS.burst_count,
    interval: float = DEFAULTS.burst_interval,
    max_loss: float = DEFAULTS.max_loss,
    max_rtt: float = DEFAULTS.max_rtt,
    resolv_conf: Path = DEFAULTS.resolv_conf,
    website: bool = False,
    explain: bool = False,
    origin: str = DEFAULTS.origin,
) -> Settings:
    """Settings from what a user typed or wrote in a config file; every value is validated here."""
    from msgspec.structs import replace

    if not 0 <= count <= 1000:
        raise InputError(f"--count {count} is out of range: give 0 to 1000 queries")
    qtype = parse_rdtype(rdtype)
    interval = parse_positive("--interval", interval, 10)
    max_rtt = parse_positive("--max-rtt", max_rtt, 60)
    return Settings(
        target=replace(_reverse_name(name) if qtype == "PTR" else parse_name(name), rdtype=qtype),
        servers=tuple(parse_server(s) for s in servers),
        resolvers=tuple(parse_server(s) for s in resolvers),
        authoritative=tuple(parse_server(s) for s in authoritative),
        expect=tuple(parse_address(a) for a in expect),
        skip=parse_skip(skip, known_steps) if known_steps else frozenset(skip),
        burst_count=count,
        burst_interval=interval,
        max_loss=parse_fraction("--max-loss", max_loss),
        max_rtt=max_rtt,
        timeout=parse_timeout(timeout),
        resolv_conf=resolv_conf,
        website=website,
        explain=explain,
        origin=origin,
    )


def from_table(
    name: str, table: Mapping[str, Any], known_steps: Sequence[str], origin: str, timeout: float | None = None
) -> Settings:
    """Settings from a table of runbook.toml's keys (a [[target]] with its [defaults], or a module)."""
    return build(
        name,
        rdtype=table.get("type", "A"),
        servers=table.get("servers", ()),
        resolvers=table.get("resolvers", ()),
        authoritative=table.get("authoritative", ()),
        expect=table.get("expect", ()),
        skip=table.get("skip", ()),
        known_steps=known_steps,
        timeout=timeout if timeout is not None else float(table.get("timeout", DEFAULTS.timeout)),
        count=int(table.get("count", DEFAULTS.burst_count)),
        interval=float(table.get("interval", DEFAULTS.burst_interval)),
        max_loss=float(table.get("max_loss", DEFAULTS.max_loss)),
        max_rtt=float(table.get("max_rtt", DEFAULTS.max_rtt)),
        website=bool(table.get("web", False)),
        origin=origin,
    )


def from_document(doc: Mapping[str, Any], known_steps: Sequence[str]) -> Settings:
    """The settings a recorded run was made with, to run it again (``runbook verify``)."""
    target = doc["target"]
    options = target.get("options", {})
    return build(
        target.get("display_name") or target["name"],
        rdtype=target.get("type", "A"),
        servers=target["servers"] if not str(target.get("servers_from", "")).startswith("/") else (),
        resolvers=options.get("resolvers", ()),
        authoritative=options.get("authoritative", ()),
        expect=options.get("expect", ()),
        skip=options.get("skip", ()),
        known_steps=known_steps,
        timeout=options.get("timeout_s", DEFAULTS.timeout),
        count=options.get("burst_count", DEFAULTS.burst_count),
        interval=options.get("burst_interval_s", DEFAULTS.burst_interval),
        max_loss=options.get("max_loss", DEFAULTS.max_loss),
        max_rtt=options.get("max_rtt_s", DEFAULTS.max_rtt),
        resolv_conf=Path(target["servers_from"])
        if target.get("servers_from", "").startswith("/")
        else SYSTEM_RESOLV_CONF,
        website=bool(options.get("website", False)),
        origin=str(target.get("servers_from", "command line")),
    )


# -- runbook.toml ---------------------------------------------------------------------------------------

_TYPES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "name": (str, "a name"),
    "type": (str, "a record type"),
    "servers": (list, "a list of addresses"),
    "resolvers": (list, "a list of addresses"),
    "authoritative": (list, "a list of addresses"),
    "expect": (list, "a list of addresses"),
    "skip": (list, "a list of step names"),
    "timeout": ((int, float), "a number of seconds"),
    "count": (int, "a whole number"),
    "interval": ((int, float), "a number of seconds"),
    "max_loss": ((int, float), "a share from 0 to 1"),
    "max_rtt": ((int, float), "a number of seconds"),
    "expect_verdict": (str, "a verdict code"),
    "web": (bool, "true or false"),
}
_TOP = {
    "timeout",
    "count",
    "interval",
    "max_loss",
    "max_rtt",
    "skip",
    "resolvers",
    "web",
    "concurrency",
    "target",
    "module",
}
_PER_TARGET = set(_TYPES)


class ConfigTarget(msgspec.Struct, frozen=True):
    settings: Settings
    expect_verdict: str
    line: int


def _line_of(text: str, key: str, occurrence: int | None) -> int:
    """The line where ``key =`` is set: in the ``occurrence``-th ``[[target]]`` table, or at the top."""
    lines = text.splitlines()
    table = -1
    for no, raw in enumerate(lines, 1):
        line = raw.strip()
        if re.match(r"^\[\[\s*target\s*\]\]", line):
            table += 1
        elif line.startswith("["):
            table = 10**9
        elif re.match(rf"^{re.escape(key)}\s*=", line) and (
            (occurrence is None and table == -1) or (occurrence is not None and table == occurrence)
        ):
            return no
    for no, raw in enumerate(lines, 1):  # a key of a table we did not track, or a table: its first mention
        if re.match(rf"^\s*({re.escape(key)}\s*=|\[\[?\s*{re.escape(key)}\s*\])", raw):
            return no
    return 0


def load_config(path: Path, known_steps: Sequence[str]) -> tuple[list[ConfigTarget], int]:
    """The targets of a ``runbook.toml``, and how many may run at once. Every mistake is an InputError
    naming the file, the line and the key."""
    import tomllib

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{path}: not valid TOML: {e}") from None
    reader = _ConfigReader(path, text)
    for key, value in data.items():
        if key == "module":
            if not isinstance(value, dict):
                raise reader.fail(key, None, "'module' must be tables: [module.NAME]")
            continue
        reader.check(key, value, None, _TOP)
    targets = data.get("target", [])
    if not targets and not data.get("module"):
        raise InputError(f"{path}: no [[target]] table: nothing to diagnose")
    defaults = {k: v for k, v in data.items() if k not in ("target", "concurrency")}
    result = [reader.target(i, table, defaults, known_steps) for i, table in enumerate(targets)]
    concurrency = data.get("concurrency", 8)
    if not 1 <= concurrency <= 64:
        raise reader.fail("concurrency", None, "'concurrency' must be from 1 to 64")
    return result, int(concurrency)


class _ConfigReader(msgspec.Struct, frozen=True):
    """Checks a runbook.toml's keys, and says where a mistake is (file, line, target)."""

    path: Path
    text: str

    def fail(self, key: str, occurrence: int | None, why: str) -> InputError:
        line = _line_of(self.text, key, occurrence)
        where = f"{self.path}:{line}" if line else str(self.path)
        scope = f"target {occurrence + 1}: " if occurrence is not None else ""
        return InputError(f"{where}: {scope}{why}")

    def check(self, key: str, value: object, occurrence: int | None, allowed: set[str]) -> None:
        import difflib

        if key not in allowed:
            hint = difflib.get_close_matches(key, sorted(allowed), n=1)
            raise self.fail(key, occurrence, f"unknown key {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        expected, words = _TYPES.get(key, ((int,), "a whole number") if key == "concurrency" else (list, "tables"))
        if isinstance(value, bool) or not isinstance(value, expected):
            raise self.fail(key, occurrence, f"{key!r} must be {words}, not {type(value).__name__}")
        if isinstance(value, list) and key != "target" and not all(isinstance(v, str) for v in value):
            raise self.fail(key, occurrence, f"{key!r} must be {words}")

    def target(
        self, i: int, table: Mapping[str, Any], defaults: Mapping[str, Any], known_steps: Sequence[str]
    ) -> ConfigTarget:
        for key, value in table.items():
            self.check(key, value, i, _PER_TARGET)
        where = f"{self.path}:{_nth_target_line(self.text, i)}"
        if "name" not in table:
            raise InputError(f"{where}: target {i + 1}: 'name' is missing")
        merged = {**defaults, **table}
        try:
            settings = from_table(merged["name"], merged, known_steps, f"config {where}")
            expect_verdict = parse_verdict_code(str(merged.get("expect_verdict", "healthy")), "expect_verdict")
        except InputError as e:
            raise InputError(f"{where}: target {i + 1}: {e}") from None
        return ConfigTarget(settings, expect_verdict, _nth_target_line(self.text, i))


class Module(msgspec.Struct, frozen=True):
    """A probe module of ``runbook serve``: how to diagnose, and which names may be asked for."""

    name: str
    targets: tuple[str, ...]
    """Allowed names: exact (``yummyrecipesforme.com``) or a zone's names (``*.yummyrecipesforme.com``)."""
    defaults: dict[str, Any]

    def allows(self, name: str) -> bool:
        wanted = name.lower().rstrip(".")
        for pattern in self.targets:
            p = pattern.lower().rstrip(".")
            if wanted == p or (p.startswith("*.") and (wanted.endswith(p[1:]) or wanted == p[2:])):
                return True
        return False

    def settings(self, name: str, known_steps: Sequence[str], timeout: float | None = None) -> Settings:
        return from_table(name, self.defaults, known_steps, f"module {self.name}", timeout)


_MODULE_KEYS = (_PER_TARGET - {"name", "expect_verdict"}) | {"targets"}


def load_modules(path: Path, known_steps: Sequence[str]) -> dict[str, Module]:
    """The ``[module.NAME]`` tables of a runbook.toml; without any, a module ``default`` made of the top-level
    defaults that allows the names of the ``[[target]]`` tables."""
    import tomllib

    try:
        load_config(path, known_steps)  # validates the file as a whole first (keys, types, lines)
    except InputError as e:
        if "no [[target]] table" not in str(e):
            raise
    text = path.read_text(encoding="utf-8")
    data = tomllib.loads(text)
    defaults = {k: v for k, v in data.items() if k not in ("target", "module", "concurrency")}
    modules: dict[str, Module] = {}
    for name, table in (data.get("module") or {}).items():
        if not isinstance(table, dict):
            raise InputError(f"{path}:{_line_of(text, name, None)}: module {name!r} must be a table")
        for key, value in table.items():
            if key not in _MODULE_KEYS:
                raise InputError(f"{path}:{_line_of(text, key, None)}: module {name!r}: unknown key {key!r}")
            expected, words = (list, "a list of names") if key == "targets" else _TYPES[key]
            if isinstance(value, bool) or not isinstance(value, expected):
                raise InputError(f"{path}:{_line_of(text, key, None)}: module {name!r}: {key!r} must be {words}")
        merged = {**defaults, **table}
        targets = tuple(str(t) for t in merged.pop("targets", ()))
        if not targets:
            raise InputError(f'{path}: module {name!r} allows no target: give targets = ["name", "*.zone"]')
        module = Module(name, targets, merged)
        module.settings(targets[0].removeprefix("*."), known_steps)  # validates the module's values now
        modules[name] = module
    if not modules:
        names = tuple(str(t.get("name")) for t in data.get("target", []))
        modules["default"] = Module("default", names, defaults)
    return modules


def _nth_target_line(text: str, n: int) -> int:
    seen = -1
    for no, raw in enumerate(text.splitlines(), 1):
        if re.match(r"^\s*\[\[\s*target\s*\]\]", raw):
            seen += 1
            if seen == n:
                return no
    return 0


def parse_since(text: str, now: float) -> float:
    """``30m``, ``6h``, ``2d``, ``90s`` ago, or a date / RFC 3339 time: an epoch."""
    from datetime import datetime

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if m:
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
        return now - float(m.group(1)) * unit
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"--since {text!r}: give a duration (30m, 6h, 2d) or a date (2026-11-25)") from None
    return when.timestamp()
