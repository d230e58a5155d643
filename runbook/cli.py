"""The ``runbook`` command line: parse and validate, build settings, call the engine, render, exit.

Exit codes are the Nagios plugin ones, derived from the verdict: 0 ok, 1 warning, 2 critical,
3 unknown. Bad input and usage errors are 3 too, with one line on stderr and no traceback.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from runbook import __version__
from runbook.config import DEFAULTS
from runbook.errors import InputError, RunbookError

if TYPE_CHECKING:
    from runbook.config import Settings
    from runbook.engine import Plan
    from runbook.model import Run
    from runbook.store import Store

app = typer.Typer(
    name="runbook",
    help="Diagnose why a name does not resolve, the way an incident team would, in about a second.",
    add_completion=True,
    rich_markup_mode="markdown",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
EXIT_UNKNOWN = 3
EXIT_INTERRUPTED = 130
"""Ctrl-C, as shells report it (128 + SIGINT): the report of what finished is still printed and recorded."""


class Format(StrEnum):
    text = "text"
    json = "json"
    markdown = "markdown"
    junit = "junit"
    nagios = "nagios"
    prometheus = "prometheus"


class ListFormat(StrEnum):
    text = "text"
    json = "json"


# -- options shared by diagnose and watch ------------------------------------------------------------------
TypeOpt = Annotated[str, typer.Option("--type", "-t", help="Record type to ask for.")]
ServerOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--server",
        "-s",
        help="DNS server to diagnose, ADDR[:PORT] or [V6]:PORT; repeatable. Default: the nameservers of resolv.conf.",
    ),
]
ResolverOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--resolver",
        "-r",
        help="Another resolver to compare answers with, ADDR[:PORT]; repeatable. "
        "Public resolvers are never asked unless named here.",
    ),
]
AuthOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--authoritative",
        "-a",
        help="The zone's authoritative server, ADDR[:PORT]; repeatable. Default: found from the zone's NS records.",
    ),
]
ExpectOpt = Annotated[
    list[str] | None,
    typer.Option("--expect", "-e", help="An address the name must resolve to (ground truth); repeatable."),
]
WebOpt = Annotated[
    bool,
    typer.Option(
        "--web",
        help="NAME is a website: a site that refuses connections on 443 and 80 is then critical "
        "(site-unreachable-dns-ok). Without it, the web step reports what it saw and raises no alarm.",
    ),
]
FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Report format.")]
ExplainOpt = Annotated[
    bool,
    typer.Option(
        "--explain",
        help="Show every rule of the diagnosis, for every server: whether it matched, and on which evidence "
        "(in JSON: verdict.explain).",
    ),
]
SkipOpt = Annotated[list[str] | None, typer.Option("--skip", help="A step to leave out (e.g. web); repeatable.")]
CountOpt = Annotated[int, typer.Option("--count", help="Queries in the burst that measures loss and latency.")]
IntervalOpt = Annotated[float, typer.Option("--interval", help="Seconds between the burst's queries.")]
LossOpt = Annotated[float, typer.Option("--max-loss", help="Share of the burst that may be lost (dns-degraded).")]
RttOpt = Annotated[float, typer.Option("--max-rtt", help="Median answer time (s) above which DNS is degraded.")]
TimeoutOpt = Annotated[
    float, typer.Option(help="Budget in seconds of the network steps; they run concurrently, so it bounds the run.")
]
ResolvOpt = Annotated[Path, typer.Option("--resolv-conf", help="The resolv.conf to read servers and options from.")]
StoreOpt = Annotated[
    Path | None,
    typer.Option(
        "--store",
        help="The run store (SQLite). Default: $RUNBOOK_STORE, else $XDG_STATE_HOME/dns-runbook/runs.db.",
        show_default=False,
    ),
]
NoRecordOpt = Annotated[bool, typer.Option("--no-record", help="Do not write the run to the store.")]
OutputOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write the report to this file (atomically) instead of stdout.")
]


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


def warn(message: str) -> None:
    sys.stderr.write(f"runbook: warning: {message}\n")


def _settings(name: str, **options: Any) -> Settings:
    """``config.build`` with the runbook's steps: ``options`` are its keywords, None for an option not given."""
    from runbook import config
    from runbook.steps import STEP_IDS

    return config.build(name, known_steps=STEP_IDS, **{k: v for k, v in options.items() if v is not None})


def _plan(settings: Settings) -> Plan:
    from runbook import engine
    from runbook.steps import RUNBOOK

    return engine.plan(settings, RUNBOOK)


def _open_store(path: Path | None) -> Store:
    from runbook.store import Store, default_path

    return Store(path or default_path())


def _store_write(what: str, store_path: Path | None, no_record: bool, write: Callable[[Store], None]) -> None:
    """Write to the store. A store that fails costs the run nothing but one warning line."""
    if no_record:
        return
    try:
        with _open_store(store_path) as store:
            write(store)
    except RunbookError as e:
        warn(f"{what} was not recorded: {e}")


def _record(docs: Sequence[Mapping[str, Any]], store_path: Path | None, no_record: bool) -> None:
    def write(store: Store) -> None:
        for doc in docs:
            store.record(doc)

    _store_write("the run", store_path, no_record, write)


def _config_plans(config_file: Path) -> tuple[list[Plan], list[str], int]:
    from runbook import config
    from runbook.steps import STEP_IDS

    targets, concurrency = config.load_config(config_file, STEP_IDS)
    return [_plan(t.settings) for t in targets], [t.expect_verdict for t in targets], concurrency


@app.command()
def diagnose(
    name: Annotated[
        str | None, typer.Argument(help="The name users cannot resolve, e.g. yummyrecipesforme.com.")
    ] = None,
    rdtype: TypeOpt = "A",
    server: ServerOpt = None,
    resolver: ResolverOpt = None,
    authoritative: AuthOpt = None,
    expect: ExpectOpt = None,
    skip: SkipOpt = None,
    web: WebOpt = False,
    explain: ExplainOpt = False,
    count: CountOpt = DEFAULTS.burst_count,
    interval: IntervalOpt = DEFAULTS.burst_interval,
    max_loss: LossOpt = DEFAULTS.max_loss,
    max_rtt: RttOpt = DEFAULTS.max_rtt,
    timeout: TimeoutOpt = DEFAULTS.timeout,
    fmt: FormatOpt = Format.text,
    output: OutputOpt = None,
    resolv_conf: ResolvOpt = DEFAULTS.resolv_conf,
    config_file: Annotated[
        Path | None, typer.Option("--config", "-c", help="Diagnose every target of this runbook.toml at once.")
    ] = None,
    store: StoreOpt = None,
    no_record: NoRecordOpt = False,
) -> None:
    """Run the whole runbook for NAME (or every target of --config) and print the findings, the verdict
    and the next steps. Exit 0 ok, 1 warning, 2 critical, 3 unknown (the worst target's, with --config)."""
    from runbook.model import worst_exit_code

    if (name is None) == (config_file is None):
        fail("give a NAME to diagnose, or --config FILE (not both)")
    try:
        if config_file is not None:
            plans, _, concurrency = _config_plans(config_file)
        else:
            assert name is not None
            options: dict[str, Any] = {"rdtype": rdtype, "servers": server, "resolvers": resolver}
            options |= {"authoritative": authoritative}
            options |= {"expect": expect, "skip": skip, "timeout": timeout, "resolv_conf": resolv_conf}
            options |= {"count": count, "interval": interval, "max_loss": max_loss, "max_rtt": max_rtt}
            plans, concurrency = [_plan(_settings(name, **options, website=web, explain=explain))], 1
    except InputError as e:
        fail(str(e))
    runs = _run_plans(plans, concurrency, live=fmt is Format.text and output is None and sys.stderr.isatty())
    docs = [r.to_document() for r in runs]
    emit(docs, fmt, output)
    _record(docs, store, no_record)
    if len(runs) < len(plans):  # Ctrl-C while some targets waited for their turn
        raise typer.Exit(EXIT_INTERRUPTED)
    raise typer.Exit(worst_exit_code([r.exit_code for r in runs]))


def _run_plans(plans: list[Plan], concurrency: int, *, live: bool) -> list[Run]:
    """The runs of ``plans``; one run on a terminal shows its steps live (on stderr)."""
    from runbook import engine
    from runbook.steps import RUNBOOK

    if live and len(plans) == 1:
        from rich.console import Console

        from reports.text import THEME, LiveProgress

        with LiveProgress(Console(stderr=True, theme=THEME), list(RUNBOOK)) as progress:
            return [engine.run_sync(plans[0], progress)]
    return engine.interruptible(engine.execute_many(plans, concurrency))


# One step alone (DESIGN §4): only that step runs (and hostconf, which says where the servers came from); the
# verdict is one its own evidence supports (runbook.steps.SINGLE_STEPS), else a step-result.
def _single(command: str, steps: str) -> None:
    def one_step(
        name: Annotated[str, typer.Argument(help="The name to ask about.")],
        rdtype: TypeOpt = "A",
        server: ServerOpt = None,
        resolver: ResolverOpt = None,
        authoritative: AuthOpt = None,
        expect: ExpectOpt = None,
        timeout: TimeoutOpt = DEFAULTS.timeout,
        explain: ExplainOpt = False,
        fmt: FormatOpt = Format.text,
        output: OutputOpt = None,
        resolv_conf: ResolvOpt = DEFAULTS.resolv_conf,
    ) -> None:
        from runbook import engine
        from runbook.steps import RUNBOOK, SINGLE_STEPS

        single = SINGLE_STEPS[command]
        given = {"resolver": resolver, "authoritative": authoritative, "expect": expect}
        unused = [f"--{k}" for k, v in given.items() if v and k not in single.uses]
        try:
            if unused:
                raise InputError(
                    f"runbook {command} does not use {', '.join(unused)}: it asks the --server(s) only "
                    "(`runbook compare` compares with other servers; `runbook diagnose` runs every step)"
                )
            settings = _settings(
                name,
                rdtype=rdtype,
                servers=server,
                resolvers=resolver,
                authoritative=authoritative,
                expect=expect,
                timeout=timeout,
                resolv_conf=resolv_conf,
                website=command == "web",  # asked about the site itself: it is a website
                explain=explain,
            )
            plan = engine.plan(settings, RUNBOOK, command)
        except InputError as e:
            fail(str(e))
        run = engine.run_sync(plan)
        emit([run.to_document()], fmt, output)
        raise typer.Exit(run.exit_code)

    one_step.__doc__ = (
        f"Run one step of the runbook alone ({steps}); not recorded. The verdict is one its own evidence supports, "
        "else `step-result` with the step's status. Exit 0 ok, 1 warning, 2 critical, 3 unknown."
    )
    app.command(command)(one_step)


# runbook.steps.SINGLE_STEPS, its names and the steps each runs, spelt out so that the CLI starts without
# importing the checks (`runbook server`, `history`, `--help` need none of them); a test holds the two equal.
SINGLE_HELP = {
    "resolve": "resolve",
    "probe": "udp53 and tcp53",
    "ping": "ping",
    "compare": "resolve and compare",
    "firewall": "firewall",
    "hostconf": "nothing but the host's resolver files",
    "web": "resolve and web",
}
for _command, _steps in SINGLE_HELP.items():
    _single(_command, _steps)


def _finish(run: Run, fmt: Format, output: Path | None, store: Path | None, no_record: bool) -> NoReturn:
    """Render, record and exit with the run's code."""
    doc = run.to_document()
    emit([doc], fmt, output)
    _record([doc], store, no_record)
    raise typer.Exit(run.exit_code)


def emit(docs: Sequence[Mapping[str, Any]], fmt: Format, output: Path | None) -> None:
    """Render and write. A report that cannot be written to ``output`` goes to stdout instead."""
    from reports import RENDERERS

    if fmt is Format.text:
        from reports.text import render_all

        to_terminal = output is None and sys.stdout.isatty()
        width = shutil.get_terminal_size((100, 24)).columns if to_terminal else 100
        color = _color(output is None and to_terminal)
        text = render_all(docs, color=color, width=width)
    else:
        text = RENDERERS[fmt.value](docs)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        _write_atomically(output, text)
    except OSError as e:
        sys.stdout.write(text)
        fail(f"cannot write {output}: {e.strerror or e}; the report was printed instead")
    if sys.stderr.isatty():  # cron mails whatever a job prints: a report that went where it was told is silent
        sys.stderr.write(f"runbook: report written to {output}\n")


def _color(to_terminal: bool) -> bool:
    """Colour on a terminal, or where FORCE_COLOR asks for it (as rich does); never when NO_COLOR is set."""
    if os.environ.get("NO_COLOR"):
        return False
    return to_terminal or bool(os.environ.get("FORCE_COLOR"))


def _write_atomically(path: Path, text: str) -> None:
    """A reader (node_exporter's textfile collector, a CI step) never sees half a report."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path("."))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@app.command()
def analyze(
    file: Annotated[
        str | None,
        typer.Argument(help="A pcap or pcapng capture, or tcpdump's text output; - reads standard input."),
    ] = None,
    server: Annotated[
        list[str] | None, typer.Option("--server", "-s", help="Only the traffic of this DNS server; repeatable.")
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="The name to diagnose (default: the one that failed most).")
    ] = None,
    wait: Annotated[
        float,
        typer.Option(
            help="Seconds a query waits for its answer before it counts as unanswered (glibc's default timeout)."
        ),
    ] = 5.0,
    live: Annotated[
        str | None, typer.Option("--live", help="Capture on this interface (root) instead of reading a file.")
    ] = None,
    duration: Annotated[float, typer.Option(help="With --live: seconds to capture.")] = 10.0,
    explain: ExplainOpt = False,
    fmt: FormatOpt = Format.text,
    output: OutputOpt = None,
    store: StoreOpt = None,
    no_record: NoRecordOpt = False,
) -> None:
    """Diagnose from a capture, the way the incident's team read its tcpdump log: every query matched to its
    answer, to the ICMP error that quotes it, or to nothing; the same verdicts as `diagnose`, the window of the
    failures, and the signs of an attack as numbers. Exit codes as `diagnose`."""
    from runbook import capture_input

    if (file is None) == (live is None):
        fail("give a FILE to analyse (or - for standard input), or --live INTERFACE (not both)")
    if not 0 < wait <= 60:
        fail(f"--wait {wait:g} is out of range: give more than 0 and at most 60 seconds")
    try:
        with capture_input.opened(file, live, duration) as (stream, label):
            from runbook.analysis import analyze as analyze_capture

            run = analyze_capture(stream, label, servers=server or (), qname=name, wait=wait, explain=explain)
    except (InputError, OSError) as e:
        fail(str(e))
    _finish(run, fmt, output, store, no_record)


@app.command()
def server(
    address: Annotated[
        list[str] | None,
        typer.Option(
            "--address",
            "-a",
            help="An address clients use to reach this server; repeatable. "
            "Default: the non-loopback addresses a daemon listens on.",
        ),
    ] = None,
    port: Annotated[int, typer.Option(help="The DNS port.")] = 53,
    window: Annotated[float, typer.Option(help="Seconds over which the load is measured.")] = 2.0,
    explain: ExplainOpt = False,
    fmt: FormatOpt = Format.text,
    output: OutputOpt = None,
    store: StoreOpt = None,
    no_record: NoRecordOpt = False,
) -> None:
    """On the DNS server itself: is the daemon running, listening where clients reach it, configured
    validly, let through by this host's firewall, not overloaded? Reads only. Exit codes as `diagnose`."""
    from runbook import config, servercheck

    try:
        addresses = tuple(config.parse_server(a).host for a in address or ())
        if not 0 < port < 65536:
            raise InputError(f"--port {port} is out of range: give 1 to 65535")
        run = servercheck.check(addresses, port, window, explain=explain)
    except InputError as e:
        fail(str(e))
    _finish(run, fmt, output, store, no_record)


@app.command()
def history(
    name: Annotated[str | None, typer.Argument(help="Only the runs for this name.")] = None,
    since: Annotated[str | None, typer.Option(help="Only runs since: 30m, 6h, 2d, or a date (2026-11-25).")] = None,
    verdict: Annotated[str | None, typer.Option(help="Only runs with this verdict code.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many runs, newest first.")] = 50,
    fmt: Annotated[ListFormat, typer.Option("--format", "-f")] = ListFormat.text,
    store: StoreOpt = None,
) -> None:
    """List the recorded runs, newest first."""
    import json

    from runbook.config import parse_name, parse_since, parse_verdict_code

    try:
        after = parse_since(since, time.time()) if since else None
        verdict = parse_verdict_code(verdict) if verdict else None
        wanted = parse_name(name).name if name else None
        if not 1 <= limit <= 100_000:
            raise InputError(f"--limit {limit} is out of range: give 1 to 100000")
        with _open_store(store) as s:
            rows = s.history(wanted, after, verdict, limit)
    except RunbookError as e:
        fail(str(e))
    if fmt is ListFormat.json:
        sys.stdout.write(json.dumps([r.to_dict() for r in rows], indent=2) + "\n")
        return
    from reports.text import history_table

    sys.stdout.write(history_table([r.to_dict() for r in rows], color=_color(sys.stdout.isatty())))


def _stored(store: Store, ref: str) -> dict[str, Any]:
    """The run ``ref`` names: its id, a unique prefix of it, or ``last``."""
    run_id = store.resolve(ref)
    doc = store.get(run_id) if run_id else None
    if doc is None:
        raise InputError(f"no run {ref!r} in the store {store.path} (see `runbook history`)")
    return doc


@app.command()
def report(
    run_id: Annotated[
        str, typer.Argument(help="The run to render: its id, a unique prefix of it, or `last` (see `runbook history`).")
    ],
    fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.markdown,
    output: OutputOpt = None,
    store: StoreOpt = None,
) -> None:
    """Render a recorded run, exactly as it was rendered live (plus its outage window and verification,
    when `watch` and `verify` recorded them)."""
    try:
        with _open_store(store) as s:
            doc = _stored(s, run_id)
            verifications = s.verifications(doc["run_id"])
            outage = s.outage_for(doc["run_id"])
    except RunbookError as e:
        fail(str(e))
    if verifications:
        doc["verification"] = verifications[-1]
    if outage:
        doc["outage"] = outage
    emit([doc], fmt, output)
    raise typer.Exit(doc["exit_code"])


@app.command()
def prune(
    older_than: Annotated[
        str, typer.Option("--older-than", help="Delete the runs older than this: 30d, 12h, 90m, or a date.")
    ] = "30d",
    store: StoreOpt = None,
) -> None:
    """Delete old runs from the store (with their verifications and closed outage windows); silent unless it
    fails, so it can run from cron: `runbook prune --older-than 30d`."""
    from runbook.config import parse_since

    try:
        cutoff = parse_since(older_than, time.time())
        with _open_store(store) as s:
            gone = s.prune(cutoff)
    except RunbookError as e:
        fail(str(e))
    if sys.stdout.isatty():
        sys.stdout.write(f"{gone} run{'s' if gone != 1 else ''} older than {older_than} deleted\n")
    raise typer.Exit(0)


@app.command()
def verify(
    run_id: Annotated[
        str | None,
        typer.Argument(help="The run of the incident: its id, a unique prefix, or `last` (see `runbook history`)."),
    ] = None,
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Check every target of this runbook.toml against the "
            "verdict it expects (expect_verdict, default healthy).",
        ),
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Format of the new run's report.")] = Format.text,
    store: StoreOpt = None,
    no_record: NoRecordOpt = False,
) -> None:
    """Prove a fix: run the same target with the same options again, and compare finding by finding.
    Exit 0 only when the verdict is healthy and nothing regressed."""
    from runbook import config, engine
    from runbook.steps import STEP_IDS
    from runbook.verify import compare_runs, describe

    if (run_id is None) == (config_file is None):
        fail("give the RUN_ID to verify, or --config FILE (not both)")
    if config_file is not None:
        _verify_config(config_file, store, no_record)
    assert run_id is not None
    try:
        with _open_store(store) as s:
            before = _stored(s, run_id)
        run_id = str(before["run_id"])
        plan = _plan(config.from_document(before, STEP_IDS))
    except RunbookError as e:
        fail(str(e))
    run = engine.run_sync(plan)
    after = run.to_document()
    if run.interrupted:
        emit([after], fmt, None)
        _record([after], store, no_record)
        raise typer.Exit(EXIT_INTERRUPTED)
    result = compare_runs(before, after)
    emit([after], fmt, None)
    sys.stdout.write("\n".join([f"verification of {run_id} by {after['run_id']}:", *describe(result)]) + "\n")

    def write(s: Store) -> None:
        s.record(after)
        s.record_verification(run_id, after["run_id"], after["started_at"], result)

    _store_write("the verification", store, no_record, write)
    raise typer.Exit(result["exit_code"])


def _verify_config(config_file: Path, store: Path | None, no_record: bool) -> NoReturn:
    """`verify --config`: every target against the verdict its config expects."""
    from reports import narration
    from runbook import engine
    from runbook.verify import expected_verdicts

    try:
        plans, expected, concurrency = _config_plans(config_file)
    except InputError as e:
        fail(str(e))
    runs = engine.interruptible(engine.execute_many(plans, concurrency))
    docs = [r.to_document() for r in runs]
    _record(docs, store, no_record)
    if len(runs) < len(plans) or any(r.interrupted for r in runs):
        raise typer.Exit(EXIT_INTERRUPTED)
    sys.stdout.write(narration.verdicts_against_expected(docs, expected))
    raise typer.Exit(expected_verdicts(docs, expected))


@app.command()
def watch(
    name: Annotated[str, typer.Argument(help="The name to watch.")],
    every: Annotated[float, typer.Option("--interval", "-i", help="Seconds between runs.")] = 10.0,
    until_healthy: Annotated[bool, typer.Option("--until-healthy", help="Stop at the first healthy run.")] = False,
    max_duration: Annotated[float | None, typer.Option("--max-duration", help="Stop after this many seconds.")] = None,
    rdtype: TypeOpt = "A",
    server: ServerOpt = None,
    resolver: ResolverOpt = None,
    authoritative: AuthOpt = None,
    expect: ExpectOpt = None,
    skip: SkipOpt = None,
    web: WebOpt = False,
    count: CountOpt = DEFAULTS.burst_count,
    burst_interval: Annotated[
        float, typer.Option("--burst-interval", help="Seconds between the burst's queries (diagnose's --interval).")
    ] = DEFAULTS.burst_interval,
    max_loss: LossOpt = DEFAULTS.max_loss,
    max_rtt: RttOpt = DEFAULTS.max_rtt,
    timeout: TimeoutOpt = DEFAULTS.timeout,
    resolv_conf: ResolvOpt = DEFAULTS.resolv_conf,
    store: StoreOpt = None,
    no_record: NoRecordOpt = False,
) -> None:
    """Run the runbook again and again; print only the changes; record the outage window (first failure,
    recovery) in the store. Ctrl-C ends it cleanly, with the window so far."""
    try:
        if not 0.1 <= every <= 86_400:
            raise InputError(f"--interval {every:g} is out of range: give 0.1 to 86400 seconds")
        if max_duration is not None and max_duration <= 0:
            raise InputError("--max-duration must be more than 0 seconds")
        options: dict[str, Any] = {"rdtype": rdtype, "servers": server, "resolvers": resolver}
        options |= {"authoritative": authoritative, "expect": expect, "skip": skip, "timeout": timeout}
        options |= {"resolv_conf": resolv_conf, "count": count, "interval": burst_interval}
        plan = _plan(_settings(name, **options, max_loss=max_loss, max_rtt=max_rtt, website=web))
    except InputError as e:
        fail(str(e))
    _watch(plan, every, until_healthy, max_duration, store, no_record)


def _watch(
    plan: Plan, every: float, until_healthy: bool, max_duration: float | None, store: Path | None, no_record: bool
) -> NoReturn:
    from reports import narration
    from runbook import engine

    def on_run(run: Run, previous: str | None) -> None:
        doc = run.to_document()
        _record([doc], store, no_record)
        if run.verdict.code != previous:
            sys.stdout.write(narration.watch_change(doc))
            sys.stdout.flush()

    def on_outage(outage: engine.Outage) -> None:
        window = outage.to_dict()
        sys.stdout.write(narration.outage_closed(window, outage.first_failure.target.display))
        _store_write("the outage window", store, no_record, lambda s: s.record_outage(window))

    last, ongoing = engine.interruptible(engine.watch(plan, every, until_healthy, max_duration, on_run, on_outage))
    if ongoing is not None:
        window = ongoing.to_dict()
        sys.stdout.write(narration.outage_open(window, ongoing.first_failure.target.display))
        _store_write("the outage window", store, no_record, lambda s: s.record_outage(window))
    raise typer.Exit(last.exit_code if last else EXIT_UNKNOWN)


@app.command()
def demo(
    scenario: Annotated[str, typer.Argument(help="What to reproduce (see --list).")] = "incident",
    list_scenarios: Annotated[bool, typer.Option("--list", help="List the scenarios, one line each.")] = False,
    fmt: FormatOpt = Format.text,
    output: OutputOpt = None,
    timeout: TimeoutOpt = DEFAULTS.timeout,
) -> None:
    """The incident that started this project (and its cousins) reproduced on loopback, unprivileged: real
    servers inside this process, the real diagnosis against them. Exit 0 when the diagnosis finds what the
    scenario staged."""
    from reports import narration
    from runbook import config
    from runbook import demo as demos

    if list_scenarios:
        for s in demos.SCENARIOS.values():
            sys.stdout.write(f"{s.name:10} {s.what} -> {s.expected}\n")
        raise typer.Exit(0)
    chosen = demos.SCENARIOS.get(scenario)
    if chosen is None:
        fail(f"unknown scenario {scenario!r}: the scenarios are {', '.join(demos.SCENARIOS)} (see --list)")
    try:
        base = config.Settings(target=config.parse_name(chosen.qname), timeout=config.parse_timeout(timeout))
    except InputError as e:
        fail(str(e))
    run, settings = asyncio.run(demos.run_scenario(chosen, base))
    doc = run.to_document()
    emit([doc], fmt, output)
    if fmt in (Format.text, Format.markdown) and output is None:
        servers = " ".join(
            f"--{k} {v.label}"
            for k, v in (("server", settings.servers[0]), ("authoritative", settings.authoritative[0]))
        )
        command = f"runbook diagnose {chosen.qname.rstrip('.')} --type {chosen.rdtype} {servers} --skip web"
        sys.stdout.write(narration.demo_epilogue(chosen.name, chosen.what, command))
    if run.verdict.code != chosen.expected:
        sys.stderr.write(f"runbook: the demo expected {chosen.expected}, the diagnosis says {run.verdict.code}\n")
        raise typer.Exit(EXIT_UNKNOWN)
    raise typer.Exit(0)


@app.command()
def serve(
    listen: Annotated[str, typer.Option("--listen", "-l", help="ADDR:PORT to listen on (loopback by default).")] = (
        "127.0.0.1:9115"
    ),
    config_file: Annotated[
        Path | None, typer.Option("--config", "-c", help="runbook.toml: its modules say what may be probed.")
    ] = None,
    concurrency: Annotated[int, typer.Option(help="Probes at most at once; more wait, then get 503.")] = 8,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Processes that run the probes (each runs many at once); 0 runs them in the exporter's own "
            "process. Default: one per CPU, at most 4."
        ),
    ] = None,
) -> None:
    """A Prometheus exporter: GET /probe?target=NAME&module=M runs the runbook and answers Prometheus text;
    /metrics has the exporter's own metrics; / a status page. Only the config's targets are probed."""
    from runbook import config
    from runbook import serve as exporter
    from runbook.steps import STEP_IDS

    try:
        where = config.parse_server(listen)
        if where.port == 53 and ":" not in listen.rsplit("]", 1)[-1]:
            raise InputError(f"--listen {listen!r}: give ADDR:PORT (e.g. 127.0.0.1:9115)")
        if not 1 <= concurrency <= 256:
            raise InputError(f"--concurrency {concurrency} is out of range: give 1 to 256")
        if workers is None:
            workers = min(4, os.cpu_count() or 1)
        if not 0 <= workers <= 64:
            raise InputError(f"--workers {workers} is out of range: give 0 to 64")
        modules = config.load_modules(config_file, STEP_IDS) if config_file else {}
        options = exporter.Options(modules, concurrency, STEP_IDS, workers)
        server = exporter.make_server(where.host, where.port)
    except InputError as e:
        fail(str(e))
    except OSError as e:
        fail(f"cannot listen on {listen}: {e.strerror or e}")
    probes = server.exporter = exporter.Exporter(options)  # the workers start once the port is ours
    if not modules:
        warn("no --config: every probe will be refused (the config's modules say what may be probed)")
    sys.stderr.write(f"runbook: serving on http://{where.label}/ (modules: {', '.join(modules) or 'none'})\n")
    sys.stderr.flush()
    import signal

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM (systemd, kill) stops it as Ctrl-C does: workers closed, port freed

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        probes.close()
    raise typer.Exit(0)


def run(argv: list[str] | None = None) -> NoReturn:
    """Run the CLI with bad usage mapped to exit 3 and one line, and never a traceback."""
    args = argv if argv is not None else sys.argv[1:]
    if not args:  # no arguments: the help, and success (click would call it a usage error)
        args = ["--help"]
    dig_style = next((a for a in args if a.startswith("@") and len(a) > 1), None)
    if dig_style is not None:
        sys.stderr.write(
            f"runbook: error: {dig_style!r} is dig's way to name the server; here it is --server {dig_style[1:]} "
            f"(e.g. runbook diagnose NAME --server {dig_style[1:]})\n"
        )
        sys.exit(EXIT_UNKNOWN)
    command, args, prog = _click_command(args)
    try:
        code = command.main(args=args, prog_name=prog, standalone_mode=False)
    except typer.Exit as e:
        code = e.exit_code
    except (typer.Abort, KeyboardInterrupt):
        sys.stderr.write("runbook: interrupted\n")
        code = EXIT_INTERRUPTED
    except Exception as e:
        if _is_usage_error(e):  # click's UsageError (vendored by typer): bad usage is exit 3, one line
            sys.stderr.write(f"runbook: error: {e.format_message()}\n")  # type: ignore[attr-defined]
            sys.exit(EXIT_UNKNOWN)
        if os.environ.get("RUNBOOK_DEBUG"):
            raise
        sys.stderr.write(f"runbook: internal error: {type(e).__name__}: {e} (RUNBOOK_DEBUG=1 shows the traceback)\n")
        code = EXIT_UNKNOWN
    sys.exit(code if isinstance(code, int) else 0)


def _click_command(args: list[str]) -> tuple[Any, list[str], str]:
    """The click command that runs ``args``: the subcommand named alone (building every command's click object
    costs tens of milliseconds of each run, a tenth of the seed's verdict), else the whole group (the root's help,
    its options, shell completion, a mistyped command)."""
    if args[0][:1] not in ("", "-"):
        from typer.main import get_command_from_info, get_command_name

        for info in app.registered_commands:
            name = info.name or (get_command_name(info.callback.__name__) if info.callback else "")
            if name == args[0]:
                command = get_command_from_info(
                    info, pretty_exceptions_short=app.pretty_exceptions_short, rich_markup_mode=app.rich_markup_mode
                )
                command.context_settings = {**command.context_settings, **(app.info.context_settings or {})}
                return command, args[1:], f"runbook {name}"
    return typer.main.get_command(app), args, "runbook"


def _is_usage_error(e: Exception) -> bool:
    return any(cls.__name__ == "UsageError" for cls in type(e).__mro__) and hasattr(e, "format_message")
