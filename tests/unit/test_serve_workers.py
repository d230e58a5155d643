"""``runbook serve`` with probe workers, on loopback: probes run in worker processes and come back whole;
a worker that dies costs only its own probes (``probe_success 0``, never a 500 or a hang), and is replaced."""

from __future__ import annotations

import os
import signal
import time

from runbook import serve
from runbook.config import Module
from runbook.steps import STEP_IDS
from tests.unit.dnsserver import dns_server


def _exporter(address: str, workers: int) -> serve.Exporter:
    module = Module("m", ("example.com",), {"servers": [address], "skip": ["web", "firewall"], "count": 2})
    return serve.Exporter(serve.Options({"m": module}, 8, STEP_IDS, workers))


def _probe(exporter: serve.Exporter, debug: bool = False) -> tuple[int, str, str]:
    query = {"target": ["example.com"], "module": ["m"], **({"debug": ["true"]} if debug else {})}
    return exporter.probe(query, "5")


def test_probes_run_in_a_worker_process_and_a_dead_worker_is_replaced() -> None:
    with dns_server() as (host, port, _):
        exporter = _exporter(f"{host}:{port}", workers=1)
        try:
            assert exporter.pool is not None
            status, _, body = _probe(exporter)
            assert status == 200 and 'runbook_verdict{code="healthy",target="example.com"} 1.0' in body
            (pid,) = exporter.pool.pids
            assert pid is not None and pid != os.getpid()
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)  # the reader sees the pipe close
            deadline = time.monotonic() + 20
            status, _, body = _probe(exporter)
            while "probe_success" in body and 'code="healthy"' not in body and time.monotonic() < deadline:
                status, _, body = _probe(exporter)  # the first after the death may fail: never a 500
                assert status == 200
            assert 'runbook_verdict{code="healthy",target="example.com"} 1.0' in body
            assert exporter.pool.pids != [pid]
            status, content_type, body = _probe(exporter, debug=True)
            assert content_type.startswith("text/plain") and "udp53" in body and "Metrics that would" in body
        finally:
            exporter.close()


def test_without_workers_the_probe_runs_in_the_exporters_process() -> None:
    with dns_server() as (host, port, _):
        exporter = _exporter(f"{host}:{port}", workers=0)
        assert exporter.pool is None
        status, _, body = _probe(exporter)
        assert status == 200 and 'code="healthy"' in body
