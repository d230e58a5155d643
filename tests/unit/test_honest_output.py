"""Nothing printed that is not true: a query that could not leave is a finding, not a packet in the log;
a ping that could not be sent says so; the step and the verdict count the same queries."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from runbook.diagnosis import diagnose
from runbook.model import Server, Status, Target
from tests.conftest import ROOT, finding, validate_document


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-rn", "true"], capture_output=True, check=False).returncode == 0


@pytest.mark.skipif(not _can_unshare(), reason="needs unprivileged user and network namespaces (unshare -rn)")
def test_a_send_that_fails_leaves_no_packet_in_the_log() -> None:
    # A private network namespace whose loopback is down: every send fails with ENETUNREACH, nothing leaves.
    proc = subprocess.run(
        [
            "unshare",
            "-rn",
            sys.executable,
            "-m",
            "runbook",
            "diagnose",
            "example.com",
            "--server",
            "127.0.0.1:5399",
            "--format",
            "json",
            "--no-record",
            "--skip",
            "web",
            "--skip",
            "firewall",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    doc = validate_document(json.loads(proc.stdout))
    assert [line for f in doc["findings"] for line in f["evidence"].get("packets", [])] == []
    udp = next(f for f in doc["findings"] if f["step"] == "udp53")
    assert "could not be sent" in udp["summary"] and "ENETUNREACH" in udp["summary"]
    ping = next(f for f in doc["findings"] if f["step"] == "ping")
    assert ping["status"] == "unknown" and "could be sent" in ping["summary"] and "no reply" not in ping["summary"]
    assert doc["verdict"]["code"] == "dns-server-unreachable"
    assert "could not leave this host" in doc["verdict"]["summary"]


def test_the_verdict_counts_the_queries_the_udp_step_says_it_sent() -> None:
    server = Server("203.0.113.2")
    timeout = {"transport": "udp", "outcome": "timeout"}
    findings = [
        finding("resolve/203.0.113.2", "resolve", Status.CRITICAL, "no answer", timeout, server=server.label),
        finding(
            "udp53/203.0.113.2",
            "udp53",
            Status.CRITICAL,
            "UDP 203.0.113.2:53: no answer and no ICMP error to 3 queries",
            {**timeout, "attempts": [timeout] * 3, "sent": 3},
            server=server.label,
        ),
        finding("ping/203.0.113.2", "ping", Status.OK, "up", {"sent": 3, "received": 3, "rtt_avg_s": 0.001}),
    ]
    verdict = diagnose(Target("example.com.", "example.com"), [server], findings)
    assert verdict.code == "dns-port-filtered"
    assert "(3 sent," in verdict.summary
