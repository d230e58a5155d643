"""The JSON Schema of the run document, shipped with the package."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def run_schema() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("run-v1.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
