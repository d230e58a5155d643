"""The JSON Schemas of the run document and of its findings' evidence, shipped with the package."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def run_schema() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("run-v1.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def evidence_schema() -> dict[str, Any]:
    """The evidence kinds (``runbook.evidence.json_schema()``, written out): which kind a finding holds, and each
    kind's keys."""
    text = resources.files(__package__).joinpath("evidence-v1.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
