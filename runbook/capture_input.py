"""Where `runbook analyze` reads from: a file, standard input, or a live capture by tcpdump (root).

A live capture runs ``tcpdump -w -`` on the interface for the given time and streams its pcap into the
analysis as it comes; it only listens (nothing is sent), and tcpdump is stopped by its pid.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from runbook.errors import InputError

LIVE_FILTER = ["port", "53", "or", "icmp", "or", "icmp6"]


@contextlib.contextmanager
def opened(file: str | None, live: str | None, duration: float) -> Iterator[tuple[IO[bytes], str]]:
    if live is not None:
        with _live(live, duration) as stream:
            yield stream, f"live capture on {live} ({duration:g} s)"
        return
    assert file is not None
    if file == "-":
        yield sys.stdin.buffer, "standard input"
        return
    path = Path(file)
    if path.is_dir():
        raise InputError(f"{file} is a directory, not a capture")
    try:
        stream = path.open("rb")
    except OSError as e:
        raise InputError(f"cannot read {file}: {e.strerror or e}") from None
    with stream:
        yield stream, file


@contextlib.contextmanager
def _live(interface: str, duration: float) -> Iterator[IO[bytes]]:
    if not 0 < duration <= 3600:
        raise InputError(f"--duration {duration:g} is out of range: give more than 0 and at most 3600 seconds")
    if os.geteuid() != 0:
        raise InputError(
            "a live capture needs root (CAP_NET_RAW): run it as root, or capture with tcpdump and analyse the file"
        )
    tcpdump = shutil.which("tcpdump", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    if tcpdump is None:
        raise InputError("a live capture needs tcpdump (Debian: apt-get install tcpdump)")
    proc = subprocess.Popen(
        [tcpdump, "-i", interface, "-U", "-w", "-", "-s", "0", *LIVE_FILTER],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    timer = threading.Timer(duration, proc.terminate)
    timer.start()
    try:
        assert proc.stdout is not None
        if not proc.stdout.peek(4):  # type: ignore[attr-defined]  # a BufferedReader; empty: tcpdump failed
            proc.wait(timeout=5)
            why = (proc.stderr.read().decode(errors="replace") if proc.stderr else "").strip().splitlines()
            raise InputError(f"tcpdump could not capture on {interface}: {why[-1] if why else 'no output'}")
        yield proc.stdout
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
