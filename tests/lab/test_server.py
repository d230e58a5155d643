"""`runbook server` on the lab's DNS server host (its namespace), with the real daemons and real causes: the
cause named, as a verdict code, and the client's diagnosis pointing at this command."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from tests.conftest import validate_document
from tests.lab.lab import AUTH, RESOLVER, SIGNED_ZONE, ZONE, Lab
from tests.lab.test_verdicts import FAST, ruleset


def server(lab: Lab, *args: str) -> dict[str, Any]:
    proc = lab.runbook_on_server(
        "server", "--address", RESOLVER, "--window", "0.5", "--format", "json", "--no-record", *args
    )
    assert proc.returncode in (0, 1, 2, 3), proc.stderr
    doc = validate_document(json.loads(proc.stdout))
    assert doc["command"] == "server" and doc["exit_code"] == proc.returncode
    return doc


@contextlib.contextmanager
def holding_port(lab: Lab, address: str, *argv: str) -> Iterator[None]:
    proc = subprocess.Popen(["ip", "netns", "exec", lab.dns, *argv], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # bound
        yield
    finally:
        proc.kill()
        proc.wait()


def test_a_healthy_server(lab: Lab) -> None:
    doc = server(lab)
    assert doc["verdict"]["code"] == "healthy", doc["verdict"]
    running = next(f for f in doc["findings"] if f["id"] == "daemons/running")
    assert "unbound" in {d["name"] for d in running["evidence"]["daemons"]}


def test_the_seeds_incident_on_the_server_is_a_daemon_not_running(lab: Lab) -> None:
    with lab.stopped("unbound"):
        doc = server(lab)
        client, _ = lab.diagnose(*FAST)
    assert doc["verdict"]["code"] == "daemon-not-running", doc["verdict"]
    # The client's diagnosis names the command that finds this, on this host.
    assert any(f"runbook server --address {RESOLVER}" in c for a in client["verdict"]["actions"] for c in a["commands"])


def test_a_daemon_killed_by_a_signal_is_not_running(lab: Lab) -> None:
    unbound = lab.daemons["unbound"].proc
    assert unbound is not None
    os.kill(unbound.pid, signal.SIGKILL)  # no clean shutdown: its pid file and control socket stay behind
    unbound.wait()
    try:
        doc = server(lab)
    finally:
        lab.start("unbound")
    assert doc["verdict"]["code"] == "daemon-not-running", doc["verdict"]


def test_a_daemon_listening_on_loopback_only(lab: Lab) -> None:
    dnsmasq = [
        "dnsmasq",
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        "--user=root",
        "--group=root",
        "--pid-file=",
        "--log-facility=-",
    ]
    with lab.stopped("unbound"):
        proc = subprocess.Popen(["ip", "netns", "exec", lab.dns, *dnsmasq], stderr=subprocess.PIPE, text=True)
        try:
            lab.wait_answering_at("127.0.0.1")
            doc = server(lab)
        finally:
            proc.kill()
            proc.wait()
    assert doc["verdict"]["code"] == "daemon-not-listening", doc["verdict"]
    assert "127.0.0.1" in doc["verdict"]["summary"]


def test_port_53_held_by_another_program(lab: Lab) -> None:
    holder = [
        sys.executable,
        "-c",
        "import socket,sys,time; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
        f"s.bind(('{RESOLVER}', 53)); print('bound', flush=True); time.sleep(60)",
    ]
    with lab.stopped("unbound"), holding_port(lab, RESOLVER, *holder):
        doc = server(lab)
    assert doc["verdict"]["code"] == "port-53-taken", doc["verdict"]


def test_a_configuration_error_is_quoted(lab: Lab) -> None:
    conf = lab.workdir / "unbound" / "unbound.conf"
    good = conf.read_text()
    try:
        conf.write_text(good + "  this-is-not-an-option: yes\n")
        doc = server(lab)
    finally:
        conf.write_text(good)
    assert doc["verdict"]["code"] == "daemon-config-invalid", doc["verdict"]
    assert "unbound-checkconf" in doc["verdict"]["summary"]


def test_an_inbound_drop_on_the_server(lab: Lab) -> None:
    with lab.nft(lab.dns, ruleset("input", "udp dport 53 drop")):
        doc = server(lab)
    assert doc["verdict"]["code"] == "server-firewall-blocks-dns", doc["verdict"]
    assert "drop" in doc["verdict"]["summary"]


def test_bad_input_is_one_line_and_exit_3(lab: Lab) -> None:
    proc = lab.runbook_on_server("server", "--address", "not-an-address", "--no-record")
    assert proc.returncode == 3 and proc.stderr.count("\n") == 1


def test_a_flood_that_overflows_the_receive_buffer_is_overload(lab: Lab) -> None:
    """Waves of dnsperf from the client against unbound with a 4 KiB receive buffer, while unbound is short of CPU
    (something else takes the cores): the kernel drops what unbound cannot read in time, and `runbook server`
    counts it over its window. (On two free cores this unbound reads as fast as dnsperf sends: the drops would
    be a few dozen in 40,000, which is rightly not an overload.)"""
    with lab.unbound_with("so-rcvbuf: 4k"), lab.starved("unbound"), lab.flooding(RESOLVER):
        doc = server(lab, "--window", "2")
    assert doc["verdict"]["code"] == "server-overloaded", doc["verdict"]
    assert "receive buffer" in doc["verdict"]["summary"]
    # The daemon's own view, from its control channel, counts the flood too.
    view = next(f for f in doc["findings"] if f["id"] == "control/unbound")
    assert view["evidence"]["queries_per_s"] > 1000, view
    assert doc["duration_s"] < 4  # a bounded window, on a server under attack


def test_the_daemons_own_view_and_its_log_file(lab: Lab) -> None:
    """A healthy server: unbound's control channel answers (queries counted over the window), and the lines of
    its own log file that speak of trouble are quoted, here a validation failure of the lab's broken zone."""
    lab.ns(lab.client, "dig", "+time=1", "+tries=1", f"@{RESOLVER}", f"www.{SIGNED_ZONE}", "A", check=False)
    doc = server(lab)
    assert doc["verdict"]["code"] == "healthy", doc["verdict"]
    view = next(f for f in doc["findings"] if f["id"] == "control/unbound")
    assert view["status"] == "ok" and "unbound-control" in view["evidence"]["command"]
    log = next(f for f in doc["findings"] if f["id"] == "log/files")
    assert any("validation failure" in line for line in log["evidence"]["lines"]), log


def test_the_authoritative_servers_control_channels(lab: Lab) -> None:
    """On the lab's authoritative host, NSD (control on a local socket) and Knot (its default control socket)
    answer their read-only commands: nsd-control's counters over the window, knotc's status."""
    lab.ns(lab.client, "dig", "+time=1", "+tries=1", f"@{AUTH}", f"www.{ZONE}", "A", check=False)
    proc = lab.ns(
        lab.auth,
        sys.executable,
        "-m",
        "runbook",
        "server",
        "--address",
        AUTH,
        "--window",
        "0.5",
        "--format",
        "json",
        "--no-record",
        check=False,
    )
    doc = validate_document(json.loads(proc.stdout))
    assert doc["verdict"]["code"] == "healthy", doc["verdict"]
    views = {f["id"]: f for f in doc["findings"] if f["step"] == "control"}
    nsd = views["control/nsd"]
    assert nsd["status"] == "ok" and nsd["evidence"]["queries_per_s"] is not None, views
    assert views["control/knotd"]["status"] == "ok", views
