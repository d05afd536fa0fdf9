"""Small renderings for the rollout screen: the stage ladder, an interval bar, a sparkline.

They take plain values and return Rich text, so screens and tests can use them without a running app.
"""

from __future__ import annotations

from typing import Sequence

from rich.cells import cell_len
from rich.text import Text

SPARKS = "▁▂▃▄▅▆▇█"


def ladder(stages: Sequence[str], current: str, ended: str | None = None) -> Text:
    """``internal ─ 5% ─ [20%] ─ full ─ promoted``: done stages ticked, the current one reversed.

    ``ended`` is "promoted" or "rolled back" once the rollout is over.
    """
    names = list(stages) + ["promoted"]
    if ended == "promoted":
        current = "promoted"
    index = names.index(current) if current in names else -1
    out = Text()
    for i, name in enumerate(names):
        if i:
            out.append(" ─ ", "dim")
        if ended == "rolled back":
            out.append(name, "dim strike")
        elif i < index:
            out.append(f"✓{name}", "green")
        elif i == index:
            out.append(f" {name} ", "bold reverse")
        else:
            out.append(name, "dim")
    if ended == "rolled back":
        out.append("   ROLLED BACK", "bold red")
    elif index < 0:
        out = Text.assemble(("not started", "bold yellow"), " · ", out)
    return out


def interval_bar(low: float, high: float, margin: float | None, worse_is_higher: bool, width: int = 20,
                 *, absolute: bool = False, harm: bool = False) -> Text:
    """The interval drawn against the margin, harm always to the right.

    For a difference (candidate − baseline) the axis is centred on 0 and ``margin`` is the tolerated
    harm; with ``absolute`` the interval is the candidate's own value and ``margin`` its limit.
    """
    width = max(8, width)
    if absolute:
        lo, hi, mark, zero = low, high, margin, None
        if not worse_is_higher:  # lower is worse: flip so the limit is on the right
            lo, hi, mark = -high, -low, (-margin if margin is not None else None)
        left = min(lo, mark if mark is not None else lo, 0.0)
        right = max(hi, mark if mark is not None else hi)
    else:
        lo, hi = (low, high) if worse_is_higher else (-high, -low)
        mark, zero = margin, 0.0
        reach = max(abs(lo), abs(hi), abs(margin or 0.0)) * 1.15 or 1.0
        left, right = -reach, reach
    span = (right - left) or 1.0

    def col(x: float) -> int:
        return max(0, min(width - 1, round((x - left) / span * (width - 1))))

    cells = ["─"] * width
    styles = ["dim"] * width
    a, b = col(lo), col(hi)
    for i in range(a, b + 1):
        cells[i], styles[i] = "━", ("bold red" if harm else "bold")
    if zero is not None:
        z = col(zero)
        if cells[z] == "─":
            cells[z], styles[z] = "┼", "dim"
    if mark is not None:
        m = col(mark)
        cells[m], styles[m] = "┃", "red"
    out = Text()
    for ch, st in zip(cells, styles):
        out.append(ch, st)
    return out


def sparkline(values: Sequence[float | None], width: int = 12) -> Text:
    """The last ``width`` values as block characters; a gap is a dim dot."""
    tail = list(values)[-width:]
    present = [v for v in tail if v is not None]
    if not present:
        return Text("·" * len(tail), "dim")
    low, high = min(present), max(present)
    span = high - low
    out = Text()
    for v in tail:
        if v is None:
            out.append("·", "dim")
        else:
            level = 0 if span == 0 else round((v - low) / span * (len(SPARKS) - 1))
            out.append(SPARKS[level])
    return out


def wrap_name(name: str, mark: str = "", *, width: int) -> str:
    """A metric name in lines of at most ``width`` cells, broken after an underscore (between words), so a
    narrow column shows every name whole: ``resolved_without_`` / ``escalation ‼``. ``mark`` stays with the
    last word. A word longer than the width is folded as a last resort."""
    width = max(width, 4)
    words = [w for w in name.replace("_", "_\0").replace(" ", " \0").split("\0") if w]
    if words:
        words[-1] += mark
    lines: list[str] = []
    line = ""
    for word in words:
        if line and cell_len(line) + cell_len(word.rstrip()) > width:
            lines.append(line.rstrip())
            line = ""
        while cell_len(word.rstrip()) > width:
            lines.append(word[:width])
            word = word[width:]
        line += word
    if line.strip() or not lines:
        lines.append(line.rstrip())
    return "\n".join(lines)
