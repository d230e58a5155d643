"""Renderers: one per format, each a pure function of the run document (``runbook.run/v1``) to text.

They do no I/O and decide no exit code. :data:`RENDERERS` maps a format name to its renderer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Document = Mapping[str, Any]
Renderer = Callable[[Document], str]


def _text(doc: Document) -> str:
    from reports.text import render

    return render(doc)


def _json(doc: Document) -> str:
    from reports.jsondoc import render

    return render(doc)


def _markdown(doc: Document) -> str:
    from reports.markdown import render

    return render(doc)


RENDERERS: Mapping[str, Renderer] = {"text": _text, "json": _json, "markdown": _markdown}
