"""`runbook analyze` on captures made in the lab by tcpdump while real daemons fail: the same verdict
`diagnose` gives there, read from the traffic alone."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import validate_document
from tests.lab.lab import AUTH, BIG_TXT, RESOLVER, ROGUE, ZONE, Lab
from tests.lab.test_verdicts import FAST, ruleset


def analyze(lab: Lab, path: Path, *args: str) -> dict:  # type: ignore[type-arg]
    proc = lab.runbook("analyze", str(path), "--format", "json", "--no-record", *args)
    if proc.returncode not in (0, 1, 2):  # say what the analysis saw, not only its exit code
        doc = json.loads(proc.stdout) if proc.stdout.startswith("{") else {}
        seen = [f"{f['id']}: {f['summary']}" for f in doc.get("findings", [])]
        raise AssertionError(f"exit {proc.returncode}: {doc.get('verdict', proc.stderr)}; findings: {seen}")
    doc = validate_document(json.loads(proc.stdout))
    assert doc["exit_code"] == proc.returncode and doc["command"] == "analyze"
    return doc


def captured(lab: Lab, tmp_path: Path, *diagnose: str, interface: str = "c0", text: bool = False) -> tuple[Path, str]:
    path = tmp_path / ("capture.txt" if text else "capture.pcap")
    with lab.capturing(path, interface, text=text):
        doc, _ = lab.diagnose(*FAST, *diagnose)
    return path, doc["verdict"]["code"]


def test_the_seeds_incident_captured_gives_service_down(lab: Lab, tmp_path: Path) -> None:
    with lab.stopped("unbound"):
        path, active = captured(lab, tmp_path)
    doc = analyze(lab, path)
    assert active == doc["verdict"]["code"] == "dns-service-down"
    udp = next(f for f in doc["findings"] if f["id"] == f"udp53/{RESOLVER}")
    assert udp["evidence"]["attempts"][0]["icmp"]["from_server"] is True
    assert "In the capture" in doc["verdict"]["summary"] and "query id" in doc["verdict"]["summary"]


def test_a_cooked_capture_of_a_silent_drop_gives_port_filtered(lab: Lab, tmp_path: Path) -> None:
    with lab.nft(lab.dns, ruleset("input", "meta l4proto { tcp, udp } th dport 53 drop")):
        path, active = captured(lab, tmp_path, "--skip", "dot", interface="any")
    doc = analyze(lab, path, "--wait", "0.5")
    # The pings in the capture prove the host up: filtered, as diagnose said.
    assert active == doc["verdict"]["code"] == "dns-port-filtered"


def test_a_path_reject_gives_blocked_in_path(lab: Lab, tmp_path: Path) -> None:
    rule = "meta l4proto { tcp, udp } th dport 53 reject with icmp type admin-prohibited"
    with lab.nft(lab.router, ruleset("forward", rule)):
        path, active = captured(lab, tmp_path)
    doc = analyze(lab, path)
    assert active == doc["verdict"]["code"] == "dns-blocked-in-path"


def test_a_hijacking_resolver_is_a_mismatch(lab: Lab, tmp_path: Path) -> None:
    with lab.running("rogue"), lab.resolv_conf(f"nameserver {ROGUE}\n"):
        path, active = captured(lab, tmp_path, "--skip", "web", "--resolver", RESOLVER)
    # The capture holds the rogue's answers and the honest resolver's: the servers disagree.
    doc = analyze(lab, path, "--name", ZONE)
    assert active == doc["verdict"]["code"] == "dns-answer-mismatch"


def test_servfail_from_a_stopped_authoritative_server(lab: Lab, tmp_path: Path) -> None:
    fresh = f"fresh-{secrets.token_hex(3)}.{ZONE}"  # not in the resolver's cache
    path = tmp_path / "capture.pcap"
    with lab.stopped("nsd"), lab.capturing(path):
        proc = lab.runbook("diagnose", fresh, "--format", "json", "--authoritative", AUTH, *FAST)
    active = json.loads(proc.stdout)["verdict"]["code"]
    doc = analyze(lab, path, "--server", RESOLVER, "--name", fresh, "--wait", "0.5")
    assert active == "upstream-servfail" and doc["verdict"]["code"] == "upstream-servfail"


def test_tcpdump_text_output_of_the_incident(lab: Lab, tmp_path: Path) -> None:
    """The way the incident's team held it: tcpdump's own lines, pasted."""
    with lab.stopped("unbound"):
        path, _ = captured(lab, tmp_path, text=True)
    assert "udp port 53 unreachable" in path.read_text() or "udp port domain unreachable" in path.read_text()
    doc = analyze(lab, path)
    assert doc["verdict"]["code"] == "dns-service-down"
    report = lab.runbook("analyze", str(path), "--format", "markdown", "--no-record").stdout
    assert "as the capture shows it" in report


@pytest.mark.parametrize("bad", [b"", b"not a capture at all\n", b"\xa1\xb2\xc3\xd4" + b"\x00" * 3])
def test_bad_files_get_one_line_and_exit_3(lab: Lab, tmp_path: Path, bad: bytes) -> None:
    path = tmp_path / "bad"
    path.write_bytes(bad)
    proc = lab.runbook("analyze", str(path), "--no-record")
    assert proc.returncode == 3 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_truncation_and_the_tcp_retry_are_read(lab: Lab, tmp_path: Path) -> None:
    path = tmp_path / "capture.pcap"
    with lab.capturing(path):
        lab.runbook("diagnose", BIG_TXT, "--type", "TXT", *FAST, "--no-record")
    doc = analyze(lab, path, "--name", BIG_TXT)
    udp = next(f for f in doc["findings"] if f["id"] == f"udp53/{RESOLVER}")
    tcp = next(f for f in doc["findings"] if f["id"] == f"tcp53/{RESOLVER}")
    assert udp["evidence"]["truncated"] >= 1 and tcp["evidence"]["outcome"] == "answer"
    assert doc["verdict"]["code"] == "healthy"
    blocked = tmp_path / "blocked.pcap"
    with lab.nft(lab.dns, ruleset("input", "tcp dport 53 drop")), lab.capturing(blocked):
        lab.runbook("diagnose", BIG_TXT, "--type", "TXT", *FAST, "--no-record", "--skip", "dot")
    doc = analyze(lab, blocked, "--name", BIG_TXT, "--wait", "0.2")
    assert doc["verdict"]["code"] == "tcp-fallback-blocked", doc["verdict"]


def test_a_live_capture_while_the_incident_happens(lab: Lab) -> None:
    """--live: tcpdump on the client's interface for a while, then the analysis of what it saw."""
    with lab.stopped("unbound"):
        proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                lab.client,
                sys.executable,
                "-m",
                "runbook",
                "analyze",
                "--live",
                "c0",
                "--duration",
                "3",
                "--format",
                "json",
                "--no-record",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        while proc.poll() is None:  # the user reproduces the problem until the capture ends
            lab.runbook("diagnose", ZONE, "--timeout", "0.5", "--no-record", "--skip", "dot")
        out, err = proc.communicate(timeout=30)
    doc = validate_document(json.loads(out))
    assert proc.returncode == 2, err
    assert doc["verdict"]["code"] == "dns-service-down"
    assert doc["target"]["servers_from"].startswith("capture live capture on c0")
