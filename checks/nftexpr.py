"""nftables expressions, as ``nft -j`` prints them: what a packet's field holds, and what it is matched against.

Pure. A field of the packet is one of:

- a value: an address, a number (a port, a mark, a protocol), a name (a ct state, an interface), or a
  :class:`Ports` range (the ephemeral side of the exchange is any port of ip_local_port_range);
- :data:`ABSENT`: the packet has no such header (a tcp field of a UDP packet, an ip6 field of an IPv4 one,
  ``meta iif`` in the output hook). The kernel's expression breaks there, so the match fails, negated or not;
- :data:`UNKNOWN`: the evaluator cannot know it (a DSCP value, a mark that some rule sets).

The right-hand side is a set of elements: values, :class:`Span` intervals (of numbers or addresses),
networks, and :class:`Concat` tuples of these (``ip saddr . ip daddr { 192.0.2.1 . 10.0.0.1-10.0.0.2 }``).
Every comparison answers True, False or None (may match). A form this module does not know raises
:class:`Unmodelled` with its description, and the reader turns it into a may-match of that one rule.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import msgspec

Tri = bool | None
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

PROTO_NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1, "ipv6-icmp": 58, "icmpv6": 58, "sctp": 132, "gre": 47, "esp": 50}
TCP_FLAGS = {"fin": 0x01, "syn": 0x02, "rst": 0x04, "psh": 0x08, "ack": 0x10, "urg": 0x20, "ecn": 0x40, "cwr": 0x80}
# Headers of other transports: a UDP or TCP packet has none of them.
OTHER_TRANSPORTS = frozenset({"udplite", "sctp", "dccp", "icmp", "icmpv6", "esp", "ah", "comp", "igmp", "gre"})


class Unmodelled(Exception):
    """An expression this evaluator does not model; its message names it."""


class _Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


ABSENT = _Sentinel("ABSENT")
UNKNOWN = _Sentinel("UNKNOWN")


class Ports(msgspec.Struct, frozen=True):
    lo: int
    hi: int


class Proto(msgspec.Struct, frozen=True):
    """A transport protocol, equal to its name and to its number."""

    name: str

    def matches(self, element: Any) -> Tri:
        if isinstance(element, int):
            return PROTO_NUMBERS.get(self.name) == element
        if isinstance(element, str):
            aliases = {self.name, "ipv6-icmp" if self.name == "icmpv6" else self.name}
            return element.lower() in aliases
        return None


class Bits(msgspec.Struct, frozen=True):
    """A bitmask of which only some bits are known (``ct status``: the NAT bits, where no rule does NAT)."""

    value: int
    known: int


CT_STATUS = {"expected": 1, "seen-reply": 2, "assured": 4, "confirmed": 8, "snat": 16, "dnat": 32, "dying": 512}
NAT_BITS = CT_STATUS["snat"] | CT_STATUS["dnat"]


class Span(msgspec.Struct, frozen=True):
    """An interval, both ends included, of numbers or of addresses of one version."""

    lo: Any
    hi: Any


class Concat(msgspec.Struct, frozen=True):
    parts: tuple[Any, ...]


Getter = Callable[[Any], Any]
"""A function of the packet (netfilter.Packet) giving one of its fields."""


# -- the right-hand side ----------------------------------------------------------------------------------


def element(raw: Any) -> Any:
    """One element of a set (or a single right-hand value), normalised."""
    if isinstance(raw, bool):
        raise Unmodelled(f"a boolean value {raw!r}")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str):
        return _scalar_text(raw)
    if isinstance(raw, list):  # a flag list, as in tcp flags & (syn | ack)
        return _flags(raw)
    if isinstance(raw, dict):
        if "elem" in raw:
            inner = raw["elem"]
            return element(inner.get("val") if isinstance(inner, dict) else inner)
        if "|" in raw:
            return _flags(raw["|"])
        if "prefix" in raw:
            return _prefix(raw["prefix"])
        if "range" in raw:
            a, b = (element(x) for x in raw["range"])
            return Span(a, b)
        if "concat" in raw:
            return Concat(tuple(element(x) for x in raw["concat"]))
    raise Unmodelled(f"a value of an unknown form: {_short(raw)}")


def elements(raw: Any, named: Mapping[str, tuple[Any, ...]]) -> tuple[Any, ...]:
    """The elements a match compares with: a named set (``@name``), an anonymous set, or one value."""
    if isinstance(raw, str) and raw.startswith("@"):
        if raw[1:] not in named:
            raise Unmodelled(f"the set {raw}, which this ruleset does not define")
        return named[raw[1:]]
    if isinstance(raw, dict) and "set" in raw:
        items = raw["set"]
        return tuple(element(x) for x in (items if isinstance(items, list) else [items]))
    return (element(raw),)


@functools.lru_cache(maxsize=65536)  # rulesets repeat their addresses and names: parse each once
def _scalar_text(text: str) -> Any:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if text.lower() in TCP_FLAGS:
        return TCP_FLAGS[text.lower()]
    if text.lower() in CT_STATUS:
        return CT_STATUS[text.lower()]
    priority = re.fullmatch(r"([0-9a-fA-F]{1,4}):([0-9a-fA-F]{1,4})", text)
    if priority:  # a tc class handle, major:minor (meta priority)
        return int(priority.group(1), 16) << 16 | int(priority.group(2), 16)
    if re.fullmatch(r"0x[0-9a-fA-F]+", text):
        return int(text, 16)
    return text


def _flags(raw: Any) -> int:
    items = raw if isinstance(raw, list) else [raw]
    value = 0
    for item in items:
        v = element(item)
        if not isinstance(v, int):
            raise Unmodelled(f"a flag of an unknown kind: {_short(item)}")
        value |= v
    return value


def _prefix(raw: Mapping[str, Any]) -> Any:
    addr, length = raw["addr"], int(raw["len"])
    if isinstance(addr, int):  # a mask on a number (meta mark 0xffffff00/24): the values it covers
        bits = max(32, addr.bit_length())
        mask = ((1 << length) - 1) << (bits - length)
        return Span(addr & mask, addr | (~mask & ((1 << bits) - 1)))
    return ipaddress.ip_network(f"{addr}/{length}", strict=False)


# -- membership -------------------------------------------------------------------------------------------


def tri_all(values: Iterable[Tri]) -> Tri:
    """And, in three values: False if any is, else None if any is, else True."""
    result: Tri = True
    for v in values:
        if v is False:
            return False
        if v is None:
            result = None
    return result


def member(value: Any, elem: Any) -> Tri:
    """Is the packet's ``value`` the element ``elem`` (or in it)?"""
    if value is UNKNOWN or elem is UNKNOWN:
        return None
    if isinstance(value, tuple):
        if not isinstance(elem, Concat) or len(elem.parts) != len(value):
            return None
        return tri_all(member(v, e) for v, e in zip(value, elem.parts, strict=True))
    if isinstance(value, Ports):
        return coverage(value, (elem,))
    if isinstance(value, Proto):
        return value.matches(elem)
    if isinstance(elem, Span):
        return _in_span(value, elem)
    if isinstance(elem, ipaddress.IPv4Network | ipaddress.IPv6Network) or isinstance(
        value, ipaddress.IPv4Address | ipaddress.IPv6Address
    ):
        return _member_address(value, elem)
    return bool(value == elem) if type(value) is type(elem) else None  # a name against a number: not comparable


def _member_address(value: Any, elem: Any) -> Tri:
    address = ipaddress.IPv4Address | ipaddress.IPv6Address
    if isinstance(elem, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return value.version == elem.version and value in elem if isinstance(value, address) else None
    return value == elem if isinstance(elem, address) else None


def _in_span(value: Any, span: Span) -> Tri:
    address = ipaddress.IPv4Address | ipaddress.IPv6Address
    if isinstance(value, address) != isinstance(span.lo, address):
        return None
    if isinstance(value, address) and (value.version != span.lo.version or value.version != span.hi.version):
        return False
    try:
        return bool(span.lo <= value <= span.hi)
    except TypeError:
        return None


def coverage(ports: Ports, elems: Sequence[Any]) -> Tri:
    """True if every port of ``ports`` is among the elements, False if none is, None if some are."""
    spans: list[tuple[int, int]] = []
    unknown = False
    for e in elems:
        if isinstance(e, int):
            spans.append((e, e))
        elif isinstance(e, Span) and isinstance(e.lo, int) and isinstance(e.hi, int):
            spans.append((e.lo, e.hi))
        else:
            unknown = True
    covered, reach = 0, ports.lo - 1
    for a, b in sorted(spans):  # merged as we go, so overlapping spans count once
        start, end = max(a, reach + 1, ports.lo), min(b, ports.hi)
        if end >= start:
            covered += end - start + 1
        reach = max(reach, b)
    if covered >= ports.hi - ports.lo + 1:
        return True
    if covered == 0 and not unknown:
        return False
    return None


def in_set(value: Any, elems: Sequence[Any]) -> Tri:
    """Membership in a set: true if in some element, false if in none, None when it cannot be told."""
    if value is UNKNOWN:
        return None
    if isinstance(value, Ports):
        return coverage(value, elems)
    result: Tri = False
    for e in elems:
        r = member(value, e)
        if r is True:
            return True
        if r is None:
            result = None
    return result


# -- the left-hand side: a packet's fields -----------------------------------------------------------------


def getter(left: Any) -> Getter:
    """A function of the packet giving the field ``left`` names (a value, ABSENT or UNKNOWN)."""
    if isinstance(left, dict):
        if "concat" in left:
            parts = [getter(x) for x in left["concat"]]
            return lambda p: _concat(tuple(g(p) for g in parts))
        if "&" in left:
            inner, mask = getter(left["&"][0]), element(left["&"][1])
            if not isinstance(mask, int):
                raise Unmodelled(f"a mask of an unknown form: {_short(left['&'][1])}")
            return lambda p: _masked(inner(p), mask)
        if "payload" in left:
            return _payload(str(left["payload"].get("protocol")), str(left["payload"].get("field")))
        if "meta" in left:
            return _meta(str(left["meta"].get("key")))
        if "ct" in left:
            return _ct(str(left["ct"].get("key")))
        if "fib" in left:
            return _fib(left["fib"])
    raise Unmodelled(f"the expression {_short(left)}")


def _concat(values: tuple[Any, ...]) -> Any:
    return ABSENT if any(v is ABSENT for v in values) else values


def _masked(value: Any, mask: int) -> Any:
    if value is ABSENT or value is UNKNOWN:
        return value
    return value & mask if isinstance(value, int) else UNKNOWN


def _payload(proto: str, field: str) -> Getter:
    if proto in ("ip", "ip6"):
        family = 4 if proto == "ip" else 6
        if field in ("saddr", "daddr"):
            return lambda p: (p.saddr if field == "saddr" else p.daddr) if p.family == family else ABSENT
        if field in ("protocol", "nexthdr"):
            return lambda p: Proto(p.proto) if p.family == family else ABSENT
        return lambda p: UNKNOWN if p.family == family else ABSENT
    if proto in ("tcp", "udp", "th"):

        def present(p: Any) -> bool:
            return p.proto in ("tcp", "udp") if proto == "th" else p.proto == proto

        if field in ("sport", "dport"):
            return lambda p: Ports(*(p.sport if field == "sport" else p.dport)) if present(p) else ABSENT
        if proto == "tcp" and field == "flags":
            # A new connection's packet here is its SYN; later packets carry flags this cannot know.
            return lambda p: (TCP_FLAGS["syn"] if p.ct_state == "new" else UNKNOWN) if present(p) else ABSENT
        return lambda p: UNKNOWN if present(p) else ABSENT
    if proto in OTHER_TRANSPORTS:
        return lambda p: ABSENT if p.proto in ("tcp", "udp") else UNKNOWN
    return lambda p: UNKNOWN  # the link layer (ether, vlan, arp): not known from here


def _meta(key: str) -> Getter:
    simple: dict[str, Getter] = {
        "l4proto": lambda p: Proto(p.proto),
        "nfproto": lambda p: "ipv4" if p.family == 4 else "ipv6",
        "protocol": lambda p: "ip" if p.family == 4 else "ip6",
        "mark": lambda p: UNKNOWN if p.mark is None else p.mark,
        "priority": lambda p: UNKNOWN if p.priority is None else p.priority,
        # The kernel breaks the rule where the device does not exist: no input device in output, no output
        # device in input.
        "iif": lambda p: ABSENT if p.hook == "output" else (p.iif or UNKNOWN),
        "iifname": lambda p: ABSENT if p.hook == "output" else (p.iif or UNKNOWN),
        "oif": lambda p: ABSENT if p.hook == "input" else (p.oif or UNKNOWN),
        "oifname": lambda p: ABSENT if p.hook == "input" else (p.oif or UNKNOWN),
        "skuid": lambda p: p.uid if p.hook == "output" and p.uid is not None else UNKNOWN,
        "skgid": lambda p: p.gid if p.hook == "output" and p.gid is not None else UNKNOWN,
    }
    return simple.get(key, lambda p: UNKNOWN)


def _ct(key: str) -> Getter:
    simple: dict[str, Getter] = {
        "state": lambda p: p.ct_state,
        "mark": lambda p: UNKNOWN if p.ct_mark is None else p.ct_mark,
        "direction": lambda p: "original" if p.ct_state == "new" else "reply",
        "l3proto": lambda p: "ipv4" if p.family == 4 else "ipv6",
        "protocol": lambda p: Proto(p.proto),
        "status": lambda p: UNKNOWN if p.natted is None else Bits(NAT_BITS if p.natted else 0, NAT_BITS),
    }
    return simple.get(key, lambda p: UNKNOWN)


def _fib(fib: Mapping[str, Any]) -> Getter:
    """``fib daddr type`` (and saddr): the route type of the address, which this host knows for its own."""
    flags = fib.get("flags", [])
    flags = flags if isinstance(flags, list) else [flags]
    if fib.get("result") != "type" or set(flags) - {"saddr", "daddr"} or len(flags) != 1:
        raise Unmodelled(f"fib {' . '.join(flags)} {fib.get('result')}")
    source = flags[0] == "saddr"
    return lambda p: (p.saddr_type if source else p.daddr_type) or UNKNOWN


# -- a match ---------------------------------------------------------------------------------------------

_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda x, y: x < y,
    "<=": lambda x, y: x <= y,
    ">": lambda x, y: x > y,
    ">=": lambda x, y: x >= y,
}


def match(m: Mapping[str, Any], named: Mapping[str, tuple[Any, ...]]) -> Callable[[Any], Tri]:
    """A ``{"match": ...}`` expression as a function of the packet."""
    get = getter(m.get("left"))
    op = str(m.get("op", "=="))
    if op in _ORDER:
        return _ordered(get, op, element(m.get("right")))
    elems = _right_elements(m.get("right"), op, named)
    if op == "in" and len(elems) == 1 and isinstance(elems[0], int):
        return _flags_set(get, elems[0])
    if op not in ("==", "!=", "in"):
        raise Unmodelled(f"the operator {op!r}")
    negate = op == "!="

    def membership(p: Any) -> Tri:
        v = get(p)
        if v is ABSENT:
            return False  # the expression breaks: no match, negated or not
        r = in_set(v, elems)
        return r if not negate or r is None else not r

    return membership


def _right_elements(right: Any, op: str, named: Mapping[str, tuple[Any, ...]]) -> tuple[Any, ...]:
    if not isinstance(right, list):
        return elements(right, named)
    # A list is a bitmask: tcp flags syn,ack is one value, syn|ack; ct state established,related (op "in") is
    # any of its bits.
    try:
        return (_flags(right),)
    except Unmodelled:
        if op != "in" and len(right) > 1:
            raise Unmodelled(f"{op} against the combined names {right}") from None
        return tuple(element(x) for x in right)


def _ordered(get: Callable[[Any], Any], op: str, bound: Any) -> Callable[[Any], Tri]:
    def ordered(p: Any) -> Tri:
        v = get(p)
        if v is ABSENT:
            return False
        if isinstance(v, Ports):
            low, high = _ORDER[op](v.lo, bound), _ORDER[op](v.hi, bound)
            return low if low == high else None
        try:
            return None if v is UNKNOWN else bool(_ORDER[op](v, bound))
        except TypeError:
            return None

    return ordered


def _flags_set(get: Callable[[Any], Any], bits: int) -> Callable[[Any], Tri]:
    def flags(p: Any) -> Tri:  # tcp flags syn: the bit is set, whatever else is
        v = get(p)
        if v is ABSENT:
            return False
        if isinstance(v, Bits):
            if v.value & v.known & bits:
                return True
            return False if bits & v.known == bits else None
        return None if not isinstance(v, int) else bool(v & bits)

    return flags


def describe(expr: Any) -> str:
    """A short human name for an expression (``ip daddr``, ``ct state . ct mark``), for the may-match report."""
    if isinstance(expr, dict) and expr:
        key = next(iter(expr))
        inner = expr[key]
        if key == "payload" and isinstance(inner, dict):
            return f"{inner.get('protocol')} {inner.get('field')}"
        if key in ("meta", "ct") and isinstance(inner, dict):
            return f"{key} {inner.get('key')}"
        if key == "concat" and isinstance(inner, list):
            return " . ".join(describe(x) for x in inner)
        if key == "&" and isinstance(inner, list) and inner:
            return f"{describe(inner[0])} & mask"
        return _short(expr)
    return _short(expr)


def _short(raw: Any, limit: int = 80) -> str:
    text = str(raw)
    return text if len(text) <= limit else text[: limit - 1] + "…"
