"""KeysFooter: Textual's Footer, rebuilt only when the keys it shows change.

Textual's Footer removes and mounts all its keys after every ``refresh_bindings`` (a focus change, a
screen pushed, an action that starts or stops applying): at start-up that was four or five rebuilds
within the first half second, each mounting a widget per key. Here the keys are compared with the ones
on screen: the same keys draw nothing again, the same keys with another one greyed out only change
that key's state; anything else (another key, label or tooltip) rebuilds the footer as Textual does.

Textual's Footer scrolls what does not fit off its right edge, so at 80 columns a key could show cut
("K Acknowle") or not at all. Here the keys that do not fit are left out whole: first the greyed-out ones
(they do not apply now), from the right, then the rightmost others. Every key still works, and `?` lists
each with whether it applies.
"""

from __future__ import annotations

from textual import events
from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey


class KeysFooter(Footer):

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        #: what the keys on screen were composed from (None: not composed yet)
        self._drawn: tuple | None = None

    def _shown(self) -> tuple:
        """What ``compose`` draws from: each shown key (its label, action, group, tooltip), and whether it applies."""
        keys = tuple(
            (binding.key, self.app.get_key_display(binding), binding.description, binding.action,
             id(binding.group) if binding.group is not None else None, tooltip, enabled)
            for (_, binding, enabled, tooltip) in self.screen.active_bindings.values()
            if binding.show
        )
        palette = self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE
        return keys, palette, self.compact

    def compose(self):
        self._drawn = self._shown() if self._bindings_ready else None
        yield from super().compose()

    async def recompose(self) -> None:
        await super().recompose()
        self._fit()

    def on_resize(self, event: events.Resize) -> None:
        self._fit()

    def _fit(self) -> None:
        """Show the keys that fit the footer's width whole; leave out the rest (greyed-out ones first)."""
        keys = list(self.query_children(FooterKey))
        room = self.size.width
        if not keys or not room:
            return
        width = {key: key.render().cell_len + key.styles.margin.width for key in keys}
        total = sum(width.values())
        shown = set(keys)
        greyed = [key for key in keys if key.has_class("-disabled")]
        for key in [*reversed(greyed), *reversed([k for k in keys if k not in greyed])]:
            if total <= room:
                break
            shown.discard(key)
            total -= width[key]
        for key in keys:
            if key.display != (key in shown):
                key.display = key in shown

    def bindings_changed(self, screen: Screen) -> None:
        self._bindings_ready = True
        if not screen.app.app_focus:
            return
        if self.is_attached and screen is self.screen:
            self.call_after_refresh(self._update_keys)

    async def _update_keys(self) -> None:
        if not self.is_attached:
            return
        now = self._shown()
        if now == self._drawn:
            return  # the same keys, each as it was: nothing to draw
        drawn = self._drawn
        keys = list(self.query_children(FooterKey))
        same_keys = (drawn is not None and now[1:] == drawn[1:] and len(now[0]) == len(drawn[0])
                     and all(a[:-1] == b[:-1] for a, b in zip(now[0], drawn[0]))
                     and all(k[4] is None for k in now[0]) and not now[1] and len(keys) == len(now[0]))
        if same_keys:
            for widget, key in zip(keys, now[0]):
                disabled = not key[-1]
                widget._disabled = disabled
                widget.set_class(disabled, "-disabled")
            self._drawn = now
            self._fit()  # a key greyed out (or back) may change which keys fit
            return
        await self.recompose()
