"""The emergency switch (x) and its undo (u): every unit of a flag to a named safe route, and back exactly.

Mixed into the app; it uses the app's state (flags, platform, journal, figures).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from console.core.errors import RouteDeckError
from console.core.redact import redact

if TYPE_CHECKING:
    from console.core.models import RouteFlag


class EmergencySwitchActions:
    def _switch_state(self) -> dict:
        """Per-app switch bookkeeping: the allocation each switch made here replaced, and what is running."""
        return self.__dict__.setdefault("_switch", {"before": {}, "busy": None, "flag": None})

    def _screen_flag(self) -> str | None:
        getter = getattr(self.screen, "highlighted_flag", None)
        if not callable(getter):
            return None
        try:
            return getter()
        except Exception:  # the screen is still composing: nothing highlighted yet
            return None

    def _worst_flag(self) -> str | None:
        """The flag of the most failing route of the worst provider (what `x` acts on by default)."""
        if self.snapshot is None:
            return None
        from console.core.incident import provider_health

        for ph in provider_health(self.snapshot):
            hurt = ph.hurt_routes()
            if hurt:
                return hurt[0].key.flag
        return None

    def safe_choices(self, flag: "RouteFlag") -> list[str]:
        """Variations a switch may send everyone to: not the candidate, nor the baseline that already serves all."""
        from console.core.incident import safe_routes

        names = safe_routes(flag.variations, flag.candidate)
        if not flag.allocation.serves_candidate:
            names = [n for n in names if n != flag.baseline]
        return names

    def switch_target(self) -> tuple[str | None, str]:
        if self.platform is None:
            return None, "still connecting to the flag platform"
        if not getattr(self.platform, "can_switch", False):
            return None, f"{self.platform.describe()} cannot send everyone to one route yet: R rolls back instead"
        busy = self._switch_state()["busy"]
        if busy:
            return None, f"{busy} is in progress"
        key = self._screen_flag() or self._worst_flag()
        if key is None:
            return None, "no flag to switch: highlight a route (i lists the routes a failing provider hurts)"
        flag = self.flags.get(key)
        if flag is None:
            return None, f"{key} has not been read from the flag platform yet"
        if flag.allocation.serve_all:
            return None, f"{key} already sends everyone to {flag.allocation.serve_all} (u undoes it)"
        if flag.foreign_targeting:
            return None, f"{key} holds targeting routedeck did not write: roll back (R) first"
        if not self.safe_choices(flag):
            return None, f"{key} has no other route among its variations to switch to"
        return key, ""

    def undo_switch_target(self) -> tuple[str | None, str]:
        if self.platform is None:
            return None, "still connecting to the flag platform"
        busy = self._switch_state()["busy"]
        if busy:
            return None, f"{busy} is in progress"
        switched = sorted(k for k, f in self.flags.items() if f.allocation.serve_all)
        if not switched:
            return None, "no emergency switch is in force"
        key = self._screen_flag()
        if key in switched:
            return key, ""
        if len(switched) == 1:
            return switched[0], ""
        return None, f"several flags are switched ({', '.join(switched)}): highlight a route of one"

    def action_emergency_switch(self) -> None:
        from console.screens.switch import SwitchScreen

        key, why = self.switch_target()
        if key is None:
            self.notify(f"switch: {why}", severity="warning")
            return
        flag = self.flags[key]
        self.push_screen(SwitchScreen(flag, self.safe_choices(flag), self._hurt_words(key)),
                         callback=partial(self._switch_confirmed, flag))

    def _hurt_words(self, key: str) -> str:
        if self.snapshot is None:
            return ""
        from console.core.incident import provider_health

        for ph in provider_health(self.snapshot):
            if any(r.key.flag == key for r in ph.hurt_routes()) and ph.failure_rate is not None:
                return f"{ph.label} fails {ph.failure_rate * 100:.1f}% of its calls"
        return ""

    def _switch_confirmed(self, flag: "RouteFlag", answer) -> None:
        if answer is None:
            self.notify(f"switch of {flag.key} cancelled: nothing written", timeout=4)
            return
        safe, reason = answer
        self._start_switch("switch", flag, partial(self._do_switch, flag, safe, reason))

    def _do_switch(self, flag: "RouteFlag", safe: str, reason: str):
        from console.core.emergency import emergency_switch

        return emergency_switch(self.platform, flag.key, safe, self.journal, reason=reason,
                                seen_revision=flag.revision)

    def action_undo_switch(self) -> None:
        from console.screens.switch import UndoSwitchScreen

        key, why = self.undo_switch_target()
        if key is None:
            self.notify(f"undo switch: {why}", severity="warning")
            return
        flag = self.flags[key]
        before = self._switch_state()["before"].get(key)
        if before is None:
            note = "this console did not make the switch: the allocation the platform holds behind it comes back"
        elif before.held() == flag.allocation.held():
            note = "this is the allocation this console saw before the switch"
        else:
            note = f"WARNING: before the switch this console saw {before.describe()}: the undo will be refused"
        self.push_screen(UndoSwitchScreen(flag, note), callback=partial(self._undo_confirmed, flag, before))

    def _undo_confirmed(self, flag: "RouteFlag", before, reason) -> None:
        if reason is None:
            self.notify(f"undo of the switch of {flag.key} cancelled: nothing written", timeout=4)
            return
        from console.core.emergency import undo_switch

        self._start_switch("undo", flag, partial(undo_switch, self.platform, flag.key, self.journal,
                                                 reason=reason, before_switch=before))

    def _start_switch(self, kind: str, flag: "RouteFlag", call) -> None:
        self._switch_state()["busy"] = f"{'undo of the switch' if kind == 'undo' else 'switch'} of {flag.key}"
        self._switch_state()["flag"] = flag.key
        self.begin_write(flag.key)
        self.run_worker(partial(self._switch_worker, kind, flag.key, call), thread=True, group="switch",
                        exit_on_error=False)

    def _switch_worker(self, kind: str, key: str, call) -> None:
        from console.screens.switch import SwitchDone

        try:
            self.post_message(SwitchDone(kind, key, call(), None))
        except RouteDeckError as exc:
            self.post_message(SwitchDone(kind, key, None, str(exc)))
        except Exception as exc:
            self.post_message(SwitchDone(kind, key, None, f"{type(exc).__name__}: {redact(str(exc))}"))

    def on_switch_done(self, message) -> None:
        state = self._switch_state()
        state["busy"] = state["flag"] = None
        self.end_write(message.flag, message.result.after if message.result is not None else None)
        what = "UNDO OF THE SWITCH" if message.kind == "undo" else "SWITCH"
        if message.result is None:
            self.bell()
            self.notify(f"{what} OF {message.flag} FAILED: {message.error}. The flag is read again.",
                        title=f"{what.capitalize()} failed", severity="error", timeout=30)
            self.poll_flags()
            self._redraw()
            return
        result = message.result
        after = result.after
        ms = result.write.elapsed_s * 1000 if result.write else 0
        if message.kind == "switch":
            state["before"][after.key] = result.before.allocation
            self.notify(f"{after.key}: everyone on {after.allocation.serve_all} — confirmed by read-back in {ms:.0f} ms "
                        f"(u restores {after.allocation.held().describe()})", title="Switched", timeout=15)
        else:
            state["before"].pop(after.key, None)
            self.notify(f"{after.key}: restored {after.allocation.describe()} — confirmed by read-back in {ms:.0f} ms",
                        title="Switch undone", timeout=15)
        if result.warning:
            self.bell()
            self.notify(f"NOT RECORDED in the audit journal: {result.warning}", title="Journal",
                        severity="error", timeout=30)
        self._redraw()
