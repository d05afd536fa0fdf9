"""SafeInput: a text field whose value never holds a control character.

An operator can paste anything into a reason or a search, escape sequences included: the field
shows each control character as its picture (``visible``) the moment it arrives, so the terminal
never receives it and what is journalled is exactly what the operator saw and confirmed.
"""

from __future__ import annotations

from textual.widgets import Input

from console.core.safe_text import visible


class SafeInput(Input):
    def validate_value(self, value: str) -> str:
        return visible(value)
