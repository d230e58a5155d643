"""What several renderers read out of a run document the same way."""

from __future__ import annotations

from reports import Document


def packet_log(doc: Document) -> list[str]:
    """The packets behind the verdict (or, failing that, the UDP probe's), as one log in time order.

    Lines start with tcpdump's ``HH:MM:SS.ffffff`` time, so they sort as text within a run.
    """
    by_id = {f["id"]: f for f in doc["findings"]}
    ids = [i for i in doc["verdict"]["findings"] if by_id.get(i, {}).get("evidence", {}).get("packets")]
    if not ids:
        ids = [f["id"] for f in doc["findings"] if f["step"] == "udp53"]
    lines = [line for i in ids for line in by_id[i]["evidence"].get("packets", [])]
    # Sorted by the time stamp alone, and stably, so that lines of one instant keep the probe's order.
    return sorted(dict.fromkeys(lines), key=lambda line: line.split(" ", 1)[0])
