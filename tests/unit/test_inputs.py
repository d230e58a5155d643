"""What a user types: names, types, servers, timeouts. Bad input is one clear InputError, never a crash."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runbook.config import build, parse_name, parse_rdtype, parse_server, parse_timeout
from runbook.errors import InputError
from runbook.model import Server


def test_idn_name_is_queried_as_its_a_label() -> None:
    target = parse_name("bücher.example")
    assert target.name == "xn--bcher-kva.example."
    assert target.display == "bücher.example"


@pytest.mark.parametrize("name", ["yummyrecipesforme.com", "yummyrecipesforme.com.", "_dmarc.example.org", "a-b.c"])
def test_ordinary_names_are_absolute(name: str) -> None:
    assert parse_name(name).name == name.rstrip(".") + "."


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("a" * 64 + ".example", "longer than 63"),
        (".".join(["a" * 60] * 5), "longer than 253"),
        ("", "empty"),
        ("two words.example", "spaces"),
        ("tab\t.example", "control"),
        ("a..b", "empty label"),
        (".leading", "empty label"),
    ],
)
def test_bad_names_say_what_is_wrong(name: str, words: str) -> None:
    with pytest.raises(InputError, match=words):
        parse_name(name)


def test_name_of_exactly_253_characters_is_accepted() -> None:
    name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    assert len(name) == 253
    assert parse_name(name).name == name + "."


@given(st.text(max_size=300))
def test_any_text_is_a_name_or_an_input_error(text: str) -> None:
    try:
        parse_name(text)
    except InputError as e:
        assert "\n" not in str(e)


@pytest.mark.parametrize(("text", "expected"), [("a", "A"), ("aaaa", "AAAA"), ("MX", "MX"), ("TYPE65", "HTTPS")])
def test_record_types(text: str, expected: str) -> None:
    assert parse_rdtype(text) == expected


@pytest.mark.parametrize("text", ["BOGUS", "", "A A", "OPT"])
def test_unknown_record_type_is_an_input_error(text: str) -> None:
    with pytest.raises(InputError):
        parse_rdtype(text)


@pytest.mark.parametrize(
    ("text", "server"),
    [
        ("203.0.113.2", Server("203.0.113.2", 53)),
        ("127.0.0.1:5353", Server("127.0.0.1", 5353)),
        ("::1", Server("::1", 53)),
        ("[::1]:5353", Server("::1", 5353)),
        ("[2001:db8::1]", Server("2001:db8::1", 53)),
        ("fe80::1%eth0", Server("fe80::1%eth0", 53)),
    ],
)
def test_server_forms(text: str, server: Server) -> None:
    assert parse_server(text) == server


@pytest.mark.parametrize(
    "text",
    ["1.2.3", "ns1.example.com", "1.2.3.4:0", "1.2.3.4:65536", "1.2.3.4:x", "[::1", "[::1]:", "1.2.3.4%eth0", ""],
)
def test_malformed_servers_are_input_errors(text: str) -> None:
    with pytest.raises(InputError):
        parse_server(text)


@given(st.text(max_size=60))
def test_any_text_is_a_server_or_an_input_error(text: str) -> None:
    try:
        server = parse_server(text)
    except InputError:
        return
    assert parse_server(server.label) == server


def test_server_labels_and_keys() -> None:
    assert Server("::1", 5353).label == "[::1]:5353"
    assert Server("203.0.113.2").key == "203.0.113.2"
    assert Server("127.0.0.1", 5353).key == "127.0.0.1:5353"


@pytest.mark.parametrize("value", [0, -1, 0.01, 61, float("inf")])
def test_absurd_timeouts_are_refused(value: float) -> None:
    with pytest.raises(InputError):
        parse_timeout(value)


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("https://example.com/path", "is a URL, not a name: did you mean example.com?"),
        ("http://user@example.com:8080/", "did you mean example.com?"),
        ("example.com:443", "did you mean example.com?"),
        ("user@example.com", "did you mean example.com?"),
        ("192.0.2.1", "use --type PTR"),
        ("2001:db8::1", "--server 2001:db8::1"),
        ("@192.0.2.1", "--server 192.0.2.1"),
    ],
)
def test_what_people_paste_instead_of_a_name_is_refused_with_the_likely_intent(typed: str, says: str) -> None:
    with pytest.raises(InputError, match=re.escape(says)):
        parse_name(typed)


def test_an_address_with_type_ptr_is_its_reverse_name() -> None:
    assert build("192.0.2.1", rdtype="PTR").target.name == "1.2.0.192.in-addr.arpa."


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("fe80::1%", "the %scope is empty"),
        ("[1.2.3.4]:53", "brackets are for IPv6 only; write 1.2.3.4:53"),
        ("::1:5305", "for ::1 port 5305 write [::1]:5305; for the address ::1:5305 on port 53 write [::1:5305]"),
    ],
)
def test_server_forms_that_mislead_say_how_to_write_them(typed: str, says: str) -> None:
    with pytest.raises(InputError, match=re.escape(says)):
        parse_server(typed)
