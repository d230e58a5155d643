"""Typed evidence: what each finding saw, as frozen values. Pure: no I/O.

Every finding's evidence is one of the kinds below, made by the check that saw it (``checks/``) and read as
such by the rules (through :mod:`runbook.gather` and :mod:`runbook.facts`) and the renderers. A kind's
:meth:`Evidence.to_json` is its part of the run document (``runbook.run/v1``: the field names are the
document's keys, every key always present, ``null`` for what was not seen); :func:`parse` reads a stored
document's evidence back into its kind, chosen by the finding's step and id, so a stored run is rendered and
diagnosed through the same types as a fresh one. A document whose evidence is not of its kind (written by
another version, edited by hand) keeps it as :class:`Unread`: shown, never lost, and never read by a rule.

The kinds are msgspec Structs: frozen, keyword-only, checked by mypy, converted to and from JSON by msgspec.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self, TypeVar

import msgspec

# What one exchange ended in: the words of the JSON document, written by checks.wire, read by the rules.
ANSWER = "answer"
ICMP = "icmp"
TIMEOUT = "timeout"
LOCAL_ERROR = "local-error"
RESET = "reset"
CLOSED = "closed"
MALFORMED = "malformed"
CONNECTED = "connected"

# What an ICMP error means for the diagnosis: written by checks.icmp, read by the rules.
PORT_UNREACHABLE = "port-unreachable"
PROHIBITED = "prohibited"
HOST_UNREACHABLE = "host-unreachable"
PROTOCOL_UNREACHABLE = "protocol-unreachable"
TTL_EXCEEDED = "ttl-exceeded"
OTHER = "other"


class Evidence(msgspec.Struct, frozen=True, kw_only=True):
    """The base of every kind: a frozen value with its JSON form."""

    def to_json(self) -> dict[str, Any]:
        """The document's form: plain dicts, lists and scalars (tuples become lists, as in JSON)."""
        doc: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(self))
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Self:
        """The kind from its document form; unknown keys are ignored. Raises msgspec.ValidationError."""
        return msgspec.convert(doc, type=cls, strict=False)


class Empty(Evidence, frozen=True, kw_only=True):
    """Nothing beyond the summary (a step skipped, with its reason in the summary)."""


class Failure(Evidence, frozen=True, kw_only=True):
    """A step or a read that failed: why."""

    error: str | None = None


class Unread(Evidence, frozen=True, kw_only=True):
    """A stored document's evidence that is not of the kind its finding's step makes: kept as it was."""

    data: dict[str, Any] = msgspec.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dict(self.data)


# -- DNS exchanges (udp53, tcp53, resolve, compare, dot; and analyze's captured ones) -----------------------


class Icmp(Evidence, frozen=True, kw_only=True):
    """An ICMP error a probe drew: who sent it and what it means."""

    origin: str = "icmp"
    """``icmp``, ``icmp6``, ``local`` or ``none``."""
    type: int | None = None
    code: int | None = None
    name: str = ""
    kind: str = OTHER
    """What it means for the diagnosis: one of the module's ICMP constants."""
    errno: str | None = None
    offender: str | None = None
    """The address that sent it."""
    from_server: bool = False

    @property
    def typecode(self) -> str:
        return f"{self.type}/{self.code}"


class Record(Evidence, frozen=True, kw_only=True):
    """One record of an answer section."""

    name: str = ""
    type: str = ""
    ttl: int | None = None
    value: str = ""


class Ede(Evidence, frozen=True, kw_only=True):
    """An Extended DNS Error (RFC 8914)."""

    code: int | None = None
    text: str = ""

    @property
    def words(self) -> str:
        return f"EDE {self.code} {self.text}".strip()


class Nsid(Evidence, frozen=True, kw_only=True):
    """The server's NSID option (RFC 5001): which instance answered."""

    hex: str = ""
    text: str = ""


class Message(Evidence, frozen=True, kw_only=True):
    """The parts of a DNS answer users ask for: rcode, flags, records with TTLs, EDE, NSID."""

    rcode: str | None = None
    flags: tuple[str, ...] = ()
    aa: bool = False
    tc: bool = False
    ra: bool = False
    ad: bool = False
    answers: tuple[Record, ...] = ()
    authority: tuple[str, ...] = ()
    ede: tuple[Ede, ...] = ()
    nsid: Nsid | None = None


class Exchange(Message, frozen=True, kw_only=True):
    """One query and what came back (or did not): an attempt over UDP, TCP or TLS. The answer's parts are
    its own fields (rcode, flags, answers...), empty when nothing answered."""

    transport: str = "udp"
    outcome: str
    """One of the module's outcome constants (``answer``, ``icmp``, ``timeout``...)."""
    rtt_s: float | None = None
    connect_rtt_s: float | None = None
    local: str | None = None
    """This host's address and port, as tcpdump writes them (``192.0.2.1.40000``)."""
    query_bytes: int | None = None
    response_bytes: int | None = None
    icmp: Icmp | None = None
    errno: str | None = None
    detail: str | None = None
    waited_s: float | None = None
    """For a timeout: how long the attempt waited before giving up."""
    # A query read from a capture (runbook analyze): which one, and when.
    id: int | None = None
    qname: str | None = None
    qtype: str | None = None
    at: float | None = None
    """Epoch seconds the query was seen."""
    sent: int | None = None
    """How many times the query was sent (a probe's attempts; a captured query's retransmissions + 1)."""

    @property
    def answered(self) -> bool:
        return self.outcome == ANSWER

    @property
    def negative(self) -> bool:
        """NXDOMAIN, or NOERROR with no record (NODATA)."""
        return self.rcode == "NXDOMAIN" or (self.rcode == "NOERROR" and not self.answers)


E = TypeVar("E", bound=Evidence)


def extend(base: Evidence, kind: type[E], **more: Any) -> E:
    """``base``'s fields and ``more``, as a kind that has them all: an Exchange as the UdpProbe that extends it,
    an answer's Message as the Exchange that carried it."""
    return kind(**{**msgspec.structs.asdict(base), **more})


class Thresholds(Evidence, frozen=True, kw_only=True):
    max_loss: float
    max_rtt_s: float


class Burst(Evidence, frozen=True, kw_only=True):
    """The burst of queries that measures loss and latency (udp53), or a captured server's totals (analyze)."""

    first_answer: Exchange | None = None
    sent: int = 0
    received: int = 0
    loss: float = 0.0
    interval_s: float | None = None
    wait_s: float | None = None
    rtt_min_s: float | None = None
    rtt_median_s: float | None = None
    rtt_avg_s: float | None = None
    rtt_max_s: float | None = None
    rtt_stddev_s: float | None = None
    outcomes: dict[str, int] = msgspec.field(default_factory=dict)
    degraded: str = ""
    """Why the burst counts as degraded, or ''."""
    thresholds: Thresholds | None = None


class FailureWindow(Evidence, frozen=True, kw_only=True):
    """When a captured server's queries failed."""

    first_failure: float | None = None
    last_failure: float | None = None
    first_failed_id: int | None = None
    failures: int = 0


class UdpProbe(Exchange, frozen=True, kw_only=True):
    """udp53: the stub resolver's query over UDP (its answering attempt, or the last), every attempt, the
    liveness question when it got nothing, and the burst."""

    attempts: tuple[Exchange, ...] = ()
    packets: tuple[str, ...] = ()
    liveness: Exchange | None = None
    """The answer to ``id.server CH TXT`` when the question itself got none: is the daemon alive?"""
    burst: Burst | None = None
    source: str = "probe"
    """``probe`` (sent by this run) or ``capture`` (read from a capture by runbook analyze)."""


class CapturedUdp(UdpProbe, frozen=True, kw_only=True):
    """udp53 read from a capture: one server's UDP exchanges, with the capture's counts."""

    retransmissions: int = 0
    truncated: int = 0
    rcodes: dict[str, int] = msgspec.field(default_factory=dict)
    unanswered_at_end: int = 0
    tcp_unanswered_at_end: int = 0
    window: FailureWindow | None = None


class TcpProbe(Exchange, frozen=True, kw_only=True):
    """tcp53: the question over TCP (its answering connection, or the last), and every connection tried."""

    packets: tuple[str, ...] = ()
    attempts: tuple[Exchange, ...] = ()
    source: str = "probe"


class CapturedTcp(TcpProbe, frozen=True, kw_only=True):
    """tcp53 read from a capture: the first answered (or first) connection, and the first ones seen."""

    exchanges: tuple[Exchange, ...] = ()


class Resolution(Exchange, frozen=True, kw_only=True):
    """resolve: the stub's answer (EDNS0, TCP when truncated), the UDP answer that was truncated, and the
    question asked again with CD=1 after a SERVFAIL."""

    truncated_over_udp: bool = False
    packets: tuple[str, ...] = ()
    udp: Exchange | None = None
    cd_retry: Exchange | None = None


class SystemLookup(Evidence, frozen=True, kw_only=True):
    """resolve/system: getaddrinfo, as every program on the host resolves."""

    function: str = "getaddrinfo"
    outcome: str
    addresses: tuple[str, ...] = ()
    canonical_name: str | None = None
    rtt_s: float | None = None
    waited_s: float | None = None
    error: str | None = None
    errno: int | None = None


class Compared(Exchange, frozen=True, kw_only=True):
    """compare: another server's answer to the same question: an authoritative server or a --resolver."""

    role: str
    """``authoritative`` or ``resolver``."""
    ns_name: str | None = None
    lame: str | None = None
    """Why the authoritative server does not serve the zone properly, or None."""
    soa_serial: int | None = None
    cached: bool = False
    asked_at: str | None = None
    reused_for_s: float | None = None
    source: str = "probe"


class NameServer(Evidence, frozen=True, kw_only=True):
    name: str
    addresses: tuple[str, ...] = ()


class Discovery(Evidence, frozen=True, kw_only=True):
    """The zone of the name and its name servers, as found (or why not)."""

    source: str = "none"
    zone: str | None = None
    nameservers: tuple[NameServer, ...] = ()
    ttl_s: int | None = None
    error: str | None = None
    cached: bool = False
    found_at: str | None = None
    reused_for_s: float | None = None


class Authorities(Discovery, frozen=True, kw_only=True):
    """compare/authoritative: the discovery, and what the authoritative servers' answers add up to."""

    servers: tuple[str, ...] = ()
    soa_serials: dict[str, int] = msgspec.field(default_factory=dict)
    serials_agree: bool = True
    lame: dict[str, str] = msgspec.field(default_factory=dict)


# -- ping ---------------------------------------------------------------------------------------------------


class Ping(Evidence, frozen=True, kw_only=True):
    """Is the server's host up: ICMP echo, or a TCP connect where ICMP cannot be sent."""

    method: str = ""
    sent: int = 0
    received: int = 0
    loss: float | None = None
    rtt_min_s: float | None = None
    rtt_avg_s: float | None = None
    rtt_max_s: float | None = None
    rtt_stddev_s: float | None = None
    port: int | None = None
    outcome: str | None = None
    """For a TCP connect: how it ended."""
    why: str | None = None
    """Why not ICMP."""
    shared: bool = False
    """Measured once for the probes of this host in flight together."""
    error: str | None = None

    @property
    def by_icmp(self) -> bool:
        return self.method.startswith("icmp")

    @property
    def lost(self) -> float:
        """The share of probes without a reply (a captured ping records no loss of its own: it is counted)."""
        if self.loss is not None:
            return self.loss
        return 1 - self.received / self.sent if self.sent else 0.0


# -- firewall -------------------------------------------------------------------------------------------------


class Citation(Evidence, frozen=True, kw_only=True):
    """A rule (or a chain's policy) of this host's firewall, as it is cited."""

    source: str | None = None
    """``nftables``, ``iptables-nft``, ``iptables-legacy``..."""
    family: str | None = None
    table: str | None = None
    chain: str | None = None
    handle: str | None = None
    rule: str | None = None
    """The rule's text, as nft or iptables-save print it."""
    policy: str | None = None
    """For a chain's policy: the policy."""
    verdict: str | None = None
    """For a rule that may match: its verdict."""
    unknown: tuple[str, ...] = ()
    """For a rule that may match: what the evaluator could not know."""

    @property
    def words(self) -> str:
        where = f"{self.source} {self.family} {self.table} {self.chain}"
        if self.policy is not None and self.rule is None:
            return f"the policy {self.policy} of {where}"
        handle = f" handle {self.handle}" if self.handle else ""
        return f"{where}{handle}: `{self.rule}`"


class FirewallPath(Evidence, frozen=True, kw_only=True):
    """What the rules do to one packet of the exchange."""

    verdict: str
    """accept, drop, reject, queue, or unknown (``error`` says why)."""
    rule: Citation | None = None
    policy: Citation | None = None
    may_match: tuple[Citation, ...] = ()
    passed: tuple[Citation, ...] = ()
    certain: bool = True
    error: str | None = None

    @property
    def stops(self) -> bool:
        return self.verdict in ("drop", "reject")

    @property
    def cited(self) -> Citation | None:
        """The rule or policy that decided."""
        return self.rule or self.policy


class FirewallPaths(Evidence, frozen=True, kw_only=True):
    """firewall: this host's rules for DNS to one server, path by path (``udp_query``, ``udp_answer``, and
    for a server on this host ``udp_query_in`` and ``udp_answer_out``; the same for TCP)."""

    sources: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    unread: tuple[str, ...] = ()
    local_address: str | None = None
    interface: str | None = None
    ephemeral_ports: tuple[int, ...] = ()
    paths: dict[str, FirewallPath] = msgspec.field(default_factory=dict)
    blocks: bool = False
    uncertain: tuple[str, ...] = ()

    DIRECTIONS: ClassVar[tuple[str, ...]] = ("query", "answer", "query_in", "answer_out")

    def first_stop(self, proto: str) -> tuple[str, FirewallPath] | None:
        """The first path of ``proto`` (``udp``, ``tcp``) a rule stops: (direction, path)."""
        for direction in self.DIRECTIONS:
            path = self.paths.get(f"{proto}_{direction}")
            if path is not None and path.stops:
                return direction, path
        return None


class RulesUnread(Evidence, frozen=True, kw_only=True):
    """firewall/rules: no ruleset could be read, and how to read it by hand."""

    reason: str
    problems: tuple[str, ...] = ()
    by_hand: str | None = None


# -- hostconf -------------------------------------------------------------------------------------------------


class ResolvConfFacts(Evidence, frozen=True, kw_only=True):
    """hostconf/resolv.conf: the stub resolver's configuration."""

    path: str
    nameservers: tuple[str, ...] = ()
    used_nameservers: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    options: dict[str, str | bool] = msgspec.field(default_factory=dict)
    ignored_lines: tuple[str, ...] = ()
    symlink_target: str | None = None
    systemd_resolved_stub: bool = False
    systemd_upstreams: tuple[str, ...] | None = None
    systemd_upstreams_error: str | None = None
    error: str | None = None


class HostsEntry(Evidence, frozen=True, kw_only=True):
    line: int | None = None
    address: str
    names: tuple[str, ...] = ()
    text: str = ""


class HostsFacts(Evidence, frozen=True, kw_only=True):
    """hostconf/hosts: the hosts file's entries for the name."""

    path: str
    entries: tuple[HostsEntry, ...] = ()
    error: str | None = None


class NsswitchFacts(Evidence, frozen=True, kw_only=True):
    """hostconf/nsswitch: the hosts line (None: no such line)."""

    path: str
    hosts: tuple[str, ...] | None = None
    error: str | None = None


# -- web, dot -------------------------------------------------------------------------------------------------


class Connection(Evidence, frozen=True, kw_only=True):
    """One connection to the site: did it open, and what came of it."""

    connected: bool
    result: str
    rtt_s: float | None = None
    verified: bool | None = None
    tls_version: str | None = None
    status: int | None = None
    """The HTTP status."""


class SiteProbe(Evidence, frozen=True, kw_only=True):
    """web: the site's address, and connections to 443 and 80."""

    address: str
    https: Connection
    http: Connection
    reachable: bool
    website: bool = False
    """Whether the name was declared a website (--web): only then does a closed site count."""


class Certificate(Evidence, frozen=True, kw_only=True):
    """What a user checks in a certificate: who it names, who signed it, until when, its fingerprint."""

    sha256: str
    subject: str | None = None
    issuer: str | None = None
    not_before: str | None = None
    not_after: str | None = None
    self_signed: bool | None = None
    san: tuple[str, ...] = ()
    error: str | None = None


class DotProbe(Exchange, frozen=True, kw_only=True):
    """dot: DNS over TLS on port 853: the connection, the handshake, the certificate's trust, the answer."""

    port: int = 853
    sni: str | None = None
    handshake: bool = False
    handshake_s: float | None = None
    verified: bool = False
    verify_error: str | None = None
    tls_version: str | None = None
    alpn: str | None = None
    certificate: Certificate | None = None

    @property
    def serves_dns(self) -> bool:
        """An answer the server owns (NOERROR or NXDOMAIN): DNS itself works over TLS."""
        return self.answered and self.rcode in ("NOERROR", "NXDOMAIN")


# -- analyze: the capture and its traffic ---------------------------------------------------------------------


class CaptureFile(Evidence, frozen=True, kw_only=True):
    """capture/file: what the capture holds."""

    file: str
    format: str
    link: str
    frames: int = 0
    undecoded: int = 0
    queries: int = 0
    responses: int = 0
    first: float | None = None
    last: float | None = None
    damaged: str | None = None
    wait_s: float | None = None


class Talker(Evidence, frozen=True, kw_only=True):
    source: str
    queries: int


class TrafficRate(Evidence, frozen=True, kw_only=True):
    """traffic/rate: the queries of the capture, and who sent the most."""

    queries: int
    seconds: float
    rate: float
    top_sources: tuple[Talker, ...] = ()


class SubdomainFlood(Evidence, frozen=True, kw_only=True):
    zone: str
    unique_names: int


class AnyFlood(Evidence, frozen=True, kw_only=True):
    any_queries: int
    amplification: float


class Unsolicited(Evidence, frozen=True, kw_only=True):
    """traffic/unsolicited: answers from addresses never asked."""

    senders: dict[str, int] = msgspec.field(default_factory=dict, name="from")
    packets: tuple[str, ...] = ()


# -- server: the DNS server's own host ------------------------------------------------------------------------


class Daemon(Evidence, frozen=True, kw_only=True):
    """A DNS daemon process (the furthest ancestor that is the same daemon), with its load and limits."""

    pid: int
    name: str
    cmdline: tuple[str, ...] = ()
    user: str | None = None
    config: str | None = None
    cpu_percent: float = 0.0
    rss_mib: float | None = None
    fds: int | None = None
    fd_limit: int | None = None
    netns: str | None = None
    """Set when its network namespace could not be read."""


class Daemons(Evidence, frozen=True, kw_only=True):
    """daemons/running: this namespace's DNS daemons, and those of other namespaces (containers)."""

    daemons: tuple[Daemon, ...] = ()
    other_namespaces: tuple[Daemon, ...] = ()
    netns_unreadable: int = 0


class Units(Evidence, frozen=True, kw_only=True):
    """daemons/units: the DNS daemons' systemd units, their properties as ``systemctl show`` gives them."""

    units: tuple[dict[str, str], ...] = ()


class OomKill(Evidence, frozen=True, kw_only=True):
    pid: int
    name: str
    line: str


class OomKills(Evidence, frozen=True, kw_only=True):
    """daemons/oom: DNS daemons the kernel's OOM killer killed (its log)."""

    kills: tuple[OomKill, ...] = ()


class Listener(Evidence, frozen=True, kw_only=True):
    """A socket on the DNS port: its address, its process, and the daemon that process belongs to."""

    address: str
    pid: int | None = None
    process: str | None = None
    dns_daemon: bool = False
    daemon: str | None = None
    daemon_pid: int | None = None


class Listeners(Evidence, frozen=True, kw_only=True):
    """listeners/port: who listens on the DNS port, by protocol."""

    port: int
    udp: tuple[Listener, ...] = ()
    tcp: tuple[Listener, ...] = ()


class ConfigCheck(Evidence, frozen=True, kw_only=True):
    """config/NAME: a daemon's own checker on its configuration."""

    daemon: str
    config: str
    checker: tuple[str, ...] = ()
    exit: int | None = None
    output: tuple[str, ...] = ()


class Conntrack(Evidence, frozen=True, kw_only=True):
    count: int | None = None
    max: int | None = None


class Load(Evidence, frozen=True, kw_only=True):
    """load/kernel: the kernel's UDP counters over the window, the DNS port's drops, conntrack, CPU."""

    window_s: float
    udp: dict[str, int] = msgspec.field(default_factory=dict)
    """Deltas over the window: InDatagrams, RcvbufErrors, InErrors, NoPorts."""
    port_drops: int | None = None
    udp_in_per_s: float = 0.0
    conntrack: Conntrack = msgspec.field(default_factory=Conntrack)
    cpu_percent: dict[str, float] = msgspec.field(default_factory=dict)


class LogFiles(Evidence, frozen=True, kw_only=True):
    """log/files: the daemons' log files read (path -> daemon), those that could not be (path -> why), and
    the last lines that speak of trouble."""

    files: dict[str, str] = msgspec.field(default_factory=dict)
    unread: dict[str, str] = msgspec.field(default_factory=dict)
    lines: tuple[str, ...] = ()


class Journal(Evidence, frozen=True, kw_only=True):
    """log/journal: the DNS units' last warnings and errors."""

    lines: tuple[str, ...] = ()


class ControlView(Evidence, frozen=True, kw_only=True):
    """control/NAME: a daemon's own view through its control channel, over the window."""

    daemon: str
    command: tuple[str, ...] = ()
    error: str | None = None
    window_s: float | None = None
    queries_per_s: float | None = None
    servfail_share: float | None = None
    requestlist_exceeded: int | None = None
    requestlist_current: int | None = None
    uptime_s: float | None = None
    dropped: int | None = None
    status: dict[str, str] = msgspec.field(default_factory=dict)
    signs: tuple[str, ...] = ()
    """Signs of overload, in words."""
    warnings: tuple[str, ...] = ()
    """Trouble that is not overload (most answers SERVFAIL)."""
    words: str = ""


def packet_lines(e: Evidence) -> tuple[str, ...]:
    """The packets a finding's evidence carries, as tcpdump's lines: the probes' own, or the capture's."""
    return e.packets if isinstance(e, UdpProbe | TcpProbe | Resolution | Unsolicited) else ()


# -- which kind a finding holds ----------------------------------------------------------------------------------

_BY_STEP: dict[str, type[Evidence]] = {
    "udp53": UdpProbe,
    "tcp53": TcpProbe,
    "resolve": Resolution,
    "compare": Compared,
    "ping": Ping,
    "firewall": FirewallPaths,
    "web": SiteProbe,
    "dot": DotProbe,
    "capture": CaptureFile,
    "listeners": Listeners,
    "config": ConfigCheck,
    "load": Load,
    "control": ControlView,
}
_BY_ID: dict[str, type[Evidence]] = {
    "resolve/system": SystemLookup,
    "compare/authoritative": Authorities,
    "firewall/rules": RulesUnread,
    "hostconf/resolv.conf": ResolvConfFacts,
    "hostconf/hosts": HostsFacts,
    "hostconf/nsswitch": NsswitchFacts,
    "web/site": Empty,
    "traffic/rate": TrafficRate,
    "traffic/subdomains": SubdomainFlood,
    "traffic/any": AnyFlood,
    "traffic/unsolicited": Unsolicited,
    "daemons/running": Daemons,
    "daemons/units": Units,
    "daemons/oom": OomKills,
    "log/files": LogFiles,
    "log/journal": Journal,
}
_CAPTURED: dict[type[Evidence], type[Evidence]] = {UdpProbe: CapturedUdp, TcpProbe: CapturedTcp}


def kind_of(step: str, finding_id: str, doc: Mapping[str, Any]) -> type[Evidence]:
    """The kind of a finding's evidence, by its id, else its step (a capture's exchanges have their own)."""
    if finding_id.endswith("/error"):
        return Failure
    kind = _BY_ID.get(finding_id) or _BY_STEP.get(step, Unread)
    if doc.get("source") == "capture" or (step == "tcp53" and "exchanges" in doc):
        kind = _CAPTURED.get(kind, kind)
    return kind


def parse(step: str, finding_id: str, doc: Any) -> Evidence:
    """A stored finding's evidence, as its kind; :class:`Unread` (the document kept as it is) when it is not
    of that kind, and :class:`Empty` when there is none."""
    if not isinstance(doc, Mapping):
        return Unread()
    if not doc:
        return Empty()
    kind = kind_of(step, finding_id, doc)
    if kind is Unread:
        return Unread(data=dict(doc))
    try:
        return kind.from_json(doc)
    except msgspec.ValidationError:
        return Unread(data=dict(doc))


def json_schema() -> dict[str, Any]:
    """The JSON Schema of every kind (``runbook/schema/evidence-v1.json`` is this, shipped): a finding's evidence
    is the kind ``x-kind-by-id`` names for its id, else ``x-kind-by-step`` for its step (``/error`` ids hold a
    Failure; a capture's udp53 and tcp53 findings the ``x-captured`` kinds)."""
    every: set[type[Evidence]] = {*_BY_STEP.values(), *_BY_ID.values(), *_CAPTURED.values(), Failure, Empty}
    kinds = sorted(every, key=lambda k: k.__name__)
    _, defs = msgspec.json.schema_components(kinds, ref_template="#/$defs/{name}")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://dns-runbook.invalid/schema/run-v1/evidence.json",
        "title": "runbook.run/v1: the evidence of a finding, by kind",
        "description": (
            "Every key of a kind is written, null (or empty) for what was not seen; documents of earlier versions "
            "may leave keys out, which then take their defaults."
        ),
        "x-kind-by-id": {fid: kind.__name__ for fid, kind in sorted(_BY_ID.items())},
        "x-kind-by-step": {step: kind.__name__ for step, kind in sorted(_BY_STEP.items())},
        "x-captured": {kind.__name__: captured.__name__ for kind, captured in _CAPTURED.items()},
        "$defs": dict(sorted(defs.items())),
    }
