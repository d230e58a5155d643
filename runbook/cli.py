"""The ``runbook`` command line: parse and validate, build settings, call the engine, render, exit.

Exit codes are the Nagios plugin ones, derived from the verdict: 0 ok, 1 warning, 2 critical,
3 unknown. Bad input and usage errors are 3 too, with one line on stderr and no traceback.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from runbook import __version__
from runbook.errors import InputError

app = typer.Typer(
    name="runbook",
    help="Diagnose why a name does not resolve, the way an incident team would, in about a second.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
EXIT_UNKNOWN = 3


class Format(StrEnum):
    text = "text"
    json = "json"
    markdown = "markdown"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"runbook {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """dns-runbook: the DNS incident runbook, run for you."""


def fail(message: str) -> NoReturn:
    """One line on stderr, exit 3: what bad input gets."""
    sys.stderr.write(f"runbook: error: {message}\n")
    raise typer.Exit(EXIT_UNKNOWN)


@app.command()
def diagnose(
    name: Annotated[str, typer.Argument(help="The name users cannot resolve, e.g. yummyrecipesforme.com.")],
    rdtype: Annotated[str, typer.Option("--type", "-t", help="Record type to ask for.")] = "A",
    server: Annotated[
        list[str] | None,
        typer.Option(
            "--server",
            "-s",
            help="DNS server to diagnose, ADDR[:PORT] or [V6]:PORT; repeatable. "
            "Default: the nameservers of resolv.conf.",
        ),
    ] = None,
    resolver: Annotated[
        list[str] | None,
        typer.Option(
            "--resolver",
            "-r",
            help="Another resolver to compare answers with, ADDR[:PORT]; repeatable. "
            "Public resolvers are never asked unless named here.",
        ),
    ] = None,
    authoritative: Annotated[
        list[str] | None,
        typer.Option(
            "--authoritative",
            "-a",
            help="The zone's authoritative server, ADDR[:PORT]; repeatable. Default: found from the zone's NS records.",
        ),
    ] = None,
    expect: Annotated[
        list[str] | None,
        typer.Option("--expect", "-e", help="An address the name must resolve to (ground truth); repeatable."),
    ] = None,
    skip: Annotated[
        list[str] | None, typer.Option("--skip", help="A step to leave out (e.g. web, ping); repeatable.")
    ] = None,
    count: Annotated[
        int, typer.Option("--count", help="Queries in the burst that measures loss and latency (0: none).")
    ] = 10,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between the burst's queries.")] = 0.02,
    max_loss: Annotated[
        float, typer.Option("--max-loss", help="Share of the burst that may be lost before dns-degraded.")
    ] = 0.1,
    max_rtt: Annotated[
        float, typer.Option("--max-rtt", help="Median answer time (seconds) above which DNS is degraded.")
    ] = 0.25,
    timeout: Annotated[
        float,
        typer.Option(
            help="Budget in seconds for the network steps; they run concurrently, so it bounds the whole run."
        ),
    ] = 2.0,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Report format.")] = Format.text,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the report to this file instead of stdout.")
    ] = None,
    resolv_conf: Annotated[
        Path, typer.Option("--resolv-conf", help="The resolv.conf to read servers and options from.")
    ] = Path("/etc/resolv.conf"),
) -> None:
    """Run the whole runbook for NAME and print the findings, the verdict and the next steps."""
    from runbook import config, engine
    from runbook.steps import RUNBOOK, STEP_IDS

    try:
        settings = config.Settings(
            target=replace(config.parse_name(name), rdtype=config.parse_rdtype(rdtype)),
            servers=tuple(config.parse_server(s) for s in server or ()),
            resolvers=tuple(config.parse_server(s) for s in resolver or ()),
            authoritative=tuple(config.parse_server(s) for s in authoritative or ()),
            expect=tuple(config.parse_address(a) for a in expect or ()),
            skip=config.parse_skip(skip or (), STEP_IDS),
            burst_count=int(config.parse_positive("--count", count + 1, 1001)) - 1,
            burst_interval=config.parse_positive("--interval", interval, 10),
            max_loss=config.parse_fraction("--max-loss", max_loss),
            max_rtt=config.parse_positive("--max-rtt", max_rtt, 60),
            timeout=config.parse_timeout(timeout),
            resolv_conf=resolv_conf,
        )
        plan = engine.plan(settings, RUNBOOK)
    except InputError as e:
        fail(str(e))

    live = fmt is Format.text and output is None and sys.stderr.isatty()
    if live:
        from rich.console import Console

        from reports.text import THEME, LiveProgress

        with LiveProgress(Console(stderr=True, theme=THEME), list(RUNBOOK)) as progress:
            run = engine.run_sync(plan, progress)
    else:
        run = engine.run_sync(plan)
    emit(run.to_document(), fmt, output)
    raise typer.Exit(run.exit_code)


def emit(doc: dict[str, object], fmt: Format, output: Path | None) -> None:
    """Render and write. A report that cannot be written to ``output`` goes to stdout instead."""
    from reports import RENDERERS

    if fmt is Format.text:
        from reports.text import render as render_text

        to_terminal = output is None and sys.stdout.isatty()
        color = to_terminal and not os.environ.get("NO_COLOR")
        width = shutil.get_terminal_size((100, 24)).columns if to_terminal else 100
        text = render_text(doc, color=color, width=width)
    else:
        text = RENDERERS[fmt.value](doc)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as e:
        sys.stdout.write(text)
        fail(f"cannot write {output}: {e.strerror or e}; the report was printed instead")
    sys.stderr.write(f"runbook: report written to {output}\n")


def run(argv: list[str] | None = None) -> NoReturn:
    """Run the CLI with bad usage mapped to exit 3 and one line, and never a traceback."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv if argv is not None else sys.argv[1:], prog_name="runbook", standalone_mode=False)
    except typer.Exit as e:
        code = e.exit_code
    except (typer.Abort, KeyboardInterrupt):
        sys.stderr.write("runbook: interrupted\n")
        code = 130
    except Exception as e:
        if _is_usage_error(e):  # click's UsageError (vendored by typer): bad usage is exit 3, one line
            sys.stderr.write(f"runbook: error: {e.format_message()}\n")  # type: ignore[attr-defined]
            sys.exit(EXIT_UNKNOWN)
        if os.environ.get("RUNBOOK_DEBUG"):
            raise
        sys.stderr.write(f"runbook: internal error: {type(e).__name__}: {e} (RUNBOOK_DEBUG=1 shows the traceback)\n")
        code = EXIT_UNKNOWN
    sys.exit(code if isinstance(code, int) else 0)


def _is_usage_error(e: Exception) -> bool:
    return any(cls.__name__ == "UsageError" for cls in type(e).__mro__) and hasattr(e, "format_message")
