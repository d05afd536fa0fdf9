"""What the flagd flag-file platform promises beyond the shared contract: the exact file shape,
preserving what it does not manage, hand edits, errors for people, atomic writes, history."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import pytest
from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext

from adapters.flags.flagd_file import OUTSIDE_EDIT, FlagdFilePlatform
from console.core.errors import BackendError, BadInput, ConflictError
from console.core.models import Allocation, RolloutState, Stage

from .implementations import BASELINE, CANDIDATE, FLAG, seed_flag

AUDIENCE = {"==": [{"var": "audience"}, "internal_support_team"]}
SCOPE = {"==": [{"var": "scope"}, "english_support_chat"]}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    p = tmp_path / "flags.json"
    FlagdFilePlatform(p).create_flag(seed_flag())
    return p


def set_bp(platform: FlagdFilePlatform, bp: int, internal: bool = True, key: str = FLAG):
    flag = platform.read_flag(key)
    return platform.set_allocation(
        key, flag.allocation.model_copy(update={"candidate_bp": bp, "internal_enabled": internal}), flag.revision
    )


def raw_flag(path: Path, key: str = FLAG) -> dict:
    return json.loads(path.read_text())["flags"][key]


def edit(path: Path, fn) -> None:
    doc = json.loads(path.read_text())
    fn(doc)
    path.write_text(json.dumps(doc, indent=2))


def serve(path: Path, **attributes) -> str:
    core = FlagdCore()
    core.set_flags(path.read_text())
    ctx = EvaluationContext(targeting_key="unit-1", attributes=attributes)
    return core.resolve_object_value(FLAG, {}, ctx).variant


# ---- the file shape other code relies on ------------------------------------------------


def test_writes_the_documented_shape(path: Path) -> None:
    platform = FlagdFilePlatform(path)
    set_bp(platform, 500)
    raw = raw_flag(path)
    assert raw["state"] == "ENABLED" and raw["defaultVariant"] == BASELINE
    assert raw["variants"][CANDIDATE]["maxOutputTokens"] == 900  # camelCase profile wire JSON
    fractional = {"fractional": [[CANDIDATE, 500], [BASELINE, 9500]]}
    assert raw["targeting"] == {"if": [AUDIENCE, CANDIDATE, SCOPE, fractional, BASELINE]}
    meta = raw["metadata"]
    assert meta["routedeck.baseline"] == BASELINE and meta["routedeck.candidate"] == CANDIDATE
    assert meta["routedeck.internalAudience"] == "internal_support_team"
    assert meta["routedeck.eligibleScope"] == "english_support_chat"
    assert "routedeck.audiencePredicate" not in meta  # only explicit predicates are stored
    assert all(isinstance(v, str) for v in meta.values())  # flagd metadata values are scalars

    set_bp(platform, 2000, internal=False)
    assert raw_flag(path)["targeting"] == {"if": [SCOPE, {"fractional": [[CANDIDATE, 2000], [BASELINE, 8000]]}, BASELINE]}


def test_without_scope_the_split_applies_to_everyone(tmp_path: Path) -> None:
    p = tmp_path / "f.json"
    platform = FlagdFilePlatform(p)
    platform.create_flag(seed_flag().model_copy(update={"allocation": Allocation(internal_audience="staff")}))
    set_bp(platform, 300, internal=False)
    assert raw_flag(p)["targeting"] == {"fractional": [[CANDIDATE, 300], [BASELINE, 9700]]}
    set_bp(platform, 300, internal=True)
    staff = {"==": [{"var": "audience"}, "staff"]}
    assert raw_flag(p)["targeting"] == {"if": [staff, CANDIDATE, {"fractional": [[CANDIDATE, 300], [BASELINE, 9700]]}]}
    assert platform.read_flag(FLAG).allocation.candidate_bp == 300


def test_explicit_predicates_round_trip(tmp_path: Path) -> None:
    p = tmp_path / "f.json"
    scope = {"in": [{"var": "locale"}, ["en-GB", "en-US"]]}
    alloc = Allocation(eligible_scope="english", scope_predicate=scope, internal_audience="staff",
                       audience_predicate={"ends_with": [{"var": "email"}, "@example.com"]})
    platform = FlagdFilePlatform(p)
    platform.create_flag(seed_flag().model_copy(update={"allocation": alloc}))
    set_bp(platform, 1000)
    got = FlagdFilePlatform(p).read_flag(FLAG)
    assert got.allocation.scope_rule() == scope and got.foreign_targeting is None
    assert json.loads(raw_flag(p)["metadata"]["routedeck.scopePredicate"]) == scope
    assert serve(p, locale="en-GB", email="x@other.org") in (CANDIDATE, BASELINE)
    assert serve(p, locale="fr-FR", email="x@other.org") == BASELINE
    assert serve(p, locale="fr-FR", email="ana@example.com") == CANDIDATE


def test_flag_without_candidate_has_no_targeting(tmp_path: Path) -> None:
    p = tmp_path / "f.json"
    flag = seed_flag().model_copy(update={"candidate": None})
    FlagdFilePlatform(p).create_flag(flag)
    raw = raw_flag(p)
    assert "targeting" not in raw and "routedeck.candidate" not in raw["metadata"]
    assert serve(p, scope="english_support_chat") == BASELINE


def test_keeps_everything_it_does_not_manage(path: Path) -> None:
    def add_foreign(doc: dict) -> None:
        doc["$schema"] = "https://flagd.dev/schema/v0/flags.json"
        doc["metadata"] = {"team": "support", "version": 3}
        doc["$evaluators"] = {"emailDomain": {"ends_with": [{"var": "email"}, "@example.com"]}}
        doc["flags"]["dark-mode"] = {"state": "ENABLED", "defaultVariant": "off", "variants": {"on": True, "off": False}}
        doc["flags"][FLAG]["metadata"]["owner"] = "support-platform"
        doc["flags"][FLAG]["variants"][CANDIDATE]["temperature"] = 0.2
        doc["flags"][FLAG]["variants"][CANDIDATE]["note"] = "café ☕"

    edit(path, add_foreign)
    before = json.loads(path.read_text())
    platform = FlagdFilePlatform(path)
    assert platform.list_flags() == [FLAG]  # a boolean flag is not a route flag
    set_bp(platform, 500)
    after = json.loads(path.read_text())
    for key in ("$schema", "metadata", "$evaluators"):
        assert after[key] == before[key]
    assert after["flags"]["dark-mode"] == before["flags"]["dark-mode"]
    assert after["flags"][FLAG]["metadata"]["owner"] == "support-platform"
    assert after["flags"][FLAG]["variants"] == before["flags"][FLAG]["variants"]
    assert "café ☕" in path.read_text(encoding="utf-8")  # written as text, not \\u escapes


# ---- hand edits -----------------------------------------------------------------------


def test_hand_edited_targeting_is_reported_refused_and_rolled_back(path: Path) -> None:
    platform = FlagdFilePlatform(path)
    set_bp(platform, 500)
    edit(path, lambda d: d["flags"][FLAG].update(targeting={"if": [{"==": [{"var": "plan"}, "pro"]}, CANDIDATE, BASELINE]}))
    flag = platform.read_flag(FLAG)
    assert flag.foreign_targeting and "not in the shape routedeck writes" in flag.foreign_targeting
    assert serve(path, plan="pro") == CANDIDATE  # the hand edit is live until rolled back
    with pytest.raises(ConflictError, match="did not write"):
        platform.set_allocation(FLAG, flag.allocation.model_copy(update={"candidate_bp": 2000}), flag.revision)
    result = platform.rollback_to_baseline(FLAG, flag.revision)
    assert result.after.foreign_targeting is None and result.after.allocation.candidate_bp == 0
    assert raw_flag(path)["targeting"]["if"][1] == {"fractional": [[CANDIDATE, 0], [BASELINE, 10_000]]}
    assert serve(path, plan="pro", scope="english_support_chat") == BASELINE


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda f: f.update(state="DISABLED"), "DISABLED"),
        (lambda f: f.update(defaultVariant=CANDIDATE), "defaultVariant"),
        (lambda f: f.update(targeting={"fractional": [[CANDIDATE, 50.0], [BASELINE, 50.0]]}), "fractional"),
        (lambda f: f["variants"].pop(CANDIDATE), "candidate"),
        (lambda f: f["metadata"].update({"routedeck.rollout": "{not json"}), "rollout"),
    ],
    ids=["disabled", "default-variant", "float-weights", "candidate-removed", "rollout-garbled"],
)
def test_other_hand_edits_are_reported_and_rollback_still_works(path: Path, change, words: str) -> None:
    platform = FlagdFilePlatform(path)
    set_bp(platform, 2000)
    edit(path, lambda d: change(d["flags"][FLAG]))
    flag = platform.read_flag(FLAG)
    assert flag.foreign_targeting and words in flag.foreign_targeting
    platform.rollback_to_baseline(FLAG)
    back = FlagdFilePlatform(path).read_flag(FLAG)
    assert back.foreign_targeting is None and not back.allocation.serves_candidate
    assert serve(path, scope="english_support_chat", audience="internal_support_team") == BASELINE


def test_sees_an_in_place_edit_with_same_size_and_mtime_at_once(path: Path) -> None:
    platform = FlagdFilePlatform(path)
    set_bp(platform, 500)
    assert platform.read_flag(FLAG).allocation.candidate_bp == 500  # warm the cache
    text = path.read_text()
    same_size = text.replace('"balanced_core_v2",\n                500', '"balanced_core_v2",\n                700')
    same_size = same_size.replace("9500", "9300")
    assert same_size != text and len(same_size) == len(text)
    st = path.stat()
    with open(path, "r+", encoding="utf-8") as fh:  # saved in place: same inode, same size
        fh.write(same_size)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the old mtime, as `rsync -t` or `touch -r` leave it
    assert platform.read_flag(FLAG).allocation.candidate_bp == 700


# ---- errors for people ------------------------------------------------------------------


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BadInput) as exc:
        FlagdFilePlatform(tmp_path / "nope.json").read_flag(FLAG)
    assert "nope.json" in one_line(exc) and "routedeck demo" in one_line(exc) and "--flags flagd:PATH" in one_line(exc)


def test_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    p = tmp_path / "f.json"
    p.write_text('{"flags": {\n  "a": {,}\n}}\n')
    with pytest.raises(BadInput) as exc:
        FlagdFilePlatform(p).list_flags()
    assert f"{p}:2:9:" in one_line(exc)


def test_flag_without_variants(path: Path) -> None:
    edit(path, lambda d: d["flags"][FLAG].pop("variants"))
    with pytest.raises(BadInput) as exc:
        FlagdFilePlatform(path).read_flag(FLAG)
    assert FLAG in one_line(exc) and "variants" in one_line(exc)


def test_invalid_profile_names_flag_variant_and_field(path: Path) -> None:
    edit(path, lambda d: d["flags"][FLAG]["variants"][CANDIDATE].update(maxOutputTokens=0))
    with pytest.raises(BadInput) as exc:
        FlagdFilePlatform(path).read_flag(FLAG)
    text = one_line(exc)
    assert FLAG in text and CANDIDATE in text and "maxOutputTokens" in text


def test_unknown_flag_lists_known_keys(path: Path) -> None:
    with pytest.raises(BadInput) as exc:
        FlagdFilePlatform(path).read_flag("support-answer-rout")
    assert "support-answer-rout" in one_line(exc) and FLAG in one_line(exc)


def test_unwritable_directory_is_a_backend_error_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")  # a file where a directory should be: unwritable even for root
    with pytest.raises(BackendError) as exc:
        FlagdFilePlatform(blocker / "flags.json").create_flag(seed_flag())
    assert str(blocker) in one_line(exc) and "writable" in one_line(exc)


def test_create_refuses_an_existing_flag(path: Path) -> None:
    before = path.read_bytes()
    with pytest.raises(BadInput, match="already exists"):
        FlagdFilePlatform(path).create_flag(seed_flag())
    assert path.read_bytes() == before


def test_spec_and_describe(tmp_path: Path) -> None:
    platform = FlagdFilePlatform.from_spec(f"flagd:{tmp_path}/x.json")
    assert platform.describe() == f"flagd:{tmp_path}/x.json" and platform.kind == "flagd"
    with pytest.raises(BadInput, match="flagd:PATH"):
        FlagdFilePlatform.from_spec("unleash:http://x")


# ---- atomic, locked writes ---------------------------------------------------------------


def test_failed_write_leaves_the_file_whole_and_no_temp_file(path: Path, monkeypatch) -> None:
    before = path.read_bytes()

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    import adapters.flags.flagd_file as flagd_file

    monkeypatch.setattr(flagd_file, "_exchange", boom)  # the swap that puts the new file in place
    with pytest.raises(BackendError, match="disk full"):
        set_bp(FlagdFilePlatform(path), 500)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["flags.json", "flags.json.history.jsonl", "flags.json.lock"]


def _writer(path: str, bp: int, n: int, out) -> None:
    platform = FlagdFilePlatform(Path(path))
    ok = conflicts = 0
    for _ in range(n):
        flag = platform.read_flag(FLAG)
        try:
            platform.set_allocation(FLAG, flag.allocation.model_copy(update={"candidate_bp": bp}), flag.revision)
            ok += 1
        except ConflictError:
            conflicts += 1
    out.put((ok, conflicts))


def test_concurrent_writers_never_lose_an_update(path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(path), bp, 15, out)) for bp in (500, 2000)]
    for p in procs:
        p.start()
    results = [out.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    ok = sum(r[0] for r in results)
    assert ok >= 15 and sum(r[0] + r[1] for r in results) == 30
    writes = [e for e in FlagdFilePlatform(path).history(FLAG) if e.action == "write"]
    assert len(writes) == ok  # every write that claimed success is in the file's history
    assert FlagdFilePlatform(path).read_flag(FLAG).allocation.candidate_bp in (500, 2000)


def test_rollback_reads_only_the_end_of_a_long_history(path: Path, monkeypatch) -> None:
    platform = FlagdFilePlatform(path)
    set_bp(platform, 500)
    history = path.with_name("flags.json.history.jsonl")
    last = history.read_text().splitlines()[-1]
    history.write_text((last + "\n") * 5000)  # months of writes
    set_bp(platform, 2000)

    def whole_history(self):
        raise AssertionError("a rollback read the whole history sidecar")

    # history() reads it all; a rollback must only need the newest entry (timings: benchmarks/)
    monkeypatch.setattr(FlagdFilePlatform, "_read_history", whole_history)
    result = platform.rollback_to_baseline(FLAG)
    assert result.after.allocation.candidate_bp == 0
    assert len(history.read_text().splitlines()) == 5002


# ---- history --------------------------------------------------------------------------


def test_history_names_the_os_user_and_the_allocations(path: Path) -> None:
    platform = FlagdFilePlatform(path)
    set_bp(platform, 500)
    newest = platform.history(FLAG)[0]
    assert newest.action == "write" and newest.actor and newest.actor != "?"
    assert newest.detail == "0% of english_support_chat → internal_support_team + 5% of english_support_chat"
    assert newest.after["allocation"]["candidate_bp"] == 500


def test_history_reports_an_edit_made_outside_and_keeps_it_after_the_next_write(path: Path) -> None:
    platform = FlagdFilePlatform(path)
    set_bp(platform, 500)
    assert [e.action for e in platform.history(FLAG)] == ["write", "create"]
    time.sleep(0.01)
    edit(path, lambda d: d["flags"][FLAG]["targeting"]["if"][3]["fractional"].__setitem__(0, [CANDIDATE, 5000]))
    edit(path, lambda d: d["flags"][FLAG]["targeting"]["if"][3]["fractional"].__setitem__(1, [BASELINE, 5000]))
    events = platform.history(FLAG)
    assert events[0].action == OUTSIDE_EDIT and "50%" in events[0].detail
    assert events[0].actor  # the file's owner
    time.sleep(0.01)
    set_bp(platform, 2000)
    assert [e.action for e in platform.history(FLAG)] == ["write", OUTSIDE_EDIT, "write", "create"]


def test_an_edit_to_another_flag_is_not_this_flags_history(path: Path) -> None:
    platform = FlagdFilePlatform(path)
    platform.create_flag(seed_flag("other-flag"))
    edit(path, lambda d: d["flags"]["other-flag"]["metadata"].update(owner="someone"))
    assert OUTSIDE_EDIT not in [e.action for e in platform.history(FLAG)]
    assert platform.history("other-flag")[0].action == OUTSIDE_EDIT


def test_rollout_state_lives_in_flag_metadata(path: Path) -> None:
    platform = FlagdFilePlatform(path)
    flag = platform.read_flag(FLAG)
    platform.set_rollout_state(FLAG, RolloutState(stage=Stage.INTERNAL, rule_hash="h1"), flag.revision)
    stored = json.loads(raw_flag(path)["metadata"]["routedeck.rollout"])
    assert stored["stage"] == "internal" and stored["rule_hash"] == "h1"
