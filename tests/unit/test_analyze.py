"""`runbook analyze` on the seed's own kind of log (tcpdump text) and on captures written here: the pure
parsing and matching; the lab's tests analyse captures tcpdump made while real daemons failed."""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
from pathlib import Path

import dns.message
import dns.rrset
import dpkt
import pytest

from runbook.analysis import analyze
from runbook.errors import InputError
from tests.conftest import validate_document
from tests.unit.test_cli import runbook

SEED = """\
13:24:32.192571 IP 198.51.100.15.52444 > 203.0.113.2.domain: 35084+ A? yummyrecipesforme.com. (24)
13:24:36.098564 IP 203.0.113.2 > 198.51.100.15: ICMP 203.0.113.2 udp port domain unreachable length 254
13:26:32.192571 IP 198.51.100.15.52444 > 203.0.113.2.domain: 35084+ A? yummyrecipesforme.com. (24)
13:27:15.934126 IP 203.0.113.2 > 198.51.100.15: ICMP 203.0.113.2 udp port domain unreachable length 320
13:28:32.192571 IP 198.51.100.15.52444 > 203.0.113.2.domain: 35084+ A? yummyrecipesforme.com. (24)
13:28:50.022967 IP 203.0.113.2 > 198.51.100.15: ICMP 203.0.113.2 udp port domain unreachable length 150
"""


def run_of(data: bytes, **options: object) -> dict:  # type: ignore[type-arg]
    run = analyze(io.BufferedReader(io.BytesIO(data)), "capture", **options)  # type: ignore[arg-type]
    return validate_document(run.to_document())


def test_the_seeds_tcpdump_log_is_the_seeds_verdict_with_its_query_id_and_window() -> None:
    doc = run_of(SEED.encode())
    v = doc["verdict"]
    assert v["code"] == "dns-service-down" and doc["exit_code"] == 2
    assert "query id 35084" in v["summary"] and "between 13:24:32 and 13:28:32" in v["summary"]
    udp = next(f for f in doc["findings"] if f["step"] == "udp53")
    # The lines are the log's own, quoted whole.
    assert udp["evidence"]["packets"][0] == SEED.splitlines()[0]


def test_verbose_tcpdump_text_is_read_too() -> None:
    verbose = (
        "13:24:32.192571 IP (tos 0x0, ttl 64, id 1, offset 0, flags [DF], proto UDP (17), length 52)\n"
        "    198.51.100.15.52444 > 203.0.113.2.53: 35084+ A? yummyrecipesforme.com. (24)\n"
        "13:24:32.193000 IP (tos 0x0, ttl 64, id 2, offset 0, flags [none], proto UDP (17), length 68)\n"
        "    203.0.113.2.53 > 198.51.100.15.52444: 35084* NXDomain 0/1/0 (40)\n"
    )
    doc = run_of(verbose.encode())
    udp = next(f for f in doc["findings"] if f["step"] == "udp53")
    assert udp["evidence"]["attempts"][0]["rcode"] == "NXDOMAIN"


def _frame(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    udp = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
    udp.ulen = len(udp)
    ip = dpkt.ip.IP(src=bytes(map(int, src.split("."))), dst=bytes(map(int, dst.split("."))), p=17, data=udp)
    ip.len = len(ip)
    return bytes(dpkt.ethernet.Ethernet(src=b"\0" * 6, dst=b"\0" * 6, type=0x0800, data=ip))


def _pcap(frames: list[tuple[float, bytes]], ng: bool = False) -> bytes:
    out = io.BytesIO()
    writer = dpkt.pcapng.Writer(out) if ng else dpkt.pcap.Writer(out)
    for ts, frame in frames:
        writer.writepkt(frame, ts)
    return out.getvalue()


def _exchange(name: str, address: str, qid: int = 4242) -> list[tuple[float, bytes]]:
    q = dns.message.make_query(name, "A")
    q.id = qid
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text(name, 60, "IN", "A", address))
    return [
        (1700000000.0, _frame("198.51.100.15", "203.0.113.2", 40000, 53, q.to_wire())),
        (1700000000.001, _frame("203.0.113.2", "198.51.100.15", 53, 40000, r.to_wire())),
    ]


@pytest.mark.parametrize("ng", [False, True], ids=["pcap", "pcapng"])
def test_an_answered_query_in_a_capture_is_healthy_but_unverified(ng: bool) -> None:
    doc = run_of(_pcap(_exchange("yummyrecipesforme.com.", "203.0.113.22"), ng=ng))
    assert doc["verdict"]["code"] == "healthy" and doc["verdict"]["verified"] is False
    assert doc["findings"][0]["evidence"]["format"] == ("pcapng" if ng else "pcap")


def test_hostile_names_are_escaped_in_every_format(tmp_path: Path) -> None:
    name = "\x1b[31mred\x1b[0m.example."
    path = tmp_path / "hostile.pcap"
    path.write_bytes(_pcap(_exchange(name, "203.0.113.22")))
    for fmt in ("text", "markdown", "json", "junit"):
        proc = runbook("analyze", str(path), "--format", fmt, "--no-record")
        assert proc.returncode == 0, proc.stderr
        assert "\x1b[31m" not in proc.stdout, fmt


def test_a_truncated_capture_is_analysed_up_to_the_damage_with_a_warning() -> None:
    whole = _pcap(_exchange("yummyrecipesforme.com.", "203.0.113.22") * 3)
    doc = run_of(whole[:-20])
    capture = doc["findings"][0]
    assert capture["status"] == "warning" and "damaged" in capture["summary"]


@pytest.mark.parametrize(
    "data, words",
    [
        (b"", "empty"),
        (b"hello, this is a text file of something else\n" * 3, "not a capture"),
        (
            b"\xd4\xc3\xb2\xa1" + b"\x02\x00\x04\x00" + b"\x00" * 8 + b"\xff\xff\x00\x00" + b"\x99\x00\x00\x00",
            "link type",
        ),
        (b"\x00\x01\x02\x03" * 50, "not a capture"),
    ],
    ids=["empty", "text", "link type", "binary"],
)
def test_bad_input_is_one_line_and_exit_3(tmp_path: Path, data: bytes, words: str) -> None:
    path = tmp_path / "input"
    path.write_bytes(data)
    proc = runbook("analyze", str(path), "--no-record")
    assert proc.returncode == 3, proc.stdout
    assert words in proc.stderr and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_fuzzed_captures_never_crash() -> None:
    rng = random.Random(7)
    whole = _pcap(_exchange("yummyrecipesforme.com.", "203.0.113.22") * 5)
    for _ in range(200):
        data = bytearray(whole)
        for _ in range(rng.randint(1, 30)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        data = data[: rng.randrange(len(data) + 1)]
        with contextlib.suppress(InputError):
            run_of(bytes(data))


def test_a_live_capture_needs_root_and_a_real_interface() -> None:
    """An ordinary user is told a live capture needs root; root, on an interface that does not exist, gets
    tcpdump's own reason. One line and exit 3 either way, and nothing is sent."""
    proc = runbook("analyze", "--live", "rbk-no-such-if", "--duration", "1", "--no-record")
    assert proc.returncode == 3 and proc.stderr.count("\n") == 1, proc.stderr
    if os.geteuid() != 0:
        assert "needs root" in proc.stderr
    else:
        assert "rbk-no-such-if" in proc.stderr or "needs tcpdump" in proc.stderr


def test_the_run_is_recorded_as_an_analyze_run(tmp_path: Path) -> None:
    path = tmp_path / "seed.txt"
    path.write_text(SEED)
    store = str(tmp_path / "runs.db")
    assert runbook("analyze", str(path), "--store", store).returncode == 2
    history = json.loads(runbook("history", "--store", store, "--format", "json").stdout)
    rows = history if isinstance(history, list) else history.get("runs", [])
    assert rows and rows[0].get("command") == "analyze"


def test_runbook_server_where_nothing_serves_the_port() -> None:
    """On this machine, a port nothing listens on: the daemon is not running there; one line per finding,
    a valid document, and nothing sent anywhere (it only reads this host)."""
    from tests.unit.dnsserver import closed_port

    port = closed_port()
    proc = runbook(
        "server", "--address", "127.0.0.1", "--port", str(port), "--window", "0.2", "--format", "json", "--no-record"
    )
    doc = validate_document(json.loads(proc.stdout))
    assert doc["command"] == "server"
    assert doc["verdict"]["code"] in ("daemon-not-running", "daemon-not-listening"), doc["verdict"]
    assert proc.returncode == 2


def test_the_fast_path_reads_a_datagram_as_dpkt_does() -> None:
    """IPv4 UDP frames are read from their fixed headers (the hot path of a large capture); dpkt reads the
    same frame to the same packet, options included."""
    from checks.capture import Decoder

    frames = [frame for _, frame in _exchange("yummyrecipesforme.com.", "203.0.113.22")]
    with_options = bytearray(frames[0])
    ip = dpkt.ip.IP(bytes(with_options[14:]))
    ip.opts = b"\x01\x01\x01\x00"  # NOPs and an end: a header of 24 bytes
    ip.hl = 6
    ip.len = len(ip)
    frames.append(bytes(with_options[:14]) + bytes(ip))
    for frame in frames:
        decoder = Decoder()
        fast = decoder.udp4(1.0, frame, 14)
        slow = decoder.ip(1.0, dpkt.ethernet.Ethernet(frame).data)
        assert fast is not False and fast is not None and slow is not None
        assert (fast.src, fast.dst, fast.sport, fast.dport, fast.dns, fast.dns_id) == (
            slow.src,
            slow.dst,
            slow.sport,
            slow.dport,
            slow.dns,
            slow.dns_id,
        )


def _frame6(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    import ipaddress

    udp = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
    udp.ulen = len(udp)
    ip6 = dpkt.ip6.IP6(
        src=ipaddress.ip_address(src).packed, dst=ipaddress.ip_address(dst).packed, nxt=17, hlim=64, data=udp
    )
    ip6.plen = len(udp)
    return bytes(dpkt.ethernet.Ethernet(src=b"\0" * 6, dst=b"\0" * 6, type=0x86DD, data=ip6))


def test_ipv6_and_an_icmpv6_port_unreachable_from_the_server() -> None:
    import ipaddress

    q = dns.message.make_query("yummyrecipesforme.com.", "AAAA")
    query = _frame6("2001:db8::15", "2001:db8::2", 40000, 53, q.to_wire())
    inner = dpkt.ip6.IP6(bytes(dpkt.ethernet.Ethernet(query).data))
    unreach = dpkt.icmp6.ICMP6(type=1, code=4, data=dpkt.icmp6.ICMP6.Error(data=inner))
    ip6 = dpkt.ip6.IP6(
        src=ipaddress.ip_address("2001:db8::2").packed,
        dst=ipaddress.ip_address("2001:db8::15").packed,
        nxt=58,
        hlim=64,
        data=unreach,
    )
    ip6.plen = len(unreach)
    error = bytes(dpkt.ethernet.Ethernet(src=b"\0" * 6, dst=b"\0" * 6, type=0x86DD, data=ip6))
    doc = run_of(_pcap([(1700000000.0, query), (1700000000.001, error)]))
    assert doc["verdict"]["code"] == "dns-service-down", doc["verdict"]
    assert doc["target"]["servers"] == ["[2001:db8::2]:53"]


def test_floods_any_queries_and_unsolicited_answers_are_counted() -> None:
    frames: list[tuple[float, bytes]] = []
    t = 1700000000.0
    for i in range(1500):  # a random-subdomain flood from one source
        q = dns.message.make_query(f"x{i:05d}.yummyrecipesforme.com.", "A")
        frames.append((t + i * 0.0005, _frame("198.51.100.99", "203.0.113.2", 30000 + i % 1000, 53, q.to_wire())))
    for i in range(300):  # ANY queries
        q = dns.message.make_query("yummyrecipesforme.com.", "ANY")
        frames.append((t + 1 + i * 0.001, _frame("198.51.100.98", "203.0.113.2", 31000 + i, 53, q.to_wire())))
    forged = dns.message.make_response(dns.message.make_query("yummyrecipesforme.com.", "A"))
    frames.append((t + 2, _frame("192.0.2.66", "198.51.100.15", 53, 45000, forged.to_wire())))
    doc = run_of(_pcap(sorted(frames)), wait=0.2)
    traffic = {f["id"]: f for f in doc["findings"] if f["step"] == "traffic"}
    assert traffic["traffic/subdomains"]["evidence"]["unique_names"] >= 1500
    assert traffic["traffic/any"]["evidence"]["any_queries"] == 300
    assert traffic["traffic/unsolicited"]["evidence"]["from"] == {"192.0.2.66": 1}
    rate = traffic["traffic/rate"]["evidence"]
    assert rate["top_sources"][0] == {"source": "198.51.100.99", "queries": 1500}


def test_hostile_txt_and_names_are_escaped_in_text_markdown_and_nagios(tmp_path: Path) -> None:
    name = "evil\x1b]8;;http://x\x07.example."
    q = dns.message.make_query(name, "TXT")
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text(name, 60, "IN", "TXT", '"\\027[2J| *bold* <b>"'))
    frames = [
        (1700000000.0, _frame("198.51.100.15", "203.0.113.2", 40000, 53, q.to_wire())),
        (1700000000.001, _frame("203.0.113.2", "198.51.100.15", 53, 40000, r.to_wire())),
    ]
    path = tmp_path / "hostile.pcap"
    path.write_bytes(_pcap(frames))
    for fmt in ("text", "markdown", "nagios", "prometheus", "junit", "json"):
        proc = runbook("analyze", str(path), "--format", fmt, "--no-record")
        assert proc.returncode in (0, 1, 2, 3), proc.stderr
        assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout, fmt


def test_a_linux_cooked_v1_capture() -> None:
    out = io.BytesIO()
    writer = dpkt.pcap.Writer(out, linktype=113)
    for ts, frame in _exchange("yummyrecipesforme.com.", "203.0.113.22"):
        ip = bytes(dpkt.ethernet.Ethernet(frame).data)
        sll = dpkt.sll.SLL(type=0, hrd=1, hlen=6, hdr=b"\0" * 8, ethtype=0x0800, data=ip)
        writer.writepkt(bytes(sll), ts)
    doc = run_of(out.getvalue())
    assert doc["findings"][0]["evidence"]["link"] == "Linux cooked v1"
    assert doc["verdict"]["code"] == "healthy"


def test_a_raw_ip_capture() -> None:
    out = io.BytesIO()
    writer = dpkt.pcap.Writer(out, linktype=101)
    for ts, frame in _exchange("yummyrecipesforme.com.", "203.0.113.22"):
        writer.writepkt(bytes(dpkt.ethernet.Ethernet(frame).data), ts)
    doc = run_of(out.getvalue())
    assert doc["findings"][0]["evidence"]["link"] == "raw IP"
    assert doc["verdict"]["code"] == "healthy"


@pytest.mark.parametrize(("last", "outcome"), [("13:24:32.400000", None), ("13:24:35.400000", "timeout")])
def test_a_syn_the_capture_ends_on_is_neither_answered_nor_unanswered(last: str, outcome: str | None) -> None:
    """A SYN less than --wait before the capture's last packet has not been left unanswered yet: the tcp53
    step says nothing of it, and the UDP finding says it is still waiting; given its wait, it is a timeout."""
    log = (
        "13:24:32.192571 IP 198.51.100.15.52444 > 203.0.113.2.53: 35084+ TXT? big.example.com. (33)\n"
        "13:24:32.192800 IP 203.0.113.2.53 > 198.51.100.15.52444: 35084| 0/0/0 (33)\n"
        "13:24:32.200000 IP 198.51.100.15.43506 > 203.0.113.2.53: Flags [S], seq 1, win 64240, length 0\n"
        f"{last} IP 198.51.100.15 > 198.51.100.1: ICMP echo request, id 1, seq 1, length 64\n"
    )
    doc = run_of(log.encode(), wait=2.0)
    tcp = next((f for f in doc["findings"] if f["step"] == "tcp53"), None)
    udp = next(f for f in doc["findings"] if f["step"] == "udp53")
    if outcome is None:
        assert tcp is None and udp["evidence"]["tcp_unanswered_at_end"] == 1
        assert "1 TCP connection without a SYN-ACK yet when the capture ends" in udp["summary"]
    else:
        assert tcp is not None and tcp["evidence"]["outcome"] == outcome
        assert doc["verdict"]["code"] == "tcp-fallback-blocked"
