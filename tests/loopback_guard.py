"""A safety net for the tests that run in the machine's own network namespace: only loopback.

An audit hook (PEP 578) sees every socket connect and sendto, and every getaddrinfo, of the process it is
installed in. Anything aimed off loopback is refused before it is sent, and written to stderr with the
marker below, which the tests look for.
"""

from __future__ import annotations

import ipaddress
import sys
from typing import Any

MARKER = "LOOPBACK-GUARD"


def _loopback(host: object) -> bool:
    text = str(host).split("%", 1)[0]
    if text in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


def _hook(event: str, args: tuple[Any, ...]) -> None:
    address: object = None
    if event in ("socket.connect", "socket.sendto") and len(args) >= 2:
        address = args[1]
    elif event == "socket.getaddrinfo" and args:
        address = (args[0],)
    if isinstance(address, tuple) and address and not _loopback(address[0]):
        sys.stderr.write(f"{MARKER}: refused {event} to {address[0]!r}\n")
        raise PermissionError(f"{MARKER}: {event} to {address[0]!r} is not loopback")


def install() -> None:
    sys.addaudithook(_hook)


if __name__ == "__main__":  # python -m tests.loopback_guard ARGS...: runbook ARGS under the guard
    install()
    from runbook.__main__ import main

    sys.argv = ["runbook", *sys.argv[1:]]
    main()
