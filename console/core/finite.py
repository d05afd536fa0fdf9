"""Numbers from files must be finite: NaN and infinity are refused where they are written.

JSON has no NaN or Infinity, yet Python's reader accepts both as an extension, and YAML and TOML spell
them ``.nan``/``.inf`` and ``nan``/``inf``. A NaN margin compares false with everything and an infinite
one is always "inside", so either would switch a guardrail off in silence. Every loader of rules,
route profiles and flag files goes through here or checks with ``is_finite_number``.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from .errors import BadInput

#: NaN, Infinity and -Infinity outside JSON strings (strings are skipped whole, escapes included)
_CONSTANT = re.compile(r'"(?:[^"\\]|\\.)*"|(-?Infinity|NaN)')


def is_finite_number(value: Any) -> bool:
    """False for a float that is NaN or infinite; True for anything else (not only numbers)."""
    return not (isinstance(value, float) and not math.isfinite(value))


def first_non_finite(value: Any, at: str = "") -> str | None:
    """The dotted path of the first non-finite float inside ``value`` (a parsed document), or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return at or "value"
    if isinstance(value, dict):
        for key, item in value.items():
            found = first_non_finite(item, f"{at}.{key}" if at else str(key))
            if found:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = first_non_finite(item, f"{at}[{i}]")
            if found:
                return found
    return None


def loads_finite(text: str | bytes, where: str, fix: str = "fix the file") -> Any:
    """``json.loads`` that refuses NaN/Infinity (naming the line), and a document nested beyond reading."""

    def refuse(name: str) -> Any:
        raise _NonFinite(name)

    try:
        return json.loads(text, parse_constant=refuse)
    except _NonFinite as exc:
        line = _line_of_constant(text.decode("utf-8", "replace") if isinstance(text, bytes) else text)
        raise BadInput(f"{where}:{line}: {exc.name} is not a finite number — {fix}") from None
    except RecursionError:
        raise BadInput(f"{where}: nested too deeply to read — {fix}") from None


class _NonFinite(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _line_of_constant(text: str) -> int:
    for m in _CONSTANT.finditer(text):
        if m.group(1):
            return text.count("\n", 0, m.start()) + 1
    return 1
