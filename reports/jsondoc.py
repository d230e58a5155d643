"""``--format json``: the run document itself, validated by the schema that ships with the package."""

from __future__ import annotations

import json
from collections.abc import Sequence

from reports import Document
from runbook.model import worst_exit_code


def render(doc: Document) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=True) + "\n"


def render_all(docs: Sequence[Document]) -> str:
    """One run: its document. Several (``--config``): ``{"runs": [...], "exit_code": worst}``."""
    if len(docs) == 1:
        return render(docs[0])
    worst = worst_exit_code([d["exit_code"] for d in docs])
    return json.dumps({"runs": list(docs), "exit_code": worst}, indent=2, ensure_ascii=True) + "\n"
