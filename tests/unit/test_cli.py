"""The command as users run it: exit codes, formats, bad input. Only loopback is ever contacted."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, validate_document
from tests.loopback_guard import MARKER
from tests.unit.dnsserver import Behaviour, closed_port, dns_server


def runbook(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(  # noqa: PLW1510 (the exit code is asserted)
        [sys.executable, "-m", "tests.loopback_guard", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )
    assert MARKER not in proc.stderr, proc.stderr  # nothing left loopback
    return proc


def test_version() -> None:
    proc = runbook("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("runbook ")


def test_help_lists_diagnose() -> None:
    proc = runbook("diagnose", "--help")
    assert proc.returncode == 0 and "--server" in proc.stdout and "--format" in proc.stdout


def test_seed_incident_on_loopback_exits_2_with_the_verdict() -> None:
    proc = runbook("diagnose", "yummyrecipesforme.com", "--server", f"127.0.0.1:{closed_port()}", "--format", "json")
    doc = validate_document(json.loads(proc.stdout))
    assert proc.returncode == 2
    assert doc["verdict"]["code"] == "dns-service-down"
    assert doc["exit_code"] == 2


def test_healthy_server_exits_0() -> None:
    with dns_server() as (host, port, _):
        proc = runbook("diagnose", "yummyrecipesforme.com", "--server", f"{host}:{port}", "--skip", "web")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "healthy" in proc.stdout and "127.0.0.2" in proc.stdout


def test_idn_name_is_asked_as_its_a_label() -> None:
    with dns_server() as (host, port, _):
        proc = runbook("diagnose", "bücher.example", "--server", f"{host}:{port}", "--format", "json", "--skip", "web")
    doc = validate_document(json.loads(proc.stdout))
    assert doc["target"]["name"] == "xn--bcher-kva.example."
    assert doc["target"]["display_name"] == "bücher.example"
    assert doc["verdict"]["code"] == "healthy"


def _listens(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
    except OSError:
        return False
    return True


def test_a_name_without_a_website_is_no_alarm_and_a_website_that_refuses_is_critical() -> None:
    if _listens("127.0.0.2", 443) or _listens("127.0.0.2", 80):
        pytest.skip("something on this host listens on 0.0.0.0:443 or :80, where the test needs a closed port")
    with dns_server() as (host, port, _):  # answers 127.0.0.2, where no web server listens
        plain = runbook("diagnose", "api.example", "--server", f"{host}:{port}", "--format", "json")
        site = runbook("diagnose", "api.example", "--server", f"{host}:{port}", "--format", "json", "--web")
    # An internal API or a mail host: what the web step saw is reported, and cron pages no one.
    doc = validate_document(json.loads(plain.stdout))
    assert plain.returncode == 0 and doc["verdict"]["code"] == "healthy"
    assert "run with --web" in doc["verdict"]["summary"]
    web = next(f for f in doc["findings"] if f["step"] == "web")
    assert web["status"] == "warning" and "not counted" in web["summary"]
    assert web["evidence"]["address"] == "127.0.0.2" and web["evidence"]["https"]["result"] == "connection refused"
    # The seed's case: customers cannot reach the website although DNS works.
    doc = validate_document(json.loads(site.stdout))
    assert site.returncode == 2 and doc["verdict"]["code"] == "site-unreachable-dns-ok"


def test_unknown_step_for_skip_is_an_input_error() -> None:
    proc = runbook("diagnose", "example.com", "--server", "127.0.0.1", "--skip", "dig")
    assert proc.returncode == 3 and "unknown step 'dig'" in proc.stderr


def test_untrusted_txt_reaches_the_terminal_inert() -> None:
    with dns_server(Behaviour(txt="\x1b]0;pwned\x07\x1b[31m red")) as (host, port, _):
        proc = runbook("diagnose", "yummyrecipesforme.com", "--type", "TXT", "--server", f"{host}:{port}")
    assert "\x1b" not in proc.stdout
    assert proc.returncode == 0


@pytest.mark.parametrize(
    "args",
    [
        ["diagnose", "a" * 64 + ".example", "--server", "127.0.0.1"],
        ["diagnose", ".".join(["a" * 60] * 5), "--server", "127.0.0.1"],
        ["diagnose", "bad name", "--server", "127.0.0.1"],
        ["diagnose", "example.com", "--server", "1.2.3"],
        ["diagnose", "example.com", "--server", "127.0.0.1:99999"],
        ["diagnose", "example.com", "--server", "ns1.example.com"],
        ["diagnose", "example.com", "--type", "BOGUS", "--server", "127.0.0.1"],
        ["diagnose", "example.com", "--timeout", "0", "--server", "127.0.0.1"],
        ["diagnose", "example.com", "--timeout", "soon", "--server", "127.0.0.1"],
        ["diagnose", "example.com", "--format", "yaml", "--server", "127.0.0.1"],
        ["diagnose", "example.com", "--resolv-conf", "/nonexistent/resolv.conf"],
        ["diagnose"],
        ["frobnicate"],
    ],
)
def test_bad_input_is_one_line_and_exit_3(args: list[str]) -> None:
    proc = runbook(*args)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("runbook: error: ")
    assert proc.stdout == ""


def test_no_nameserver_is_no_resolver_configured(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# nothing here\nsearch example.org\n")
    proc = runbook("diagnose", "example.com", "--resolv-conf", str(conf), "--format", "json")
    doc = validate_document(json.loads(proc.stdout))
    assert proc.returncode == 3
    assert doc["verdict"]["code"] == "no-resolver-configured"
    assert {s["id"]: s["status"] for s in doc["steps"]}["udp53"] == "skipped"


def test_servers_come_from_the_given_resolv_conf(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 127.0.0.1\noptions timeout:1\n")
    # 127.0.0.1:53 may be a real local resolver that forwards to the real network: nothing is sent to it.
    from runbook.steps import STEP_IDS

    network = [step for step in STEP_IDS if step != "hostconf"]
    skips = [arg for step in network for arg in ("--skip", step)]
    proc = runbook("diagnose", "example.com", "--resolv-conf", str(conf), "--format", "json", *skips)
    doc = validate_document(json.loads(proc.stdout))
    assert doc["target"]["servers"] == ["127.0.0.1:53"] and doc["target"]["servers_from"] == str(conf)
    assert {f["step"] for f in doc["findings"]} == {"hostconf"}


def test_output_file_and_unwritable_output(tmp_path: Path) -> None:
    out = tmp_path / "incident.md"
    server = f"127.0.0.1:{closed_port()}"
    proc = runbook("diagnose", "yummyrecipesforme.com", "--server", server, "--format", "markdown", "-o", str(out))
    assert proc.returncode == 2 and proc.stdout == ""
    assert out.read_text().startswith("# DNS incident report: yummyrecipesforme")
    proc = runbook(
        "diagnose",
        "yummyrecipesforme.com",
        "--server",
        server,
        "--format",
        "markdown",
        "-o",
        "/nonexistent/dir/incident.md",
    )
    assert proc.returncode == 3
    assert proc.stdout.startswith("# DNS incident report")  # nothing is lost
    assert proc.stderr.count("\n") == 1


def test_no_color_is_respected_on_a_terminal() -> None:
    master, slave = os.openpty()
    try:
        server = f"127.0.0.1:{closed_port()}"
        for env, coloured in (({"NO_COLOR": "1"}, False), ({"NO_COLOR": ""}, True)):
            proc = subprocess.run(  # noqa: PLW1510 (the exit code is asserted)
                [sys.executable, "-m", "runbook", "diagnose", "x.example", "--server", server],
                stdout=slave,
                stderr=subprocess.PIPE,
                timeout=30,
                cwd=ROOT,
                env={**os.environ, "TERM": "xterm", "COLUMNS": "120", **env},
            )
            assert proc.returncode == 2
            data = b""
            while True:
                import select

                ready, _, _ = select.select([master], [], [], 0.2)
                if not ready:
                    break
                data += os.read(master, 65536)
            assert (b"\x1b[" in data) == coloured
            assert b"dns-service-down" in data
    finally:
        os.close(master)
        os.close(slave)


def test_one_step_alone() -> None:
    port = closed_port()
    proc = runbook("probe", "yummyrecipesforme.com", "--server", f"127.0.0.1:{port}", "--format", "json")
    doc = validate_document(json.loads(proc.stdout))
    ran = {s["id"] for s in doc["steps"] if s["status"] != "skipped"}
    assert ran == {"hostconf", "udp53", "tcp53"}
    assert proc.returncode == 2 and doc["verdict"]["code"] == "dns-service-down"
    assert [s["id"] for s in doc["steps"]] == ["hostconf", "udp53", "tcp53"]  # no rows the user never skipped
    proc = runbook("ping", "yummyrecipesforme.com", "--server", f"127.0.0.1:{port}", "--format", "json")
    doc = validate_document(json.loads(proc.stdout))
    assert next(f for f in doc["findings"] if f["step"] == "ping")["evidence"]["received"] >= 1
    # A ping that is answered is a success of the ping step: not "inconclusive" with exit 3.
    assert (doc["command"], doc["verdict"]["code"], proc.returncode) == ("ping", "step-result", 0)
    text = runbook("ping", "yummyrecipesforme.com", "--server", f"127.0.0.1:{port}").stdout
    assert text.startswith("runbook ping yummyrecipesforme.com") and "switched off" not in text


def test_a_single_step_refuses_options_it_would_ignore() -> None:
    proc = runbook("resolve", "example.com", "--server", "127.0.0.1", "--resolver", "127.0.0.2")
    assert proc.returncode == 3 and "does not use --resolver" in proc.stderr


def test_resolve_alone_claims_nothing_about_tcp() -> None:
    with dns_server() as (host, port, _):
        proc = runbook("resolve", "example.com", "--server", f"{host}:{port}", "--format", "json")
    doc = validate_document(json.loads(proc.stdout))
    assert doc["verdict"]["code"] == "healthy" and proc.returncode == 0
    assert "and TCP" not in doc["verdict"]["summary"] and "(TCP not tested)" in doc["verdict"]["summary"]


def test_no_arguments_and_dash_h_print_help_and_succeed() -> None:
    for args in ((), ("-h",), ("diagnose", "-h")):
        proc = runbook(*args)
        assert proc.returncode == 0 and "Usage: runbook" in proc.stdout, args


def test_digs_at_server_habit_gets_the_runbook_way() -> None:
    proc = runbook("diagnose", "@127.0.0.1", "example.com")
    assert proc.returncode == 3
    assert "--server 127.0.0.1" in proc.stderr and proc.stderr.count("\n") == 1


def test_a_report_written_to_a_file_is_silent_for_cron(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    server = f"127.0.0.1:{closed_port()}"
    proc = runbook("diagnose", "example.com", "--server", server, "--format", "json", "-o", str(out), "--no-record")
    assert proc.returncode == 2 and proc.stdout == "" and proc.stderr == ""
    assert json.loads(out.read_text())["verdict"]["code"] == "dns-service-down"


def test_ctrl_c_prints_what_was_found_so_far_and_exits_130(tmp_path: Path) -> None:
    import signal

    # A server that takes the queries and never answers: the run waits on it for its whole 10 s budget.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent, socket.socket() as tcp:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        tcp.bind(("127.0.0.1", port))
        tcp.listen()
        store = tmp_path / "runs.db"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "runbook",
                "diagnose",
                "example.com",
                "--server",
                f"127.0.0.1:{port}",
                "--timeout",
                "10",
                "--format",
                "json",
                "--skip",
                "firewall",
                "--store",
                str(store),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        silent.recvfrom(512)  # the first query arrived: the run is under way
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 130 and "Traceback" not in err
    doc = validate_document(json.loads(out))
    assert doc["interrupted"] is True and doc["verdict"]["code"] == "inconclusive" and doc["exit_code"] == 130
    assert "Interrupted after" in doc["verdict"]["summary"]
    steps = {s["id"]: s for s in doc["steps"]}
    assert steps["hostconf"]["status"] == "ok"  # finished before Ctrl-C: kept
    assert steps["udp53"]["reason"].startswith("interrupted")  # never claimed
    assert json.loads(runbook("report", "last", "--store", str(store), "--format", "json").stdout)["interrupted"]


def test_piped_text_has_no_padding_and_force_color_colours_it() -> None:
    server = f"127.0.0.1:{closed_port()}"
    plain = runbook(
        "diagnose", "example.com", "--server", server, "--no-record", env={"NO_COLOR": "", "COLUMNS": "100"}
    )
    assert plain.returncode == 2 and "\x1b[" not in plain.stdout
    assert not any(line.endswith(" ") for line in plain.stdout.splitlines())
    forced = runbook("diagnose", "example.com", "--server", server, "--no-record", env={"FORCE_COLOR": "1"})
    assert "\x1b[" in forced.stdout
    both = runbook(
        "diagnose", "example.com", "--server", server, "--no-record", env={"FORCE_COLOR": "1", "NO_COLOR": "1"}
    )
    assert "\x1b[" not in both.stdout  # NO_COLOR wins


def test_history_shows_the_servers_each_run_diagnosed(tmp_path: Path) -> None:
    store = str(tmp_path / "runs.db")
    server = f"127.0.0.1:{closed_port()}"
    runbook("diagnose", "example.com", "--server", server, "--store", store, "--skip", "web")
    out = runbook("history", "--store", store).stdout
    assert server in out and "dns-service-down" in out
    rows = json.loads(runbook("history", "--store", store, "--format", "json").stdout)
    assert rows[0]["servers"] == [server] and rows[0]["command"] == "diagnose"


def test_watch_takes_the_burst_options_of_diagnose() -> None:
    proc = runbook("watch", "-h")
    assert proc.returncode == 0
    for option in ("--count", "--burst-interval", "--max-loss", "--max-rtt", "--web"):
        assert option in proc.stdout


def test_the_cli_starts_without_importing_the_checks() -> None:
    """`runbook server`, `history` and `--help` need no check: importing them all costs a third of a second, on a
    server that may be under attack. The one-step commands' help is spelt out in the CLI, and true."""
    from runbook.cli import SINGLE_HELP
    from runbook.steps import SINGLE_STEPS

    assert {k: " and ".join(v.steps) or SINGLE_HELP["hostconf"] for k, v in SINGLE_STEPS.items()} == SINGLE_HELP
    code = "import sys, runbook.cli; print(sorted(m for m in sys.modules if m.split('.')[0] == 'checks'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip() == "[]"
