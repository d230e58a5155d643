"""Renderers: one per format, each a pure function of run documents (``runbook.run/v1``) to text.

They do no I/O and decide no exit code. :data:`RENDERERS` maps a format name to its renderer; every
renderer takes the documents of one invocation (one per target: ``diagnose --config`` gives several).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Document = Mapping[str, Any]
Renderer = Callable[[Sequence[Document]], str]

_MODULES = {
    "text": "reports.text",
    "json": "reports.jsondoc",
    "markdown": "reports.markdown",
    "junit": "reports.junit",
    "nagios": "reports.nagios",
    "prometheus": "reports.prometheus",
}
FORMATS = tuple(_MODULES)


def _lazy(module: str) -> Renderer:
    def render(docs: Sequence[Document]) -> str:
        fn: Renderer = importlib.import_module(module).render_all
        return fn(docs)

    return render


RENDERERS: Mapping[str, Renderer] = {name: _lazy(module) for name, module in _MODULES.items()}


def each(render: Callable[[Document], str], docs: Sequence[Document], separator: str = "\n") -> str:
    """For the formats that are one report a run: the reports, one after another."""
    return separator.join(render(d) for d in docs)
