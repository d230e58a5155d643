"""Findings -> verdict, on evidence shaped exactly as the checks record it (pure logic, no network)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runbook import diagnosis as d
from runbook.hostfiles import parse_resolv_conf
from runbook.model import Finding, Server, Status, Target
from runbook.schema import run_schema
from tests.conftest import finding

TARGET = Target("yummyrecipesforme.com.", "yummyrecipesforme.com")
S1, S2 = Server("203.0.113.2"), Server("203.0.113.4")

ANSWER = {
    "outcome": "answer",
    "rcode": "NOERROR",
    "rtt_s": 0.002,
    "aa": False,
    "ra": True,
    "tc": False,
    "answers": [{"name": "yummyrecipesforme.com.", "type": "A", "ttl": 300, "value": "203.0.113.22"}],
}
TIMEOUT = {"outcome": "timeout", "rtt_s": None}
RESET = {"outcome": "reset"}


def icmp(
    icmp_type: int,
    code: int,
    offender: str,
    server: Server = S1,
    kind: str = "port-unreachable",
    name: str = "port-unreachable",
) -> dict[str, Any]:
    return {
        "outcome": "icmp",
        "icmp": {
            "origin": "icmp",
            "type": icmp_type,
            "code": code,
            "name": name,
            "kind": kind,
            "offender": offender,
            "from_server": offender == server.host,
        },
    }


def udp(server: Server, *attempts: dict[str, Any]) -> Finding:
    return finding(
        f"udp53/{server.key}", "udp53", Status.OK, "", {**attempts[-1], "attempts": list(attempts)}, server=server.label
    )


def tcp(server: Server, evidence: dict[str, Any]) -> Finding:
    return finding(f"tcp53/{server.key}", "tcp53", Status.OK, "", evidence, server=server.label)


def ping(server: Server, received: int, sent: int = 3) -> Finding:
    return finding(
        f"ping/{server.host}",
        "ping",
        Status.OK,
        "",
        {"method": "icmp-raw", "sent": sent, "received": received, "rtt_avg_s": 0.0004 if received else None},
        server=server.label,
    )


def verdict(*findings: Finding, servers: tuple[Server, ...] = (S1,), resolv: str | None = None) -> Any:
    conf = parse_resolv_conf(resolv) if resolv is not None else None
    return d.diagnose(TARGET, servers, list(findings), conf)


def test_the_seeds_incident_stopped_daemon() -> None:
    v = verdict(udp(S1, icmp(3, 3, S1.host)), tcp(S1, RESET), ping(S1, 3))
    assert (v.code, v.status, v.confidence) == ("dns-service-down", Status.CRITICAL, "high")
    assert "UDP port 53 on 203.0.113.2 is unreachable" in v.summary
    assert "the host is up" in v.summary and "nothing listens" in v.summary
    assert any("ss -lnup" in step for step in v.next_steps)
    assert set(v.findings) == {"udp53/203.0.113.2", "tcp53/203.0.113.2", "ping/203.0.113.2"}


def test_a_reject_rule_on_the_server_is_named_as_the_other_explanation() -> None:
    v = verdict(udp(S1, icmp(3, 3, S1.host)), tcp(S1, icmp(3, 3, S1.host)), ping(S1, 3))
    assert v.code == "dns-service-down"
    assert "reject" in v.summary
    assert any("nft list ruleset" in step for step in v.next_steps)


def test_silence_while_the_host_answers_ping_is_port_filtered() -> None:
    v = verdict(udp(S1, TIMEOUT, TIMEOUT, TIMEOUT), tcp(S1, TIMEOUT), ping(S1, 3))
    assert (v.code, v.confidence) == ("dns-port-filtered", "high")
    assert "3 sent, no answer, no ICMP error" in v.summary


def test_an_open_port_that_never_answers_is_a_hung_or_flooded_daemon() -> None:
    hung = {"outcome": "timeout", "connect_rtt_s": 0.0004, "detail": "connected, but no answer to the query"}
    v = verdict(udp(S1, TIMEOUT, TIMEOUT), tcp(S1, hung), ping(S1, 3))
    assert (v.code, v.confidence) == ("dns-port-filtered", "medium")
    assert "listens but does not serve" in v.summary and "DDoS" in v.summary


def test_silence_everywhere_is_server_unreachable() -> None:
    v = verdict(udp(S1, TIMEOUT, TIMEOUT), tcp(S1, TIMEOUT), ping(S1, 0))
    assert (v.code, v.confidence) == ("dns-server-unreachable", "high")


def test_silence_without_ping_is_unreachable_with_low_confidence() -> None:
    v = verdict(udp(S1, TIMEOUT, TIMEOUT), tcp(S1, TIMEOUT))
    assert (v.code, v.confidence) == ("dns-server-unreachable", "low")
    assert "firewall dropping everything would look the same" in v.summary


def test_admin_prohibited_from_a_router_is_blocked_in_path() -> None:
    router = "198.51.100.1"
    v = verdict(
        udp(S1, icmp(3, 13, router, kind="prohibited", name="admin-prohibited")),
        tcp(S1, icmp(3, 13, router, kind="prohibited", name="admin-prohibited")),
        ping(S1, 3),
    )
    assert v.code == "dns-blocked-in-path"
    assert router in v.summary and "never reached the server" in v.summary
    assert any(step.startswith(f"On {router}") for step in v.next_steps)


def test_port_unreachable_from_another_address_is_blocked_in_path() -> None:
    v = verdict(udp(S1, icmp(3, 3, "198.51.100.1")), tcp(S1, TIMEOUT), ping(S1, 3))
    assert v.code == "dns-blocked-in-path"


def test_host_unreachable_from_a_router_is_server_unreachable() -> None:
    v = verdict(
        udp(S1, icmp(3, 1, "198.51.100.1", kind="host-unreachable", name="host-unreachable")),
        tcp(S1, TIMEOUT),
        ping(S1, 0),
    )
    assert v.code == "dns-server-unreachable"


def test_eperm_on_send_is_the_local_firewall() -> None:
    v = verdict(
        udp(S1, {"outcome": "local-error", "errno": "EPERM", "detail": "send: Operation not permitted"}),
        tcp(S1, TIMEOUT),
        ping(S1, 3),
    )
    assert v.code == "local-firewall-blocks-dns"


def test_refused_answers_are_resolver_refused() -> None:
    refused = {**ANSWER, "rcode": "REFUSED", "answers": []}
    v = verdict(udp(S1, refused), tcp(S1, refused), ping(S1, 3))
    assert v.code == "resolver-refused"


def test_udp_fine_but_tcp_refused_is_a_warning() -> None:
    v = verdict(udp(S1, ANSWER), tcp(S1, RESET), ping(S1, 3))
    assert (v.code, v.status) == ("tcp-fallback-blocked", Status.WARNING)


def test_healthy_names_the_answers() -> None:
    v = verdict(udp(S1, ANSWER), tcp(S1, ANSWER), ping(S1, 3))
    assert (v.code, v.status) == ("healthy", Status.OK)
    assert "203.0.113.22" in v.summary


def test_no_server_is_no_resolver_configured() -> None:
    v = d.diagnose(TARGET, (), [], parse_resolv_conf("# empty\n"))
    assert (v.code, v.status) == ("no-resolver-configured", Status.UNKNOWN)


def test_first_of_two_silent_costs_every_lookup_the_timeout() -> None:
    v = verdict(
        udp(S1, TIMEOUT),
        tcp(S1, TIMEOUT),
        ping(S1, 3),
        udp(S2, ANSWER),
        tcp(S2, ANSWER),
        ping(S2, 3),
        servers=(S1, S2),
        resolv="nameserver 203.0.113.2\nnameserver 203.0.113.4\n",
    )
    assert v.code == "dns-port-filtered"
    assert v.servers == {"203.0.113.2:53": "dns-port-filtered", "203.0.113.4:53": "healthy"}
    assert "1 of 2 servers fail" in v.summary
    assert "every lookup waits 5 s (resolv.conf timeout) before asking 203.0.113.4:53" in v.summary
    assert v.status is Status.CRITICAL  # every user waits: an outage


def test_a_down_secondary_that_clients_pass_at_once_is_a_warning_not_a_page() -> None:
    v = verdict(
        udp(S1, ANSWER),
        tcp(S1, ANSWER),
        ping(S1, 3),
        udp(S2, icmp(3, 3, S2.host, server=S2)),
        tcp(S2, RESET),
        ping(S2, 3),
        servers=(S1, S2),
        resolv="nameserver 203.0.113.2\nnameserver 203.0.113.4\n",
    )
    assert v.code == "dns-service-down" and v.status is Status.WARNING
    assert "fails fast" in v.summary and "Users do not notice it yet" in v.summary


def test_second_of_two_silent_is_asked_only_when_the_first_fails() -> None:
    v = verdict(
        udp(S1, ANSWER),
        tcp(S1, ANSWER),
        ping(S1, 3),
        udp(S2, TIMEOUT),
        tcp(S2, TIMEOUT),
        ping(S2, 3),
        servers=(S1, S2),
        resolv="nameserver 203.0.113.2\nnameserver 203.0.113.4\n",
    )
    assert "asked only when the servers before it fail" in v.summary
    assert v.status is Status.WARNING


def test_rotate_spreads_the_cost() -> None:
    v = verdict(
        udp(S1, TIMEOUT),
        tcp(S1, TIMEOUT),
        ping(S1, 3),
        udp(S2, ANSWER),
        tcp(S2, ANSWER),
        ping(S2, 3),
        servers=(S1, S2),
        resolv="nameserver 203.0.113.2\nnameserver 203.0.113.4\noptions rotate\n",
    )
    assert "about 1 lookup in 2" in v.summary
    assert v.status is Status.CRITICAL


def test_precedence_puts_the_dead_service_first_and_keeps_the_rest_in_also() -> None:
    v = verdict(
        udp(S1, TIMEOUT),
        tcp(S1, TIMEOUT),
        ping(S1, 3),
        udp(S2, icmp(3, 3, S2.host, server=S2)),
        tcp(S2, RESET),
        servers=(S1, S2),
    )
    assert v.code == "dns-service-down"
    assert [(a["code"], a["server"]) for a in v.also] == [("dns-port-filtered", "203.0.113.2:53")]


def test_every_code_is_in_the_schema() -> None:
    from reports.prometheus import CODES

    enum = run_schema()["properties"]["verdict"]["properties"]["code"]["enum"]
    assert {code for code, _ in d.PRECEDENCE} == set(enum) == set(CODES)


SCENARIOS = [
    [udp(S1, icmp(3, 3, S1.host)), tcp(S1, RESET), ping(S1, 3)],
    [udp(S1, TIMEOUT, TIMEOUT), tcp(S1, TIMEOUT), ping(S1, 3), udp(S2, ANSWER), tcp(S2, ANSWER)],
    [udp(S2, icmp(3, 13, "198.51.100.1", S2, "prohibited", "admin-prohibited")), udp(S1, ANSWER), tcp(S1, ANSWER)],
]


@pytest.mark.parametrize("findings", SCENARIOS)
@given(data=st.data())
def test_the_order_of_findings_does_not_change_the_verdict(findings: list[Finding], data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(findings))
    assert verdict(*shuffled, servers=(S1, S2)) == verdict(*findings, servers=(S1, S2))


def auth(server: str, evidence: dict[str, Any], lame: str | None = None) -> Finding:
    return finding(
        f"compare/auth/{server}",
        "compare",
        Status.OK,
        "",
        {"role": "authoritative", **evidence, "lame": lame},
        server=f"{server}:53",
    )


def site(address: str, reachable: bool) -> dict[str, Any]:
    """The web step's evidence for one address, as it records it."""
    closed = {"connected": False, "result": "connection refused"}
    opened = {"connected": True, "result": "HTTP 200 OK", "status": 200}
    conn = opened if reachable else closed
    return {"address": address, "https": conn, "http": conn, "reachable": reachable, "website": True}


def resolved(server: Server, evidence: dict[str, Any]) -> Finding:
    return finding(f"resolve/{server.key}", "resolve", Status.OK, "", evidence, server=server.label)


AUTH_ANSWER = {**ANSWER, "aa": True, "ra": False}
FORGED = {**ANSWER, "answers": [{"name": "yummyrecipesforme.com.", "type": "A", "ttl": 300, "value": "198.51.100.66"}]}
SERVFAIL = {**ANSWER, "rcode": "SERVFAIL", "answers": []}
NXDOMAIN_ANSWER = {**ANSWER, "rcode": "NXDOMAIN", "answers": []}


def test_forged_answer_against_the_authorities_is_a_mismatch() -> None:
    v = verdict(resolved(S1, FORGED), udp(S1, FORGED), tcp(S1, FORGED), ping(S1, 3), auth("198.18.53.2", AUTH_ANSWER))
    assert (v.code, v.confidence) == ("dns-answer-mismatch", "high")
    assert "198.51.100.66" in v.summary and "203.0.113.22" in v.summary


def test_servfail_that_answers_with_cd_is_dnssec() -> None:
    sf = {**SERVFAIL, "cd_retry": ANSWER, "ede": [{"code": 9, "text": "no DNSKEY"}]}
    v = verdict(resolved(S1, sf), udp(S1, SERVFAIL), tcp(S1, SERVFAIL), ping(S1, 3))
    assert v.code == "dnssec-validation-failure"
    assert "EDE 9" in v.summary


def test_servfail_with_dead_authorities_is_upstream_servfail() -> None:
    dead = {"outcome": "icmp", "icmp": {"name": "port-unreachable"}}
    v = verdict(
        resolved(S1, SERVFAIL),
        udp(S1, SERVFAIL),
        tcp(S1, SERVFAIL),
        ping(S1, 3),
        auth("198.18.53.2", dead, lame="unreachable: ICMP port-unreachable"),
    )
    assert (v.code, v.confidence) == ("upstream-servfail", "high")


def test_nxdomain_needs_the_authorities_to_agree() -> None:
    v = verdict(
        resolved(S1, NXDOMAIN_ANSWER),
        udp(S1, NXDOMAIN_ANSWER),
        tcp(S1, NXDOMAIN_ANSWER),
        ping(S1, 3),
        auth("198.18.53.2", {**NXDOMAIN_ANSWER, "aa": True}),
    )
    assert v.code == "nxdomain"
    unconfirmed = verdict(resolved(S1, NXDOMAIN_ANSWER), udp(S1, NXDOMAIN_ANSWER), tcp(S1, NXDOMAIN_ANSWER))
    assert unconfirmed.code == "inconclusive"
    lying = verdict(
        resolved(S1, NXDOMAIN_ANSWER),
        udp(S1, NXDOMAIN_ANSWER),
        tcp(S1, NXDOMAIN_ANSWER),
        auth("198.18.53.2", AUTH_ANSWER),
    )
    assert lying.code == "dns-answer-mismatch"


def test_silent_resolver_that_is_alive_is_waiting_upstream() -> None:
    f = udp(S1, TIMEOUT, TIMEOUT)
    f = finding(
        f.id,
        f.step,
        f.status,
        f.summary,
        {**f.evidence.to_json(), "liveness": {"outcome": "answer", "rcode": "NOERROR"}},
        server=f.server,
    )
    dead = {"outcome": "icmp", "icmp": {"name": "port-unreachable"}}
    v = verdict(f, tcp(S1, TIMEOUT), ping(S1, 3), auth("198.18.53.2", dead, lame="unreachable"))
    assert (v.code, v.confidence) == ("upstream-servfail", "high")
    assert "alive" in v.summary


def test_lossy_burst_is_degraded_even_when_the_first_tries_were_lost() -> None:
    burst = {"sent": 40, "received": 20, "loss": 0.5, "first_answer": ANSWER, "degraded": "20/40 answered: 50% lost"}
    f = udp(S1, TIMEOUT, TIMEOUT, TIMEOUT)
    f = finding(f.id, f.step, f.status, f.summary, {**f.evidence.to_json(), "burst": burst}, server=f.server)
    v = verdict(f, tcp(S1, ANSWER), ping(S1, 3))
    assert (v.code, v.status) == ("dns-degraded", Status.WARNING)


def test_hosts_pin_and_site_down_are_patterns_of_the_whole_run() -> None:
    hosts = finding(
        "hostconf/hosts",
        "hostconf",
        Status.WARNING,
        "",
        {"path": "/etc/hosts", "entries": [{"line": 2, "address": "198.51.100.99", "text": "..."}]},
    )
    closed = site("203.0.113.22", False)
    web = finding("web/203.0.113.22", "web", Status.CRITICAL, "203.0.113.22 does not accept connections", closed)
    found = [hosts, web, resolved(S1, ANSWER), udp(S1, ANSWER), tcp(S1, ANSWER), ping(S1, 3)]
    assert d.diagnose(TARGET, (S1,), found).code == "hosts-file-override"  # not declared a website
    v = d.diagnose(TARGET, (S1,), found, website=True)
    assert v.code == "site-unreachable-dns-ok"
    assert [a["code"] for a in v.also] == ["hosts-file-override"]
    assert "server" not in v.also[0]


def test_precedence_table_is_total_and_ordered_by_severity_within_reason() -> None:
    codes = [code for code, _ in d.PRECEDENCE]
    assert len(codes) == len(set(codes))
    # No server at all comes first (nothing else can be judged then); healthy is last.
    assert codes[:2] == ["no-resolver-configured", "local-firewall-blocks-dns"] and codes[-1] == "healthy"
    # Every critical pattern outranks every warning, and warnings outrank the unknowns.
    ranks = [d.STATUS[c] for c in codes[1:-1]]
    order = [Status.CRITICAL, Status.WARNING, Status.UNKNOWN]
    assert ranks == sorted(ranks, key=order.index)


def _with_burst(f: Finding, loss: float, degraded: str = "") -> Finding:
    burst = {"sent": 10, "received": round(10 * (1 - loss)), "loss": loss, "first_answer": ANSWER, "degraded": degraded}
    return finding(f.id, f.step, f.status, f.summary, {**f.evidence.to_json(), "burst": burst}, server=f.server)


def test_a_tcp_timeout_under_measured_loss_is_loss_not_a_blocked_port() -> None:
    # 300 ms delay and 30% loss: the TCP SYN or its answer was lost too. Not tcp-fallback-blocked.
    lossy = _with_burst(udp(S1, TIMEOUT, ANSWER), 0.3, "7/10 answered (30% loss): 30% lost (more than 10%)")
    v = verdict(lossy, tcp(S1, {"outcome": "timeout", "detail": "no answer to the SYN"}), ping(S1, 3))
    assert v.code == "dns-degraded"
    assert "not as a blocked port" in v.summary
    # Loss below the threshold still makes a TCP timeout unreadable as a block: degraded, never healthy.
    mild = _with_burst(udp(S1, ANSWER), 0.1)
    v = verdict(mild, tcp(S1, {"outcome": "timeout", "detail": "no answer to the SYN"}), ping(S1, 3))
    assert v.code == "dns-degraded" and "10%" in v.summary


def test_an_rst_on_tcp_is_a_block_even_under_loss() -> None:
    lossy = _with_burst(udp(S1, ANSWER), 0.3, "7/10 answered (30% loss): 30% lost (more than 10%)")
    v = verdict(lossy, tcp(S1, RESET), ping(S1, 3))
    assert v.code == "tcp-fallback-blocked"


def test_a_tcp_query_still_waiting_upstream_is_not_a_blocked_port() -> None:
    # The zone's servers are down: the resolver answers SERVFAIL over UDP, and over TCP it accepts the
    # connection and is still resolving when the budget ends. The verdict is about upstream, not TCP.
    servfail = {**ANSWER, "rcode": "SERVFAIL", "answers": []}
    waiting = {"outcome": "timeout", "connect_rtt_s": 0.0003, "detail": "connected, but no answer to the query"}
    v = verdict(udp(S1, servfail), tcp(S1, waiting), ping(S1, 3))
    assert v.code == "upstream-servfail"
    closed = {"outcome": "closed", "connect_rtt_s": 0.0003, "detail": "connected, but the server closed the connection"}
    assert verdict(udp(S1, servfail), tcp(S1, closed), ping(S1, 3)).code == "upstream-servfail"


def test_an_address_where_the_zone_says_nxdomain_is_redirection() -> None:
    # The classic NXDOMAIN redirection: the resolver answers an address, the zone's own servers say no such name.
    v = verdict(
        resolved(S1, FORGED),
        udp(S1, FORGED),
        tcp(S1, FORGED),
        ping(S1, 3),
        auth("198.18.53.2", {**NXDOMAIN_ANSWER, "aa": True}),
    )
    assert (v.code, v.confidence) == ("dns-answer-mismatch", "high")
    assert "198.51.100.66" in v.summary and "does not exist (NXDOMAIN)" in v.summary and "redirection" in v.summary
    nodata = {**ANSWER, "answers": [], "aa": True}
    v = verdict(resolved(S1, FORGED), udp(S1, FORGED), tcp(S1, FORGED), auth("198.18.53.2", nodata))
    assert v.code == "dns-answer-mismatch" and "has no A record" in v.summary


def test_a_referral_is_not_read_as_the_zone_saying_no() -> None:
    # NOERROR with nothing and no AA is a referral to a zone below, not an authoritative "no such record".
    referral = {**ANSWER, "answers": [], "aa": False}
    v = verdict(resolved(S1, ANSWER), udp(S1, ANSWER), tcp(S1, ANSWER), ping(S1, 3), auth("198.18.53.2", referral))
    assert v.code == "healthy" and v.verified is False


def test_nodata_where_the_zone_has_records_is_a_mismatch() -> None:
    nodata = {**ANSWER, "answers": []}
    v = verdict(resolved(S1, nodata), udp(S1, nodata), tcp(S1, nodata), auth("198.18.53.2", AUTH_ANSWER))
    assert v.code == "dns-answer-mismatch" and "(NODATA)" in v.summary


def test_healthy_says_whether_anything_independent_confirmed_the_answer() -> None:
    confirmed = verdict(resolved(S1, ANSWER), udp(S1, ANSWER), tcp(S1, ANSWER), auth("198.18.53.2", AUTH_ANSWER))
    assert confirmed.code == "healthy" and confirmed.verified is True
    assert "as the zone's authoritative servers (198.18.53.2:53) say" in confirmed.summary
    alone = verdict(resolved(S1, ANSWER), udp(S1, ANSWER), tcp(S1, ANSWER))
    assert alone.code == "healthy" and alone.verified is False
    assert "Not verified" in alone.summary and any("--expect" in step for step in alone.next_steps)
    assert alone.to_dict()["verified"] is False and "verified" not in verdict(udp(S1, TIMEOUT)).to_dict()


def test_answers_that_change_with_the_channel_are_a_mismatch() -> None:
    # A path that rewrites UDP (the channel a transparent proxy intercepts) and leaves TCP alone.
    honest_tcp = {**ANSWER, "transport": "tcp"}
    v = verdict(resolved(S1, FORGED), udp(S1, FORGED), tcp(S1, honest_tcp), ping(S1, 3))
    assert v.code == "dns-answer-mismatch"
    assert "over UDP 198.51.100.66" in v.summary and "over TCP 203.0.113.22" in v.summary


def test_sets_that_vary_between_udp_answers_are_not_a_channel_change() -> None:
    # A CDN that hands out a different address each time: the UDP answers differ among themselves too.
    other = {
        **ANSWER,
        "answers": [{"name": "yummyrecipesforme.com.", "type": "A", "ttl": 300, "value": "203.0.113.23"}],
    }
    honest_tcp = {**FORGED, "transport": "tcp"}
    v = verdict(resolved(S1, ANSWER), udp(S1, other), tcp(S1, honest_tcp), ping(S1, 3))
    assert v.code == "healthy"
