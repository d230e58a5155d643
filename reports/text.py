"""The terminal report (rich), and the live progress drawn while a run goes on.

Styles are semantic theme names ("status.critical"), never colours in the code. Every string from the
run document goes into ``rich.text.Text`` objects (never parsed as markup) after :func:`escape.terminal`.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.theme import Theme

from reports import Document, each
from reports.common import packet_log
from reports.escape import terminal
from runbook.model import action

if TYPE_CHECKING:
    from runbook.model import StepResult
    from runbook.steps import Step

THEME = Theme(
    {
        "status.ok": "green",
        "status.warning": "yellow",
        "status.critical": "bold red",
        "status.unknown": "magenta",
        "status.skipped": "dim",
        "status.error": "bold magenta",
        "status.running": "cyan",
        "heading": "bold",
        "packet": "dim",
        "command": "bold",
        "hint": "italic dim",
    }
)
_MARK = {"ok": "✓", "warning": "!", "critical": "✗", "unknown": "?", "skipped": "-", "error": "E"}


def _status(status: str) -> Text:
    return Text(f"{_MARK.get(status, '?')} {status}", style=f"status.{status}")


def _t(value: Any, style: str = "") -> Text:
    return Text(terminal(value), style=style)


def build(doc: Document) -> Group:
    """The report as rich renderables (used for the terminal and for tests on a fixed console)."""
    target = doc["target"]
    verdict = doc["verdict"]
    parts: list[Any] = []
    display = target.get("display_name") or target["name"]
    head = Text.assemble(
        (f"runbook {terminal(doc.get('command', 'diagnose'))} ", "heading"),
        _t(display, "heading"),
        "" if doc.get("command") == "server" else f" ({target['type']})",
        "  servers: ",
        _t(", ".join(target["servers"]) or "none"),
        f"  (from {terminal(target['servers_from'])})",
    )
    parts.append(head)

    table = Table(show_header=True, header_style="heading", box=None, pad_edge=False, expand=False)
    table.add_column("step")
    table.add_column("status", no_wrap=True)
    table.add_column("finding")
    by_id = {f["id"]: f for f in doc["findings"]}
    for step in doc["steps"]:
        if not step["findings"]:
            table.add_row(_t(step["id"]), _status(step["status"]), _t(step.get("reason") or "", "hint"))
        for i, fid in enumerate(step["findings"]):
            f = by_id[fid]
            table.add_row(_t(step["id"] if i == 0 else ""), _status(f["status"]), _t(f["summary"]))
    parts.append(table)

    packets = packet_log(doc)
    if packets:
        how = (
            " (as the capture shows it)"
            if doc.get("command") == "analyze"
            else " (tcpdump notation, rebuilt from the probes)"
        )
        parts.append(Text.assemble(("packet log", "heading"), (how, "hint")))
        # Never folded: a packet line is read, and copied, whole.
        parts.extend(Text("  " + terminal(line), style="packet", no_wrap=True, overflow="ignore") for line in packets)

    parts.extend(_verdict_parts(verdict))
    parts.extend(_explained(verdict.get("explain", [])))
    if doc.get("interrupted"):
        parts.append(Text("interrupted: the steps that had not finished are marked so above", style="hint"))
    parts.append(Text(f"run {doc['run_id']} · {doc['duration_s']:.2f} s · exit {doc['exit_code']}", style="hint"))
    return Group(*parts)


def _verdict_parts(verdict: Document) -> list[Any]:
    """The verdict's panel, and below it the next steps, each command on a line of its own."""
    parts: list[Any] = []
    style = f"status.{verdict['status']}"
    body: list[Any] = [_t(verdict["summary"])]
    for also in verdict.get("also", []):
        body.append(
            Text.assemble(
                ("\nalso: ", "heading"), _t(f"{also['code']} ({also.get('server', '')}): "), _t(also["summary"])
            )
        )
    title = Text.assemble(
        (f"{verdict['status'].upper()} ", style), _t(verdict["code"], style), f"  confidence {verdict['confidence']}"
    )
    parts.append(Panel(Group(*body), title=title, title_align="left", border_style=style))
    if verdict["next_steps"]:
        # Outside the panel, and each command on a line of its own that is never folded: pasted whole.
        parts.append(Text("Next steps", style="heading"))
        for i, step in enumerate(verdict["next_steps"], 1):
            parts.append(_t(f"{i}. {step}"))
            parts.extend(
                Text("     $ " + terminal(command), style="command", no_wrap=True, overflow="ignore")
                for command in action(step)["commands"]
            )
    return parts


def _explained(checks: Sequence[Mapping[str, Any]]) -> list[Any]:
    """--explain: every rule asked of each server (and of the run), in precedence order: what matched with
    all its evidence; for the others, the one condition that ruled each out."""
    if not checks:
        return []
    parts: list[Any] = [Text("Explain (every rule, in precedence order)", style="heading")]
    for server in dict.fromkeys(c.get("server") for c in checks):
        parts.append(_t(f"  {server or 'the whole run'}", "heading"))
        for c in (c for c in checks if c.get("server") == server):
            parts.extend(_rule_lines(c))
    return parts


def _rule_lines(c: Mapping[str, Any]) -> list[Any]:
    head = f"{c['rule']} ({c['code']})"
    if c["matched"]:
        lines: list[Any] = [Text.assemble(("  ✓ ", "status.ok"), _t(head), ("  matched", "heading"))]
        for t in c["needs"]:
            lines.append(_t(f"      ✓ {t['text']}" + (f": {t['seen']}" if t.get("seen") else "")))
        lines.extend(_t(f"      ✗ unless {t['text']}") for t in c["unless"])
        return lines
    if not c["considered"]:
        return [Text.assemble(("  · ", "hint"), _t(head), ("  not considered: a rule above matched", "hint"))]
    missing = next((t for t in c["needs"] if not t["holds"]), None)
    against = next((t for t in c["unless"] if t["holds"]), None)
    why = (
        f"needs: {missing['text']}"
        if missing
        else f"contradicted: {against['text']}" + (f" ({against['seen']})" if against and against.get("seen") else "")
        if against
        else ""
    )
    return [Text.assemble(("  ✗ ", "hint"), _t(head), ("  " + terminal(why), "hint"))]


def _console(buf: io.StringIO, color: bool, width: int) -> Console:
    """A console that writes to ``buf``: colourless unless asked, never guessing from the environment."""
    return Console(
        file=buf,
        width=width,
        theme=THEME,
        force_terminal=color,
        no_color=not color,
        color_system="standard" if color else None,
        highlight=False,
        emoji=False,
    )


_TRAILING = re.compile(r" +((?:\x1b\[[0-9;]*m)*)$", re.MULTILINE)


def _unpadded(text: str) -> str:
    """rich pads table cells to the width: piped into a file or a ticket, the padding is noise."""
    return _TRAILING.sub(r"\1", text)


def render(doc: Document, *, color: bool = False, width: int = 100) -> str:
    buf = io.StringIO()
    _console(buf, color, width).print(build(doc), crop=False)
    return _unpadded(buf.getvalue())


def render_all(docs: Sequence[Document], *, color: bool = False, width: int = 100) -> str:
    return each(lambda d: render(d, color=color, width=width), docs)


def history_table(rows: Sequence[Document], *, color: bool = False, width: int = 120) -> str:
    """``runbook history``: one line a run, newest first."""
    table = Table(show_header=True, header_style="heading", box=None, pad_edge=False)
    for column in ("run", "started", "name", "servers", "verdict", "exit"):
        table.add_column(column, no_wrap=True)
    for r in rows:
        table.add_row(
            _t(r["run_id"]),
            _t(r["started_at"]),
            _t(str(r["name"]).rstrip(".") + ("" if r.get("command") in (None, "diagnose") else f" ({r['command']})")),
            _t(", ".join(r.get("servers", ())) or "-"),
            Text(terminal(r["verdict"]), style=f"status.{r['status']}"),
            _t(r["exit_code"]),
        )
    buf = io.StringIO()
    _console(buf, color, width).print(table if rows else Text("no recorded run matches", style="hint"))
    return _unpadded(buf.getvalue())


class LiveProgress:
    """An engine observer that shows each step's state on the terminal while the run goes on."""

    def __init__(self, console: Console, steps: list[Step]) -> None:
        self._console = console
        self._state: dict[str, str] = {s.id: "waiting" for s in steps}
        self._titles = {s.id: s.title for s in steps}
        self._live = Live(self._table(), console=console, transient=True, refresh_per_second=20)

    def __enter__(self) -> LiveProgress:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.__exit__(None, None, None)

    def _table(self) -> Table:
        table = Table(box=None, show_header=False, pad_edge=False)
        for sid, state in self._state.items():
            style = f"status.{state}" if state not in ("waiting",) else "hint"
            table.add_row(Text(f"{sid:9}"), Text(state, style=style), Text(self._titles[sid], style="hint"))
        return table

    def step_started(self, step: Step) -> None:
        self._state[step.id] = "running"
        self._live.update(self._table())

    def step_finished(self, result: StepResult) -> None:
        self._state[result.id] = result.status.value
        self._live.update(self._table())
