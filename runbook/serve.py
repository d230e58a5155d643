"""``runbook serve``: a probe endpoint Prometheus scrapes, the way it scrapes blackbox_exporter.

    GET /probe?target=NAME&module=M   the runbook for NAME with module M's settings, as Prometheus text
    GET /metrics                      the exporter's own metrics (probes, durations, errors, in flight)
    GET /probe?...&debug=true         the same probe, answered as text: the run's findings and verdict, then
                                      the metrics it would have returned (as blackbox_exporter's debug)
    GET /-/healthy                    200 while the exporter serves (for load balancers and supervisors)
    GET /                             a status page: the modules and the last results

The HTTP server is the stdlib's ThreadingHTTPServer (no hand-written parsing); metrics are prometheus_client's.
Only the targets and modules the config allows are probed: anything else is a 400 with its reason, never a
probe, so the exporter cannot be made to send traffic anywhere. Probes run at most ``concurrency`` at a
time; a request that cannot get a slot within its own timeout gets a 503. A probe that fails is a
``probe_success 0`` answer, never a 500. The probe's budget follows Prometheus'
``X-Prometheus-Scrape-Timeout-Seconds`` less a margin, as blackbox_exporter does.
"""

from __future__ import annotations

import html
import math
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.process_collector import ProcessCollector

from runbook.config import Module
from runbook.errors import InputError

MAX_URL = 2048
DEFAULT_SCRAPE_TIMEOUT = 10.0
MARGIN = 0.5
"""Taken off Prometheus' scrape timeout for the answer to travel back (blackbox_exporter's default)."""


@dataclass(frozen=True)
class Options:
    modules: Mapping[str, Module]
    concurrency: int = 8
    known_steps: Sequence[str] = ()
    workers: int = 0
    """Probe worker processes (:mod:`runbook.workers`); 0 runs the probes in the exporter's own process."""


class Exporter:
    def __init__(self, options: Options) -> None:
        from runbook.workers import WorkerPool

        self.options = options
        self.pool = WorkerPool(options.workers, options.known_steps) if options.workers > 0 else None
        self.slots = threading.BoundedSemaphore(options.concurrency)
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.probes = Counter(
            "runbook_probes", "Probes run, by module and verdict code", ["module", "verdict"], registry=self.registry
        )
        self.rejected = Counter(
            "runbook_probe_rejections", "Requests refused, by reason", ["reason"], registry=self.registry
        )
        self.errors = Counter(
            "runbook_probe_errors", "Probes that failed inside the exporter", ["module"], registry=self.registry
        )
        self.duration = Histogram(
            "runbook_probe_duration_seconds",
            "Probe wall time",
            ["module"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
            registry=self.registry,
        )
        self.in_flight = Gauge("runbook_probes_in_flight", "Probes running now", registry=self.registry)
        self.last: deque[dict[str, Any]] = deque(maxlen=50)
        self._lock = threading.Lock()

    # -- the probe ---------------------------------------------------------------------------------------
    def probe(self, query: Mapping[str, list[str]], scrape_timeout: str | None) -> tuple[int, str, str]:
        """(HTTP status, content type, body) for /probe."""
        try:
            debug = _debug(query)
            module, name, budget = self._validate({k: v for k, v in query.items() if k != "debug"}, scrape_timeout)
        except InputError as e:
            self.rejected.labels("bad-request").inc()
            return 400, "text/plain; charset=utf-8", f"{e}\n"
        # Wait for a slot no longer than the scrape itself may last.
        if not self.slots.acquire(timeout=max(0.0, budget)):
            self.rejected.labels("busy").inc()
            return 503, "text/plain; charset=utf-8", "too many probes in flight; try again\n"
        started = time.monotonic()
        self.in_flight.inc()
        try:
            text, verdict = self._run(module, name, budget - (time.monotonic() - started), debug)
        finally:
            self.in_flight.dec()
            self.slots.release()
            self.duration.labels(module.name).observe(time.monotonic() - started)
        self.probes.labels(module.name, verdict).inc()
        with self._lock:
            self.last.appendleft(
                {
                    "target": name,
                    "module": module.name,
                    "verdict": verdict,
                    "at": time.strftime("%Y-%m-%d %H:%M:%S"),
                    "seconds": time.monotonic() - started,
                }
            )
        return 200, "text/plain; charset=utf-8" if debug else CONTENT_TYPE_LATEST, text

    def _validate(self, query: Mapping[str, list[str]], scrape_timeout: str | None) -> tuple[Module, str, float]:
        from runbook.config import parse_name

        unknown = set(query) - {"target", "module"}
        if unknown:
            raise InputError(f"unknown parameter {sorted(unknown)[0]!r}: give target and module")
        targets, modules = query.get("target", []), query.get("module", [])
        if len(targets) != 1 or not targets[0]:
            raise InputError("give exactly one target=NAME")
        module_name = modules[0] if modules else ("default" if "default" in self.options.modules else "")
        if len(modules) > 1 or module_name not in self.options.modules:
            raise InputError(f"unknown module {module_name!r}: the modules are {', '.join(self.options.modules)}")
        module = self.options.modules[module_name]
        name = parse_name(targets[0]).display
        if not module.allows(name):
            raise InputError(f"target {name!r} is not allowed in module {module_name!r}")
        budget = DEFAULT_SCRAPE_TIMEOUT
        if scrape_timeout is not None:
            try:
                budget = float(scrape_timeout)
            except ValueError:
                raise InputError(f"X-Prometheus-Scrape-Timeout-Seconds {scrape_timeout!r} is not a number") from None
            if not math.isfinite(budget) or not 0.2 < budget <= 600:
                raise InputError(f"X-Prometheus-Scrape-Timeout-Seconds {scrape_timeout!r} is out of range (0.2 to 600)")
        return module, name, budget - MARGIN

    def _run(self, module: Module, name: str, budget: float, debug: bool = False) -> tuple[str, str]:
        from runbook import workers

        wanted = float(module.defaults.get("timeout", 2.0))
        # The engine's deadline is its timeout plus its own margin: both fit in the scrape's budget.
        job = workers.Job(module, name, max(0.05, min(wanted, budget - 0.5)), debug)
        try:
            if self.pool is None:
                answer = workers.probe(job, self.options.known_steps)
            else:
                answer = self.pool.run(job, max(0.1, budget))
        except (TimeoutError, workers.WorkerGone) as e:
            answer = workers.Answer("", "error", f"{type(e).__name__}: {e}")
        if answer.error is not None:  # a failing probe is an answer, never a 500
            self.errors.labels(module.name).inc()
            return _failed(name, answer.error), "error"
        return answer.text, answer.verdict

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()

    # -- the other pages ---------------------------------------------------------------------------------
    def metrics(self) -> tuple[int, str, str]:
        return 200, CONTENT_TYPE_LATEST, generate_latest(self.registry).decode()

    def status(self) -> tuple[int, str, str]:
        rows = "".join(
            f"<tr><td>{html.escape(m.name)}</td><td>{html.escape(', '.join(m.targets))}</td></tr>"
            for m in self.options.modules.values()
        )
        with self._lock:
            last = list(self.last)
        results = "".join(
            f"<tr><td>{html.escape(r['at'])}</td><td>{html.escape(r['module'])}</td><td>{html.escape(r['target'])}"
            f"</td><td>{html.escape(r['verdict'])}</td><td>{r['seconds']:.2f} s</td></tr>"
            for r in last
        )
        body = (
            "<!doctype html><html><head><meta charset='utf-8'><title>runbook serve</title></head><body>"
            "<h1>runbook serve</h1><p><a href='/metrics'>metrics</a> · probe: "
            "<code>/probe?target=NAME&amp;module=MODULE</code></p>"
            f"<h2>Modules</h2><table><tr><th>module</th><th>targets</th></tr>{rows}</table>"
            f"<h2>Last results</h2><table><tr><th>at</th><th>module</th><th>target</th><th>verdict</th>"
            f"<th>took</th></tr>{results}</table></body></html>\n"
        )
        return 200, "text/html; charset=utf-8", body


def _debug(query: Mapping[str, list[str]]) -> bool:
    values = query.get("debug", [])
    if len(values) > 1 or (values and values[0] not in ("true", "false")):
        raise InputError("debug must be true or false")
    return values == ["true"]


def _failed(name: str, why: str) -> str:
    from prometheus_client import CollectorRegistry as Registry
    from prometheus_client import Gauge as G
    from prometheus_client import Info

    registry = Registry()
    G("probe_success", "Whether DNS works", ["target"], registry=registry).labels(name).set(0)
    Info("runbook_probe_error", "Why the probe failed", registry=registry).info({"error": why[:200]})
    return generate_latest(registry).decode()


class Handler(BaseHTTPRequestHandler):
    server_version = "runbook-serve"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        exporter = getattr(self.server, "exporter", None)  # set once the port is bound and the workers run
        if exporter is None:
            self._send(503, "text/plain; charset=utf-8", "starting\n")
            return
        if len(self.path) > MAX_URL:
            exporter.rejected.labels("too-long").inc()
            self._send(414, "text/plain; charset=utf-8", f"the request is longer than {MAX_URL} bytes\n")
            return
        url = urlsplit(self.path)
        try:
            query = parse_qs(url.query, keep_blank_values=True, strict_parsing=False, max_num_fields=10)
        except ValueError as e:
            exporter.rejected.labels("bad-request").inc()
            self._send(400, "text/plain; charset=utf-8", f"malformed query: {e}\n")
            return
        if url.path == "/probe":
            self._send(*exporter.probe(query, self.headers.get("X-Prometheus-Scrape-Timeout-Seconds")))
        elif url.path == "/metrics":
            self._send(*exporter.metrics())
        elif url.path in ("/-/healthy", "/-/ready"):
            self._send(200, "text/plain; charset=utf-8", "Healthy\n")
        elif url.path == "/":
            self._send(*exporter.status())
        else:
            self._send(404, "text/plain; charset=utf-8", "not found: try /probe, /metrics or /\n")

    def _send(self, status: int, content_type: str, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    exporter: Exporter | None = None


def make_server(host: str, port: int) -> Server:
    """The HTTP server, bound; it answers 503 until its ``exporter`` is set."""
    family = ThreadingHTTPServer.address_family
    if ":" in host:
        import socket

        family = socket.AF_INET6

    class Bound(Server):
        address_family = family

    return Bound((host, port), Handler)
