"""The confirm dialogs of the emergency switch and of its undo: before and after shown, Cancel focused.

Both are ``ConfirmScreen``s (same keys: tab goes Cancel → safe route → reason → confirm; esc
cancels). ``SwitchScreen`` asks which safe route and requires a reason; its answer's
``values["safe"]`` is the route. ``UndoSwitchScreen`` takes an optional reason.
"""

from __future__ import annotations

from textual.widgets import Select, Static

from console.core.emergency import allocation_lines
from console.core.models import RouteFlag
from console.core.safe_text import visible
from console.screens.confirm import Choice, ConfirmScreen, change_text


def _switch_lines(flag: RouteFlag, safe: str, why: str) -> list[str]:
    after = flag.allocation.model_copy(update={"serve_all": safe})
    lines = ([why] if why else []) + ["now:"] + [f"  {line}" for line in allocation_lines(flag)]
    lines += ["after:"] + [f"  {line}" for line in allocation_lines(flag, after)]
    return lines + ["undo (u) restores exactly the allocation shown under \"now\""]


class SwitchScreen(ConfirmScreen):
    """Send every unit of a flag to a safe route."""

    def __init__(self, flag: RouteFlag, choices: list[str], why: str = "") -> None:
        options = tuple((n if flag.variations[n].route == n else f"{n} ({flag.variations[n].route})", n) for n in choices)
        super().__init__(f"EMERGENCY SWITCH {flag.key} — every unit to one route", _switch_lines(flag, choices[0], why),
                         confirm_label="Switch", reason_required=True, danger=True, arrows=False,
                         choices=[Choice("safe", "safe route", options, choices[0])])
        self.flag = flag
        self.why = why

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.value in self.flag.variations:
            self.query_one("#change", Static).update(change_text(_switch_lines(self.flag, str(event.value), self.why),
                                                                 arrows=False))


class UndoSwitchScreen(ConfirmScreen):
    """Lift a switch: the allocation it held back comes back into force."""

    def __init__(self, flag: RouteFlag, note: str = "") -> None:
        lines = ["now:"] + [f"  {line}" for line in allocation_lines(flag)]
        lines += ["after (the allocation before the switch):"]
        lines += [f"  {line}" for line in allocation_lines(flag, flag.allocation.held())]
        if note:
            lines.append(visible(note))
        super().__init__(f"UNDO SWITCH {flag.key}", lines, confirm_label="Undo switch", reason_required=False,
                         default_reason="undo the emergency switch", arrows=False)
        self.flag = flag
