"""What a command prints is text: control characters from files, platforms and operators made visible,
and every secret routedeck holds masked, whatever part of the program wrote the line.

The command line's own output never needs a control character (no colours, no cursor moves), so the
whole of stdout and stderr passes through ``visible`` while a command runs: a flag key holding
ESC[2J or an OSC title sequence reaches the terminal as ␛[2J, and a token an error echoed as ***.
JSON output is escaped by the JSON writer before it gets here, so it passes unchanged.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from console.core.redact import redact
from console.core.safe_text import visible


class ShownText:
    """A text stream that shows what is written to it as text (see the module)."""

    def __init__(self, inner: TextIO) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        self._inner.write(redact(visible(text, keep_newlines=True)))
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


@contextmanager
def shown_as_text() -> Iterator[None]:
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = ShownText(out), ShownText(err)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err
