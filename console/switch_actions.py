"""The emergency switch (x) and its undo (u): every unit of a flag to a named safe route, and back exactly.

Each opens a confirm dialog, then writes through ``run_write`` (the console's one way to change a
flag) with the core operations of ``console/core/emergency.py``.

Mixed into the App, which provides ``session`` and ``run_write``.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from console.core import availability as av
from console.core.safe_text import visible

if TYPE_CHECKING:
    from console.core.models import RouteFlag
    from console.core.session import Session
    from console.screens.confirm import Answer


class EmergencySwitchActions:
    session: "Session"

    def _hurt_words(self, key: str) -> str:
        if self.session.snapshot is None:
            return ""
        from console.core.incident import provider_health

        for ph in provider_health(self.session.snapshot):
            if any(r.key.flag == key for r in ph.hurt_routes()) and ph.failure_rate is not None:
                return f"{ph.label} fails {ph.failure_rate * 100:.1f}% of its calls"
        return ""

    def action_emergency_switch(self) -> None:
        from console.screens.switch import SwitchScreen

        s = self.session
        key, why = av.switch_target(s) if not s.read_only else (None, av.READ_ONLY)
        if key is None:
            self.notify(f"switch: {visible(why)}", severity="warning", markup=False)
            return
        flag = s.flags[key]
        s.pending[key] = "switch"
        self.publish()
        self.push_screen(SwitchScreen(flag, av.safe_choices(flag), self._hurt_words(key)),
                         callback=partial(self._switch_confirmed, flag))

    def _switch_confirmed(self, flag: "RouteFlag", answer: "Answer | None") -> None:
        if answer is None:
            self.session.pending.pop(flag.key, None)
            self.notify(f"switch of {visible(flag.key)} cancelled: nothing written", timeout=4, markup=False)
            self.publish()
            return
        from console.core.emergency import emergency_switch

        s = self.session
        self.run_write("emergency_switch", flag.key, partial(
            emergency_switch, s.platform, flag.key, str(answer.values["safe"]), s.journal, reason=answer.reason,
            seen_revision=flag.revision))

    def action_undo_switch(self) -> None:
        from console.screens.switch import UndoSwitchScreen

        s = self.session
        key, why = av.undo_switch_target(s) if not s.read_only else (None, av.READ_ONLY)
        if key is None:
            self.notify(f"undo switch: {visible(why)}", severity="warning", markup=False)
            return
        flag = s.flags[key]
        before = s.switched_from.get(key)
        if before is None:
            note = "this console did not make the switch: the allocation the platform holds behind it comes back"
        elif before.held() == flag.allocation.held():
            note = "this is the allocation this console saw before the switch"
        else:
            note = f"WARNING: before the switch this console saw {before.describe()}: the undo will be refused"
        s.pending[key] = "undo switch"
        self.publish()
        self.push_screen(UndoSwitchScreen(flag, note), callback=partial(self._undo_confirmed, flag, before))

    def _undo_confirmed(self, flag: "RouteFlag", before, answer: "Answer | None") -> None:
        if answer is None:
            self.session.pending.pop(flag.key, None)
            self.notify(f"undo of the switch of {visible(flag.key)} cancelled: nothing written", timeout=4,
                        markup=False)
            self.publish()
            return
        from console.core.emergency import undo_switch

        s = self.session
        self.run_write("undo_switch", flag.key, partial(undo_switch, s.platform, flag.key, s.journal,
                                                        reason=answer.reason, before_switch=before))
