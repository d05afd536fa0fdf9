"""The console's session model, without a terminal: reads, writes in flight, the data plane, what applies."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from console.commands.demo import DEMO_RULE
from console.core import availability as av
from console.core.models import Lease, RolloutState, Stage
from console.core.rules import load_rule
from console.core.session import QUIET_S, Session
from console.core.simulator.portfolio import demo_flags
from console.core.telemetry import Arm, MetricsSnapshot, RouteCounters, RouteKey, TimeBucket

FLAG = "support-answer-route"
CANDIDATE, BASELINE = "balanced_core_v2", "fast_default_v1"


def flags():
    return {f.key: f.model_copy(update={"revision": "r1"}) for f in demo_flags()}


def session(**kw) -> Session:
    now = [100.0]
    s = Session(clock=lambda: now[0], flags=flags(), **kw)
    s.tick = lambda dt: now.__setitem__(0, now[0] + dt)  # type: ignore[attr-defined]
    return s


def revised(flag, revision: str, **update):
    return flag.model_copy(update={"revision": revision, **update})


def test_a_read_that_overlapped_this_consoles_write_keeps_what_the_write_read_back():
    s = session()
    marker = s.read_marker()
    s.write_started(FLAG, "rollback")
    after = revised(s.flags[FLAG], "r2", allocation=s.flags[FLAG].allocation.rolled_back())
    s.write_ended(FLAG, "rollback", after)
    stale = flags()  # read before the write landed: still r1
    changed = s.flags_read(stale, marker)
    assert changed == [] and s.flags[FLAG].revision == "r2"
    # the next read (after the write) is taken as it is; the write's own revision is not a change elsewhere
    assert s.flags_read({**flags(), FLAG: after}, s.read_marker()) == []


def test_a_change_made_elsewhere_is_reported_once_and_settled_by_the_operators_own_write():
    s = session()
    other = revised(s.flags[FLAG], "r9", allocation=s.flags[FLAG].allocation.model_copy(update={"candidate_bp": 2000}))
    (old, new), = s.flags_read({**flags(), FLAG: other}, s.read_marker())
    assert (old.revision, new.revision) == ("r1", "r9")
    assert s.change_seen(FLAG, "r9", "allocation 5% → 20%", None) and FLAG in s.foreign
    assert not s.change_seen(FLAG, "r8", "older news", None)  # the flag has moved on: dropped
    s.write_started(FLAG, "rollback")
    s.write_ended(FLAG, "rollback", revised(other, "r10"))
    assert FLAG not in s.foreign and not s.writes


def test_each_backend_keeps_its_own_status_and_staleness():
    s = session(refresh_s=1.0)
    s.metrics_failed("HTTP 503")
    s.flags_read(flags(), s.read_marker())
    s.tick(20)
    assert s.metrics_status.error == "HTTP 503" and s.metrics_status.age(s.now()) is None
    assert s.metrics_status.stale(s.now(), 1.0) and s.flags_status.stale(s.now(), 1.0)
    s.flags_read(flags(), s.read_marker())
    assert not s.flags_status.stale(s.now(), 1.0) and s.flags_status.error is None
    assert s.metrics_status.failing_since == 100.0  # since the first failure, not the latest


def snapshot(buckets: list[tuple[float, float, dict[str, int]]]) -> MetricsSnapshot:
    """Buckets of (start, end, {route: requests}) of the flag."""
    out = []
    for start, end, routes in buckets:
        counters = {}
        for route, n in routes.items():
            arm = Arm.CANDIDATE if route == CANDIDATE else Arm.BASELINE
            counters[RouteKey(FLAG, route, arm)] = RouteCounters(requests=n)
        out.append(TimeBucket(start, end, counters))
    return MetricsSnapshot(out[0].start, out[-1].end, out[-1].end, out, MetricsSnapshot.total_of(out))


def rolled_back_session():
    s = session()
    before = s.flags[FLAG]
    s.flags[FLAG] = revised(before, "r2", allocation=before.allocation.rolled_back(),
                            rollout=RolloutState(stage=Stage.ROLLED_BACK))
    s.rolled_back(before, at=1000.0, reason="R pressed")
    return s


def test_candidate_traffic_after_a_rollback_is_shown_until_the_data_shows_it_stopped():
    s = rolled_back_session()
    watch = s.data_plane[FLAG]
    # an SDK still serving the old rules: candidate requests after the rollback
    s.metrics_read(snapshot([(995, 1000, {CANDIDATE: 2, BASELINE: 40}), (1000, 1005, {CANDIDATE: 1, BASELINE: 40})]), [])
    assert watch.candidate_last_seen == 1005 and not watch.confirmed
    # traffic on the flag, none on the candidate, for longer than the quiet spell: confirmed
    quiet = [(1005 + 5 * i, 1010 + 5 * i, {BASELINE: 40}) for i in range(int(QUIET_S // 5) + 2)]
    s.metrics_read(snapshot([(1000, 1005, {CANDIDATE: 1, BASELINE: 40})] + quiet), [])
    assert watch.confirmed and watch.quiet_since == 1005
    assert watch.as_detail()["candidate_last_seen"] == 1005


def test_no_data_after_a_rollback_is_never_taken_as_no_candidate_traffic():
    s = rolled_back_session()
    empty = [(1000 + 5 * i, 1005 + 5 * i, {}) for i in range(10)]  # the source answers, but nobody's requests
    s.metrics_read(snapshot([(995, 1000, {CANDIDATE: 1, BASELINE: 10})] + empty), [])
    assert not s.data_plane[FLAG].confirmed


def test_a_new_rollout_ends_the_watch_of_the_last_rollback():
    s = rolled_back_session()
    serving = revised(s.flags[FLAG], "r3", allocation=s.flags[FLAG].allocation.model_copy(update={"candidate_bp": 500}))
    s.flags[FLAG] = serving
    s.metrics_read(snapshot([(1000, 1005, {CANDIDATE: 1, BASELINE: 40})]), [])
    assert FLAG not in s.data_plane


def test_rollback_acts_on_the_flag_in_view_and_says_why_not_otherwise():
    s = session()
    s.platform = object()  # connected
    s.in_view = FLAG
    assert av.rollback_target(s) == (FLAG, "")
    s.in_view = "classify-route"  # no candidate: the only flag in rollout is the one R means
    assert av.rollback_target(s) == (FLAG, "")
    s.flags[FLAG] = revised(s.flags[FLAG], "r2", allocation=s.flags[FLAG].allocation.rolled_back())
    key, why = av.rollback_target(s)
    assert key is None and "has no candidate route" in why
    s.in_view = FLAG
    assert av.rollback_target(s) == (None, f"{FLAG} already serves 100% baseline ({BASELINE})")


def test_quitting_asks_while_this_console_is_the_only_automatic_rollback_watch():
    s = session()
    s.set_rules([load_rule(DEMO_RULE)])
    assert FLAG in av.unguarded_rollouts(s) and "only automatic-rollback watch" in av.quit_question(s)
    # a headless guard holds the flag's lease: quitting leaves the rollout guarded
    lease = Lease(holder="guard:host:42", expires_at=datetime.now(timezone.utc) + timedelta(minutes=1))
    flag = s.flags[FLAG]
    s.flags[FLAG] = revised(flag, "r2", rollout=flag.rollout.model_copy(update={"lease": lease}))
    assert av.quit_question(s) is None
    # a write in flight: its outcome would go unseen
    s.write_started(FLAG, "advance")
    assert "advance of support-answer-route is in flight" in av.quit_question(s)
    # a read-only console guards nothing
    s.writes.clear()
    s.flags[FLAG] = flag
    s.read_only = True
    assert av.quit_question(s) is None


def test_an_action_being_confirmed_or_written_holds_the_others_on_that_flag():
    s = session()
    s.set_rules([load_rule(DEMO_RULE)])
    s.platform, s.metrics = object(), object()
    s.pending[FLAG] = "preparing advance"
    assert "preparing advance of support-answer-route is in progress" in av.rollout_why_not(s, "hold")
    s.pending.clear()
    s.write_started(FLAG, "acknowledge")
    assert "acknowledge of support-answer-route is in progress" in av.rollout_why_not(s, "promote")
