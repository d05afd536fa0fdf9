"""Replicas write the single process's records; a bad event file is one line naming the file and line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.flags.flagd_file import FlagdFilePlatform
from console.backends import open_metrics
from console.core.errors import BackendError, BadInput
from console.core.models import Allocation, RouteFlag, RouteProfile

ROOT = Path(__file__).resolve().parents[2]
FLAG, BASELINE, CANDIDATE = "support-answer-route", "fast_default_v1", "balanced_core_v2"
START = "2026-12-07T10:00:00Z"


def _flags(path: Path) -> Path:
    platform = FlagdFilePlatform(path)
    flag = platform.create_flag(RouteFlag(
        key=FLAG, baseline=BASELINE, candidate=CANDIDATE,
        variations={BASELINE: RouteProfile(route=BASELINE, model="provider-a/standard"),
                    CANDIDATE: RouteProfile(route=CANDIDATE, model="provider-b/balanced")},
        allocation=Allocation(internal_audience="internal_support_team", eligible_scope="english_support_chat"),
    )).after
    platform.set_allocation(FLAG, flag.allocation.model_copy(update={"candidate_bp": 5000}), flag.revision)
    return path


def _simulate(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "console.cli", "simulate", *argv], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def test_replicas_write_the_single_process_records_and_units_count_once(tmp_path):
    flags = _flags(tmp_path / "flags.json")
    common = ["--flags", f"flagd:{flags}", "--seed", "5", "--minutes", "8", "--start", START]
    one = _simulate(*common, "--events", str(tmp_path / "one"))
    three = _simulate(*common, "--events", str(tmp_path / "three"), "--replicas", "3")
    assert one.returncode == 0 and three.returncode == 0, one.stderr + three.stderr
    files = sorted((tmp_path / "three").glob("*.jsonl"))
    assert [f.name for f in files] == [f"events-{i}-of-3.jsonl" for i in range(3)]
    single = sorted((tmp_path / "one" / "events-0-of-1.jsonl").read_text().splitlines())
    union = sorted(line for f in files for line in f.read_text().splitlines())
    assert union == single
    # a unit's requests are spread over the replicas: most units that made 3+ calls reached 2+ replicas
    where: dict[str, list[int]] = {}
    for i, f in enumerate(files):
        for line in f.read_text().splitlines():
            record = json.loads(line)
            if record["event.name"] == "routedeck.call":
                where.setdefault(record["feature_flag.context.id"], []).append(i)
    busy = [len(set(r)) for r in where.values() if len(r) >= 3]
    assert len(busy) > 100 and sum(n >= 2 for n in busy) > 0.8 * len(busy)

    arms = {BASELINE: "baseline", CANDIDATE: "candidate"}
    counted = {}
    for name in ("one", "three"):
        source = open_metrics(f"events:{tmp_path / name}?clock=data", None, arms_of=lambda f: arms)
        try:
            units = source.read_units(FLAG, 0.0)
        finally:
            source.close()
        counted[name] = sorted((u.unit_id, u.arm, u.requests, u.crossed, u.outcomes) for u in units)
    assert counted["three"] == counted["one"] and len(counted["one"]) > 300
    assert len({u for u, *_ in counted["three"]}) == len(counted["three"])  # each unit once


def _events_dir(tmp_path: Path, lines: list[str], name: str = "a.jsonl") -> Path:
    d = tmp_path / "ev"
    d.mkdir(exist_ok=True)
    (d / name).write_text("".join(lines))
    return d


GOOD = json.dumps({"time": "2026-12-07T10:00:00Z", "event.name": "feature_flag.evaluation",
                   "feature_flag.key": FLAG, "feature_flag.context.id": "user-secret-42",
                   "feature_flag.result.variant": BASELINE}) + "\n"


@pytest.mark.parametrize("bad, needle", [
    ('{"time": "2026-12-07T10:00:01Z", "event.name": "routedeck.call"}\n', "without required field"),
    (GOOD.replace('"user-secret-42"', '42'), "wrong type"),
    (GOOD.replace("2026-12-07T10:00:00Z", "yesterday"), "RFC 3339"),
    ("this is not json user-secret-42\n", "not a JSON object"),
])
def test_a_bad_record_is_one_line_naming_file_and_line_never_the_contents(tmp_path, bad, needle):
    d = _events_dir(tmp_path, [GOOD, GOOD, bad])
    source = open_metrics(f"events:{d}", None, arms_of=lambda f: {})
    try:
        with pytest.raises(BackendError) as caught:
            source.read_units(FLAG, 0.0)
    finally:
        source.close()
    message = str(caught.value)
    assert f"{d / 'a.jsonl'} line 3:" in message and needle in message, message
    assert "user-secret-42" not in message and "\n" not in message


def test_a_last_line_without_newline_is_left_for_later(tmp_path):
    d = _events_dir(tmp_path, [GOOD, GOOD[:40]])
    source = open_metrics(f"events:{d}", None, arms_of=lambda f: {})
    try:
        assert source.refresh() == 1
        with open(d / "a.jsonl", "a") as fh:
            fh.write(GOOD[40:])
        assert source.refresh() == 1
    finally:
        source.close()


def test_missing_directory_and_foreign_file(tmp_path):
    with pytest.raises(BadInput) as caught:
        open_metrics(f"events:{tmp_path / 'absent'}", None)
    assert "no such directory" in str(caught.value)
    d = _events_dir(tmp_path, [GOOD])
    (d / "notes.txt").write_text("hello")
    source = open_metrics(f"events:{d}", None, arms_of=lambda f: {})
    try:
        with pytest.raises(BackendError) as caught:
            source.read_units(FLAG, 0.0)
    finally:
        source.close()
    assert "notes.txt: not a .jsonl or .parquet file" in str(caught.value)


def test_parquet_files_are_read_and_a_missing_value_names_the_row(tmp_path):
    import duckdb

    d = tmp_path / "pq"
    d.mkdir()
    src = _events_dir(tmp_path, [GOOD, GOOD.replace("user-secret-42", "u2")])
    duckdb.sql(f"COPY (SELECT * FROM read_json_auto('{src / 'a.jsonl'}')) TO '{d / 'ok.parquet'}' (FORMAT parquet)")
    source = open_metrics(f"events:{d}", None, arms_of=lambda f: {})
    try:
        assert source.refresh() == 2
    finally:
        source.close()
    duckdb.sql(f"""COPY (SELECT * REPLACE (CASE WHEN "feature_flag.context.id" = 'u2' THEN NULL
                   ELSE "feature_flag.context.id" END AS "feature_flag.context.id")
                   FROM read_json_auto('{src / 'a.jsonl'}')) TO '{d / 'bad.parquet'}' (FORMAT parquet)""")
    source = open_metrics(f"events:{d}", None, arms_of=lambda f: {})
    try:
        with pytest.raises(BackendError) as caught:
            source.refresh()
    finally:
        source.close()
    assert f"{d / 'bad.parquet'} row 2:" in str(caught.value)



def test_parquet_files_checked_together_still_name_the_first_bad_one_in_order(tmp_path):
    """New Parquet files are checked in one query per column set; the error names the first bad file in the
    directory's order, before a later bad JSON Lines file or a later bad Parquet file, and the files before it
    are taken in."""
    import duckdb

    d = tmp_path / "pq"
    d.mkdir()
    src = _events_dir(tmp_path, [GOOD, GOOD.replace("user-secret-42", "u2")])
    good = f"(SELECT * FROM read_json_auto('{src / 'a.jsonl'}'))"
    bad = f"""(SELECT * REPLACE (CASE WHEN "feature_flag.context.id" = 'u2' THEN NULL
              ELSE "feature_flag.context.id" END AS "feature_flag.context.id") FROM read_json_auto('{src / 'a.jsonl'}'))"""
    duckdb.sql(f"COPY {good} TO '{d / 'a-ok.parquet'}' (FORMAT parquet)")
    duckdb.sql(f"COPY {bad} TO '{d / 'b-bad.parquet'}' (FORMAT parquet)")
    duckdb.sql(f"COPY {good} TO '{d / 'c-ok.parquet'}' (FORMAT parquet)")
    duckdb.sql(f"COPY {bad} TO '{d / 'e-bad.parquet'}' (FORMAT parquet)")
    (d / "d-bad.jsonl").write_text("not json\n")
    source = open_metrics(f"events:{d}", None, arms_of=lambda f: {})
    try:
        with pytest.raises(BackendError) as caught:
            source.refresh()
        assert str(caught.value).startswith(f"{d / 'b-bad.parquet'} row 2:")
        (d / "b-bad.parquet").unlink()
        with pytest.raises(BackendError) as caught:
            source.refresh()
        assert str(caught.value).startswith(f"{d / 'd-bad.jsonl'} line 1:")
        (d / "d-bad.jsonl").unlink()
        with pytest.raises(BackendError) as caught:
            source.refresh()
        assert str(caught.value).startswith(f"{d / 'e-bad.parquet'} row 2:")
        (d / "e-bad.parquet").unlink()
        source.refresh()
        assert source.db.execute("SELECT count(*) FROM ev").fetchone()[0] == 4  # a-ok and c-ok, each once
    finally:
        source.close()


def test_a_parquet_file_removed_after_it_was_read_is_one_line(tmp_path):
    """Parquet files are read in place: one taken away under a running source is said, never a traceback."""
    import duckdb

    d = tmp_path / "pq"
    d.mkdir()
    src = _events_dir(tmp_path, [GOOD, GOOD.replace("user-secret-42", "u2")])
    duckdb.sql(f"COPY (SELECT * FROM read_json_auto('{src / 'a.jsonl'}')) TO '{d / 'ok.parquet'}' (FORMAT parquet)")
    source = open_metrics(f"events:{d}", None, arms_of=lambda f: {})
    try:
        assert source.refresh() == 2
        (d / "ok.parquet").unlink()
        with pytest.raises(BackendError) as caught:
            source.read(0.0, 2e9, 1e9)
    finally:
        source.close()
    message = str(caught.value)
    assert f"events:{d}" in message and "keep event files in place" in message and "\n" not in message
