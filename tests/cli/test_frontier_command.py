"""`routedeck frontier`: the table on stdout, the SVG image, one-line errors."""

from __future__ import annotations

from console.cli import main


def test_frontier_prints_the_table_and_writes_the_image(tmp_path, capsys):
    svg = tmp_path / "frontier.svg"
    code = main(["frontier", "--state-dir", str(tmp_path), "--metrics", "sim:steady?minutes=6",
                 "--flag", "support-answer-route", "--svg", str(svg)])
    out = capsys.readouterr().out
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines()[1:] if line and not line.startswith("wrote")}
    assert set(lines) == {"fast_default_v1●", "balanced_core_v2◆"}
    assert all(line.rstrip().endswith("frontier") for line in lines.values())
    text = svg.read_text()
    assert text.startswith("<svg") and "balanced_core_v2" in text and "support-answer-route" in text


def test_frontier_of_every_route_marks_the_dominated(tmp_path, capsys):
    assert main(["frontier", "--state-dir", str(tmp_path), "--metrics", "sim:steady?minutes=6"]) == 0
    out = capsys.readouterr().out
    assert "dominated by small_low_cost_v1" in out and "premium_hard_cases_v1" in out


def test_frontier_bad_flag_is_one_line(tmp_path, capsys):
    code = main(["frontier", "--state-dir", str(tmp_path), "--metrics", "sim:steady", "--flag", "nope"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "--flag nope: not on flagd:" in err and "support-answer-route" in err
