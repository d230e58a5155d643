"""``--format json``: the run document itself, validated by the schema that ships with the package."""

from __future__ import annotations

import json

from reports import Document


def render(doc: Document) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=True) + "\n"
