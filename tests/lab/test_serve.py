"""`runbook serve` scraped by a real Prometheus (Debian's package), both in the lab's client namespace.

Prometheus is started by the test on loopback with a generated config (the relabelling of
docs/prometheus/prometheus.yml, a short interval), scrapes the exporter probing a lab target, and the test
reads the values back through Prometheus' HTTP API: a healthy target, then the seed's incident.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.lab.lab import ZONE, Lab

DOCS = Path(__file__).resolve().parents[2] / "docs" / "prometheus"
SERVE, PROM = "127.0.0.1:9115", "127.0.0.1:9090"


@pytest.fixture
def exporter(lab: Lab) -> Iterator[None]:
    with lab.serving(SERVE, "--config", str(DOCS / "runbook.toml")):
        yield


def test_bad_requests_are_4xx_and_the_exporter_keeps_serving(lab: Lab, exporter: None) -> None:
    for path, status in [
        ("/probe?target=example.org&module=resolvers", 400),  # not allowed by the config: never probed
        ("/probe?target=yummyrecipesforme.com&module=nope", 400),
        ("/probe?module=resolvers", 400),
        ("/probe?target=" + "a" * 10_000, 414),
        ("/probe?target=bad%20name&module=resolvers", 400),
        ("/nowhere", 404),
    ]:
        assert lab.http_get(f"http://{SERVE}{path}")[0] == status, path
    status, body = lab.http_get(f"http://{SERVE}/probe?target={ZONE}&module=resolvers")
    assert status == 200 and 'runbook_verdict{code="healthy",target="yummyrecipesforme.com"} 1.0' in body
    status, body = lab.http_get(f"http://{SERVE}/metrics")
    assert 'runbook_probe_rejections_total{reason="bad-request"}' in body and "process_open_fds" in body
    assert lab.http_get(f"http://{SERVE}/")[1].count("<tr>") >= 3
    status, body = lab.http_get(f"http://{SERVE}/-/healthy")
    assert (status, body.strip()) == (200, "Healthy")
    # debug=true, as blackbox_exporter users expect: the run's findings, then the metrics.
    status, body = lab.http_get(f"http://{SERVE}/probe?target={ZONE}&module=resolvers&debug=true")
    assert status == 200 and "udp53" in body and "healthy" in body
    # The zone's name servers found by the probe before are reused within their TTL, and the report says so.
    # (Requests one at a time go to the same, least busy worker: the one that discovered them.)
    # So is the zone's own answer, within its TTL: a busy exporter does not ask the zone's servers every probe.
    flat = re.sub(r"\s+", " ", body)
    assert "reused within its TTL" in flat and re.search(r"authoritative [\d.]+:53 \(ns1[^)]*\):[^;]*; asked at", flat)
    assert body.index("Metrics that would have been returned:") < body.index("runbook_verdict{")
    assert lab.http_get(f"http://{SERVE}/probe?target={ZONE}&module=resolvers&debug=yes")[0] == 400


def query(lab: Lab, expr: str) -> dict[str, float]:
    status, body = lab.http_get(f"http://{PROM}/api/v1/query?query={quote(expr)}")
    assert status == 200, body
    return {json.dumps(r["metric"], sort_keys=True): float(r["value"][1]) for r in json.loads(body)["data"]["result"]}


def wait_for(lab: Lab, expr: str, want: float, timeout: float = 40) -> None:
    end = time.monotonic() + timeout
    seen: dict[str, float] = {}
    while time.monotonic() < end:
        try:
            seen = query(lab, expr)
        except (subprocess.CalledProcessError, AssertionError):  # Prometheus is still starting (refused, 503)
            seen = {}
        if seen and all(v == want for v in seen.values()):
            return
        time.sleep(0.5)
    raise AssertionError(f"{expr}: wanted {want}, Prometheus has {seen}")


@pytest.mark.skipif(
    shutil.which("prometheus") is None and not os.environ.get("RUNBOOK_REQUIRE_LAB"),
    reason="Debian's prometheus package is not installed",
)
def test_prometheus_scrapes_the_verdicts_healthy_then_the_seeds_incident(
    lab: Lab, exporter: None, tmp_path: Path
) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 2s\n  scrape_timeout: 2s\n"
        "scrape_configs:\n  - job_name: dns-runbook\n    metrics_path: /probe\n    params:\n"
        "      module: [resolvers]\n    static_configs:\n      - targets: [yummyrecipesforme.com]\n"
        "    relabel_configs:\n      - source_labels: [__address__]\n        target_label: __param_target\n"
        "      - source_labels: [__param_target]\n        target_label: instance\n"
        f"      - target_label: __address__\n        replacement: {SERVE}\n"
    )
    prom = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            lab.client,
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address={PROM}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lab, 'probe_success{job="dns-runbook"}', 1)
        wait_for(lab, 'runbook_verdict{code="healthy"}', 1)
        with lab.stopped("unbound"):
            wait_for(lab, 'runbook_verdict{code="dns-service-down"}', 1)
            wait_for(lab, 'probe_success{job="dns-runbook"}', 0)
            assert query(lab, "up")  # the scrape itself never failed: a failing probe is an answer
            assert all(v == 1 for v in query(lab, 'up{job="dns-runbook"}').values())
    finally:
        os.kill(prom.pid, signal.SIGTERM)
        prom.wait(20)


@pytest.mark.skipif(
    shutil.which("promtool") is None and not os.environ.get("RUNBOOK_REQUIRE_LAB"),
    reason="Debian's prometheus package is not installed",
)
def test_the_docs_scrape_config_and_alerting_rules_are_valid(lab: Lab) -> None:
    for args in (["check", "config", "prometheus.yml"], ["check", "rules", "alerts.yml"]):
        proc = subprocess.run(["promtool", *args], cwd=DOCS, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    rules = (DOCS / "alerts.yml").read_text()
    from runbook.diagnosis import PRECEDENCE

    for code, status in PRECEDENCE:
        if status.value in ("critical", "warning"):
            assert code in rules, f"no alert for {code}"
