"""`routedeck guard`: watch a rollout headless, one line per look, and roll back on a ROLLBACK verdict.

Each look takes (or renews) the flag's lease, reads the verdict and prints one line. On ROLLBACK
with the rule's `auto_rollback` on, everyone goes back to the baseline (journalled, confirmed by
read-back) and the guard exits 4.

A backend that fails does not end the watch: the guard retries with backoff (1 s doubling up to
--interval), says so on stderr and in the journal, and keeps renewing its lease while the flag
platform answers. Missing data holds, never passes; the rule's blind_after bounds how long the
candidate may serve that way. Only when a failure has lasted --give-up-after (default 10 minutes,
or the profile's give_up_after) does the guard exit 1, saying that nothing guards the rollout any
more. A failing metrics source does not count towards that while the rule's blind_after can still
roll back (the guard can act on its own verdict then).

Exit codes: 0 the rollout ended (promoted, or rolled back and confirmed so), 4 the guard rolled back,
5 another live guard or console holds the lease, 1 gave up on a failing backend, 2 bad input; after
--max-looks the code of the last verdict (0 advance, 3 hold, 4 rollback); 130 on Ctrl-C and 143 on
SIGTERM, both after releasing the lease.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime

from console.core.errors import BackendError, BadInput, RouteDeckError

from .common import EXIT_BACKEND, EXIT_ROLLBACK, add_backend_options, open_backends, open_journal, report_rollback

EXIT_DONE = 0
EXIT_LEASE_HELD = 5
EXIT_SIGTERM = 128 + signal.SIGTERM
DEFAULT_INTERVAL_S = 30.0
#: the first pause after a failure; it doubles on each failure in a row, up to --interval
FIRST_BACKOFF_S = 1.0


def add_parser(sub) -> None:
    p = sub.add_parser("guard", help="watch a rollout and roll back on a ROLLBACK verdict (holds the flag's lease)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_backend_options(p)
    p.add_argument("--interval", type=float, default=DEFAULT_INTERVAL_S,
                   help=f"seconds between looks (default {DEFAULT_INTERVAL_S:g}); the lease lasts 3× this, at least 30 s")
    p.add_argument("--max-looks", type=int, help="stop after N looks (default: until the rollout ends)")
    p.add_argument("--listen", metavar="HOST:PORT",
                   help="serve Prometheus metrics of the guard's decisions on http://HOST:PORT/metrics "
                        "(docs/alerts.md); HOST defaults to 127.0.0.1")
    p.add_argument("--listen-linger", type=float, default=60.0, metavar="SECONDS",
                   help="with --listen: keep serving this long after the guard ends, so the last decision and a "
                        "rollback are scraped (default 60)")
    p.add_argument("--give-up-after", metavar="DURATION",
                   help="exit 1 once a backend has failed for this long, e.g. 10m or 90s (default: the profile's "
                        "give_up_after, else 10m)")
    p.set_defaults(run=run)


def first_reason(decision) -> str:
    """The reason that decided the verdict: the first rollback reason on ROLLBACK, else the first one."""
    reasons = list(decision.reasons)
    if decision.verdict.value == "ROLLBACK":
        for r in reasons:
            if r.lower().startswith("rollback"):
                return r
    return reasons[0] if reasons else ""


def look_line(at: float, decision) -> str:
    when = datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    reason = " ".join(first_reason(decision).split())
    return (f"{when}  stage {decision.stage}  {decision.verdict.value:<8}  units {decision.units_candidate}/"
            f"{decision.units_baseline}  {reason}").rstrip()


def parse_give_up(text: str | None) -> float:
    from console.core.config import parse_seconds
    from console.core.timeouts import timeouts

    if text is None:
        return timeouts().give_up_after_s
    seconds = parse_seconds(text)
    if seconds is None or seconds <= 0:
        raise BadInput(f"--give-up-after {text!r}: must be a duration such as 10m, 90s or 600")
    return seconds


class MetricsFailed(BackendError):
    """The metrics source failed (the flag platform may be fine)."""


class _Watched:
    """The metrics source, with its failures told apart from the flag platform's."""

    def __init__(self, inner) -> None:
        self._inner = inner

    def __getattr__(self, name):
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            try:
                return attr(*args, **kwargs)
            except BackendError as exc:
                raise MetricsFailed(str(exc)) from None

        return call


class _Stopped(BaseException):
    """SIGTERM arrived: leave the loop through ``finally`` so the lease is released."""


@contextmanager
def _sigterm_stops():
    def stop(signum, frame):
        raise _Stopped()

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread (a test running the guard in one): nothing to install
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _pause(metrics, simulated: bool, seconds: float) -> None:
    if simulated:
        metrics.advance_by(seconds)  # simulated minutes: the next look sees `seconds` more traffic
    else:
        time.sleep(seconds)


def say(text: str) -> None:
    print(f"routedeck: {text}", file=sys.stderr, flush=True)


class Outage:
    """A run of failed looks: since when, what failed, and whether it counts towards giving up."""

    def __init__(self, at: float, what: str, counts: bool) -> None:
        self.since = at
        self.what = what
        self.counted_since = at if counts else None
        self.failures = 0


def run(args: argparse.Namespace) -> int:
    from console.backends import spec_query
    from console.core import lease
    from console.core.rules import load_rule

    if not args.interval > 0:
        raise BadInput(f"--interval {args.interval:g}: must be a positive number of seconds")
    if args.max_looks is not None and args.max_looks < 1:
        raise BadInput(f"--max-looks {args.max_looks}: must be 1 or more")
    give_up_s = parse_give_up(args.give_up_after)
    rule = load_rule(args.rule)
    platform, metrics = open_backends(args)
    simulated = (args.metrics or "").startswith("sim:") and "minutes" in spec_query(args.metrics) \
        and hasattr(metrics, "advance_by")
    holder = lease.default_holder("guard")
    args.operator = args.operator or holder
    listen = parse_listen(args.listen) if getattr(args, "listen", None) else None
    watch = Guard(args, rule, platform, metrics, holder, give_up_s, simulated)
    server = None
    try:
        with _sigterm_stops():
            if listen is not None:
                server = watch.serve_metrics(*listen)
            code = watch.run()
            if server is not None and args.listen_linger > 0:
                say(f"guard done (exit {code}); serving its decision metrics {args.listen_linger:g} s more")
                time.sleep(args.listen_linger)
            return code
    except _Stopped:
        say(f"guard stopped by SIGTERM; the lease on {rule.flag_key} is released")
        return EXIT_SIGTERM
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` or ``PORT`` (host 127.0.0.1); one-line error otherwise."""
    host, sep, port = text.rpartition(":")
    host = (host.strip("[]") if sep else "") or "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise BadInput(f"--listen {text!r}: expected HOST:PORT such as 127.0.0.1:9478")
    return host, int(port)


class Guard:
    def __init__(self, args, rule, platform, metrics, holder: str, give_up_s: float, simulated: bool) -> None:
        from console.core import lease
        from console.core.blind import BlindClock

        self.args = args
        self.rule = rule
        self.key = rule.flag_key
        self.platform = platform
        self.metrics = metrics
        self.watched = _Watched(metrics)
        self.holder = holder
        self.ttl = lease.ttl_for(args.interval)
        self.give_up_s = give_up_s
        self.simulated = simulated
        self.blind = BlindClock()
        self.journal = None
        self.journal_opened = False
        self.outage: Outage | None = None
        self.exporter = None  # the decision metrics, when --listen serves them

    def serve_metrics(self, host: str, port: int):
        """Serve the decision metrics on HOST:PORT; the server (its ``shutdown()`` stops it)."""
        from console.core.decision_metrics import DecisionMetrics

        self.exporter = DecisionMetrics()
        try:
            server = self.exporter.serve(host, port)
        except OSError as exc:
            raise BadInput(f"--listen {host}:{port}: cannot listen there ({exc.strerror or exc}) — choose "
                           "another port") from None
        say(f"guard: decision metrics on http://{host}:{port}/metrics")
        return server

    def _observe(self, flag, decision) -> None:
        if self.exporter is None:
            return
        from console.core.decision_metrics import stage_index
        from console.core.rollout import current_stage_name

        stage = current_stage_name(flag)
        self.exporter.observe(self.key, stage_index(stage, [s.name for s in self.rule.stages]), stage, decision)

    # ---- the loop ---------------------------------------------------------------------------

    def run(self) -> int:
        from console.core import lease
        from console.core.rollout import TERMINAL

        taken = False
        looks = 0
        previous = None  # the flag as the last look saw it, to notice a change made by someone else
        self.backoff = FIRST_BACKOFF_S
        try:
            while True:
                try:
                    lease.acquire(self.platform, self.key, self.holder, self.ttl)
                    taken = True
                    flag, decision, at = self._look()
                    self._observe(flag, decision)
                    looks += 1
                    if not self.journal_opened:
                        self._open_journal(flag)
                    elif previous is not None:
                        self._note_foreign(previous, flag)
                    previous = flag
                    print(look_line(at, decision), flush=True)
                    if decision.verdict.value == "ROLLBACK" and self.rule.spec.auto_rollback:
                        return self._roll_back(decision)
                except lease.LeaseHeld as exc:
                    say(str(exc))
                    return EXIT_LEASE_HELD
                except BackendError as exc:  # the platform, or a rollback not confirmed within its bound
                    if looks == 0 or not exc.transient:
                        # not guarding yet (a wrong URL, a server not started), or a refusal that will not go
                        # away (a revoked token): say it now rather than retry for give_up_after
                        why = "before its first look" if looks == 0 else "and it will not pass by itself"
                        say(f"guard: {exc} — stopping ({why}); nothing guards {self.key}")
                        if looks:
                            self._event("guard_gave_up", str(exc), {"transient": False})
                        return EXIT_BACKEND
                    self._record_failure(str(exc), time.time(), counts=True)
                    if self._give_up(str(exc)):
                        return EXIT_BACKEND
                    self._retry_pause()
                    continue
                state = flag.rollout
                if state is not None and state.stage in TERMINAL and decision.verdict.value != "ROLLBACK":
                    print(f"{self.key} is {state.stage.value.replace('_', ' ')}: nothing left to guard")
                    return EXIT_DONE
                if self.args.max_looks is not None and looks >= self.args.max_looks:
                    from console.commands.check import exit_code

                    return exit_code(decision)
                if self.outage is not None:  # the metrics failed: look again soon, give up if it lasts
                    if self._give_up(self.outage.what):
                        return EXIT_BACKEND
                    self._retry_pause()
                    continue
                self.backoff = FIRST_BACKOFF_S
                self._pause(self.args.interval)
        finally:
            if taken:
                try:
                    lease.release(self.platform, self.key, self.holder)
                except RouteDeckError as exc:
                    say(f"WARNING: the lease on {self.key} was not released ({exc}); it lapses by itself")

    def _retry_pause(self) -> None:
        self._sleep(min(self.backoff, self.args.interval))
        self.backoff = min(self.args.interval, self.backoff * 2)

    def _look(self):
        """(flag, decision, at): the verdict, or — when the metrics cannot be read or hold nothing — the
        blind verdict (hold, or rollback past the rule's blind_after)."""
        from console.core import operations
        from console.core.blind import blind_decision, no_data

        try:
            current = operations.look(self.rule, self.platform, self.watched)
        except MetricsFailed as exc:
            now = time.time()
            flag = self.platform.read_flag(self.key)  # the platform answers: the lease was just renewed
            self.blind.unreadable(now, str(exc))
            counts = not (self.rule.blind_after is not None and self.rule.blind_after.action == "rollback")
            self._record_failure(f"the metrics source: {exc}", now, counts)
            return flag, operations.unsettled(flag) or blind_decision(self.rule.blind_after, flag, self.blind, now), now
        self._recovered()
        flag, decision = current.flag, current.decision
        if flag.allocation.serves_candidate and decision.verdict.value != "ROLLBACK" and no_data(decision):
            self.blind.unreadable(current.at, "the metrics source holds no data for this stage")
            limit = self.rule.blind_after
            if limit is not None and self.blind.blind_for(current.at) >= limit.after_s:
                return flag, blind_decision(limit, flag, self.blind, current.at), current.at
        else:
            self.blind.readable()
        return flag, decision, current.at

    # ---- failures ----------------------------------------------------------------------------

    def _give_up(self, what: str) -> bool:
        """A look, the lease, the metrics or a rollback failed: say so; True once the failures that
        count (those that stop the guard from acting) have lasted --give-up-after."""
        now = time.time()
        outage = self.outage
        assert outage is not None
        if outage.counted_since is None:
            say(f"guard: {what} — holding; the rule's {self.rule.blind_after.describe()} can still act, so the "
                "guard keeps watching")
            return False
        if now - outage.counted_since >= self.give_up_s:
            when = datetime.fromtimestamp(outage.since, tz=UTC).strftime("%H:%M:%SZ")
            say(f"guard gives up: failing since {when} ({outage.failures} failed looks, give-up-after "
                f"{self.give_up_s:g} s): {what} — nothing guards {self.key} now")
            self._event("guard_gave_up", f"failing since {when}: {what}",
                        {"failures": outage.failures, "give_up_after_s": self.give_up_s})
            return True
        left = self.give_up_s - (now - outage.counted_since)
        say(f"guard: {what} — retrying; gives up in {left:.0f} s if it goes on")
        return False

    def _record_failure(self, what: str, now: float, counts: bool) -> None:
        if self.exporter is not None:
            self.exporter.look_failed(self.key)
        if self.outage is None:
            self.outage = Outage(now, what, counts)
            self._event("guard_degraded", what, {"give_up_after_s": self.give_up_s})
        elif counts and self.outage.counted_since is None:
            self.outage.counted_since = now
        self.outage.failures += 1
        self.outage.what = what

    def _recovered(self) -> None:
        if self.outage is None:
            return
        took = time.time() - self.outage.since
        say(f"guard: backends answer again after {took:.0f} s ({self.outage.failures} failed looks)")
        self._event("guard_recovered", f"after {took:.0f} s: {self.outage.what}", {"failures": self.outage.failures})
        self.outage = None

    def _event(self, action: str, reason: str, detail: dict) -> None:
        from console.core.audit.record import record_event

        journal = self._journal()
        if journal is None:
            return
        _, warning = record_event(journal, action, flag=self.key, reason=reason, rule_hash=self.rule.rule_hash,
                                  detail=detail)
        if warning:
            say(f"WARNING: {warning}")

    def _journal(self):
        if self.journal is None and not self.journal_opened:
            self.journal = open_journal(self.args, required=False)
        return self.journal

    # ---- journal and notes ----------------------------------------------------------------------

    def _open_journal(self, flag) -> None:
        """Journal the rule this guard loaded (and a change of rule)."""
        from console.core.audit.notes import note_rule_loaded

        journal = self._journal()
        self.journal_opened = True
        if journal is None:
            say("WARNING: the audit journal cannot be opened; the rule this guard loaded is not recorded")
            return
        for warning in note_rule_loaded(journal, self.rule, flag, by="guard"):
            say(f"WARNING: {warning}")

    def _note_foreign(self, old, new) -> None:
        """Between two looks the flag's routing changed, and not by this guard (it only renews its lease)."""
        from console.core.audit.notes import describe_write, note_foreign_change, routedeck_write
        from console.core.ports import describe_difference, same_routing

        if same_routing(old, new):
            return
        entry = routedeck_write(self.journal, new.key, new.revision)
        if entry is not None:  # an operator's advance, override or rollback, journalled: not foreign
            print(f"note: {new.key} changed by routedeck: {describe_difference(old, new)} ({describe_write(entry)})",
                  flush=True)
            return
        print(f"note: {new.key} changed outside this guard: {describe_difference(old, new)}", flush=True)
        if self.journal is not None:
            warning = note_foreign_change(self.journal, old, new, seen_by="guard")
            if warning:
                say(f"WARNING: {warning}")

    def _roll_back(self, decision) -> int:
        from console.core import operations

        reason = " ".join(first_reason(decision).split())
        journal = self._journal()
        result = operations.rollback(self.platform, self.key, journal, reason=f"guard: {reason}", decision=decision,
                                     rule=self.rule, action="rollback")
        if self.exporter is not None:
            self.exporter.rolled_back(self.key, "blind" if "blind" in reason else "verdict")
            self.exporter.set_stage(self.key, -1, "rolled_back")
        print(f"guard rolled back {self.key}: {reason}")
        report_rollback(result, self.key, None if journal is not None else "the audit journal cannot be opened")
        return EXIT_ROLLBACK

    # ---- time ---------------------------------------------------------------------------------

    def _pause(self, seconds: float) -> None:
        _pause(self.metrics, self.simulated, seconds)

    def _sleep(self, seconds: float) -> None:
        time.sleep(seconds)  # a failure's backoff is real time, whatever the source's clock

