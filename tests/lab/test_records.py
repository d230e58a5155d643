"""End to end: runs recorded, listed and rendered again; fixes proved; outages watched; cron, CI and the
docs' own commands run exactly as they are written."""

from __future__ import annotations

import json
import re
import shutil
import signal
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.conftest import validate_document
from tests.lab.lab import RESOLVER, ZONE, Lab
from tests.lab.test_verdicts import ruleset

DOCS = Path(__file__).resolve().parents[2] / "docs"
FAST = ("--timeout", "1", "--skip", "web")


def run_json(lab: Lab, store: Path, *args: str) -> tuple[dict, int]:
    proc = lab.runbook("diagnose", ZONE, "--format", "json", "--store", str(store), *FAST, *args)
    return validate_document(json.loads(proc.stdout)), proc.returncode


def test_a_run_is_recorded_listed_and_rendered_again_identically(lab: Lab, tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    live, _ = run_json(lab, store)
    listed = json.loads(lab.runbook("history", "--format", "json", "--store", str(store)).stdout)
    assert [r["run_id"] for r in listed] == [live["run_id"]] and listed[0]["verdict"] == "healthy"
    again = lab.runbook("report", live["run_id"], "--format", "json", "--store", str(store))
    assert json.loads(again.stdout) == live
    markdown = lab.runbook("diagnose", ZONE, "--format", "markdown", "--store", str(store), *FAST).stdout
    run_id = re.search(r"run `([^`]+)`", markdown).group(1)  # type: ignore[union-attr]
    assert lab.runbook("report", run_id, "--format", "markdown", "--store", str(store)).stdout == markdown
    table = lab.runbook("history", ZONE, "--store", str(store)).stdout
    assert run_id in table and "healthy" in table


def test_verify_proves_the_fix_and_names_a_regression(lab: Lab, tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    with lab.stopped("unbound"):
        incident, code = run_json(lab, store)
    assert code == 2 and incident["verdict"]["code"] == "dns-service-down"
    proof = lab.runbook("verify", incident["run_id"], "--store", str(store))
    assert proof.returncode == 0, proof.stdout
    assert "VERIFIED" in proof.stdout and f"fixed: udp53/{RESOLVER}" in proof.stdout
    report = lab.runbook("report", incident["run_id"], "--format", "markdown", "--store", str(store)).stdout
    assert "## Verification" in report and "Verified: the failure is gone" in report

    healthy, _ = run_json(lab, store)
    with lab.nft(lab.dns, ruleset("input", "meta l4proto { tcp, udp } th dport 53 drop")):
        broken = lab.runbook("verify", healthy["run_id"], "--store", str(store))
    assert broken.returncode == 2
    assert f"regressed: udp53/{RESOLVER}" in broken.stdout and "NOT VERIFIED" in broken.stdout


def test_watch_records_the_outage_window_across_a_failure_and_a_recovery(lab: Lab, tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    lab.stop("unbound")
    try:
        proc = lab.popen(
            "watch", ZONE, "--interval", "0.5", "--until-healthy", "--max-duration", "60", "--store", str(store), *FAST
        )
        time.sleep(2.5)
    finally:
        lab.start("unbound")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err
    lines = out.splitlines()
    assert "dns-service-down" in lines[0] and "healthy" in lines[1]
    assert len([line for line in lines if line[:2].isdigit()]) == 2  # only the changes are printed
    assert re.search(r"outage of yummyrecipesforme\.com: between \d\d:\d\d:\d\d and \d\d:\d\d:\d\d", out)
    first = re.search(r"\(([^)]+)\)", lines[0]).group(1)  # type: ignore[union-attr]
    report = lab.runbook("report", first, "--format", "markdown", "--store", str(store)).stdout
    assert "`runbook watch` saw the outage between" in report


def test_ctrl_c_ends_a_watch_cleanly_with_the_window_so_far(lab: Lab, tmp_path: Path) -> None:
    with lab.stopped("unbound"):
        proc = lab.popen("watch", ZONE, "--interval", "0.5", "--store", str(tmp_path / "runs.db"), *FAST)
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()  # the first run is done and printed: then Ctrl-C, mid-way or between
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:  # never leave it running, whatever failed
                proc.kill()
                proc.wait()
    out = first + out
    assert "dns-service-down" in first
    assert "Traceback" not in err
    assert "still going" in out
    assert proc.returncode == 2


def test_config_diagnoses_every_target_and_verify_config_checks_the_expected_verdicts(lab: Lab, tmp_path: Path) -> None:
    config = DOCS / "runbook.toml"
    proc = lab.runbook("diagnose", "--config", str(config), "--format", "json", "--no-record")
    both = json.loads(proc.stdout)
    assert proc.returncode == 0 and [validate_document(d)["verdict"]["code"] for d in both["runs"]] == ["healthy"] * 2
    with lab.stopped("unbound"):
        failing = lab.runbook("verify", "--config", str(config), "--no-record")
    assert failing.returncode == 2
    assert failing.stdout.count("FAIL ") == 2 and "expected healthy" in failing.stdout


def _blocks(markdown: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", markdown, re.S)


def test_the_cron_and_systemd_commands_of_the_docs_run_as_written(lab: Lab, tmp_path: Path) -> None:
    shutil.copy(DOCS / "runbook.toml", tmp_path / "runbook.toml")
    cron = (DOCS / "cron.md").read_text()
    crontab = _blocks(cron, "crontab")[0].strip().splitlines()
    command = crontab[0].split("&&", 1)[1].strip()  # what cron runs in /var/lib/dns-runbook
    exec_start = re.search(r"^ExecStart=(.*)$", cron, re.M).group(1)  # type: ignore[union-attr]
    assert command == exec_start
    for line in (command, *[b.strip() for b in _blocks(cron, "sh")]):
        proc = lab.shell(line, tmp_path)
        assert proc.returncode == 0, f"{line}: {proc.stdout} {proc.stderr}"
    # As cron runs it: its PATH, and nothing printed (cron mails whatever a job prints).
    proc = lab.shell(command, tmp_path, path="/usr/bin:/bin")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    prune = crontab[1].split(" ", 5)[5]
    assert prune.startswith("runbook prune")
    assert lab.shell(prune, tmp_path, path="/usr/bin:/bin").returncode == 0
    from prometheus_client.parser import text_string_to_metric_families

    families = {f.name for f in text_string_to_metric_families((tmp_path / "runbook.prom").read_text())}
    assert {"probe_success", "runbook_verdict"} <= families
    assert lab.shell("runbook diagnose --config runbook.toml --format nagios", tmp_path).stdout.startswith("DNS OK - ")


def test_the_ci_commands_of_the_docs_run_as_written(lab: Lab, tmp_path: Path) -> None:
    shutil.copy(DOCS / "runbook.toml", tmp_path / "runbook.toml")
    ci = (DOCS / "ci.md").read_text()
    script = re.findall(r"^\s+- (runbook .*)$", _blocks(ci, "yaml")[0], re.M)
    assert len(script) == 2
    for line in script:
        proc = lab.shell(line, tmp_path)
        assert proc.returncode == 0, f"{line}: {proc.stdout} {proc.stderr}"
    suites = ET.parse(tmp_path / "dns-junit.xml").getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == ["yummyrecipesforme.com", "www.yummyrecipesforme.com"]
    with lab.stopped("unbound"):
        assert lab.shell(script[1], tmp_path).returncode == 2
