"""`routedeck demo`: the console on the embedded flag file and the traffic simulator (no server needed)."""

from __future__ import annotations

import argparse
import os
import sys
from functools import partial
from pathlib import Path

from console.core.errors import BadInput
from console.core.simulator import SCENARIOS, get_scenario


def add_parser(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="open the console on the embedded demo (flagd flag file + traffic simulator)",
        description="Open the console on a flagd flag file and a seeded simulator of an LLM application. "
        "The flag file is created in the state dir if it does not exist (mid-rollout: candidate at 5%).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="scenarios:\n" + "\n".join(f"  {name:<20} {s.description}" for name, s in SCENARIOS.items()),
    )
    p.add_argument("--scenario", default=None,
                   help="what happens to the candidate (default: steady; another scenario than the state dir's "
                        "last one starts the demo's flags afresh)")
    p.add_argument("--seed", type=int, default=7, help="traffic seed; the same seed gives the same traffic (default: 7)")
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second (default: 1)")
    p.add_argument("--state-dir", type=Path, default=None,
                   help="where the flag file lives (default: $XDG_STATE_HOME/routedeck)")
    p.add_argument("--read-only", action="store_true", help="reviewers: hide and refuse every action that changes flags")
    p.add_argument("--rule", type=Path, action="append", help="judge a flag's rollout against this decision rule "
                   "(YAML; repeat it for several flags); the header shows the verdict, and a ROLLBACK verdict rolls "
                   "back at once when the rule allows it (default: the demo's own rule, console/core/data/rule-demo.yaml)")
    p.add_argument("--no-rule", action="store_true", help="no decision rule: live figures and rollback only")
    p.add_argument("--budgets", type=Path, metavar="FILE",
                   help="monthly budgets (TOML) for the b view (default: the example in console/core/data/budgets.toml)")
    p.add_argument("--fresh", action="store_true",
                   help="start over: rewrite the demo's flags with the candidate ready and no traffic on it yet, "
                        "so the rollout can be walked from its first stage")
    p.add_argument("--events", type=Path, metavar="DIR",
                   help="read the metrics from event records in DIR (events:DIR) that a simulated application "
                        "process writes there live, instead of from the simulator in this process")
    p.add_argument("--replicas", type=int, default=1, metavar="N",
                   help="with --events: the application runs as N processes, one event file each (default: 1)")
    p.set_defaults(run=run)


def default_state_dir() -> Path:
    from platformdirs import user_state_path

    return user_state_path("routedeck")


DEMO_RULE = Path(__file__).resolve().parents[1] / "core" / "data" / "rule-demo.yaml"
#: what the state dir's flags were last set up for (scenario, seed): another scenario starts them afresh
RUN_FILE = "demo-run.json"


def _last_run(state_dir: Path) -> dict | None:
    import json

    try:
        found = json.loads((state_dir / RUN_FILE).read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _record_run(state_dir: Path, scenario: str, seed: int) -> None:
    import json

    try:
        (state_dir / RUN_FILE).write_text(json.dumps({"scenario": scenario, "seed": seed}) + "\n")
    except OSError:
        pass  # only a convenience: next time the state is reused and the console says so


def settle_scenario(state_dir: Path, scenario: str | None, seed: int, fresh: bool) -> tuple[bool, str]:
    """Decide whether this run starts the demo's flags afresh: (start afresh?, the one line that says why).

    Another scenario (or seed) than the state dir's last run starts them afresh — the scenario is then
    seen from its start, not over an earlier run's rollback or promotion (the journal keeps what happened).
    The same one reuses them and says so, with how to start over."""
    path = state_dir / "flags.json"
    wanted = scenario or "steady"
    if fresh or not path.exists():
        return fresh, ""
    last = _last_run(state_dir)
    if last is None and scenario is None:
        return False, f"the flags in {path} from an earlier run are in use — `--fresh` starts the rollout over"
    if last is None or last.get("scenario") != wanted or last.get("seed") != seed:
        was = f"scenario {last.get('scenario')}, seed {last.get('seed')}" if last else "an earlier run"
        return True, (f"scenario {wanted} (seed {seed}) starts from the demo's start: the flags left by {was} "
                      "were set up again (the journal keeps what happened)")
    return False, (f"the flags left by the last run of scenario {wanted} (seed {seed}) are in use — "
                   "`--fresh` starts the rollout over")


def prepare_state_dir(state_dir: Path, fresh: bool = False, restart: bool = False, why: str = "") -> Path:
    """Create the state dir and the demo flag file if missing (or ``fresh``: candidate ready, no traffic yet;
    ``restart``: mid-rollout at 5%, as on a first run); return the flag file's path."""
    from adapters.flags.flagd_file import FlagdFilePlatform
    from console.core.simulator.portfolio import demo_flags

    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"--state-dir {state_dir}: cannot create it ({exc.strerror}) — pass a writable directory") from None
    if not os.access(state_dir, os.W_OK | os.X_OK):
        raise BadInput(f"--state-dir {state_dir}: not writable — pass a writable directory")
    path = state_dir / "flags.json"
    if (fresh or restart) and path.exists():
        path.unlink()  # the journal stays: it records what happened before the fresh start
    if not path.exists():
        from console.core.journal import Journal, JournalUnavailable, journal_path, record_action

        platform = FlagdFilePlatform(path)
        try:
            journal = Journal(journal_path(state_dir))
        except JournalUnavailable:
            journal = None  # the console says so when it opens the journal itself
        for flag in demo_flags(fresh=fresh):
            if journal is None:
                platform.create_flag(flag)
                continue
            # journalled like `routedeck init`, so the audit timeline does not show the demo's own flags as foreign
            record_action(journal, "init", call=lambda f=flag: platform.create_flag(f), flag=flag.key,
                          planned=flag.allocation.model_dump(mode="json"),
                          reason="demo set-up" + (" (--fresh)" if fresh else "") + (f": {why}" if why else ""),
                          required=False)
    return path


def settle(state_dir: Path, scenario: str | None, seed: int, fresh: bool) -> tuple[Path, list[str]]:
    """Set the state dir up for this run (see :func:`settle_scenario`): (the flag file, the notes to show)."""
    restart, note = settle_scenario(state_dir, scenario, seed, fresh)
    path = prepare_state_dir(state_dir, fresh, restart=restart and not fresh, why=note if restart else "")
    _record_run(state_dir, scenario or "steady", seed)
    return path, [note] if note else []


def load_demo(state_dir: Path, scenario: str | None, seed: int, speed: float,
              rule_path: "Path | list[Path] | None" = None, fresh: bool = False, metrics_spec: str | None = None,
              settled: "list[str] | None" = None):
    """Create or open the demo flag file and start the simulator:
    (platform, metrics, flags, journal, rules, notes) — ``notes``: lines the console shows at start.

    ``metrics_spec`` (``events:DIR…``) reads the metrics from there instead of a simulator in this process;
    ``settled``: the state dir is already set up for this run (by :func:`settle`) and these are its notes."""
    path, notes = (state_dir / "flags.json", settled) if settled is not None else settle(state_dir, scenario, seed, fresh)
    scenario = scenario or "steady"

    from adapters.flags.flagd_file import FlagdFilePlatform
    from adapters.metrics.simulated import SimulatedMetricsSource
    from console.core.simulator.evaluator import FlagdFileEvaluator

    platform = FlagdFilePlatform(path)
    flags = {key: platform.read_flag(key) for key in platform.list_flags()}  # validates the whole file
    if not flags:
        raise BadInput(f"{path}: holds no route flags — delete it to recreate the demo, or fix it")
    from console.core.rules import load_rule

    rules = []
    for rule_file in (rule_path if isinstance(rule_path, list) else [rule_path] if rule_path else []):
        rule = load_rule(rule_file)
        if rule.flag_key not in flags:
            raise BadInput(f"{rule_file}: flag {rule.flag_key!r} is not in {path} — route flags: {', '.join(flags)}")
        rules.append(rule)
    # the demo's source counts in-SLO requests at the rules' SLO when they agree on one; rules that differ
    # read their SLO metrics as not judged, and say why
    slos = {rule.spec.latency_slo_ms for rule in rules}
    slo = {"slo_ms": slos.pop()} if len(slos) == 1 else {}
    if metrics_spec is not None:
        from console.backends import open_metrics

        metrics = open_metrics(metrics_spec, f"flagd:{path}", **slo)
    else:
        # two minutes of history before the routes show: each new unit is judged by the official flagd evaluator,
        # which is most of the wait; the window fills as the demo runs (the trend says how many buckets are empty)
        metrics = SimulatedMetricsSource(FlagdFileEvaluator(path), scenario, seed=seed, speed=speed, warmup_s=120,
                                         **slo)
    from console.core.journal import Journal, journal_path

    return platform, metrics, flags, Journal(journal_path(state_dir)), rules, notes


def run(args: argparse.Namespace) -> int:
    get_scenario(args.scenario or "steady")  # validate what is cheap before the screen opens
    if args.speed <= 0:
        raise BadInput(f"--speed {args.speed:g}: must be a positive number of simulated seconds per second")
    if args.no_rule and args.rule:
        raise BadInput("--rule and --no-rule: pass one of them")
    rule = None if args.no_rule else (args.rule or [DEMO_RULE])
    state_dir = (args.state_dir or default_state_dir()).expanduser()
    if getattr(args, "events", None) is not None:
        return _run_on_events(args, state_dir, rule)
    load = partial(load_demo, state_dir, args.scenario, args.seed, args.speed, rule, args.fresh)
    if not sys.stdout.isatty():
        notes = load()[-1]  # no screen to paint: fail fast instead, and say what the state is
        for note in notes:
            print(f"routedeck: {note}", file=sys.stderr)
        load = partial(load_demo, state_dir, args.scenario, args.seed, args.speed, rule)
    return _run_app(args, load)


def _run_on_events(args: argparse.Namespace, state_dir: Path, rule) -> int:
    """The demo on ``events:DIR``: a simulated application process writes its events there live (the history
    first), and the console reads them back through the events source, as it would a real application's."""
    from .simulate import start_event_writer

    if args.replicas < 1:
        raise BadInput(f"--replicas {args.replicas}: must be 1 or more")
    directory = args.events.expanduser()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"--events {directory}: cannot create it ({exc.strerror}) — pass a writable directory") from None
    path, notes = settle(state_dir, args.scenario, args.seed, args.fresh)
    _, stop = start_event_writer(path, directory, scenario=args.scenario or "steady", seed=args.seed, speed=args.speed,
                                 replicas=args.replicas)
    try:
        # the source's clock is the newest event: the writer's simulated time, whatever its speed
        load = partial(load_demo, state_dir, args.scenario, args.seed, args.speed, rule,
                       metrics_spec=f"events:{directory}?clock=data", settled=notes)
        return _run_app(args, load)
    finally:
        said = stop().strip()
        if said:
            print(f"the application writing {directory} said: {said.splitlines()[-1]}", file=sys.stderr)


def _run_app(args: argparse.Namespace, load) -> int:
    from console.app import RouteDeckApp

    # the heavy imports and the flag file are loaded in a worker, after the first frame is on screen
    app = RouteDeckApp(loader=load, read_only=args.read_only)
    if getattr(args, "budgets", None) is not None:
        from console.core.budgets import BudgetConfig

        app.budgets_config = BudgetConfig.load(args.budgets)
    code = app.run()
    if app.startup_error is not None:
        raise app.startup_error
    return int(code or 0)
