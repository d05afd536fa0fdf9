"""`routedeck simulate`: run the simulated application headless and export its metrics on /metrics.

The simulator plays an application in real time (times --speed): each unit's route comes from the
flags, evaluated as an application would (flagd:PATH with the flagd in-process evaluator,
unleash:URL?… with the official Unleash SDK), and every request and outcome is exported in
Prometheus format, exactly as docs/backends.md's metric contract says.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path

from console.core.errors import BadInput

#: the simulator generates at most this many simulated seconds between two checks of the stop signal
_MAX_CATCH_UP_S = 30.0
_LOOPBACK = ("127.0.0.1", "localhost")
#: how often the /metrics page is rewritten: scrapes hand out the last one (Prometheus scrapes every second here)
_RENDER_EVERY_S = 0.5


def add_parser(sub) -> None:
    p = sub.add_parser("simulate", help="run the simulated application headless, exporting /metrics",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--flags", dest="sim_flags", metavar="SPEC",
                   help="flagd:PATH, or unleash:http://HOST:PORT?project=P&environment=E&refresh=S "
                        "(required unless --profile names one)")
    from .common import add_profile_option

    add_profile_option(p)
    p.add_argument("--scenario", default="steady", help="the traffic scenario (default: steady)")
    p.add_argument("--seed", type=int, default=7, help="random seed (default: 7)")
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second (default: 1)")
    p.add_argument("--rate", type=float, default=30.0, help="requests per simulated second (default: 30)")
    p.add_argument("--listen", required=True, metavar="127.0.0.1:PORT", help="where /metrics is served (loopback only)")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S real seconds")
    p.set_defaults(run=run)


def parse_listen(text: str) -> tuple[str, int]:
    """``127.0.0.1:PORT`` → (address, port); BadInput for anything that is not loopback."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadInput(f"--listen {text!r}: expected 127.0.0.1:PORT")
    if host not in _LOOPBACK:
        raise BadInput(f"--listen {text!r}: only 127.0.0.1 is allowed — the metrics are served on loopback only")
    return "127.0.0.1", int(port)


def open_evaluator(spec: str):
    """(evaluator, stage_of, what it evaluates) for a --flags SPEC."""
    kind, sep, rest = spec.partition(":")
    if kind == "flagd" and sep and rest:
        from console.core.simulator.evaluator import FlagdFileEvaluator

        path = Path(rest).expanduser()
        evaluator = FlagdFileEvaluator(path)
        return evaluator, _flagd_stages(evaluator, path), f"flagd:{path} (flagd in-process evaluator)"
    if kind == "unleash" and sep:
        try:
            from adapters.flags.unleash_sdk import UnleashSdkEvaluator
        except ModuleNotFoundError as exc:
            if not (exc.name or "").startswith("UnleashClient"):
                raise
            raise BadInput("simulate --flags unleash:… evaluates the flag with the official Unleash SDK, which is not "
                           "installed here — pip install 'routedeck[unleash]'") from None

        evaluator = UnleashSdkEvaluator.from_spec(spec)
        return evaluator, evaluator.stage_of, evaluator.describe()
    raise BadInput(f"--flags {spec.split('?')[0]!r}: expected flagd:PATH or unleash:http://HOST:PORT?…")


def _flagd_stages(evaluator, path: Path):
    """stage_of(flag) from the flag file's rollout state, read again when the file changes."""
    from adapters.flags.flagd_file import FlagdFilePlatform

    cache: dict[tuple[str, str], str] = {}

    def stage_of(flag: str) -> str:
        key = (evaluator.revision, flag)
        if key not in cache:
            try:
                rollout = FlagdFilePlatform(path).read_flag(flag).rollout
                cache[key] = rollout.stage.value if rollout is not None else "unknown"
            except Exception:  # not a route flag routedeck can read: still exported
                cache[key] = "unknown"
        return cache[key]

    return stage_of


def run(args: argparse.Namespace) -> int:
    from adapters.metrics.prom_exporter import RouteMetricsExporter
    from console.core.simulator import get_scenario
    from console.core.simulator.engine import TrafficSimulator

    addr, port = parse_listen(args.listen)
    if not args.speed > 0:
        raise BadInput(f"--speed {args.speed:g}: must be a positive number of simulated seconds per second")
    if not args.rate > 0:
        raise BadInput(f"--rate {args.rate:g}: must be a positive number of requests per second")
    if args.duration is not None and not args.duration > 0:
        raise BadInput(f"--duration {args.duration:g}: must be a positive number of seconds")
    scenario = get_scenario(args.scenario)
    if not args.sim_flags:
        raise BadInput("--flags SPEC is required (or a --profile whose flags = \"SPEC\")")
    evaluator, stage_of, what = open_evaluator(args.sim_flags)
    try:
        exporter = RouteMetricsExporter(stage_of=stage_of)
        start = float(int(time.time()))
        sim = TrafficSimulator(evaluator, None, scenario, args.seed, rate_rps=args.rate, start_time=start, keep_s=600)
        sim.add_listener(exporter.record)
        try:
            exporter.render()
            stop_server = exporter.serve(port, addr, prerendered=True)
        except OSError as exc:
            raise BadInput(f"--listen {args.listen!r}: cannot listen ({exc.strerror or exc})") from None
        stop = threading.Event()
        previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
        print(f"simulating {scenario.name} (seed {args.seed}, speed {args.speed:g}×) on {what}; "
              f"metrics on http://{addr}:{port}/metrics", flush=True)
        real_start = time.monotonic()
        rendered = real_start
        try:
            while not stop.is_set():
                elapsed = time.monotonic() - real_start
                if time.monotonic() - rendered >= _RENDER_EVERY_S:
                    exporter.render()
                    rendered = time.monotonic()
                if args.duration is not None and elapsed >= args.duration:
                    break
                target = start + args.speed * elapsed
                # generate in slices, so a stop signal is honoured promptly even at high speed
                sim.advance_to(min(target, sim.now + _MAX_CATCH_UP_S))
                if sim.now + 1 > target:
                    stop.wait(0.05)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            stop_server()
        sys.stdout.flush()
        return 0
    finally:
        close = getattr(evaluator, "close", None)
        if close is not None:
            close()
