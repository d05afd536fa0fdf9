"""The audit screen: routedeck's journal and the flag platform's own history as one timeline.

Keys: `j`/`k` (↑/↓) move, `g`/`G` first/last, `/` search, `F` flag, `w` who, `t` action type,
`d` time range (dates), `enter` the record's detail, `esc` clears the filters (or closes when none).
Every other key is the registry's, as on every screen (`q` quits, `R` rolls back, `?` helps).
Text from the journal and the platforms (who, why, flag keys) is drawn with ``visible``.
The journal and the platform's history are read in a worker; filtering runs in core on text
lower-cased once at load, and the list draws only the lines on screen.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from console.core.audit.timeline import (
    Timeline,
    TimelineFilter,
    TimelineRecord,
    allocation_changes,
    apply_filter,
    build_timeline,
    gather_history,
    parse_time_range,
)
from console.core.errors import RouteDeckError
from console.core.redact import redact
from console.core.safe_text import visible
from console.screens.base import SessionScreen
from widgets.audit_detail import diff_table, evidence_renderable
from widgets.audit_list import LEGEND, AuditList
from widgets.notice_bar import NoticeBar
from widgets.safe_input import SafeInput
from widgets.footer import KeysFooter

if TYPE_CHECKING:
    from console.core.audit.verify import VerifyReport
    from console.core.ports import FlagPlatform

#: how many changes of each flag's platform history are read
HISTORY_LIMIT = 1000
PROMPTS = {
    "text": ("search", "text in who, action, flag, reason or summary (enter applies, empty clears)"),
    "flag": ("flag", "flag contains…"),
    "actor": ("who", "who contains… (operator name or platform user)"),
    "action": ("action", "action contains… (advance, rollback, foreign_change, …)"),
    "range": ("time", "2h · 2026-11-23 · 2026-11-23T08:00..2026-11-23T09:30 · ..2026-11-23 (UTC)"),
}


@dataclass
class TimelineLoaded(Message):
    timeline: Timeline | None
    error: str | None


@dataclass
class ChainChecked(Message):
    report: "VerifyReport | None"
    error: str | None


def load_timeline(journal: Path | None, platform: "FlagPlatform | None", flags: list[str]) -> Timeline:
    """The journal and each flag's platform history, merged (blocking: call it in a worker)."""
    history, errors = {}, {}
    if platform is None:
        errors["flag platform"] = "not connected yet: the platform's own history is missing"
    else:
        keys = list(flags)
        if not keys:
            try:
                keys = platform.list_flags()
            except (RouteDeckError, OSError) as exc:
                errors["flag platform"] = redact(" ".join(str(exc).split()))
        history, errors_by_flag = gather_history(keys, lambda key: platform.history(key, HISTORY_LIMIT))
        errors.update({k: redact(v) for k, v in errors_by_flag.items()})
    return build_timeline(journal, history, history_errors=errors)


def chain_anchors(platform: "FlagPlatform | None", flags: list[str]) -> list:
    """The chain heads stored with each flag's rollout state (anchors outside the journal), with the journal
    that wrote each: another journal's anchor is reported as such, never as a rewrite of this one."""
    from console.core.journal import Anchor, ChainHead

    anchors = []
    for key in flags if platform is not None else ():
        try:
            rollout = platform.read_flag(key).rollout
        except (RouteDeckError, OSError):
            continue  # the timeline already says when the platform cannot be read
        if rollout is not None and rollout.chain_head:
            try:
                head = ChainHead.from_text(rollout.chain_head)
            except ValueError:
                continue  # not an anchor routedeck wrote: the verify report has nothing to check it against
            anchors.append(Anchor(head, rollout.chain_journal, f"flag {key}"))
    return anchors


class AuditScreen(SessionScreen):
    """The audit timeline (keys in the module docstring)."""

    AUTO_FOCUS = "AuditList"
    DEFAULT_CSS = """
    AuditScreen { layout: vertical; }
    AuditScreen #audit-header { height: auto; background: $boost; padding: 0 1; }
    AuditScreen #audit-prompt { dock: bottom; display: none; margin-bottom: 1; border: tall $accent; }
    AuditScreen #audit-prompt.shown { display: block; }
    """
    FOOTER = ("rollback", "back", "help", "quit")
    BINDINGS = [
        Binding("slash", "prompt('text')", "Search", id="audit_search", tooltip="text in who, action, flag, reason"),
        Binding("F", "prompt('flag')", "Flag", id="audit_flag", tooltip="only records of a flag"),
        Binding("w", "prompt('actor')", "Who", id="audit_actor", tooltip="only records by someone"),
        Binding("t", "prompt('action')", "Action", id="audit_action", tooltip="only an action type"),
        Binding("d", "prompt('range')", "Dates", id="audit_range", tooltip="a time range (2h, a day, from..to)"),
    ]

    def __init__(self, session, journal: Path | str | None, platform: "FlagPlatform | None",
                 flags: list[str] | None = None) -> None:
        super().__init__(session)
        self.journal = Path(journal) if journal is not None else None
        self.platform = platform
        self.flags = list(flags or [])
        self.timeline: Timeline | None = None
        self.criteria = TimelineFilter()
        self.shown: list[int] = []
        self.load_error: str | None = None
        self._prompting: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text("Audit · loading…", style="bold"), id="audit-header")
        yield AuditList(id="audit-list", empty_text="loading the journal and the platform's history…")
        yield SafeInput(id="audit-prompt")
        yield NoticeBar()
        yield KeysFooter(show_command_palette=False, compact=True)

    def on_mount(self) -> None:
        # the first frame ("loading…") goes out before the worker starts competing for the interpreter
        self.call_after_refresh(self.run_worker, self._load, thread=True, exclusive=True, group="audit-load",
                                exit_on_error=False)

    # ---- loading (worker thread) ----------------------------------------------------

    def _load(self) -> None:
        try:
            timeline = load_timeline(self.journal, self.platform, self.flags)
        except (RouteDeckError, OSError, ValueError) as exc:  # a damaged journal: say what it is, stay up
            self.post_message(TimelineLoaded(None, redact(" ".join(str(exc).split())) or type(exc).__name__))
            return
        self.post_message(TimelineLoaded(timeline, None))
        if self.journal is None or not self.journal.exists():
            return
        try:
            from console.core.journal import verify

            report = verify(self.journal, chain_anchors(self.platform, self.flags))
            self.post_message(ChainChecked(report, None))
        except (RouteDeckError, OSError, ValueError) as exc:
            self.post_message(ChainChecked(None, redact(" ".join(str(exc).split())) or type(exc).__name__))

    def on_timeline_loaded(self, message: TimelineLoaded) -> None:
        self.timeline, self.load_error = message.timeline, message.error
        listing = self.query_one(AuditList)
        if self.timeline is None:
            listing.set_empty_text(f"the timeline could not be read: {message.error}")
        else:
            listing.set_empty_text("no record matches the filters" if len(self.timeline) else self._empty_reason())
        self._apply(keep=False)

    def on_chain_checked(self, message: ChainChecked) -> None:
        if self.timeline is not None and message.report is not None:
            self.timeline.report = message.report
        elif message.error:
            self.load_error = f"chain check failed: {message.error}"
        self._draw_header()

    def _empty_reason(self) -> str:
        if self.journal is None:
            return "no audit journal in this console, and the platform reported no change"
        if not self.journal.exists():
            return f"nothing journalled yet: {self.journal} does not exist"
        return "the journal is empty and the platform reported no change"

    # ---- filters --------------------------------------------------------------------

    def _apply(self, keep: bool = True) -> None:
        listing = self.query_one(AuditList)
        if self.timeline is None:
            self.shown = []
            listing.set_rows((), self.shown)
            self._draw_header()
            return
        listing_cursor = listing.cursor
        previous = self.shown[listing_cursor] if keep and self.shown and listing_cursor < len(self.shown) else None
        self.shown = apply_filter(self.timeline.records, self.criteria)
        cursor = None
        if previous is not None and self.shown:
            # stay on the same record, or the next one still shown
            cursor = min(bisect.bisect_left(self.shown, previous), len(self.shown) - 1)
        listing.set_rows(self.timeline.records, self.shown, cursor=cursor)
        self._draw_header()

    def action_prompt(self, field: str) -> None:
        if self.timeline is None:
            self.notify("audit: still loading", severity="warning", timeout=3)
            return
        name, hint = PROMPTS[field]
        prompt = self.query_one("#audit-prompt", Input)
        self._prompting = field
        current = {"text": self.criteria.text, "flag": self.criteria.flag, "actor": self.criteria.actor,
                   "action": self.criteria.action}.get(field, "")
        known = {"flag": "flag", "actor": "actor", "action": "action"}.get(field)
        if known:
            values = self.timeline.values(known)
            hint += " — " + (visible(", ".join(values[:6])) + (" …" if len(values) > 6 else "") if values else "none")
        prompt.placeholder = hint
        prompt.border_title = name
        prompt.value = current
        prompt.add_class("shown")
        prompt.focus()

    def on_input_submitted(self, message: Input.Submitted) -> None:
        message.stop()
        field, value = self._prompting, message.value.strip()
        if field is None:
            return
        if field == "range":
            try:
                since, until = parse_time_range(value, datetime.now(timezone.utc))
            except ValueError as exc:
                self.notify(f"time range: {visible(exc)}", severity="error", timeout=8, markup=False)
                return
            self.criteria = TimelineFilter(self.criteria.text, self.criteria.flag, self.criteria.actor, self.criteria.action,
                                         since, until)
        else:
            values = {"text": self.criteria.text, "flag": self.criteria.flag, "actor": self.criteria.actor,
                      "action": self.criteria.action} | {field: value}
            self.criteria = TimelineFilter(since=self.criteria.since, until=self.criteria.until, **values)
        self._close_prompt()
        self._apply()

    def _close_prompt(self) -> None:
        self._prompting = None
        self.query_one("#audit-prompt", Input).remove_class("shown")
        self.query_one(AuditList).focus()

    def action_back(self) -> None:
        """esc: close the prompt, else clear the filters, else leave the audit screen."""
        if self._prompting is not None:
            self._close_prompt()
            return
        if not self.criteria.empty:
            self.criteria = TimelineFilter()
            self._apply()
            return
        super().action_back()

    def render_session(self) -> None:
        """The timeline is read when the screen opens; the session changes nothing on it."""

    def highlighted_flag(self) -> str | None:
        """The flag of the highlighted record: `R` here rolls that flag back (when it is in rollout)."""
        record = self.query_one(AuditList).highlighted
        return record.flag if record is not None else None

    def on_audit_list_highlighted(self) -> None:
        self.tell_in_view()

    # ---- detail ---------------------------------------------------------------------

    def on_audit_list_selected(self, message: AuditList.Selected) -> None:
        if self.timeline is not None:
            self.app.push_screen(AuditDetailScreen(self.timeline, message.record))

    # ---- header ---------------------------------------------------------------------

    def _draw_header(self) -> None:
        width = max(20, self.size.width - 2)
        lines = [self._title_line(), self._filter_line()]
        lines += self._warning_lines()
        for line in lines:
            line.truncate(width, overflow="ellipsis")
        self.query_one("#audit-header", Static).update(Text("\n").join(lines))

    def _title_line(self) -> Text:
        line = Text("Audit", style="bold")
        t = self.timeline
        if t is None:
            line.append(" · " + ("could not be read" if self.load_error else "loading…"),
                        "bold red" if self.load_error else "dim")
            return line
        line.append(" · chain ")
        report = t.report
        if self.journal is None or not self.journal.exists():
            line.append("—", "dim")
        elif report is None:
            line.append("verifying…", "yellow")
        elif report.ok and report.entries == 0:
            line.append("empty (nothing journalled yet)", "dim")
        elif report.ok:
            line.append(f"verified (seq {report.head.seq})", "bold green")
        else:
            first = report.first_bad.describe() if report.first_bad else next(
                a.detail for a in report.anchors if a.status != "matched")
            line.append("NOT VERIFIED: " + visible(first), "bold red")
        outside = sum(1 for r in t.records if r.origin == "outside")
        line.append(f" · {t.entries:,} journal + {len(t) - t.entries:,} platform")
        if outside:
            line.append(f", {outside} not journalled", "bold yellow")
        return line

    def _filter_line(self) -> Text:
        total = len(self.timeline) if self.timeline is not None else 0
        line = Text(f"showing {len(self.shown):,} of {total:,}", style="bold")
        active = self.criteria.describe()
        if active:
            line.append(" · filters: ")
            line.append(visible(active), "bold cyan")
            line.append(" · esc clears", "dim")
        else:
            line.append(" · / search · F flag · w who · t action · d dates · enter detail", "dim")
        return line

    def _warning_lines(self) -> list[Text]:
        out = []
        if self.journal is None:
            out.append(Text("no audit journal: this console was started without one, so routedeck's own "
                            "decisions cannot be shown", style="bold yellow"))
        t = self.timeline
        if self.load_error:
            out.append(Text(visible(self.load_error), style="bold red"))
        if t is not None:
            if t.unreadable_lines:
                out.append(Text(f"{t.unreadable_lines} journal line(s) are not entries and are not shown — "
                                "run routedeck audit verify", style="bold red"))
            if t.torn_tail:
                out.append(Text("the journal's last line is incomplete (a write cut short): not shown", style="yellow"))
            for key, why in sorted(t.history_errors.items()):
                out.append(Text(f"platform history of {visible(key)} missing: {visible(why)}", style="yellow"))
        if not out and self.size.width >= 100:
            out.append(Text(LEGEND, style="dim"))
        return out

    def on_resize(self) -> None:
        self._draw_header()


class AuditDetailScreen(ModalScreen):
    """One record in full: who, when, why, the before/after diff, the evidence, the chain."""

    DEFAULT_CSS = """
    AuditDetailScreen { align: center middle; }
    AuditDetailScreen > VerticalScroll { width: 110; max-width: 100%; height: auto; max-height: 100%;
        border: round $primary; background: $surface; padding: 0 1; }
    """
    BINDINGS = [
        Binding("escape,q,enter", "dismiss", "Close"),
        Binding("j,down", "scroll('down')", "Down", show=False),
        Binding("k,up", "scroll('up')", "Up", show=False),
    ]

    def __init__(self, timeline: Timeline, record: TimelineRecord) -> None:
        super().__init__()
        self.timeline = timeline
        self.record = record

    def action_scroll(self, direction: str) -> None:
        view = self.query_one(VerticalScroll)
        (view.scroll_down if direction == "down" else view.scroll_up)(animate=False)

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(self.body(), id="audit-detail")
            yield Static("[dim]esc closes · j/k scroll[/dim]")

    def body(self) -> Group:
        r = self.record
        d = self.timeline.detail(r)
        parts: list = []
        title = Text.assemble((visible(r.action), "bold"), f" · {visible(r.flag or 'no flag')} · ", (visible(r.time), "bold"))
        parts.append(title)
        if r.source == "platform":
            parts += self._platform_lines(r)
        elif d.entry is None:
            parts.append(Text(visible(d.problem or "the entry could not be read"), style="bold red"))
        else:
            parts += self._journal_lines(d)
        parts.append(Text(f"chain: {visible(self.timeline.chain_status(r))}",
                          style="bold green" if self.timeline.chain_status(r).startswith("verified") else "bold yellow"))
        if d.before is not None or d.after is not None:
            parts.append(Text(""))
            parts.append(Text("allocation before → after", style="bold"))
            after_label = "planned" if d.entry is not None and d.entry.kind == "intent" else "after"
            parts.append(diff_table(allocation_changes(d.before, d.after), after_label=after_label))
        if d.evidence is not None:
            parts.append(Text(""))
            parts.append(Text("evidence", style="bold"))
            parts.append(evidence_renderable(d.evidence))
        return Group(*parts)

    def _journal_lines(self, d) -> list[Text]:
        e = d.entry
        op = e.operator
        who = f"{op.name} ({op.os_user}@{op.host})" if op.name else f"{op.os_user}@{op.host}"
        kind = e.kind + (f" · {e.status}" if e.status else "")
        lines = [
            Text(f"source: routedeck journal · {kind} · seq {e.seq} of {self.timeline.entries:,}"),
            Text(f"who: {visible(who)}" + (f" · profile {visible(e.profile)}" if e.profile else "")),
            Text(f"reason: {visible(e.reason or '—')}"),
            Text(f"rule hash: {visible(e.rule_hash or '—')}"),
        ]
        if e.error:
            lines.append(Text(f"error: {visible(e.error)}", style="bold red"))
        if e.detail:
            lines.append(Text("detail: " + visible(", ".join(f"{k}={v}" for k, v in sorted(e.detail.items())
                                                              if k != "rollout")), style="dim"))
        link = d.linked
        if e.kind == "intent":
            if link is None:
                lines.append(Text("outcome: none recorded (the process stopped before the call returned)",
                                  style="bold yellow"))
            else:
                lines.append(Text(f"outcome: {link.status} at {link.time} (seq {link.seq})",
                                  style="bold green" if link.status == "confirmed" else "bold red"))
        elif e.kind == "outcome" and link is not None:
            lines.append(Text(f"intent: seq {link.seq} at {link.time} — {visible(link.reason or 'no reason given')}"))
        paired = [p for p in self.timeline.records if p.paired_seq == e.seq]
        if paired:
            lines.append(Text(f"platform: the change shows in its history as {visible(paired[0].action)} "
                              f"by {visible(paired[0].actor)} at {paired[0].time}", style="dim"))
        return lines

    def _platform_lines(self, r: TimelineRecord) -> list[Text]:
        ev = r.event
        lines = [Text(f"source: the flag platform's own history · {visible(ev.action if ev else r.action)}"),
                 Text(f"who: {visible(r.actor)} (as the platform names them)")]
        if r.origin == "paired":
            lines.append(Text(f"made by routedeck: the journal's write at seq {r.paired_seq} "
                              "(intent before, outcome with the read-back after)", style="bold green"))
        elif r.origin == "outside":
            lines.append(Text(f"made by {visible(r.actor)} at {r.time}, and no journal entry covers it: "
                              "a change routedeck did not make (or did not record)", style="bold yellow"))
        else:
            lines.append(Text("no routing change (e.g. a lease or rollout-state update); not in the journal", style="dim"))
        if ev is not None and ev.detail:
            lines.append(Text(f"detail: {visible(ev.detail)}"))
        return lines
