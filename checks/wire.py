"""The two primitive exchanges every DNS check is made of: one query over UDP, one over TCP.

dnspython builds and parses every message; these functions own the sockets, because dnspython's own
``dns.query.udp`` uses an unconnected socket without IP_RECVERR and so turns a closed port into a full
timeout. Here a UDP socket is connected and asks for IP_RECVERR / IPV6_RECVERR: an ICMP error is read from
the error queue (type, code, offender) the moment it arrives, and nothing waits on a timer.

This is the one boundary where socket errors are translated: every ``OSError`` becomes an
:class:`Exchange` outcome carrying the errno, never an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import errno as errno_mod
import socket
import statistics
import struct
import time
from collections.abc import Callable
from typing import Any

import dns.entropy
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import msgspec

from checks import packetlog
from checks.icmp import IP_RECVERR, IPV6_RECVERR, SockError, parse_extended_err, same_address
from runbook.evidence import (
    ANSWER,
    CLOSED,
    CONNECTED,
    ICMP,
    LOCAL_ERROR,
    MALFORMED,
    RESET,
    TIMEOUT,
    Burst,
    Ede,
    Message,
    Nsid,
    Record,
    extend,
)
from runbook.evidence import (
    Exchange as ExchangeEvidence,
)
from runbook.model import Server

__all__ = ["ANSWER", "CLOSED", "CONNECTED", "ICMP", "LOCAL_ERROR", "MALFORMED", "RESET", "TIMEOUT"]


PACKET_LOG: contextvars.ContextVar[bool] = contextvars.ContextVar("packet_log", default=True)
"""Whether exchanges write their packet lines: set per run by the engine (``Settings.packet_log``); an
exporter whose answer is Prometheus text shows none, and skips the work."""


class Exchange(msgspec.Struct):
    """What one query attempt saw. ``outcome`` is one of the module's constants."""

    transport: str
    server: Server
    outcome: str = TIMEOUT
    sent_at: float = 0.0
    rtt_s: float | None = None
    connect_rtt_s: float | None = None
    local: tuple[str, int] | None = None
    query_len: int = 0
    response: dns.message.Message | None = None
    response_len: int = 0
    error: SockError | None = None
    errno: int | None = None
    detail: str | None = None
    waited_s: float | None = None
    """For a timeout: how long the attempt waited (its share of the budget), said rather than assumed."""
    packets: list[str] = msgspec.field(default_factory=list)

    @property
    def definitive(self) -> bool:
        """An answer, an ICMP error, a reset or a local refusal: asking again would get the same."""
        return self.outcome != TIMEOUT

    def to_evidence(self) -> ExchangeEvidence:
        """What the document records of this attempt (and what the rules read)."""
        fields: dict[str, Any] = {
            "transport": self.transport,
            "outcome": self.outcome,
            "rtt_s": _round(self.rtt_s),
            "connect_rtt_s": _round(self.connect_rtt_s),
            "local": f"{self.local[0]}.{self.local[1]}" if self.local else None,
            "query_bytes": self.query_len,
            "icmp": self.error.to_evidence(self.server.host) if self.error is not None else None,
            "errno": errno_mod.errorcode.get(self.errno, str(self.errno)) if self.errno is not None else None,
            "detail": self.detail or None,
            "waited_s": _round(self.waited_s),
        }
        if self.response is None:
            return ExchangeEvidence(**fields)
        return extend(message_evidence(self.response), ExchangeEvidence, response_bytes=self.response_len, **fields)

    def from_server(self) -> bool:
        """Whether the ICMP error it drew came from the server's own address."""
        return self.error is not None and same_address(self.error.offender, self.server.host)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def message_evidence(msg: dns.message.Message) -> Message:
    """The parts of an answer users ask for: rcode, flags, records with TTLs, EDE, NSID."""
    import dns.edns

    nsid = next((opt.to_wire() or b"" for opt in msg.options if opt.otype == dns.edns.NSID), None)
    return Message(
        rcode=dns.rcode.to_text(msg.rcode()),
        flags=tuple(dns.flags.to_text(msg.flags).split()),
        aa=bool(msg.flags & dns.flags.AA),
        tc=bool(msg.flags & dns.flags.TC),
        ra=bool(msg.flags & dns.flags.RA),
        ad=bool(msg.flags & dns.flags.AD),
        answers=tuple(
            Record(
                name=rrset.name.to_text(),
                type=dns.rdatatype.to_text(rrset.rdtype),
                ttl=rrset.ttl,
                value=rdata.to_text(),
            )
            for rrset in msg.answer
            for rdata in rrset
        ),
        authority=tuple(rrset.to_text() for rrset in msg.authority),
        ede=tuple(
            Ede(code=int(opt.code), text=opt.text or "") for opt in msg.options if isinstance(opt, dns.edns.EDEOption)
        ),
        nsid=Nsid(hex=nsid.hex(), text=nsid.decode("ascii", "backslashreplace")) if nsid is not None else None,
    )


def _sockaddr(server: Server) -> tuple[int, Any]:
    info = socket.getaddrinfo(
        server.host, server.port, type=socket.SOCK_DGRAM, flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
    )
    family, _, _, _, sockaddr = info[0]
    return family, sockaddr


def _open(server: Server, kind: int) -> tuple[socket.socket, Any]:
    family, sockaddr = _sockaddr(server)
    sock = socket.socket(family, kind)
    sock.setblocking(False)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
    else:
        sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    return sock, sockaddr


def drain_errqueue(sock: socket.socket) -> list[SockError]:
    """Every error queued on ``sock`` (ICMP errors and local ones), oldest first."""
    found: list[SockError] = []
    while True:
        try:
            data, ancdata, _flags, _addr = sock.recvmsg(2048, 1024, socket.MSG_ERRQUEUE)
        except (BlockingIOError, InterruptedError):
            return found
        except OSError:
            return found
        for level, ctype, cdata in ancdata:
            if (level, ctype) in ((socket.IPPROTO_IP, IP_RECVERR), (socket.IPPROTO_IPV6, IPV6_RECVERR)):
                err = parse_extended_err(cdata, quoted=len(data))
                if err is not None:
                    found.append(err)


def _pick(errors: list[SockError]) -> SockError | None:
    """An ICMP error from the network says more than a local one; the first of a kind wins."""
    icmp = [e for e in errors if e.origin in ("icmp", "icmp6")]
    chosen = icmp or errors
    return chosen[0] if chosen else None


def _local(sock: socket.socket) -> tuple[str, int] | None:
    try:
        addr = sock.getsockname()
    except OSError:
        return None
    return (addr[0], addr[1])


async def udp_exchange(server: Server, query: dns.message.Message, timeout: float) -> Exchange:
    """Send ``query`` once over UDP and wait up to ``timeout`` for the answer or an ICMP error."""
    loop = asyncio.get_running_loop()
    ex = Exchange("udp", server)
    wire = query.to_wire()
    ex.query_len = len(wire)
    dst = (server.host, server.port)
    try:
        sock, sockaddr = _open(server, socket.SOCK_DGRAM)
    except OSError as e:
        ex.outcome, ex.errno, ex.detail = LOCAL_ERROR, e.errno, f"socket: {e.strerror}"
        return ex
    with sock:
        mono = time.monotonic()
        ex.sent_at = time.time()
        try:
            sock.connect(sockaddr)
            ex.local = _local(sock)
            sock.send(wire)
        except OSError as e:
            ex.local = ex.local or _local(sock)
            ex.error = _pick(drain_errqueue(sock))
            ex.outcome = ICMP if ex.error and ex.error.origin != "local" else LOCAL_ERROR
            ex.errno, ex.detail = e.errno, f"send: {e.strerror}"
            ex.rtt_s = time.monotonic() - mono
            return ex  # nothing left this host: a failed send is a finding, not a packet in the log
        done: asyncio.Future[None] = loop.create_future()

        def on_ready() -> None:
            if not done.done() and _udp_ready(sock, ex, query, mono):
                done.set_result(None)

        loop.add_reader(sock.fileno(), on_ready)
        try:
            await asyncio.wait_for(done, timeout)
        except TimeoutError:
            if ex.outcome != MALFORMED:
                ex.outcome = TIMEOUT
                ex.waited_s = time.monotonic() - mono
        finally:
            loop.remove_reader(sock.fileno())
    if PACKET_LOG.get():
        _log_udp(ex, query, dst)
    return ex


def _udp_ready(sock: socket.socket, ex: Exchange, query: dns.message.Message, mono: float) -> bool:
    """Read what the socket holds: an ICMP error, or datagrams until one answers ``query``. True when the
    exchange is over."""
    errors = drain_errqueue(sock)
    if errors:
        ex.error = _pick(errors)
        ex.errno = ex.error.errno if ex.error else None
        ex.outcome = ICMP if ex.error and ex.error.origin != "local" else LOCAL_ERROR
        ex.rtt_s = time.monotonic() - mono
        return True
    while True:
        try:
            data = sock.recv(65535)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as e:  # an error that left no queue entry (IP_RECVERR refused)
            ex.outcome, ex.errno, ex.detail = LOCAL_ERROR, e.errno, f"recv: {e.strerror}"
            ex.rtt_s = time.monotonic() - mono
            return True
        try:
            msg = dns.message.from_wire(data, ignore_trailing=True, raise_on_truncation=False)
        except dns.exception.DNSException as e:
            ex.outcome, ex.detail, ex.response_len = MALFORMED, f"unparsable answer: {e}", len(data)
            continue  # keep waiting: a good answer may still come
        if not query.is_response(msg):
            ex.detail = f"ignored a datagram that does not answer the query (id {msg.id})"
            continue
        ex.outcome, ex.response, ex.response_len = ANSWER, msg, len(data)
        ex.rtt_s = time.monotonic() - mono
        return True


def _log_udp(ex: Exchange, query: dns.message.Message, dst: tuple[str, int]) -> None:
    if ex.outcome == LOCAL_ERROR:
        return  # refused by this host (no route, no neighbour, a local rule): the query never left
    local = ex.local or ("?", 0)
    ex.packets.append(packetlog.udp_line(ex.sent_at, local, dst, query, ex.query_len))
    at = ex.sent_at + (ex.rtt_s or 0.0)
    if ex.outcome == ANSWER and ex.response is not None:
        ex.packets.append(packetlog.udp_line(at, dst, local, ex.response, ex.response_len))
    elif ex.error is not None:
        ex.packets.append(packetlog.icmp_line(at, ex.error, local[0], dst))


async def tcp_exchange(server: Server, query: dns.message.Message | None, timeout: float) -> Exchange:
    """Connect to the server's TCP port and ask ``query``; classify SYN-ACK, RST, ICMP or silence.

    Without a query, only the connect is classified (the ping step's fallback when ICMP is not allowed).
    """
    loop = asyncio.get_running_loop()
    ex = Exchange("tcp", server)
    wire = query.to_wire() if query is not None else b""
    ex.query_len = len(wire)
    dst = (server.host, server.port)
    deadline = time.monotonic() + timeout
    try:
        sock, sockaddr = _open(server, socket.SOCK_STREAM)
    except OSError as e:
        ex.outcome, ex.errno, ex.detail = LOCAL_ERROR, e.errno, f"socket: {e.strerror}"
        return ex
    with sock:
        mono = time.monotonic()
        ex.sent_at = time.time()
        try:
            await asyncio.wait_for(loop.sock_connect(sock, sockaddr), timeout)
        except TimeoutError:
            ex.local = _local(sock)
            ex.outcome, ex.detail = TIMEOUT, "no answer to the SYN"
            ex.waited_s = time.monotonic() - mono
        except OSError as e:
            ex.local = _local(sock)
            ex.errno = e.errno
            ex.error = _pick(drain_errqueue(sock))
            if ex.error is not None and ex.error.origin != "local":
                ex.outcome = ICMP
            elif e.errno == errno_mod.ECONNREFUSED:
                ex.outcome, ex.detail = RESET, "connection refused (RST)"
            else:
                ex.outcome, ex.detail = LOCAL_ERROR, f"connect: {e.strerror}"
            ex.rtt_s = time.monotonic() - mono
        else:
            ex.local = _local(sock)
            ex.connect_rtt_s = time.monotonic() - mono
            if query is None:
                ex.outcome = CONNECTED
                ex.rtt_s = ex.connect_rtt_s
            else:
                await _tcp_query(loop, sock, ex, query, wire, deadline=deadline, mono=mono)
    if query is not None and ex.outcome != LOCAL_ERROR and PACKET_LOG.get():  # a refused connect sent no SYN
        _log_tcp(ex, query, dst)
    return ex


async def _tcp_query(
    loop: asyncio.AbstractEventLoop,
    sock: socket.socket,
    ex: Exchange,
    query: dns.message.Message,
    wire: bytes,
    *,
    deadline: float,
    mono: float,
) -> None:
    async def read_exactly(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, n - len(buf)), max(0.0, deadline - time.monotonic()))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    try:
        await asyncio.wait_for(
            loop.sock_sendall(sock, struct.pack("!H", len(wire)) + wire), max(0.0, deadline - time.monotonic())
        )
        (length,) = struct.unpack("!H", await read_exactly(2))
        data = await read_exactly(length)
    except TimeoutError:
        ex.outcome, ex.detail = TIMEOUT, "connected, but no answer to the query"
        ex.waited_s = time.monotonic() - mono
        return
    except EOFError:
        ex.outcome, ex.detail = CLOSED, "connected, but the server closed the connection without answering"
        return
    except OSError as e:
        ex.errno = e.errno
        ex.outcome, ex.detail = RESET, f"connected, then: {e.strerror}"
        return
    ex.rtt_s = time.monotonic() - mono
    ex.response_len = len(data)
    try:
        msg = dns.message.from_wire(data, ignore_trailing=True)
    except dns.exception.DNSException as e:
        ex.outcome, ex.detail = MALFORMED, f"unparsable answer: {e}"
        return
    if not query.is_response(msg):
        ex.outcome, ex.detail = MALFORMED, f"the answer does not match the query (id {msg.id})"
        return
    ex.outcome, ex.response = ANSWER, msg


def _log_tcp(ex: Exchange, query: dns.message.Message, dst: tuple[str, int]) -> None:
    local = ex.local or ("?", 0)
    ex.packets.append(packetlog.tcp_line(ex.sent_at, local, dst, "Flags [S], length 0"))
    if ex.connect_rtt_s is not None:
        t = ex.sent_at + ex.connect_rtt_s
        ex.packets.append(packetlog.tcp_line(t, dst, local, "Flags [S.], length 0"))
        ex.packets.append(
            packetlog.tcp_line(
                t, local, dst, f"Flags [P.], length {ex.query_len + 2}: {packetlog.dns_text(query, ex.query_len)}"
            )
        )
        if ex.response is not None:
            t2 = ex.sent_at + (ex.rtt_s or 0.0)
            text = packetlog.dns_text(ex.response, ex.response_len)
            ex.packets.append(packetlog.tcp_line(t2, dst, local, f"Flags [P.], length {ex.response_len + 2}: {text}"))
    elif ex.outcome == RESET:
        ex.packets.append(packetlog.tcp_line(ex.sent_at + (ex.rtt_s or 0.0), dst, local, "Flags [R.], length 0"))
    elif ex.error is not None:
        ex.packets.append(packetlog.icmp_line(ex.sent_at + (ex.rtt_s or 0.0), ex.error, local[0], dst, "tcp"))


def make_query(
    name: str, rdtype: str, *, edns: bool, nsid: bool = False, recursive: bool = True, cd: bool = False
) -> dns.message.Message:
    """A query as a stub resolver sends it (RD=1); with EDNS0 (and NSID) when asked; RD=0 for an
    authoritative server; CD=1 to ask a validating resolver for the answer it would not validate."""
    import dns.edns

    options: list[dns.edns.Option] | None = [dns.edns.GenericOption(dns.edns.NSID, b"")] if nsid else None
    query = dns.message.make_query(name, rdtype, use_edns=0 if edns else False, options=options)
    if not recursive:
        query.flags &= ~dns.flags.RD
    if cd:
        query.flags |= dns.flags.CD
    return query


async def ask(server: Server, query: dns.message.Message, timeout: float) -> list[Exchange]:
    """Ask once as a stub resolver does: over UDP, then over TCP when the answer is truncated."""
    deadline = time.monotonic() + timeout
    first = await udp_exchange(server, query, timeout)
    if first.outcome == ANSWER and first.response is not None and first.response.flags & dns.flags.TC:
        return [first, await tcp_exchange(server, query, max(0.0, deadline - time.monotonic()))]
    return [first]


async def udp_attempts(server: Server, query: dns.message.Message, budget: float, attempts: int) -> list[Exchange]:
    """Up to ``attempts`` UDP tries within ``budget`` seconds, retrying only silence (tenacity).

    Each try gets an equal share of the time still left, so the tries together never outlast the budget.
    An answer, an ICMP error or a local error is definitive and never retried.
    """
    from tenacity import AsyncRetrying, RetryCallState, retry_if_result, stop_after_attempt
    from tenacity.stop import stop_base

    deadline = time.monotonic() + budget
    tried: list[Exchange] = []

    async def once() -> Exchange:
        share = max(0.0, deadline - time.monotonic()) / max(1, attempts - len(tried))
        ex = await udp_exchange(server, query, share)
        tried.append(ex)
        return ex

    class out_of_time(stop_base):
        def __call__(self, retry_state: RetryCallState) -> bool:
            return deadline - time.monotonic() < 0.005

    retrying = AsyncRetrying(
        stop=stop_after_attempt(attempts) | out_of_time(),
        retry=retry_if_result(lambda ex: not ex.definitive),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
    )
    await retrying(once)
    return tried


def errno_of(ex: Exchange) -> str:
    return errno_mod.errorcode.get(ex.errno, str(ex.errno)) if ex.errno is not None else "no errno"


async def burst(
    server: Server, query: Callable[[], dns.message.Message], count: int, interval: float, wait: float
) -> Burst:
    """dnsping's measurement in one go: ``count`` queries ``interval`` apart, each waited on for ``wait``.

    One connected socket carries the whole burst, whatever ``count`` is (a burst never runs out of file
    descriptors): each query has its own id, an answer counts when dnspython says it answers that query and it
    came within ``wait`` of that query's send. The burst takes about ``count * interval + wait``, whatever is
    lost. Returns the loss and the latency figures (seconds) of the answers that came.
    """
    loop = asyncio.get_running_loop()
    b = _Burst(server, count, interval, wait)
    try:
        sock, sockaddr = _open(server, socket.SOCK_DGRAM)
        sock.connect(sockaddr)
    except OSError:
        b.counts[LOCAL_ERROR] = count
        return b.figures(sent=count)
    with sock:
        loop.add_reader(sock.fileno(), b.on_ready, sock)
        try:
            await b.send_all(sock, query)
            last = max((at for _, at in b.sent.values()), default=time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(b.all_in.wait(), max(0.0, last + wait - time.monotonic()))
        finally:
            loop.remove_reader(sock.fileno())
    return b.figures()


class _Burst:
    """The state of one burst: the queries in flight by id, the answers' times, the other outcomes."""

    def __init__(self, server: Server, count: int, interval: float, wait: float) -> None:
        self.server, self.count, self.interval, self.wait = server, count, interval, wait
        self.sent: dict[int, tuple[dns.message.Message, float]] = {}
        self.rtts: dict[int, float] = {}
        self.first: Exchange | None = None
        self.counts = {ANSWER: 0, ICMP: 0, LOCAL_ERROR: 0}
        self.all_in = asyncio.Event()

    async def send_all(self, sock: socket.socket, query: Callable[[], dns.message.Message]) -> None:
        for i in range(self.count):
            if i:
                await asyncio.sleep(self.interval)
            q = query()
            while q.id in self.sent:
                q.id = dns.entropy.random_16()
            self.sent[q.id] = (q, time.monotonic())
            try:
                sock.send(q.to_wire())
            except OSError:
                del self.sent[q.id]
                self.counts[LOCAL_ERROR] += 1

    def on_ready(self, sock: socket.socket) -> None:
        self.counts[ICMP] += sum(1 for e in drain_errqueue(sock) if e.origin != "local")
        while True:
            try:
                data = sock.recv(65535)
            except OSError:  # nothing more (EAGAIN), or an error whose queue entry was read above
                return
            self._answer(data)

    def _answer(self, data: bytes) -> None:
        try:
            msg = dns.message.from_wire(data, ignore_trailing=True, raise_on_truncation=False)
        except dns.exception.DNSException:
            return
        asked = self.sent.get(msg.id)
        if asked is None or msg.id in self.rtts or not asked[0].is_response(msg):
            return
        rtt = time.monotonic() - asked[1]
        if rtt > self.wait:
            return  # later than its wait: lost, as a query waited on alone would be
        self.rtts[msg.id] = rtt
        if self.first is None:
            self.first = Exchange("udp", self.server, ANSWER, rtt_s=rtt, response=msg, response_len=len(data))
        if len(self.rtts) == len(self.sent) == self.count:
            self.all_in.set()

    def figures(self, sent: int | None = None) -> Burst:
        """Loss and latency (seconds) of the answers that came, and what became of the others."""
        sent = len(self.sent) if sent is None else sent
        rtts = sorted(self.rtts.values())
        received = len(rtts)
        self.counts[ANSWER] = received
        silent = max(0, len(self.sent) - received - self.counts[ICMP])  # failed sends are local errors, not silence
        outcomes = {o: n for o, n in {**self.counts, TIMEOUT: silent}.items() if n}
        return Burst(
            first_answer=self.first.to_evidence() if self.first else None,
            sent=sent,
            received=received,
            loss=round(1 - received / sent, 4) if sent else 0.0,
            interval_s=self.interval,
            wait_s=round(self.wait, 6),
            rtt_min_s=round(rtts[0], 6) if rtts else None,
            rtt_median_s=round(statistics.median(rtts), 6) if rtts else None,
            rtt_avg_s=round(statistics.fmean(rtts), 6) if rtts else None,
            rtt_max_s=round(rtts[-1], 6) if rtts else None,
            rtt_stddev_s=round(statistics.pstdev(rtts), 6) if rtts else None,
            outcomes=dict(sorted(outcomes.items())),
        )
