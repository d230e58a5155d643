"""Shared test helpers: every run document a test sees is validated against the shipped schema, and no
test writes to the user's own run store."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from runbook.schema import run_schema

# Every runbook the tests start (in-process, in a subprocess, in a lab namespace) records here.
os.environ["RUNBOOK_STORE"] = os.path.join(tempfile.mkdtemp(prefix="runbook-test-store-"), "runs.db")

# Subprocesses run ``python -m tests...`` from here, wherever pytest was started from.
ROOT = Path(__file__).resolve().parents[1]


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


# Containers often run without ::1; the IPv6 tests say so instead of failing.
needs_ipv6_loopback = pytest.mark.skipif(not _has_ipv6_loopback(), reason="this host has no IPv6 loopback (::1)")

_VALIDATOR = jsonschema.Draft202012Validator(run_schema(), format_checker=jsonschema.FormatChecker())


def validate_document(doc: dict[str, Any]) -> dict[str, Any]:
    errors = sorted(_VALIDATOR.iter_errors(doc), key=lambda e: list(e.path))
    if errors:
        pytest.fail(
            "run document does not match runbook.run/v1: "
            + "; ".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5])
        )
    _evidence_is_typed(doc)
    return doc


def _evidence_is_typed(doc: dict[str, Any]) -> None:
    """Every finding's evidence is exactly its kind's document form: it reads back into the kind its step and id
    name (never kept as unread), and writes out again key for key."""
    from runbook.evidence import Unread, parse

    for f in doc.get("findings", []):
        typed = parse(f["step"], f["id"], f["evidence"])
        if isinstance(typed, Unread) or typed.to_json() != (f["evidence"] or {}):
            pytest.fail(f"finding {f['id']}: its evidence is not its kind's ({type(typed).__name__}): {f['evidence']}")
        errors = list(_kind_validator(type(typed).__name__).iter_errors(f["evidence"]))
        if errors:
            pytest.fail(f"finding {f['id']}: evidence-v1.json's {type(typed).__name__} refuses it: {errors[0].message}")


_KIND_VALIDATORS: dict[str, Any] = {}


def _kind_validator(kind: str) -> Any:
    """A validator of one kind of the shipped evidence schema."""
    if kind not in _KIND_VALIDATORS:
        from runbook.schema import evidence_schema

        schema = evidence_schema()
        _KIND_VALIDATORS[kind] = jsonschema.Draft202012Validator({"$ref": f"#/$defs/{kind}", "$defs": schema["$defs"]})
    return _KIND_VALIDATORS[kind]


def finding(fid: str, step: str, status: Any, summary: str, evidence: Any = None, **kw: Any) -> Any:
    """A finding whose evidence is given in its document form (the JSON a check's kind writes), read into its
    kind strictly: a test whose evidence is not of the kind its step makes fails here, not silently."""
    from runbook.evidence import Empty, kind_of
    from runbook.model import Finding

    typed = kind_of(step, fid, evidence).from_json(evidence) if evidence else Empty()
    return Finding(fid, step, status, summary, typed, **kw)
