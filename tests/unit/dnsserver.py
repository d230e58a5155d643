"""A small DNS server on loopback, port 0, for the wire-format tests (UDP and TCP, in a thread).

Its behaviour is data: answer, refuse, truncate over UDP, stay silent for the first N queries, or send a
stray datagram before the answer. dnspython builds and parses every message.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.rcode
import dns.rrset


@dataclass
class Behaviour:
    # Loopback: the web step connects to what the server answers, and tests send nothing off loopback.
    address: str = "127.0.0.2"
    rcode: int = dns.rcode.NOERROR
    truncate_udp: bool = False
    drop_first: int = 0
    stray_first: bool = False
    txt: str | None = None
    seen: list[str] = field(default_factory=list)


def _answer(wire: bytes, b: Behaviour, over: str) -> bytes:
    query = dns.message.from_wire(wire)
    response = dns.message.make_response(query)
    response.flags |= dns.flags.RA
    response.set_rcode(b.rcode)
    if b.rcode == dns.rcode.NOERROR:
        q = query.question[0]
        if b.txt is not None:
            response.answer.append(dns.rrset.from_text(q.name, 60, "IN", "TXT", f'"{b.txt}"'))
        else:
            response.answer.append(dns.rrset.from_text(q.name, 300, "IN", "A", b.address))
    if over == "udp" and b.truncate_udp:
        response.flags |= dns.flags.TC
        response.answer.clear()
    return response.to_wire()


@contextmanager
def dns_server(behaviour: Behaviour | None = None, host: str = "127.0.0.1") -> Iterator[tuple[str, int, Behaviour]]:
    b = behaviour or Behaviour()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET

    class UDP(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            data, sock = self.request
            b.seen.append("udp")
            if b.drop_first > 0:
                b.drop_first -= 1
                return
            if b.stray_first:
                b.stray_first = False
                sock.sendto(b"\x00\x01garbage", self.client_address)
                sock.sendto(struct.pack("!H", 1) + data[2:], self.client_address)  # wrong id
            sock.sendto(_answer(data, b, "udp"), self.client_address)

    class TCP(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            conn = self.request
            b.seen.append("tcp")
            length = struct.unpack("!H", conn.recv(2))[0]
            data = b""
            while len(data) < length:
                data += conn.recv(length - len(data))
            out = _answer(data, b, "tcp")
            conn.sendall(struct.pack("!H", len(out)) + out)

    class UDPServer(socketserver.ThreadingUDPServer):
        address_family = family
        allow_reuse_address = True

    class TCPServer(socketserver.ThreadingTCPServer):
        address_family = family
        allow_reuse_address = True

    udp = UDPServer((host, 0), UDP)
    port = udp.server_address[1]
    tcp = TCPServer((host, port), TCP)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (udp, tcp)]
    for t in threads:
        t.start()
    try:
        yield host, port, b
    finally:
        for s in (udp, tcp):
            s.shutdown()
            s.server_close()


def closed_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on (bound, then released)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
    return port
