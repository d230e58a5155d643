"""Reading the rules: the tools are found where Debian puts them even under cron's PATH, and "needs root"
is said because the kernel refused, not because of who we are."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from checks import firewall


def _tool(directory: Path, name: str, script: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_a_refusal_by_the_kernel_reads_as_not_permitted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tool(tmp_path, "nft", "echo 'netlink: Error: cache initialization failed: Operation not permitted' >&2; exit 1")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(firewall, "SBIN", ())
    out, why = asyncio.run(firewall._run(["nft", "-j", "list", "ruleset"], 5.0))
    assert out is None and why is not None and firewall.NOT_PERMITTED in why


def test_other_failures_are_not_called_a_permission_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tool(tmp_path, "nft", "echo 'Error: syntax error' >&2; exit 1")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(firewall, "SBIN", ())
    _, why = asyncio.run(firewall._run(["nft", "-j", "list", "ruleset"], 5.0))
    assert why is not None and firewall.NOT_PERMITTED not in why and "syntax error" in why
    _, why = asyncio.run(firewall._run(["iptables-legacy-save"], 5.0))
    assert why == "iptables-legacy-save is not installed"


def test_tools_in_sbin_are_found_under_crons_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sbin = tmp_path / "sbin"
    sbin.mkdir()
    _tool(sbin, "nft", "echo '{\"nftables\": []}'")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setattr(firewall, "SBIN", (str(sbin),))
    assert firewall.find_tool("nft") == str(sbin / "nft")
    out, why = asyncio.run(firewall._run(["nft", "-j", "list", "ruleset"], 5.0))
    assert why is None and out is not None and "nftables" in out
    assert os.environ["PATH"] == "/usr/bin:/bin"  # the user's PATH is searched first, and left alone


def test_a_backend_that_could_not_be_read_is_never_an_ok(tmp_path: Path) -> None:
    """nft fails on its ruleset while the legacy iptables rules read fine and let DNS through: the answer is
    unknown, and the summary says which rules were not read (not only the evidence)."""
    import json
    import subprocess
    import sys

    from tests.conftest import ROOT

    _tool(tmp_path, "nft", "echo 'Error: Could not process rule: Invalid argument' >&2; exit 1")
    for empty in ("iptables-nft-save", "ip6tables-nft-save", "ip6tables-legacy-save"):
        _tool(tmp_path, empty, "true")  # found before any real one in sbin: this test's host has no other rules
    _tool(
        tmp_path,
        "iptables-legacy-save",
        "printf '*filter\\n:INPUT ACCEPT [0:0]\\n:OUTPUT DROP [0:0]\\n"
        "-A OUTPUT -p udp --dport 5399 -j ACCEPT\\n-A OUTPUT -p tcp --dport 5399 -j ACCEPT\\n"
        "-A OUTPUT -m state --state ESTABLISHED -j ACCEPT\\nCOMMIT\\n'",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "runbook", "firewall", "example.com", "--server", "127.0.0.1:5399", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env={**os.environ, "PATH": f"{tmp_path}:/usr/bin:/bin"},
        check=False,
    )
    doc = json.loads(proc.stdout)
    fw = next(f for f in doc["findings"] if f["step"] == "firewall")
    assert fw["status"] == "unknown", fw["summary"]
    assert "the nft rules could not be read" in fw["summary"] and "Invalid argument" in fw["summary"]
    assert fw["evidence"]["sources"] == ["iptables-legacy"] and fw["evidence"]["unread"] == ["nft"]
