"""What several renderers read out of a run document the same way."""

from __future__ import annotations

from collections.abc import Mapping

from reports import Document
from runbook.evidence import packet_lines
from runbook.model import Finding


def findings(doc: Document) -> dict[str, Finding]:
    """The document's findings by id, in its order, each with its evidence read back into its kind
    (:mod:`runbook.evidence`): what a renderer reads of the evidence, it reads typed."""
    return {f["id"]: Finding.from_dict(f) for f in doc["findings"]}


def packet_log(doc: Document, by_id: Mapping[str, Finding] | None = None) -> list[str]:
    """The packets behind the verdict (or, failing that, the UDP probe's), as one log in time order.

    Lines start with tcpdump's ``HH:MM:SS.ffffff`` time, so they sort as text within a run.
    """
    by_id = by_id if by_id is not None else findings(doc)

    def packets(fid: str) -> tuple[str, ...]:
        f = by_id.get(fid)
        return packet_lines(f.evidence) if f else ()

    ids = [i for i in doc["verdict"]["findings"] if packets(i)] or [i for i, f in by_id.items() if f.step == "udp53"]
    lines = [line for i in ids for line in packets(i)]
    # Sorted by the time stamp alone, and stably, so that lines of one instant keep the probe's order.
    return sorted(dict.fromkeys(lines), key=lambda line: line.split(" ", 1)[0])
