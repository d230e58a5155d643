"""The run store: whole runs, concurrent writers, migrations, and failures that never cost a run its output."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runbook.store import SCHEMA_VERSION, Store, StoreError, default_path
from tests.unit.dnsserver import closed_port
from tests.unit.test_cli import runbook
from tests.unit.test_reports import make_run


def doc(run_id: str = "r1", name: str = "yummyrecipesforme.com.", verdict: str = "dns-service-down") -> dict[str, Any]:
    d = make_run("plain").to_document()
    d["run_id"], d["target"]["name"] = run_id, name
    d["verdict"]["code"] = verdict
    return d


def test_record_get_and_history_filters(tmp_path: Path) -> None:
    with Store(tmp_path / "runs.db") as store:
        store.record(doc("a"))
        store.record(doc("b", name="other.example."))
        store.record(doc("c", verdict="healthy"))
        assert store.get("a") == doc("a")
        assert store.get("nope") is None
        assert {r.run_id for r in store.history()} == {"a", "b", "c"}
        assert [r.run_id for r in store.history(name="other.example.")] == ["b"]
        assert [r.run_id for r in store.history(verdict="healthy")] == ["c"]
        assert len(store.history(limit=1)) == 1
        assert store.integrity() == "ok"


def test_default_path_follows_xdg_and_the_override() -> None:
    assert default_path({"RUNBOOK_STORE": "/x/runs.db"}) == Path("/x/runs.db")
    assert default_path({"XDG_STATE_HOME": "/state"}) == Path("/state/dns-runbook/runs.db")


def test_an_old_store_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE runs (run_id TEXT PRIMARY KEY, name TEXT NOT NULL, started_at TEXT NOT NULL, "
        "started_epoch REAL NOT NULL, verdict TEXT NOT NULL, status TEXT NOT NULL, exit_code INTEGER NOT NULL, "
        "document TEXT NOT NULL)"
    )
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    with Store(path) as store:
        store.record(doc("a"))
        store.record_outage({"name": "x.", "first_failure": "2026-11-25T13:24:00Z", "first_run_id": "a"})
        assert store.outage_for("a")["first_failure"] == "2026-11-25T13:24:00Z"
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_newer_or_corrupt_store_is_a_one_line_error(tmp_path: Path) -> None:
    newer = tmp_path / "newer.db"
    db = sqlite3.connect(newer)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer version"):
        Store(newer)
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot be used") as e:
        Store(corrupt)
    assert "\n" not in str(e.value)


def test_a_locked_store_fails_after_its_busy_timeout_not_forever(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    Store(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with Store(path, busy_timeout=0.2) as store, pytest.raises(StoreError, match="locked"):
            store.record(doc("a"))
    finally:
        holder.execute("ROLLBACK")


def test_a_corrupt_store_never_costs_the_run_its_output(tmp_path: Path) -> None:
    corrupt = tmp_path / "runs.db"
    corrupt.write_bytes(b"garbage" * 1000)
    proc = runbook(
        "diagnose",
        "yummyrecipesforme.com",
        "--server",
        f"127.0.0.1:{closed_port()}",
        "--format",
        "json",
        "--store",
        str(corrupt),
    )
    assert proc.returncode == 2  # the run's own exit code
    assert json.loads(proc.stdout)["verdict"]["code"] == "dns-service-down"
    assert "runbook: warning: the run was not recorded" in proc.stderr


def test_a_store_that_cannot_be_written_never_costs_the_run_its_output(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the store's folder should be")
    proc = runbook(
        "diagnose", "x.example", "--server", f"127.0.0.1:{closed_port()}", "--store", str(blocker / "runs.db")
    )
    assert proc.returncode == 2 and "dns-service-down" in proc.stdout
    assert "not recorded" in proc.stderr and proc.stderr.count("\n") == 1


def test_twenty_concurrent_runs_write_one_store_and_lose_none(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    server = f"127.0.0.1:{closed_port()}"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.loopback_guard",
                "diagnose",
                "yummyrecipesforme.com",
                "--server",
                server,
                "--format",
                "json",
                "--store",
                str(path),
                "--skip",
                "ping",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(20)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 2 for p in procs)
    assert not any("locked" in err or "not recorded" in err for _, err in outputs)
    ids = {json.loads(out)["run_id"] for out, _ in outputs}
    with Store(path) as store:
        assert {r.run_id for r in store.history(limit=100)} == ids
        assert store.integrity() == "ok"


WRITER = """
import sys
from runbook.store import Store
from tests.unit.test_store import doc
store = Store(__import__("pathlib").Path(sys.argv[1]))
print("ready", flush=True)
i = 0
while True:
    d = doc(f"run{i}")
    d["findings"][0]["evidence"]["padding"] = "x" * 200_000
    store.record(d)
    print("wrote", i, flush=True)
    i += 1
"""


def test_a_writer_killed_mid_write_leaves_a_sound_store(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    # Killed while writing: after some runs are whole, in the middle of the next ones (no timing guessed).
    for _ in range(3):
        assert proc.stdout.readline().startswith("wrote")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with Store(path) as store:
        assert store.integrity() == "ok"
        rows = store.history(limit=10_000)
        assert rows  # some runs made it, each one whole
        for row in rows:
            assert store.get(row.run_id)["findings"][0]["evidence"]["padding"] == "x" * 200_000


def _at(d: dict[str, Any], started_at: str) -> dict[str, Any]:
    d["started_at"] = started_at
    return d


def test_a_run_is_named_by_a_unique_prefix_or_last(tmp_path: Path) -> None:
    with Store(tmp_path / "runs.db") as store:
        store.record(_at(doc("20261101T000000Z-aaaaaa"), "2026-11-01T00:00:00Z"))
        store.record(_at(doc("20261102T000000Z-bbbbbb"), "2026-11-02T00:00:00Z"))
        store.record(_at(doc("20261102T000000Z-bbbccc"), "2026-11-02T00:00:01Z"))
        assert store.resolve("last") == "20261102T000000Z-bbbccc"
        assert store.resolve("20261101") == "20261101T000000Z-aaaaaa"
        assert store.resolve("20261101T000000Z-aaaaaa") == "20261101T000000Z-aaaaaa"
        assert store.resolve("2027") is None
        assert store.resolve("_%") is None  # LIKE's wildcards are taken literally
        with pytest.raises(StoreError, match="ambiguous"):
            store.resolve("20261102T000000Z-bbb")


def test_prune_deletes_old_runs_and_their_verifications(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with Store(path) as store:
        store.record(_at(doc("old"), "2020-01-01T00:00:00Z"))
        store.record(_at(doc("new"), "2026-11-01T00:00:00Z"))
        store.record_verification("old", "new", "2026-11-01T00:00:00Z", {"ok": True})
    proc = runbook("prune", "--older-than", "2025-01-01", "--store", str(path))
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == ""  # silent for cron
    with Store(path) as store:
        assert [r.run_id for r in store.history()] == ["new"]
        assert store.verifications("old") == []


def test_report_last_and_a_prefix_render_the_run(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    proc = runbook(
        "diagnose", "yummyrecipesforme.com", "--server", f"127.0.0.1:{closed_port()}", "--format", "json",
        "--store", str(path), "--skip", "web",
    )  # fmt: skip
    run_id = json.loads(proc.stdout)["run_id"]
    for ref in ("last", run_id[:12]):
        proc = runbook("report", ref, "--store", str(path), "--format", "json")
        assert proc.returncode == 2 and json.loads(proc.stdout)["run_id"] == run_id
    proc = runbook("report", "nope", "--store", str(path))
    assert proc.returncode == 3 and proc.stderr.count("\n") == 1
