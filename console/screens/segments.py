"""`s`: segment readouts — candidate vs baseline within each pre-registered segment, harm highlighted.

Keys of its own: ↑/↓ pick a row; ``e`` excludes the highlighted segment from the candidate when it
is flagged harm (a confirm dialog shows the targeting before and after, Cancel focused, a reason
required; the App writes it like every other change); ``ctrl+r`` reads again now. ``esc`` goes back,
as everywhere. The readout is computed in a worker and read again every ``REFRESH_S`` seconds after
the previous read finished, and at once when the flag changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Static

from console.core.errors import RouteDeckError
from console.core.registry import lookup
from console.core.stats.engine import fmt
from console.core.safe_text import visible
from console.core.stats.segments import SegmentRow, format_e, format_p
from console.screens.base import SessionScreen
from widgets.notice_bar import NoticeBar
from widgets.footer import KeysFooter

if TYPE_CHECKING:
    from console.core.operations import SegmentLook
    from console.screens.confirm import Answer

REFRESH_S = 10.0
WIDE_COLUMNS = ("segment", "metric", "verdict", "cand", "base", "Δ interval", "margin", "n c/b", "e", "p")
#: 80 columns: every figure shown whole; the highlighted row's margin and evidence go below the table
NARROW_COLUMNS = WIDE_COLUMNS[:6]
VERDICT_STYLE = {"harm": "bold red", "non-inferior": "green", "inconclusive": "yellow", "no data": "bold yellow"}


class SegmentsScreen(SessionScreen):
    AUTO_FOCUS = "#segment-rows"
    DEFAULT_CSS = """
    SegmentsScreen { layout: vertical; }
    SegmentsScreen #segments-title { height: auto; padding: 0 1; }
    SegmentsScreen DataTable { height: 1fr; }
    SegmentsScreen #segments-notes { height: auto; max-height: 6; padding: 0 1; }
    """
    FOOTER = ("rollback", "back", "help", "quit")
    BINDINGS = [
        Binding("e", "exclude", "Exclude segment", id="segments_exclude",
                tooltip="send the highlighted harmed segment to the baseline (confirmed, journalled)"),
        Binding("ctrl+r", "reload", "Read again", id="segments_reload", tooltip="read the segments again now"),
    ]

    @dataclass
    class Read(Message):
        look: "SegmentLook | None"
        error: str | None

    @dataclass
    class ExcludeConfirmed(Message):
        """The operator confirmed excluding ``segment`` of ``flag``: the App writes it (one way for every change)."""

        flag: str
        segment: tuple[str, str]
        reason: str
        evidence: dict

    def __init__(self, session) -> None:
        super().__init__(session)
        self.current: "SegmentLook | None" = None
        self.error: str | None = None
        self._rows: dict[str, SegmentRow] = {}
        self._timer = None
        self._revision: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="segments-title")
        table = DataTable(id="segment-rows", cursor_type="row", zebra_stripes=False)
        # verdict first after the names: at 80 columns the interval and evidence scroll, the verdict does not
        yield table
        yield Static(id="segments-notes")
        yield NoticeBar()
        yield KeysFooter(show_command_palette=False, compact=True)

    def on_mount(self) -> None:
        self._draw()
        self.action_reload()

    def highlighted_flag(self) -> str | None:
        rule = self.session.rule
        return rule.flag_key if rule is not None else None

    def render_session(self) -> None:
        """Read again when the flag changed (an exclusion confirmed, a change elsewhere); redraw the title."""
        rule = self.session.rule
        flag = self.session.flags.get(rule.flag_key) if rule is not None else None
        revision = flag.revision if flag is not None else None
        if revision != self._revision:
            self._revision = revision
            self.action_reload()
            return
        self._draw_title()

    # ---- reading ------------------------------------------------------------------

    def action_reload(self) -> None:
        s = self.session
        if s.rule is None or s.platform is None or s.metrics is None:
            self.error = "no decision rule: start the console with --rule FILE" if s.rule is None else \
                "still connecting to the flag platform and the metrics source"
            self._draw()
            return
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self.run_worker(partial(self._read_worker, s.rule, s.platform, s.metrics), thread=True, exclusive=True,
                        group="segments", exit_on_error=False)

    def _read_worker(self, rule, platform, metrics) -> None:
        from console.core.operations import look_segments

        try:
            self.post_message(self.Read(look_segments(rule, platform, metrics), None))
        except (RouteDeckError, OSError, NotImplementedError) as exc:
            self.post_message(self.Read(None, str(exc)))

    def on_segments_screen_read(self, message: "SegmentsScreen.Read") -> None:
        if message.look is not None:
            self.current, self.error = message.look, None
        else:
            self.error = message.error
        self._draw()
        # the next read is scheduled once this one is in: a slow source stretches the period
        self._timer = self.set_timer(REFRESH_S, self.action_reload)

    # ---- drawing ------------------------------------------------------------------

    def highlighted(self) -> SegmentRow | None:
        table = self.query_one("#segment-rows", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        return self._rows.get(key)

    def _draw_title(self) -> None:
        s = self.session
        title = Text.assemble(("Segments", "bold"))
        cur = self.current
        if cur is not None:
            r = cur.readout
            harm_rule = s.rule.segment_harm if s.rule is not None else "—"
            title.append(f" · {visible(cur.flag.key)} · stage {visible(cur.stage)} · e-BH over {r.hypotheses} tests "
                         f"at α {r.alpha:.3g} · segment_harm: {visible(harm_rule)}")
            if cur.flag.allocation.excluded_segments:
                names = ", ".join(f"{a}={v}" for a, v in cur.flag.allocation.excluded_segments)
                title.append(f"\nexcluded from the candidate: {visible(names)}", "bold")
            harmed = r.harmed
            excluded_rows = sum(row.note == "excluded from the candidate" for row in r.rows)
            no_data = sum(row.verdict.value == "no data" for row in r.rows) - excluded_rows
            if harmed:
                title.append("\nHARM in " + visible(", ".join(f"{a}={v}" for a, v in harmed)), "bold reverse red")
                title.append(" · e excludes the highlighted harmed segment", "red")
            elif not r.rows or no_data + excluded_rows == len(r.rows):
                # nothing compared is not a pass: say so in the colour of a missing value
                title.append("\nno segment could be compared yet — see the notes", "bold yellow")
            else:
                title.append("\nno segment shows harm beyond its margin after the correction", "green")
                if no_data:
                    title.append(f" ({no_data} rows have no data)", "yellow")
        busy = s.busy_with(cur.flag.key) if cur is not None else None
        if busy:
            title.append(f"\n{busy}…", "yellow")
        if self.error:
            title.append(f"\n{visible(self.error)}", "bold red")
        elif cur is None:
            title.append("\nreading the stage's units…", "dim")
        self.query_one("#segments-title", Static).update(title)

    def _wide(self) -> bool:
        return self.size.width >= 110

    def _draw(self) -> None:
        self._draw_title()
        cur = self.current
        table = self.query_one("#segment-rows", DataTable)
        keep = self.highlighted()
        columns = WIDE_COLUMNS if self._wide() else NARROW_COLUMNS
        if tuple(str(c.label) for c in table.columns.values()) != columns:
            table.clear(columns=True)
            table.add_columns(*columns)  # narrow: the margin and the evidence go to the line below the table
        table.clear()
        self._rows = {}
        rows = cur.readout.rows if cur is not None else []
        for i, row in enumerate(rows):
            key = f"{row.attribute}={row.value}|{row.metric}"
            self._rows[key] = row
            table.add_row(*self._cells(row)[:len(columns)], key=key)
        if rows:
            wanted = 0
            if keep is not None:
                wanted = next((i for i, row in enumerate(rows) if (row.segment, row.metric) == (keep.segment, keep.metric)), 0)
            else:
                wanted = next((i for i, row in enumerate(rows) if row.harm), 0)
            table.move_cursor(row=wanted)
        self._draw_notes()

    def on_data_table_row_highlighted(self) -> None:
        if self.current is not None:
            self._draw_notes()

    def on_resize(self) -> None:
        self._draw()

    def _draw_notes(self) -> None:
        cur = self.current
        rows = cur.readout.rows if cur is not None else []
        notes = Text()
        row = self.highlighted()
        if row is not None and not self._wide():
            cells = self._cells(row)
            notes.append(f"{visible(row.attribute)}={visible(row.value)} {visible(row.metric)}: margin {cells[6]} · "
                         f"n {cells[7]} · e {cells[8]} · p {cells[9]}\n", "bold")
        if cur is not None:
            for note in cur.readout.notes:
                notes.append(f"note: {visible(note)}\n", "yellow")
            for row in rows:
                if row.note and row.harm:
                    notes.append(visible(f"{row.attribute}={row.value} {row.metric}: {row.note}") + "\n", "dim")
        self.query_one("#segments-notes", Static).update(notes)

    @staticmethod
    def _cells(row: SegmentRow) -> list:
        m = lookup(row.metric)
        style = "bold red" if row.harm else ""
        iv = f"[{fmt(m, row.interval[0], True)}, {fmt(m, row.interval[1], True)}]" if row.interval else "—"
        margin = "—" if row.margin is None else fmt(m, row.margin if m.worse_is_higher else -row.margin, True)
        excluded = row.note == "excluded from the candidate"
        return [
            Text(f"{'! ' if row.harm else ''}{visible(row.attribute)}={visible(row.value)}", style),
            Text(m.label if m else visible(row.metric), style),
            Text("excluded", "bold") if excluded else Text(row.verdict.value, VERDICT_STYLE.get(row.verdict.value, "")),
            *(Text(cell) for cell in (fmt(m, row.candidate), fmt(m, row.baseline), iv, margin,
                                       f"{row.n_candidate}/{row.n_baseline}", format_e(row.e_value),
                                       format_p(row.p_value) if row.e_value > 0 else "—")),
        ]

    # ---- excluding a segment ------------------------------------------------------------

    def exclude_why_not(self) -> str | None:
        s = self.session
        if s.read_only:
            return "read-only console: actions that change flags are disabled"
        if self.current is None:
            return "the segment readout is still being computed"
        busy = s.busy_with(self.current.flag.key)
        if busy:
            return f"{busy} is in progress"
        if s.journal is None:
            return "no audit journal is open: an exclusion must be recorded"
        row = self.highlighted()
        if row is None:
            return "no segment rows at this stage"
        if not row.harm:
            return f"{row.attribute}={row.value} is not flagged harm on {row.metric}: only a harmed segment is excluded here"
        if row.segment in self.current.flag.allocation.excluded_segments:
            return f"{row.attribute}={row.value} is already excluded"
        return None

    def action_exclude(self) -> None:
        why = self.exclude_why_not()
        if why:
            self.notify(f"exclude: {visible(why)}", severity="warning", timeout=6, markup=False)
            return
        from console.core import operations
        from console.screens.confirm import ConfirmScreen

        row = self.highlighted()
        flag = self.current.flag
        after = flag.model_copy(update={"allocation": flag.allocation.model_copy(
            update={"excluded_segments": flag.allocation.excluded_segments + (row.segment,)})})
        metrics = [r for r in self.current.readout.rows if r.segment == row.segment and r.harm]
        change = operations.describe_change(flag, after) + [
            f"evidence: {r.metric} {fmt(lookup(r.metric), r.candidate)} vs {fmt(lookup(r.metric), r.baseline)}, "
            f"e {format_e(r.e_value)} (e-BH over {self.current.readout.hypotheses} tests)" for r in metrics]
        segment = row.segment
        evidence = operations.segment_evidence(self.current.readout, *segment)
        title = f"Exclude {segment[0]}={segment[1]} from the candidate on {flag.key}? Its units get {flag.baseline}."

        def confirmed(answer: "Answer | None") -> None:
            if answer is not None:
                self.post_message(self.ExcludeConfirmed(flag.key, segment, answer.reason, evidence))

        self.app.push_screen(ConfirmScreen(title, change, confirm_label="Exclude", reason_required=True,
                                           note="recorded in the audit journal with the rows above; "
                                                "confirmed by reading the flag back"), confirmed)
