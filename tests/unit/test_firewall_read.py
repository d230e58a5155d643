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
