"""``runbook demo``: the seed's incident (and its cousins) reproduced on loopback, unprivileged.

Inside this process: an authoritative server for yummyrecipesforme.com and a recursive-style responder that
asks it, both on 127.0.0.0/8 addresses and free ports, built with dnspython (zone, messages) and asyncio
(UDP and TCP). A scenario sets them up; then the real ``diagnose`` runs against them — the same engine,
checks, diagnosis and renderers, the demo's servers given as --server and --authoritative. Nothing in the
checks knows it is a demo, and nothing leaves the machine (the web step is off: the demo serves no site).
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone
from msgspec.structs import replace

from runbook.config import Settings
from runbook.model import Run, Server

ZONE = "yummyrecipesforme.com."
SITE = "203.0.113.22"
FORGED = "198.51.100.66"
RESOLVER_HOST = "127.53.0.1"
AUTH_HOST = "127.53.0.2"


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    expected: str
    qname: str = ZONE
    rdtype: str = "A"


SCENARIOS = {
    s.name: s
    for s in (
        Scenario(
            "incident",
            "the incident: the resolver's port is closed, UDP 53 draws an ICMP port unreachable",
            "dns-service-down",
        ),
        Scenario("healthy", "everything works: the resolver answers what the authoritative server says", "healthy"),
        Scenario(
            "hijack", "the resolver answers an address the authoritative server does not give", "dns-answer-mismatch"
        ),
        Scenario("servfail", "the authoritative server is gone: the resolver answers SERVFAIL", "upstream-servfail"),
        Scenario("nxdomain", "the name is missing from the zone", "nxdomain", qname="www." + ZONE),
        Scenario(
            "truncated",
            "the answer needs TCP, and the resolver's TCP listener is closed",
            "tcp-fallback-blocked",
            rdtype="TXT",
        ),
        Scenario("slow", "the resolver delays every answer by 400 ms and drops one query in three", "dns-degraded"),
    )
}

ZONE_TEXT = f"""
$TTL 300
@      IN SOA ns1 hostmaster 2026112501 3600 600 86400 300
@      IN NS  ns1
ns1    IN A   {AUTH_HOST}
@      IN A   {SITE}
@      IN TXT {" ".join(f'"{chr(97 + i) * 200}"' for i in range(4))}
"""


def _authority(zone: dns.zone.Zone, query: dns.message.Message) -> dns.message.Message:
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    q = query.question[0]
    origin = zone.origin or dns.name.root
    if not q.name.is_subdomain(origin):
        response.set_rcode(dns.rcode.REFUSED)
        response.flags &= ~dns.flags.AA
        return response
    node = zone.get_node(q.name)
    soa = zone.find_rrset(origin, dns.rdatatype.SOA)
    if node is None:
        response.set_rcode(dns.rcode.NXDOMAIN)
        response.authority.append(soa)
        return response
    rdataset = node.get_rdataset(dns.rdataclass.IN, q.rdtype)
    if rdataset is None:
        response.authority.append(soa)
    else:
        response.answer.append(dns.rrset.from_rdata_list(q.name, rdataset.ttl, list(rdataset)))
    return response


class _Datagram(asyncio.DatagramProtocol):
    def __init__(self, handle: Callable[[bytes], Any]) -> None:
        self.handle = handle
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        async def reply() -> None:
            out = await self.handle(data)
            if out is not None and self.transport is not None:
                self.transport.sendto(out, addr)

        asyncio.get_running_loop().create_task(reply())


class DemoServers:
    """The demo's two servers, set up for one scenario; closed (ports released) on exit."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.zone = dns.zone.from_text(ZONE_TEXT, origin=ZONE, relativize=False)
        if scenario.name == "nxdomain":
            self.zone.delete_node("www." + ZONE)
        self.closers: list[Callable[[], Any]] = []
        self.count = 0
        self.resolver = Server(RESOLVER_HOST, 0)
        self.auth = Server(AUTH_HOST, 0)

    async def __aenter__(self) -> DemoServers:
        loop = asyncio.get_running_loop()
        if self.scenario.name == "servfail":
            self.auth = Server(AUTH_HOST, _free_port(AUTH_HOST))  # nothing listens there: the server is gone
        else:
            udp, _ = await loop.create_datagram_endpoint(lambda: _Datagram(self._auth_bytes), local_addr=(AUTH_HOST, 0))
            port = udp.get_extra_info("sockname")[1]
            self.closers.append(udp.close)
            tcp = await asyncio.start_server(self._tcp(self._auth_bytes), AUTH_HOST, port)
            self.closers.append(tcp.close)
            self.auth = Server(AUTH_HOST, port)
        if self.scenario.name == "incident":
            self.resolver = Server(RESOLVER_HOST, _free_port(RESOLVER_HOST))  # the closed port of the seed
        else:
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _Datagram(self._resolve_udp), local_addr=(RESOLVER_HOST, 0)
            )
            port = udp.get_extra_info("sockname")[1]
            self.closers.append(udp.close)
            if self.scenario.name != "truncated":
                tcp = await asyncio.start_server(self._tcp(self._resolve_tcp), RESOLVER_HOST, port)
                self.closers.append(tcp.close)
            self.resolver = Server(RESOLVER_HOST, port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for close in self.closers:
            close()
        await asyncio.sleep(0)

    # -- the authoritative server ------------------------------------------------------------------------
    async def _auth_bytes(self, data: bytes) -> bytes | None:
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return None
        return _authority(self.zone, query).to_wire()

    # -- the recursive-style responder -------------------------------------------------------------------
    async def _resolve(self, data: bytes, over: str) -> bytes | None:
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return None
        if self.scenario.name == "slow":
            self.count += 1
            if over == "udp" and self.count % 3 == 0:  # a lost datagram (TCP would retransmit it)
                return None
            await asyncio.sleep(0.4)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA
        q = query.question[0]
        if q.rdclass != dns.rdataclass.IN:
            response.set_rcode(dns.rcode.REFUSED)
            return response.to_wire()
        if self.scenario.name == "hijack" and q.rdtype == dns.rdatatype.A and q.name == dns.name.from_text(ZONE):
            response.answer.append(dns.rrset.from_text(q.name, 300, "IN", "A", FORGED))
            return response.to_wire()
        upstream = dns.message.make_query(q.name, q.rdtype)
        upstream.flags &= ~dns.flags.RD
        try:
            answer = await dns.asyncquery.udp(upstream, self.auth.host, timeout=0.3, port=self.auth.port)
            if answer.flags & dns.flags.TC:
                answer = await dns.asyncquery.tcp(upstream, self.auth.host, timeout=0.3, port=self.auth.port)
        except (dns.exception.DNSException, OSError):
            response.set_rcode(dns.rcode.SERVFAIL)
            return response.to_wire()
        response.set_rcode(answer.rcode())
        response.answer = answer.answer
        response.authority = answer.authority
        wire = response.to_wire()
        limit = query.payload if query.edns >= 0 else 512
        staged = self.scenario.name == "truncated" and q.rdtype == dns.rdatatype.TXT
        if over == "udp" and (len(wire) > limit or staged):
            response.answer, response.authority = [], []
            response.flags |= dns.flags.TC
            wire = response.to_wire()
        return wire

    async def _resolve_udp(self, data: bytes) -> bytes | None:
        return await self._resolve(data, "udp")

    async def _resolve_tcp(self, data: bytes) -> bytes | None:
        return await self._resolve(data, "tcp")

    @staticmethod
    def _tcp(handle: Callable[[bytes], Any]) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]:
        async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    (length,) = struct.unpack("!H", await reader.readexactly(2))
                    out = await handle(await reader.readexactly(length))
                    if out is None:
                        break
                    writer.write(struct.pack("!H", len(out)) + out)
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        return client


def _free_port(host: str) -> int:
    """A port nothing listens on: bound, then released."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
    return port


def settings_for(scenario: Scenario, base: Settings, resolver: Server, auth: Server) -> Settings:
    """The demo's own servers as --server and --authoritative; the web step off (no site is served)."""
    from runbook.config import parse_name

    target = replace(parse_name(scenario.qname.rstrip(".")), rdtype=scenario.rdtype)
    return replace(base, target=target, servers=(resolver,), authoritative=(auth,), skip=base.skip | {"web"})


async def run_scenario(scenario: Scenario, base: Settings, observer: Any = None) -> tuple[Run, Settings]:
    from runbook import engine
    from runbook.steps import RUNBOOK

    async with DemoServers(scenario) as servers:
        settings = settings_for(scenario, base, servers.resolver, servers.auth)
        run = await engine.execute(engine.plan(settings, RUNBOOK), observer)
    return run, settings
