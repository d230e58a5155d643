"""Renderers: what the on-call engineer reads, with everything from the network escaped."""

from __future__ import annotations

import json

from reports import RENDERERS
from reports.escape import code_span, fence, markdown, terminal
from reports.text import render as render_text
from runbook.model import Run, Server, Status, StepResult, Target, Verdict
from tests.conftest import finding, validate_document

EVIL = "\x1b[31mEVIL\x1b[0m [bold]markup[/bold] <script>alert(1)</script> *stars* `tick` ```fence"
PACKETS = [
    "13:24:32.192571 IP 198.51.100.15.52444 > 203.0.113.2.53: 35084+ A? yummyrecipesforme.com. (39)",
    "13:24:32.192760 IP 203.0.113.2 > 198.51.100.15: ICMP 203.0.113.2 udp port 53 unreachable, length 75",
    "```\n<img src=x onerror=alert(1)>",
]


def make_run(summary: str = EVIL) -> Run:
    server = Server("203.0.113.2")
    udp = finding(
        "udp53/203.0.113.2",
        "udp53",
        Status.CRITICAL,
        summary,
        {
            "outcome": "icmp",
            "packets": PACKETS,
            "icmp": {"name": "port-unreachable", "type": 3, "code": 3, "offender": "203.0.113.2", "from_server": True},
        },
        started_at=1764077072.19,
        duration_s=0.0003,
        server=server.label,
    )
    verdict = Verdict(
        "dns-service-down",
        Status.CRITICAL,
        "high",
        f"UDP port 53 is unreachable. {summary}",
        (udp.id,),
        ("On 203.0.113.2: `ss -lnup 'sport = :53'`", f"look at {summary}"),
    )
    return Run(
        "20261125T132432Z-abcdef",
        "0.1.0",
        Target("yummyrecipesforme.com.", "yummyrecipesforme.com"),
        (server,),
        "/etc/resolv.conf",
        1764077072.19,
        0.41,
        (
            StepResult("udp53", "DNS over UDP port 53", Status.CRITICAL, (udp,), 0.001),
            StepResult("ping", "Is the server host up?", Status.SKIPPED, (), 0.0, "no permission"),
        ),
        verdict,
    )


def test_json_is_the_schema_document() -> None:
    doc = make_run().to_document()
    out = RENDERERS["json"]([doc])
    back = validate_document(json.loads(out))
    assert back["verdict"]["code"] == "dns-service-down" and back["exit_code"] == 2
    assert "\x1b" not in out


def test_terminal_report_on_a_fixed_colourless_console() -> None:
    out = render_text(make_run(summary="plain words").to_document(), color=False, width=160)
    assert "runbook diagnose yummyrecipesforme.com (A)" in out
    assert "CRITICAL dns-service-down" in out and "confidence high" in out
    assert "udp port 53 unreachable, length 75" in out
    assert "1. On 203.0.113.2: `ss -lnup 'sport = :53'`" in out
    assert "no permission" in out
    assert "\x1b[" not in out


def test_terminal_report_shows_hostile_text_inert() -> None:
    out = render_text(make_run().to_document(), color=True, width=200)
    assert "\x1b[31mEVIL" not in out
    assert "\\x1b[31mEVIL" in out
    assert "[bold]markup[/bold]" in out  # shown, not interpreted


def test_markdown_report_follows_the_seed_and_escapes() -> None:
    out = RENDERERS["markdown"]([make_run().to_document()])
    for heading in (
        "## The problem seen in the DNS and ICMP traffic",
        "## When it happened",
        "## How it was found",
        "## What was tested",
        "## Likely cause",
        "## Next steps",
    ):
        assert heading in out
    assert "ICMP was used to respond with an error message" in out
    assert PACKETS[1] in out
    assert "<script>" not in out and "\\<script\\>" in out
    assert "\x1b" not in out
    # The packet log fence is longer than any backtick run inside it, so a packet cannot close it.
    assert "````text" in out
    assert "`ss -lnup 'sport = :53'`" in out


def test_escapers() -> None:
    assert terminal("a\x1bb\u202ec") == "a\\x1bb\\u202ec"
    assert markdown("*x* <b>") == "\\*x\\* \\<b\\>"
    # Only what would start a construct is escaped: an address and a sentence paste as they read.
    assert markdown("203.0.113.2 (port 53) - up!") == "203.0.113.2 (port 53) - up!"
    assert markdown("[a](javascript:x) | ~~y~~ &amp;") == "\\[a\\](javascript:x) \\| \\~\\~y\\~\\~ \\&amp;"
    assert code_span("a`b") == "``a`b``"
    assert fence(["```"]).startswith("````")


def test_a_run_stored_by_the_earlier_version_renders_with_its_evidence() -> None:
    """Documents written before the evidence was typed (keys left out where nothing was seen) read back into
    their kinds: every format still shows what they recorded, and nothing of it is kept aside as unread."""
    from pathlib import Path

    from reports.common import findings
    from runbook.evidence import Unread

    runs = Path(__file__).resolve().parents[1] / "fixtures" / "runs"
    incident = json.loads((runs / "v1-0.1-incident.json").read_text())
    hijack = json.loads((runs / "v1-0.1-hijack.json").read_text())
    for doc in (incident, hijack):
        assert not [f.id for f in findings(doc).values() if isinstance(f.evidence, Unread)]
        for fmt, render in RENDERERS.items():
            assert render([doc]), fmt
    report = RENDERERS["markdown"]([incident])
    assert "*port-unreachable* (type 3, code 3)" in report and "udp port 53723 unreachable" in report
    answered = RENDERERS["markdown"]([hijack])
    assert "| authoritative | NOERROR |" in answered and "A 198.51.100.66" in answered
    metrics = RENDERERS["prometheus"]([hijack])
    assert 'probe_dns_answer_rrs{server="127.53.0.1:' in metrics and "runbook_dns_loss_ratio" in metrics
    assert "'udp_rtt_127.53.0.1:" in RENDERERS["nagios"]([hijack])


def test_evidence_that_is_not_of_its_kind_is_kept_as_it_was_and_read_by_no_rule() -> None:
    from runbook.evidence import Unread, parse

    odd = {"outcome": 42, "note": "written by hand"}
    kept = parse("udp53", "udp53/192.0.2.1", odd)
    assert isinstance(kept, Unread) and kept.to_json() == odd


def test_the_shipped_evidence_schema_is_the_kinds() -> None:
    """runbook/schema/evidence-v1.json is written from the kinds themselves; a kind changed without it fails here.
    To write it again: python -c "import json; from runbook.evidence import json_schema;
    open('runbook/schema/evidence-v1.json', 'w').write(json.dumps(json_schema(), indent=1) + '\\n')"."""
    from runbook.evidence import json_schema
    from runbook.schema import evidence_schema

    assert evidence_schema() == json.loads(json.dumps(json_schema()))
    names = set(evidence_schema()["$defs"])
    assert {"UdpProbe", "CapturedUdp", "Compared", "Authorities", "FirewallPaths", "Load", "ControlView"} <= names
