"""The daemons' control channels as `runbook server` reads them: counters into rates over the window, limits
into signs of overload, and a channel that cannot be tried says why. (Against the real unbound, NSD and Knot:
tests/lab/test_server.py.)"""

from __future__ import annotations

import os
from pathlib import Path

from checks import control
from runbook.evidence import ControlView, Daemon, LogFiles

BASE = ControlView(daemon="unbound", command=("unbound-control", "stats_noreset"))

UNBOUND_BEFORE = "total.num.queries=1000\nnum.answer.rcode.SERVFAIL=10\ntotal.requestlist.exceeded=0\ntime.up=12.5\n"
UNBOUND_AFTER = "total.num.queries=5000\nnum.answer.rcode.SERVFAIL=30\ntotal.requestlist.exceeded=812\n"


def test_unbound_counters_become_rates_and_a_full_request_list_is_a_sign() -> None:
    first, last = control._key_values(UNBOUND_BEFORE), control._key_values(UNBOUND_AFTER)
    view = control._view_unbound(BASE, first, last, 2.0)
    assert view.queries_per_s == 2000.0 and view.servfail_share == 0.005
    assert view.requestlist_exceeded == 812 and view.signs == ("its request list was full: 812 queries dropped in 2 s",)
    quiet = control._view_unbound(BASE, first, first, 2.0)
    assert quiet.signs == () and quiet.servfail_share is None


def test_bind_at_its_client_limit_is_a_sign_and_below_it_is_not() -> None:
    busy = control._key_values("recursive clients: 995/900/1000\ntcp clients: 3/150\n", ":")
    assert control._view_named(BASE, {}, busy, 2.0).signs == ("recursive clients 995/900/1000: at its limit",)
    calm = control._key_values("recursive clients: 12/900/1000\n", ":")
    assert control._view_named(BASE, {}, calm, 2.0).signs == ()


def test_a_channel_that_is_off_or_unreadable_says_why(tmp_path: Path) -> None:
    conf = tmp_path / "unbound.conf"
    conf.write_text("server:\nremote-control:\n  control-enable: no\n")
    assert "not enabled" in str(control._control_off(str(conf)))
    conf.write_text('remote-control:\n  control-enable: "yes"  # on\n')
    assert control._control_off(str(conf)) is None
    assert "could not be read" in str(control._control_off(str(tmp_path / "missing.conf")))


def test_log_files_named_by_the_configuration_quote_their_trouble_lines(tmp_path: Path) -> None:
    from checks import host

    log = tmp_path / "unbound.log"
    log.write_text("error: could not open port 53\ninfo: start of service\ninfo: NOERROR answer\n")
    conf = tmp_path / "unbound.conf"
    conf.write_text(f'server:\n  logfile: "{log}"\n')
    daemon = Daemon(pid=10, name="unbound", config=str(conf))
    found = host.log_files([daemon])
    assert found is not None and found.status.value == "warning"
    # the file's first line is read when the file is whole; NOERROR is not an error
    assert isinstance(found.evidence, LogFiles)
    assert found.evidence.lines == ("unbound: error: could not open port 53",)
    conf.write_text("server:\n  logfile: relative.log\n")
    relative = host.log_files([daemon])
    assert relative is not None and relative.status.value == "unknown" and "relative" in relative.summary
    log.chmod(0)
    conf.write_text(f'server:\n  logfile: "{log}"\n')
    if os.geteuid() != 0:  # root reads it anyway
        unread = host.log_files([daemon])
        assert unread is not None and "could not be read" in unread.summary and "run as root" in unread.summary


def test_two_instances_of_a_daemon_get_a_finding_each() -> None:
    daemons = [Daemon(name="unbound", pid=10), Daemon(name="unbound", pid=11), Daemon(name="nsd", pid=12)]
    after = {p: {"skipped": "its control channel is not enabled in x"} for p in (10, 11, 12)}
    ids = [f.id for f in control.findings(daemons, {}, after, 2.0)]
    assert ids == ["control/unbound/10", "control/unbound/11", "control/nsd"]


def test_how_a_daemon_died_in_systemds_words_and_the_kernels() -> None:
    from checks.host import oom_kills
    from runbook.facts import how_it_ended

    assert "killed by SIGKILL" in how_it_ended({"Result": "signal", "ExecMainCode": "2", "ExecMainStatus": "9"})
    assert "SIGSEGV (core dumped)" in how_it_ended({"Result": "core-dump", "ExecMainCode": "3", "ExecMainStatus": "11"})
    assert "OOM killer" in how_it_ended({"Result": "oom-kill", "ExecMainCode": "2", "ExecMainStatus": "9"})
    assert "exit 1" in how_it_ended({"Result": "exit-code", "ExecMainCode": "1", "ExecMainStatus": "1"})
    log = (
        "2026-11-26T10:00:00 Out of memory: Killed process 812 (unbound) total-vm:9000kB, anon-rss:8000kB\n"
        "2026-11-26T10:00:01 Out of memory: Killed process 900 (chrome) total-vm:1kB\n"
    )
    assert [(k.pid, k.name) for k in oom_kills(log)] == [(812, "unbound")]
