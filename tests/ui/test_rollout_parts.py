"""The rollout screen's small renderings: the stage ladder and an interval drawn against its margin."""

from __future__ import annotations

from widgets.rollout_parts import interval_bar, ladder, sparkline


def test_ladder_ticks_done_stages_and_marks_the_current_one():
    text = ladder(["internal", "5%", "20%", "full"], "20%")
    assert text.plain.startswith("✓internal ─ ✓5% ─  20%  ─ full ─ promoted")
    assert ladder(["internal", "5%"], "baseline").plain.startswith("not started")
    assert ladder(["internal", "5%"], "5%", ended="rolled back").plain.endswith("ROLLED BACK")
    assert ladder(["internal", "5%"], "x", ended="promoted").plain.endswith(" promoted ")


def test_harm_is_always_drawn_on_the_right_of_zero():
    # latency-like (higher is worse) and resolved-like (lower is worse), both harmed by the same amount
    worse_high = interval_bar(0.04, 0.06, 0.02, worse_is_higher=True, width=21).plain
    worse_low = interval_bar(-0.06, -0.04, 0.02, worse_is_higher=False, width=21).plain
    assert worse_high == worse_low
    zero, margin, first = worse_high.index("┼"), worse_high.index("┃"), worse_high.index("━")
    assert zero < margin < first  # the whole interval lies beyond the margin, on the harm side


def test_an_interval_inside_the_margin_stays_left_of_it():
    bar = interval_bar(-0.01, 0.01, 0.03, worse_is_higher=True, width=21).plain
    assert bar.rindex("━") < bar.index("┃")


def test_absolute_limit_and_sparkline():
    bar = interval_bar(0.01, 0.02, 0.05, worse_is_higher=True, width=20, absolute=True).plain
    assert "┼" not in bar and bar.rindex("━") < bar.index("┃")
    assert sparkline([1.0, None, 3.0]).plain == "▁·█"
    assert sparkline([None, None]).plain == "··"
