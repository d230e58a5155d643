"""A DNS relay that adds delay: the lab's slow link (this kernel has no netem qdisc).

Listens on ADDRESS:53 over UDP and TCP, and forwards every query to UPSTREAM:53 after DELAY seconds.

    python -m tests.lab.relay ADDRESS UPSTREAM DELAY
"""

from __future__ import annotations

import asyncio
import socket
import struct
import sys


class Relay(asyncio.DatagramProtocol):
    def __init__(self, upstream: str, delay: float) -> None:
        self.upstream, self.delay = upstream, delay
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
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
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: Relay(upstream, delay), local_addr=(address, 53))
    server = await asyncio.start_server(lambda r, w: tcp_client(r, w, upstream, delay), address, 53)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
