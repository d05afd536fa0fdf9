"""Text from outside routedeck (a file, a flag platform, an operator) made safe to show in a terminal.

A flag key, a route profile, a rule's prose or a ``--reason`` can hold terminal control sequences
(ESC, BEL, OSC, CSI): printed as they are, they retitle the terminal, clear the screen or hide the
lines around them. ``visible`` turns every control character into a printable stand-in, so the
operator sees that it is there and the terminal never acts on it. The journal keeps the original
bytes (its hash chain covers them); only what is shown passes through here.

Markup is a separate matter: text shown through Rich or Textual must travel as ``rich.text.Text``
(or with ``markup=False``), never inside a markup string, or ``[bold]`` in a flag key is obeyed.
"""

from __future__ import annotations

import re

from .redact import hide_known

#: C0 controls but tab and newline, DEL, and C1 controls (tab and newline: see ``visible``)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
#: Unicode's bidirectional overrides and isolates can reorder what the operator reads
_BIDI = re.compile(r"[\u202a-\u202e\u2066-\u2069]")


def _picture(match: re.Match[str]) -> str:
    ch = match.group(0)
    code = ord(ch)
    if code < 0x20:
        return chr(0x2400 + code)  # ␛ for ESC, ␇ for BEL, …
    if code == 0x7F:
        return "\u2421"  # ␡
    return f"\\x{code:02x}"  # C1 controls have no picture: show their code


def visible(text: object, keep_newlines: bool = False) -> str:
    """``text`` as a string with every control character replaced by a visible stand-in, and every
    secret routedeck holds (``redact.remember_secret``) masked as ***.

    With ``keep_newlines`` a newline (and a tab) stays as it is, for multi-line text such as a
    route profile shown in full; otherwise they become ␊ and ␉, so a one-line field stays on one line.
    """
    s = hide_known(text if isinstance(text, str) else str(text))
    s = _CONTROL.sub(_picture, s)
    s = _BIDI.sub(lambda m: f"\\u{ord(m.group(0)):04x}", s)
    if not keep_newlines:
        s = s.replace("\n", "\u240a").replace("\t", "\u2409")
    return s


def has_control(text: str) -> bool:
    """True when ``text`` holds a character ``visible`` would replace (newline and tab aside)."""
    return bool(_CONTROL.search(text) or _BIDI.search(text))
