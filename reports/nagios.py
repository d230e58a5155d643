"""``--format nagios``: one status line with performance data, as the Nagios plugin guidelines define it.

    DNS CRITICAL - yummyrecipesforme.com: dns-service-down: UDP port 53 on ... | 'udp_rtt_203.0.113.2'=...

Then, as long output, one line per target. Perfdata: ``'label'=value[UOM];[warn];[crit];[min];[max]``,
labels quoted (a quote inside doubled), no ``|`` in the text. The exit code stays the CLI's.
"""

from __future__ import annotations

from collections.abc import Sequence

from reports import Document
from reports.common import findings
from reports.escape import terminal
from runbook.evidence import Ping, TcpProbe, UdpProbe
from runbook.model import worst_exit_code

WORDS = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}


def render_all(docs: Sequence[Document]) -> str:
    code = worst_exit_code([d["exit_code"] for d in docs])
    if len(docs) == 1:
        head = _words(docs[0])
    else:
        bad = [d for d in docs if d["exit_code"] != 0]
        head = f"{len(bad)} of {len(docs)} targets failing" + (
            ": " + "; ".join(f"{_name(d)} {d['verdict']['code']}" for d in bad) if bad else ""
        )
    perf = [p for d in docs for p in _perfdata(d, prefix=len(docs) > 1)]
    lines = [f"DNS {WORDS.get(code, 'UNKNOWN')} - {_safe(head)} | {' '.join(perf)}".rstrip(" |")]
    if len(docs) > 1:
        lines += [f"{_safe(_name(d))}: {_safe(d['verdict']['code'])}: {_safe(d['verdict']['summary'])}" for d in docs]
    return "\n".join(lines) + "\n"


def _name(doc: Document) -> str:
    return str(doc["target"].get("display_name") or doc["target"]["name"])


def _words(doc: Document) -> str:
    return f"{_name(doc)}: {doc['verdict']['code']}: {doc['verdict']['summary']}"


def _safe(text: object) -> str:
    return terminal(text).replace("|", "/").replace("\n", " ")


def _label(text: str) -> str:
    """Quoted (a quote inside doubled); no spaces or '=', so that space-separated perfdata splits cleanly."""
    return "'" + terminal(text).replace("'", "''").replace("=", "_").replace(" ", "_") + "'"


def _perfdata(doc: Document, prefix: bool) -> list[str]:
    name = f"{_name(doc)}_" if prefix else ""
    options = doc["target"].get("options", {})
    out = [f"{_label(name + 'time')}={doc['duration_s']:.6f}s;;;0"]
    for f in findings(doc).values():
        ev, server = f.evidence, f.server or ""
        if isinstance(ev, UdpProbe):
            if ev.answered and ev.rtt_s is not None:
                out.append(f"{_label(f'{name}udp_rtt_{server}')}={ev.rtt_s:.6f}s;;;0")
            if ev.burst is not None:
                warn = options.get("max_loss")
                out.append(
                    f"{_label(f'{name}loss_{server}')}={ev.burst.loss * 100:.1f}%;"
                    f"{warn * 100 if isinstance(warn, (int, float)) else ''};;0;100"
                )
                if ev.burst.rtt_median_s is not None:
                    rtt_warn = options.get("max_rtt_s", "")
                    out.append(f"{_label(f'{name}median_rtt_{server}')}={ev.burst.rtt_median_s:.6f}s;{rtt_warn};;0")
        elif isinstance(ev, TcpProbe) and ev.answered and ev.rtt_s is not None:
            out.append(f"{_label(f'{name}tcp_rtt_{server}')}={ev.rtt_s:.6f}s;;;0")
        elif isinstance(ev, Ping) and ev.sent:
            out.append(f"{_label(f'{name}ping_loss_{server}')}={ev.lost * 100:.1f}%;;;0;100")
    return out
