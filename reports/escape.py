"""Everything that came off the network is untrusted: names, TXT, EDE texts, error strings.

One function per output: a terminal (control characters and ANSI escapes made visible), Markdown (and
the HTML a Markdown viewer would render), and code spans / fenced blocks. XML (JUnit) takes the terminal
form, which ElementTree then escapes; the exporter's status page uses html.escape.
"""

from __future__ import annotations

import re
import unicodedata

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>&])")


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


def markdown(text: object) -> str:
    """Inline Markdown text: every character Markdown or HTML would interpret is escaped."""
    return _MD_SPECIAL.sub(r"\\\1", terminal(text)).replace("\n", " ")


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
