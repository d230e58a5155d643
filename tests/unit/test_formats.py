"""The formats monitoring reads: Nagios plugin output, JUnit XML, Prometheus text; and runbook.toml."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from reports import RENDERERS
from runbook.config import load_config, parse_since
from runbook.errors import InputError
from runbook.steps import STEP_IDS
from runbook.verify import compare_runs, describe
from tests.unit.test_reports import EVIL, make_run

# Nagios plugin guidelines: 'label'=value[UOM];[warn];[crit];[min];[max], UOM one of s us ms % B KB MB TB c
PERF = re.compile(r"^(?:'(?:[^']|'')+'|[^' =]+)=-?[0-9.]+(?:s|us|ms|%|B|KB|MB|TB|c)?(?:;-?[0-9.]*){0,4}$")


def docs() -> list[dict]:
    a = make_run("plain").to_document()
    b = make_run(EVIL).to_document()
    b["run_id"] = "second"
    b["target"]["display_name"] = "other|name's.example"
    b["target"]["name"] = "other.example."
    return [a, b]


def test_nagios_status_line_and_perfdata_follow_the_guidelines() -> None:
    for batch in (docs()[:1], docs()):
        out = RENDERERS["nagios"](batch)
        first = out.splitlines()[0]
        assert first.startswith("DNS CRITICAL - ")
        text, _, perf = first.partition(" | ")
        assert "|" not in text and "\x1b" not in out
        assert perf, first
        for item in perf.split(" "):
            assert PERF.match(item), item


def test_junit_is_shaped_as_the_ant_junit_schema_requires() -> None:
    root = ET.fromstring(RENDERERS["junit"](docs()))
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 2
    for i, suite in enumerate(suites):
        for attr in ("name", "package", "id", "hostname", "timestamp", "tests", "failures", "errors", "time"):
            assert suite.get(attr), attr
        assert suite.get("id") == str(i)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", suite.get("timestamp", ""))
        tags = [c.tag for c in suite]
        assert tags[0] == "properties" and tags[-2:] == ["system-out", "system-err"]
        cases = suite.findall("testcase")
        assert int(suite.get("tests", 0)) == len(cases)
        for case in cases:
            assert case.get("name") and case.get("classname") and case.get("time") is not None
            outcomes = [c for c in case if c.tag in ("failure", "error", "skipped")]
            assert len(outcomes) <= 1
            for o in outcomes:
                if o.tag != "skipped":
                    assert o.get("type")
        assert int(suite.get("failures", 0)) == sum(1 for c in cases if c.find("failure") is not None)
        assert int(suite.get("skipped", 0)) == sum(1 for c in cases if c.find("skipped") is not None)
    failure = suites[0].find("testcase[@name='udp53']/failure")
    assert failure is not None and failure.get("message") == "plain"


def test_junit_failure_bodies_have_real_newlines() -> None:
    doc = make_run("plain").to_document()
    doc["verdict"].update(status="critical", next_steps=["first `dig`", "second\nwith a newline inside"])
    failure = ET.fromstring(RENDERERS["junit"]([doc])).find("testsuite/testcase[@name='verdict']/failure")
    assert failure is not None and failure.text == "first `dig`\nsecond\\x0awith a newline inside"


def test_prometheus_text_parses_back_with_blackbox_names() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    text = RENDERERS["prometheus"](docs())
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("probe_success", "probe_duration_seconds", "runbook_verdict", "runbook_exit_code"):
        assert name in families
    verdicts = {(s.labels["target"], s.labels["code"]): s.value for s in families["runbook_verdict"].samples}
    assert verdicts[("yummyrecipesforme.com", "dns-service-down")] == 1
    assert verdicts[("yummyrecipesforme.com", "healthy")] == 0
    assert [s.value for s in families["probe_success"].samples] == [0, 0]
    assert {s.labels["target"] for s in families["probe_success"].samples} == {"yummyrecipesforme.com", "other.example"}


def test_json_of_several_runs_carries_the_worst_exit_code() -> None:
    import json

    both = json.loads(RENDERERS["json"](docs()))
    assert len(both["runs"]) == 2 and both["exit_code"] == 2


CONFIG = """\
# runbook.toml
timeout = 1.5
skip = ["web"]

[[target]]
name = "yummyrecipesforme.com"
servers = ["203.0.113.2"]
expect = ["203.0.113.22"]

[[target]]
name = "bücher.example"
type = "AAAA"
max_loss = 0.2
expect_verdict = "nxdomain"
"""


def test_config_targets_inherit_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "runbook.toml"
    path.write_text(CONFIG)
    targets, concurrency = load_config(path, STEP_IDS)
    assert concurrency == 8
    first, second = targets
    assert (
        first.settings.timeout == 1.5 and first.settings.skip == {"web"} and first.settings.expect == ("203.0.113.22",)
    )
    assert second.settings.target.name == "xn--bcher-kva.example." and second.settings.target.rdtype == "AAAA"
    assert second.settings.max_loss == 0.2 and second.expect_verdict == "nxdomain"
    # Servers named in a config are labelled with where they came from, not "command line".
    assert first.settings.origin == f"config {path}:{first.line}" and not first.settings.website


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("max_loss = 0.2", "max_los = 0.2"),
            r"runbook.toml:13: target 2: unknown key 'max_los' \(did you mean 'max_loss'\?\)",
        ),
        (("timeout = 1.5", 'timeout = "soon"'), r"runbook.toml:2: 'timeout' must be a number of seconds, not str"),
        (
            ('servers = ["203.0.113.2"]', 'servers = "203.0.113.2"'),
            r"runbook.toml:7: target 1: 'servers' must be a list",
        ),
        (('name = "bücher.example"', 'nom = "x"'), r"runbook.toml:\d+: target 2: unknown key 'nom'"),
        (('servers = ["203.0.113.2"]', 'servers = ["not-an-ip"]'), r"runbook.toml:5: target 1: malformed server"),
        (('skip = ["web"]', 'skip = ["dig"]'), r"unknown step 'dig'"),
        (('[[target]]\nname = "yumm', '[target]\nname = "yumm'), r"not valid TOML|must be tables"),
        (
            ('expect_verdict = "nxdomain"', 'expect_verdict = "nx-domain"'),
            r"runbook.toml:\d+: target 2: expect_verdict 'nx-domain' is not a verdict code: did you mean 'nxdomain'\?",
        ),
        (('[[target]]\nname = "yumm', '[[targets]]\nname = "yumm'), r"runbook.toml:\d+: unknown key 'targets'"),
        (("max_loss = 0.2", 'web = "yes"'), r"runbook.toml:\d+: target 2: 'web' must be true or false"),
    ],
)
def test_config_mistakes_name_the_file_line_and_key(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    path = tmp_path / "runbook.toml"
    path.write_text(CONFIG.replace(*change, 1))
    with pytest.raises(InputError, match=message):
        load_config(path, STEP_IDS)


def test_since() -> None:
    assert parse_since("30m", 10_000.0) == 10_000.0 - 1800
    assert parse_since("2026-11-25T00:00:00Z", 0) > 0
    with pytest.raises(InputError):
        parse_since("yesterday", 0)


def test_verification_names_what_was_fixed_and_what_regressed() -> None:
    before = make_run("plain").to_document()
    after = make_run("plain").to_document()
    after["run_id"] = "after"
    after["findings"][0]["status"] = "ok"
    after["findings"].append(
        {**after["findings"][0], "id": "tcp53/203.0.113.2", "status": "critical", "summary": "TCP refused"}
    )
    after["verdict"]["code"] = "tcp-fallback-blocked"
    result = compare_runs(before, after)
    assert [f["id"] for f in result["fixed"]] == ["udp53/203.0.113.2"]
    # A check that did not exist (or could not run) before is new, not regressed, and says so in words.
    assert result["regressed"] == [] and [f["id"] for f in result["new"]] == ["tcp53/203.0.113.2"]
    assert "new: tcp53/203.0.113.2 (not seen before -> critical): TCP refused" in describe(result)
    assert not any("None" in line for line in describe(result))
    assert result["ok"] is False and result["exit_code"] == 2
    before["findings"].append({**after["findings"][-1], "status": "ok"})
    assert [f["id"] for f in compare_runs(before, after)["regressed"]] == ["tcp53/203.0.113.2"]
    before["findings"].pop()
    after["findings"].pop()
    after["verdict"]["code"], after["exit_code"] = "healthy", 0
    assert compare_runs(before, after)["ok"] is True and compare_runs(before, after)["exit_code"] == 0
