"""The run store: every run, whole, in SQLite (stdlib), so that it can be listed, re-rendered and verified.

WAL mode and a busy timeout let many ``runbook`` processes write one store at once; every run is written in
one transaction (the JSON document plus the columns history filters on), so a process killed mid-write
leaves the store as it was. The schema carries a version (``PRAGMA user_version``) and migrates forward.
Every failure is a :class:`StoreError` with one line for the user: a store that cannot be written never
costs the run its output or its exit code (the CLI prints the run first and says what went wrong).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from runbook.errors import RunbookError

SCHEMA_VERSION = 2
BUSY_TIMEOUT_S = 10.0

MIGRATIONS: dict[int, Sequence[str]] = {
    1: (
        """CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            started_at TEXT NOT NULL,
            started_epoch REAL NOT NULL,
            verdict TEXT NOT NULL,
            status TEXT NOT NULL,
            exit_code INTEGER NOT NULL,
            document TEXT NOT NULL
        )""",
        "CREATE INDEX runs_by_name_time ON runs (name, started_epoch)",
        "CREATE INDEX runs_by_time ON runs (started_epoch)",
    ),
    2: (
        """CREATE TABLE outages (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            first_failure TEXT NOT NULL,
            recovery TEXT,
            first_run_id TEXT NOT NULL,
            recovery_run_id TEXT,
            verdicts TEXT NOT NULL
        )""",
        """CREATE TABLE verifications (
            run_id TEXT NOT NULL,
            verified_by TEXT NOT NULL,
            at TEXT NOT NULL,
            result TEXT NOT NULL,
            PRIMARY KEY (run_id, verified_by)
        )""",
    ),
}


class StoreError(RunbookError):
    """The store could not be opened, read or written; the message says which store and why."""


def default_path(env: Mapping[str, str] | None = None) -> Path:
    """``$RUNBOOK_STORE``, else ``$XDG_STATE_HOME/dns-runbook/runs.db`` (``~/.local/state`` by default)."""
    env = os.environ if env is None else env
    if env.get("RUNBOOK_STORE"):
        return Path(env["RUNBOOK_STORE"])
    state = Path(env["XDG_STATE_HOME"]) if env.get("XDG_STATE_HOME") else Path.home() / ".local" / "state"
    return state / "dns-runbook" / "runs.db"


class RunRow(msgspec.Struct, frozen=True):
    run_id: str
    name: str
    started_at: str
    verdict: str
    status: str
    exit_code: int
    servers: tuple[str, ...] = ()
    command: str = "diagnose"

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "name": self.name,
            "started_at": self.started_at,
            "verdict": self.verdict,
            "status": self.status,
            "exit_code": self.exit_code,
            "servers": list(self.servers),
            "command": self.command,
        }


class Store:
    def __init__(self, path: Path, busy_timeout: float = BUSY_TIMEOUT_S) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except (sqlite3.Error, OSError) as e:
            raise StoreError(f"the run store {path} cannot be used: {_words(e)}") from e

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: the write lock is taken up front, so concurrent writers queue on the
        busy timeout instead of failing half-way."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _migrate(self) -> None:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StoreError(f"the run store {self.path} is of a newer version ({version}) than this runbook")
        if version == SCHEMA_VERSION:
            return
        with self._transaction() as db:
            # Read again inside the lock: another process may have migrated meanwhile.
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[step]:
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _do(self, what: str, fn: Any) -> Any:
        try:
            return fn()
        except sqlite3.Error as e:
            raise StoreError(f"the run store {self.path} could not {what}: {_words(e)}") from e

    # -- runs --------------------------------------------------------------------------------------------
    def record(self, doc: Mapping[str, Any]) -> None:
        def write() -> None:
            with self._transaction() as db:
                db.execute(
                    "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        doc["run_id"],
                        doc["target"]["name"],
                        doc["started_at"],
                        _epoch(doc["started_at"]),
                        doc["verdict"]["code"],
                        doc["verdict"]["status"],
                        doc["exit_code"],
                        json.dumps(doc),
                    ),
                )

        self._do("record the run", write)

    def get(self, run_id: str) -> dict[str, Any] | None:
        row = self._do(
            "read the run", lambda: self._db.execute("SELECT document FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        )
        if row is None:
            return None
        doc: dict[str, Any] = json.loads(row[0])
        return doc

    def resolve(self, ref: str) -> str | None:
        """The run id that ``ref`` names: an id, a unique prefix of one, or ``last`` (the newest run).
        None when nothing matches; an error naming the candidates when a prefix is ambiguous."""
        if ref == "last":
            row = self._do(
                "read the runs",
                lambda: self._db.execute("SELECT run_id FROM runs ORDER BY started_epoch DESC LIMIT 1").fetchone(),
            )
            return str(row[0]) if row else None
        pattern = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self._do(
            "read the runs",
            lambda: self._db.execute(
                "SELECT run_id FROM runs WHERE run_id LIKE ? ESCAPE '\\' ORDER BY started_epoch DESC LIMIT 6",
                (pattern,),
            ).fetchall(),
        )
        ids = [str(r[0]) for r in rows]
        if ref in ids or len(ids) == 1:
            return ref if ref in ids else ids[0]
        if len(ids) > 1:
            more = ", ..." if len(ids) > 5 else ""
            raise StoreError(f"run {ref!r} is ambiguous: it begins {', '.join(ids[:5])}{more}; give more of it")
        return None

    def prune(self, before_epoch: float) -> int:
        """Delete the runs started before ``before_epoch`` with their verifications and closed outage windows;
        returns how many runs went. The file shrinks at the next VACUUM (done here when much went)."""

        def delete() -> int:
            with self._transaction() as db:
                db.execute(
                    "DELETE FROM verifications WHERE run_id IN (SELECT run_id FROM runs WHERE started_epoch < ?) "
                    "OR verified_by IN (SELECT run_id FROM runs WHERE started_epoch < ?)",
                    (before_epoch, before_epoch),
                )
                db.execute(
                    "DELETE FROM outages WHERE recovery_run_id IN (SELECT run_id FROM runs WHERE started_epoch < ?)",
                    (before_epoch,),
                )
                gone = db.execute("DELETE FROM runs WHERE started_epoch < ?", (before_epoch,)).rowcount
            if gone:
                self._db.execute("VACUUM")
            return int(gone)

        return int(self._do("prune old runs", delete))

    def history(
        self, name: str | None = None, since: float | None = None, verdict: str | None = None, limit: int = 50
    ) -> list[RunRow]:
        sql = (
            "SELECT run_id, name, started_at, verdict, status, exit_code, json_extract(document, '$.target.servers'), "
            "coalesce(json_extract(document, '$.command'), 'diagnose') FROM runs WHERE 1=1"
        )
        args: list[Any] = []
        if name:
            sql += " AND name = ?"
            args.append(name)
        if since is not None:
            sql += " AND started_epoch >= ?"
            args.append(since)
        if verdict:
            sql += " AND verdict = ?"
            args.append(verdict)
        sql += " ORDER BY started_epoch DESC LIMIT ?"
        args.append(limit)
        rows = self._do("list the runs", lambda: self._db.execute(sql, args).fetchall())
        return [RunRow(r[0], r[1], r[2], r[3], r[4], r[5], tuple(json.loads(r[6] or "[]")), r[7]) for r in rows]

    # -- verifications and outages ------------------------------------------------------------------------
    def record_verification(self, run_id: str, verified_by: str, at: str, result: Mapping[str, Any]) -> None:
        def write() -> None:
            with self._transaction() as db:
                db.execute(
                    "INSERT OR REPLACE INTO verifications VALUES (?, ?, ?, ?)",
                    (run_id, verified_by, at, json.dumps(result)),
                )

        self._do("record the verification", write)

    def verifications(self, run_id: str) -> list[dict[str, Any]]:
        rows = self._do(
            "read the verifications",
            lambda: self._db.execute(
                "SELECT result FROM verifications WHERE run_id = ? ORDER BY at", (run_id,)
            ).fetchall(),
        )
        return [json.loads(r[0]) for r in rows]

    def record_outage(self, outage: Mapping[str, Any]) -> None:
        def write() -> None:
            with self._transaction() as db:
                db.execute(
                    "INSERT INTO outages (name, first_failure, recovery, first_run_id, recovery_run_id, verdicts) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        outage["name"],
                        outage["first_failure"],
                        outage.get("recovery"),
                        outage["first_run_id"],
                        outage.get("recovery_run_id"),
                        json.dumps(outage.get("verdicts", [])),
                    ),
                )

        self._do("record the outage", write)

    def outage_for(self, run_id: str) -> dict[str, Any] | None:
        row = self._do(
            "read the outages",
            lambda: self._db.execute(
                "SELECT name, first_failure, recovery, first_run_id, recovery_run_id, verdicts FROM outages "
                "WHERE first_run_id = ? OR recovery_run_id = ? ORDER BY id DESC",
                (run_id, run_id),
            ).fetchone(),
        )
        if row is None:
            return None
        keys = ("name", "first_failure", "recovery", "first_run_id", "recovery_run_id")
        return {**dict(zip(keys, row[:5], strict=True)), "verdicts": json.loads(row[5])}

    def integrity(self) -> str:
        return str(self._do("check itself", lambda: self._db.execute("PRAGMA integrity_check").fetchone()[0]))


def _epoch(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def _words(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    if "locked" in text:
        return f"{text} (another process held it longer than {BUSY_TIMEOUT_S:g} s)"
    return text
