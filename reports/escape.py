"""Everything that came off the network is untrusted: names, TXT, EDE texts, error strings.

One function per output: a terminal (control characters and ANSI escapes made visible), Markdown (and
the HTML a Markdown viewer would render), and code spans / fenced blocks. XML (JUnit) takes the terminal
form, which ElementTree then escapes; the exporter's status page uses html.escape.
"""

from __future__ import annotations

import re
import unicodedata

# Inline text inside our own paragraphs and list items: only what opens a construct there (emphasis, code,
# links and images, HTML and entities, table cells, strikethrough). Dots, dashes and parentheses stay as
# they are, so the raw text pastes readably into a ticket.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~<>&])")


def terminal(text: object) -> str:
    """Control and format characters (ESC, CR, BiDi overrides...) shown as ``\\xNN`` / ``\\uNNNN``."""
    out = []
    for ch in str(text):
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


_MD_BLOCK_MARK = re.compile(r"^(\s*)([#+\-=>])")
_MD_ORDERED = re.compile(r"^(\s*\d+)([.)])(?=\s|$)")


def markdown(text: object) -> str:
    """Inline Markdown text: every character Markdown or HTML would interpret there is escaped, and a start
    that would open a block (a heading, a list item, a quote) when the text begins a line."""
    inline = _MD_SPECIAL.sub(r"\\\1", terminal(text)).replace("\n", " ")
    inline = _MD_BLOCK_MARK.sub(lambda m: m.group(1) + "\\" + m.group(2), inline, count=1)
    return _MD_ORDERED.sub(lambda m: m.group(1) + "\\" + m.group(2), inline, count=1)


def code_span(text: object) -> str:
    """An inline code span that the text cannot close early (CommonMark: a longer backtick fence)."""
    body = terminal(text).replace("\n", " ")
    longest = max((len(m) for m in re.findall(r"`+", body)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if body.startswith("`") or body.endswith("`") else ""
    return f"{fence}{pad}{body}{pad}{fence}"


def fence(lines: list[str], info: str = "") -> str:
    """A fenced code block the lines cannot close early."""
    body = "\n".join(terminal(line) for line in lines)
    longest = max((len(m) for m in re.findall(r"`{3,}", body)), default=2)
    mark = "`" * (longest + 1)
    return f"{mark}{info}\n{body}\n{mark}"
