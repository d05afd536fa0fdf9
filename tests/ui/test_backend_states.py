"""A backend that fails shows in the header with the age of the last good data; the console never crashes."""

from __future__ import annotations

from console.cli import main
from console.core.errors import BackendError

from .helpers import demo_app, sim_source
from widgets.status_header import header_lines


class FailingAfterFirst:
    """Wraps a metrics source: the first read answers, later ones fail like a refusing server."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.calls = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def read(self, start, end, step):
        self.calls += 1
        if self.calls > 1:
            raise BackendError("prometheus:http://127.0.0.1:9 answered HTTP 503 — retry later")
        return self.inner.read(start, end, step)


async def test_failing_metrics_show_age_of_last_good_data(tmp_path):
    from console.commands.demo import prepare_state_dir

    path = prepare_state_dir(tmp_path)
    now = [100.0]
    source = FailingAfterFirst(sim_source(path))
    app = demo_app(tmp_path, metrics=source, clock=lambda: now[0], refresh_s=0.05)
    async with app.run_test(size=(100, 30)) as pilot:
        for _ in range(100):
            await pilot.pause(0.05)
            if app.session.metrics_status.error:
                break
        failing_since = app.session.metrics_status.failing_since
        now[0] = failing_since + 14.0
        lines = [line.plain for line in header_lines(app.session, 200)]
        # the failing backend has a line of its own: since when, how old the figures shown are, and why
        (failing,) = [line for line in lines if line.startswith("metrics FAILING")]
        assert "for 14s" in failing and "figures shown from 14s ago" in failing and "HTTP 503" in failing
        assert "figures stale" in lines[-1]
        assert not any(line.startswith("flags FAILING") for line in lines)
        assert app.session.figures, "the last good figures stay on screen"
        await pilot.press("R")  # the flag platform is fine: rollback still works
        for _ in range(100):
            await pilot.pause(0.05)
            if not app.session.writes and app.session.flags["support-answer-route"].allocation.candidate_bp == 0:
                break
        assert app.session.flags["support-answer-route"].allocation.candidate_bp == 0


def test_console_on_backends_needs_both_specs(capsys, tmp_path):
    assert main(["--flags", f"flagd:{tmp_path / 'flags.json'}"]) == 2
    assert "needs both --flags SPEC and --metrics SPEC" in capsys.readouterr().err
    assert main(["--flags", f"flagd:{tmp_path / 'missing.json'}", "--metrics", "sim:steady"]) == 2
    err = capsys.readouterr().err
    assert "missing.json: no such flag file" in err and err.count("\n") == 1


async def test_a_long_backend_error_keeps_what_to_do_at_80_columns(tmp_path):
    from console.commands.demo import prepare_state_dir

    path = prepare_state_dir(tmp_path)
    source = FailingAfterFirst(sim_source(path))
    long_path = "/var/lib/team/llm-events/replica-group-a/2026-12-07/events-0-of-3.jsonl"
    source.read = lambda *a: (_ for _ in ()).throw(BackendError(
        f"{long_path} line 1: field 'event.name' missing or not one of feature_flag.evaluation, routedeck.call, "
        "routedeck.outcome — fix the file (docs/events.md)"))
    app = demo_app(tmp_path, metrics=source, refresh_s=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(100):
            await pilot.pause(0.05)
            if app.session.metrics_status.error:
                break
        text = " ".join(line.plain.strip() for line in header_lines(app.session, 80))
        # the file, the line and what to do are all on screen: the error wraps, it is not cut
        assert long_path in text and "fix the file (docs/events.md)" in text and "…" not in text.split("metrics FAILING")[1]
