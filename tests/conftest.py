"""Shared test helpers: every run document a test sees is validated against the shipped schema."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from runbook.schema import run_schema

_VALIDATOR = jsonschema.Draft202012Validator(run_schema(), format_checker=jsonschema.FormatChecker())


def validate_document(doc: dict[str, Any]) -> dict[str, Any]:
    errors = sorted(_VALIDATOR.iter_errors(doc), key=lambda e: list(e.path))
    if errors:
        pytest.fail(
            "run document does not match runbook.run/v1: "
            + "; ".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5])
        )
    return doc
