"""StatusHeader: what the console is connected to, each flag's allocation and rollout, the verdicts, and
how fresh each backend's data is — every backend in its own place, a stale figure marked stale.

Keys: none (it only shows). Everything from outside (flag keys, route names, errors) goes in as
``Text`` through ``visible``: control characters shown, markup never read.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Static

from console.core.safe_text import visible
from widgets.styles import FAILING, STALE, VERDICT_STYLE

if TYPE_CHECKING:
    from console.core.models import RouteFlag
    from console.core.session import BackendStatus, DataPlane, Session


def clock_time(moment: float) -> str:
    """A time on the metrics source's clock, as the rollout's times are shown everywhere (UTC)."""
    return datetime.fromtimestamp(moment, tz=timezone.utc).strftime("%H:%M:%S")


def ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def stage_words(flag: "RouteFlag") -> str:
    from console.core.rollout import current_stage_name

    return current_stage_name(flag).replace("_", " ")


def squeeze(text: str, room: int) -> str:
    """``text`` in at most ``room`` cells, its middle replaced by … (a path's both ends say the most)."""
    if len(text) <= room:
        return text
    keep = max(4, room - 1)
    return text[: keep // 2] + "…" + text[len(text) - (keep - keep // 2):]


def _top(s: "Session", width: int = 200) -> Text:
    top = Text("routedeck ", style="bold")
    if s.read_only:
        top.append("READ-ONLY", "bold reverse")
        top.append(" ")
    from console.core.tls import tls_settings

    if tls_settings().warning:
        top.append(tls_settings().warning, "bold reverse red")
        top.append(" ")
    if s.platform is None or s.metrics is None:
        top.append("connecting to the flag platform and the metrics source…")
    else:
        flags, metrics = visible(s.platform.describe()), visible(s.metrics.describe())
        room = max(20, width - 2 - top.cell_len - len("flags  · metrics "))
        if len(flags) + len(metrics) > room:  # both ends of each: the kind and the file or host stay readable
            flags, metrics = squeeze(flags, room // 2), squeeze(metrics, room - room // 2)
        top.append(f"flags {flags} · metrics {metrics}")
    return top


def data_plane_line(s: "Session", key: str, watch: "DataPlane") -> Text:
    """After this console's rollback: when the traffic itself last showed the candidate, and whether it stopped."""
    line = Text(f"  rolled back {clock_time(watch.rolled_back_at)} · ")
    if watch.confirmed:
        line.append(f"no candidate traffic since {clock_time(watch.quiet_since)}", "bold green")
        line.append(" ✓", "green")
    elif watch.candidate_last_seen is not None and watch.candidate_last_seen > watch.rolled_back_at:
        late = watch.candidate_last_seen - watch.rolled_back_at
        line.append(f"candidate traffic still seen {clock_time(watch.candidate_last_seen)} (+{ago(late)})",
                    "bold yellow")
    else:
        line.append("waiting for the traffic to confirm it", "yellow")
    return line


def _flag_lines(s: "Session", flag: "RouteFlag", stale: bool) -> list[Text]:
    key = visible(flag.key)
    if flag.allocation.serve_all:
        return [Text.assemble((key, "bold"), ("  SWITCHED: everyone on ", "bold red"),
                              (visible(flag.allocation.serve_all), "bold red"),
                              f" (held: {visible(flag.allocation.held().describe())}) — u undoes")]
    line = Text.assemble((key, "bold"), f"  baseline {visible(flag.baseline)} → candidate ",
                         (visible(flag.candidate or "—"), "bold"))
    if flag.key in s.foreign:
        line.append("  changed elsewhere", "bold magenta")
    elif flag.key in s.by_routedeck:
        line.append("  changed by routedeck", "cyan")
    lines = [line]
    line = Text("  ◆ ")
    if flag.foreign_targeting:
        line.append(f"targeting unrecognised ({visible(flag.foreign_targeting)}) — R rewrites it to baseline", "bold red")
    elif flag.allocation.serves_candidate:
        line.append(visible(flag.allocation.describe()), "bold yellow")
    else:
        line.append("0% (100% baseline)", "green")
    line.append(f" · stage {stage_words(flag)}")
    if s.busy_with(flag.key):
        line.append(f" · {s.busy_with(flag.key)}…", "bold")
    if stale:
        line.append(" · as last read (stale)", STALE)
    lines.append(line)
    watch = s.data_plane.get(flag.key)
    if watch is not None and not flag.allocation.serves_candidate:
        lines.append(data_plane_line(s, flag.key, watch))
    return lines


def verdict_line(s: "Session", key: str) -> Text:
    rule, decision, error = s.rules[key], s.decisions.get(key), s.verdict_errors.get(key)
    from pathlib import PurePath

    line = Text(f"rule {visible(PurePath(str(rule.path)).name)} · " if len(s.rules) == 1 else f"{visible(key)} · ")
    flag = s.flags.get(key)
    from console.core.availability import ended

    over = ended(flag) if flag is not None else None
    if over:
        watch = s.data_plane.get(key)
        line.append(f"rollout {over}", "bold")
        if over == "rolled back" and watch is not None and watch.reason:
            # why this console rolled it back: the key, or the verdict the rule acted on
            line.append(" by this console — ")
            line.append(visible(watch.reason), VERDICT_STYLE["ROLLBACK"] if watch.reason.startswith("automatic") else "")
        else:
            line.append(": nothing to decide")
        from console.core.availability import next_rollout, restart_blocked

        line.append(f" · {next_rollout(flag, rule, short=True)}", "dim" if restart_blocked(flag, rule) is None else "yellow")
        return line
    if error:
        line.append(f"verdict unavailable: {visible(error)}", FAILING)
    elif decision is None:
        line.append("judging…", "dim")
    else:
        line.append(f"verdict {decision.verdict.value}", VERDICT_STYLE[decision.verdict.value])
        if decision.verdict.value == "HOLD" and decision.eta_s is not None:
            from console.core.stats.engine import eta_words, waits_for_a_person

            after = " once acknowledged" if waits_for_a_person(decision) else ""
            line.append(f" (ADVANCE {eta_words(decision.eta_s)}{after})", "cyan")
        judged = s.judged_at.get(key)
        if judged is not None and s.now() - judged > 3 * s.verdict_every_s:
            line.append(f" (judged {ago(s.now() - judged)} ago)", STALE)
        from console.core.availability import short_reason

        first = next((r for r in decision.reasons if not r.startswith("note")), decision.reasons[0] if decision.reasons
                     else "")
        if first:
            line.append(f" — {visible(short_reason(first, decision))}")
    return line


def _backend_line(name: str, status: "BackendStatus", now: float, what: str) -> Text | None:
    """A failing backend's own line: since when, the last good read, and the error."""
    if status.error is None:
        return None
    line = Text(f"{name} FAILING", FAILING)
    if status.failing_since is not None:
        line.append(f" for {ago(now - status.failing_since)}", FAILING)
    age = status.age(now)
    line.append(f" ({what} shown from {ago(age)} ago)" if age is not None else f" (no {what} read yet)", STALE)
    line.append(f": {visible(status.error)}")
    return line


def status_lines(s: "Session") -> list[Text]:
    now = s.now()
    out = [line for line in (
        _backend_line("flags", s.flags_status, now, "allocation"),
        _backend_line("metrics", s.metrics_status, now, "figures"),
    ) if line is not None]
    status = Text()
    if s.paused:
        status.append("PAUSED (space resumes)", "bold reverse")
        status.append(" · ")
    age = s.metrics_status.age(now)
    if s.metrics_status.error is None:
        if age is None:
            waited = now - (s.metrics_status.asked_at or s.started)
            status.append(f"waiting for the metrics source ({waited:.0f}s)", "yellow")
        else:
            stale = s.metrics_status.stale(now, s.refresh_s) and not s.paused
            # within a couple of reads the data is live; an age that flickers 0s/1s would redraw every second
            fresh = age < 2 * s.refresh_s + 1 and not stale
            status.append("data live" if fresh else f"data {age:.0f}s old", FAILING if stale else "green")
            if stale:
                status.append(" — metrics source not answering", FAILING)
    else:
        status.append("figures stale" if age is not None else "no figures", STALE)
    status.append(f" · window {s.window_label} · trend {s.trend_metric}", "dim")
    out.append(status)
    return out


def header_lines(s: "Session", width: int, compact: bool = False) -> list[Text]:
    """The header as lines of ``width`` columns. ``compact``: the connection and the backends' status only
    (a screen that shows the flags and the verdict itself)."""
    lines = [_top(s, width)]
    stale = s.flags_status.stale(s.now(), s.refresh_s)
    steady = []
    flag_rows: set[int] = set()
    if not compact:
        for flag in sorted(s.flags.values(), key=lambda f: f.key):
            if flag.candidate or flag.allocation.serve_all or flag.foreign_targeting:
                added = _flag_lines(s, flag, stale)
                flag_rows.update(range(len(lines), len(lines) + len(added)))
                lines.extend(added)
            else:
                promoted = flag.rollout is not None and flag.rollout.stage.value == "promoted"
                steady.append(f"{visible(flag.key)} → {visible(flag.baseline)}" + (" (promoted)" if promoted else ""))
        if steady:
            # "(stale)" first: a long list is cut at its end
            lines.append(Text(("steady (stale): " if stale else "steady: ") + ", ".join(steady), style="dim"))
    rules = [] if compact else list(s.rules)
    verdicts = range(len(lines), len(lines) + len(rules))
    lines.extend(verdict_line(s, key) for key in rules)
    status = status_lines(s)
    failing = range(len(lines), len(lines) + len(status) - 1)  # a failing backend's line: its error says what to fix
    lines.extend(status)
    room = max(10, width - 2)
    fitted = []
    for i, line in enumerate(lines):
        if (i in verdicts or i in failing or i in flag_rows) and line.cell_len > room:
            # a verdict's reason is what the operator acts on (two lines), a backend's error what to fix
            # (up to four), a rollout's flag what it serves now, with a write in flight or a stale read (two):
            # each wraps, never cut mid-word
            fitted.extend(wrap_once(line, room, 4 if i in failing else 2, " · " if i in flag_rows else None))
            continue
        line.truncate(room, overflow="ellipsis")
        fitted.append(line)
    return fitted


def wrap_once(line: Text, room: int, most: int = 2, parts: str | None = None) -> list[Text]:
    """``line`` as at most ``most`` lines of ``room`` cells, broken between words (between ``parts`` separators
    where one falls in the line's second half); the others indented."""
    out: list[Text] = []
    while len(out) < most - 1 and line.cell_len > room:
        cut = line.plain.rfind(parts, 0, room + 1) if parts else -1
        if cut <= room // 2:
            cut = line.plain.rfind(" ", 0, room + 1)
        if cut <= room // 2:
            cut = room
        out.append(line[:cut])
        rest = line[cut:]
        lead = len(rest.plain) - len(rest.plain.lstrip())
        line = Text("   ") + rest[lead:]
    line.truncate(room, overflow="ellipsis")
    return out + [line]


class StatusHeader(Static):
    """The console's header; ``show(session)`` redraws it (only when the text changed)."""

    DEFAULT_CSS = """
    StatusHeader { height: auto; background: $boost; padding: 0 1; }
    """

    def __init__(self, *, compact: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.compact = compact
        self._last: tuple[str, list] | None = None
        self._height = 0

    def show(self, session: "Session") -> None:
        width = self.size.width or self.app.size.width
        lines = header_lines(session, width, self.compact)
        text = Text("\n").join(lines)
        key = (text.plain, text.spans)
        if key != self._last:
            self._last = key
            # a layout pass (every widget re-measured and redrawn) only when the header's height changes:
            # the ages on it change every second, its height seldom
            self.update(text, layout=len(lines) != self._height)
            self._height = len(lines)
