"""Run the fault matrix (tests/faults, real servers) and print "what routedeck survives" as a Markdown table.

Each row is one or more tests of the suite; its result is theirs in this run (PASS only when every test
of the row passed), with the time they took. Usage: .venv/bin/python scripts/fault-table.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: (column, fault, what routedeck does, test name prefixes)
ROWS = [
    ("Unleash", "down / slow beyond the timeout / 401 / 500 / malformed JSON",
     "`check` exits 1 with one line naming Unleash and what to do; never 0, never the token",
     ["test_unleash_writes.py::test_platform_faults_are_one_line_naming_unleash_and_never_a_pass[down",
      "test_unleash_writes.py::test_platform_faults_are_one_line_naming_unleash_and_never_a_pass[slow-options1",
      "test_unleash_writes.py::test_platform_faults_are_one_line_naming_unleash_and_never_a_pass[status",
      "test_unleash_writes.py::test_malformed_json"]),
    ("Unleash", "slow, inside the profile's timeout", "works, only slower",
     ["test_unleash_writes.py::test_platform_faults_are_one_line_naming_unleash_and_never_a_pass[slow-options2"]),
    ("Unleash", "rollback's writes held, landing late; server stopped (SIGSTOP) mid-rollback",
     "the state never reads \"rolled back\" while the candidate serves; `check` says ROLLBACK (finish it); "
     "a guard finishes it", ["test_unleash_writes.py::test_a_rollback_held", "test_unleash_writes.py::test_a_rollback_of_a_stopped"]),
    ("Unleash", "an advance lands between the rollback's writes and its read-back",
     "the rollback re-reads and re-applies until it holds (2 attempts, journalled)",
     ["test_unleash_writes.py::test_a_rollback_racing"]),
    ("Unleash", "a strategy POST applied but answered 503", "no duplicate strategy: state checked before retrying",
     ["test_unleash_writes.py::test_a_strategy_post"]),
    ("Prometheus", "down", "`check` exits 1 naming it; a guard holds and retries",
     ["test_prometheus_cells.py::test_prometheus_down", "test_guard.py::test_blind_after_hold"]),
    ("Prometheus", "answers with no series / with NaN", "HOLD (exit 3), units 0/0, says why — never a pass",
     ["test_prometheus_cells.py::test_empty_or_nan"]),
    ("Prometheus", "server restarted on its data", "the guard holds while it is down, judges again after",
     ["test_prometheus_cells.py::test_a_guard_rides_out_a_prometheus_restart"]),
    ("guard", "a run of HTTP 500 from Prometheus or Unleash",
     "retries with backoff, says so (stderr, journal), keeps its lease; SIGTERM releases the lease",
     ["test_guard.py::test_the_guard_rides_out"]),
    ("guard", "a backend down for longer than give_up_after", "exits 1: \"gives up … nothing guards\", journalled",
     ["test_guard.py::test_a_lasting_outage"]),
    ("guard", "metrics unreadable past the rule's blind_after", "rolls back (or holds, saying it is blind)",
     ["test_guard.py::test_blind_after"]),
    ("guard", "two guards; a guard killed (SIGKILL)",
     "one lease holder; the killed one's lease stops others until it lapses, then another takes over",
     ["test_guard.py::test_two_guards", "test_guard.py::test_a_killed_guard"]),
    ("command line", "a write while a guard holds the lease; an advance the verdict refuses; metrics unreachable",
     "exit 5 (or --take-over-lease with a reason, journalled); exit 3/4; `check` exit 1, never 0",
     ["test_cli_outcomes.py::test_writes_respect", "test_cli_outcomes.py::test_advance_and_promote",
      "test_cli_outcomes.py::test_check_never", "test_cli_outcomes.py::test_every_help"]),
    ("journal", "cannot be opened; disk full between intent and outcome",
     "the rollback is made and confirmed; \"rolled back, but not journalled: why\"",
     ["test_cli_outcomes.py::test_a_rollback_whose_journal", "test_cli_outcomes.py::test_a_rollback_on_a_full_disk"]),
    ("journal", "a writer killed mid-append", "the torn bytes set aside, the chain goes on, verify passes",
     ["test_journal_faults.py::test_a_writer_killed"]),
    ("journal", "two operators' journals on one flag; cut below an anchor; torn outcome of a write that was made",
     "other journals' anchors named as such; the cut and the lost outcome found without --flags",
     ["test_journal_faults.py::test_another", "test_journal_faults.py::test_verify_checks",
      "test_journal_faults.py::test_a_torn_outcome", "test_journal_faults.py::test_a_problem_is_said_once"]),
    ("flag file", "lock held by a hung process", "fails after lock_timeout naming the lock, not a silent wait",
     ["test_files_and_rules.py::test_a_held_flag_file_lock"]),
    ("flag file", "hand edits racing a write", "never overwritten (atomic exchange, given back); a rollback still holds",
     ["test_files_and_rules.py::test_a_hand_edit", "test_files_and_rules.py::test_a_rollback_whose_read_back"]),
    ("flag file", "nested 200k deep; NaN/Infinity in a profile", "one line naming the file (and line)",
     ["test_files_and_rules.py::test_a_flag_file_nested", "test_files_and_rules.py::test_non_finite_numbers_in_route"]),
    ("rule", "YAML bomb; NaN/Inf margins", "refused at the line, before anything is judged",
     ["test_files_and_rules.py::test_a_yaml_bomb", "test_files_and_rules.py::test_a_rule_nested",
      "test_files_and_rules.py::test_non_finite_numbers_in_a_rule", "test_files_and_rules.py::test_a_nan_margin"]),
    ("text", "terminal escapes and markup in reasons, profiles, keys; a token pasted elsewhere",
     "shown as text everywhere (CLI, Markdown, JSON escaped); the journal keeps the bytes; the token masked",
     ["test_text_and_secrets.py::"]),
    ("versions", "state written by a newer routedeck; engine changed mid-stage",
     "refused with the version to install (rollback still works); HOLD until `ack --engine`",
     ["test_files_and_rules.py::test_an_older", "test_files_and_rules.py::test_an_engine_change"]),
]


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "faults.xml"
        started = time.monotonic()
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/faults",
                              f"--junitxml={xml}"], cwd=ROOT)
        wall = time.monotonic() - started
        results: dict[str, tuple[bool, float]] = {}
        for case in ET.parse(xml).getroot().iter("testcase"):
            name = f"{case.get('classname', '').rsplit('.', 1)[-1]}.py::{case.get('name')}"
            failed = any(child.tag in ("failure", "error", "skipped") for child in case)
            results[name] = (not failed, float(case.get("time") or 0))
    print("| where | fault | what routedeck does | result | s |")
    print("|---|---|---|---|---|")
    used: set[str] = set()
    for where, fault, does, prefixes in ROWS:
        mine = {n: r for n, r in results.items() if any(n.startswith(p) for p in prefixes)}
        used |= set(mine)
        ok = bool(mine) and all(r[0] for r in mine.values())
        print(f"| {where} | {fault} | {does} | {'PASS' if ok else 'FAIL'} ({len(mine)}) | "
              f"{sum(r[1] for r in mine.values()):.0f} |")
    passed = sum(1 for r in results.values() if r[0])
    print(f"\n{passed} of {len(results)} tests passed in {wall:.0f} s of wall time "
          f"({len(results) - len(used)} more tests of the suite, on exit codes and messages, are not in a row).")
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())
