"""A DNS relay that adds delay: the lab's slow link (this kernel has no netem qdisc).

Listens on ADDRESS:53 over UDP and TCP, and forwards every query to UPSTREAM:53 after DELAY seconds. With
FORGED, it is the lab's interceptor instead: every A question over UDP gets FORGED as its answer (built with
dnspython), while TCP is forwarded honestly, as a transparent proxy on the UDP path would.

    python -m tests.lab.relay ADDRESS UPSTREAM DELAY [FORGED]
"""

from __future__ import annotations

import asyncio
import socket
import struct
import sys


class Relay(asyncio.DatagramProtocol):
    def __init__(self, upstream: str, delay: float, forged: str | None = None) -> None:
        self.upstream, self.delay, self.forged = upstream, delay, forged
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.forged is not None and self.transport is not None:
            answer = forge(data, self.forged)
            if answer is not None:
                self.transport.sendto(answer, addr)  # type: ignore[attr-defined]
                return
        asyncio.get_running_loop().create_task(self.forward(data, addr))

    async def forward(self, data: bytes, addr: tuple[str, int]) -> None:
        await asyncio.sleep(self.delay)
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            await loop.sock_connect(sock, (self.upstream, 53))
            await loop.sock_sendall(sock, data)
            try:
                answer = await asyncio.wait_for(loop.sock_recv(sock, 65535), 5)
            except (TimeoutError, OSError):
                return
        if self.transport is not None:
            self.transport.sendto(answer, addr)  # type: ignore[attr-defined]


def forge(data: bytes, address: str) -> bytes | None:
    """An answer to an A question, with ``address`` as its record; None for anything else."""
    import dns.message
    import dns.rdatatype
    import dns.rrset

    query = dns.message.from_wire(data)
    question = query.question[0] if query.question else None
    if question is None or question.rdtype != dns.rdatatype.A:
        return None
    response = dns.message.make_response(query)
    response.answer.append(dns.rrset.from_text(question.name, 300, "IN", "A", address))
    wire: bytes = response.to_wire()
    return wire


async def tcp_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: str, delay: float) -> None:
    try:
        length = struct.unpack("!H", await reader.readexactly(2))[0]
        query = await reader.readexactly(length)
        await asyncio.sleep(delay)
        up_reader, up_writer = await asyncio.open_connection(upstream, 53)
        up_writer.write(struct.pack("!H", len(query)) + query)
        length = struct.unpack("!H", await up_reader.readexactly(2))[0]
        answer = await up_reader.readexactly(length)
        up_writer.close()
        writer.write(struct.pack("!H", len(answer)) + answer)
        await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main() -> None:
    address, upstream, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])
    forged = sys.argv[4] if len(sys.argv) > 4 else None
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: Relay(upstream, delay, forged), local_addr=(address, 53))
    server = await asyncio.start_server(lambda r, w: tcp_client(r, w, upstream, delay), address, 53)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
