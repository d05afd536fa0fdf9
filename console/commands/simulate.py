"""`routedeck simulate`: run the simulated application headless, exporting /metrics, writing events, or both.

The simulator plays an application in real time (times --speed), or generates --minutes of traffic
as fast as it can: each unit's route comes from the flags, evaluated as an application would
(flagd:PATH with the flagd in-process evaluator, unleash:URL?… with the official Unleash SDK). With
--listen every request and outcome is exported in Prometheus format (docs/backends.md's metric
contract); with --events they are written as routedeck's event records (docs/events.md), from one
process or from --replicas N processes that each write the requests that reached them.
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
    p = sub.add_parser("simulate", help="run the simulated application headless: /metrics, events, or both",
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
    p.add_argument("--listen", default=None, metavar="127.0.0.1:PORT", help="serve /metrics here (loopback only)")
    p.add_argument("--events", default=None, metavar="DIR|clickhouse:URL",
                   help="write routedeck's event records (docs/events.md): one .jsonl file per replica in DIR, "
                        "or rows into clickhouse:http://HOST:PORT?database=D&table=T")
    p.add_argument("--replicas", type=int, default=1, metavar="N",
                   help="run N application processes, each writing its own share of the requests (with --events DIR)")
    p.add_argument("--start", default=None, metavar="TIME",
                   help="the simulated clock's start (RFC 3339 or epoch seconds; default: now)")
    p.add_argument("--minutes", type=float, default=None, metavar="M",
                   help="generate exactly M simulated minutes as fast as possible, then stop (ignores --speed)")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S real seconds")
    p.add_argument("--replica", default=None, help=argparse.SUPPRESS)  # I/N: set by the parent of --replicas
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


def _start_time(text: str | None) -> float:
    if text is None:
        return float(int(time.time()))
    try:
        return float(text)
    except ValueError:
        pass
    from console.core.event_format import parse_time

    try:
        return parse_time(text)
    except ValueError:
        raise BadInput(f"--start {text!r}: expected an RFC 3339 time with a zone or epoch seconds") from None


def _replica(text: str | None) -> tuple[int, int]:
    if text is None:
        return 0, 1
    i, _, n = text.partition("/")
    if not (i.isdigit() and n.isdigit() and 0 <= int(i) < int(n)):
        raise BadInput(f"--replica {text!r}: expected I/N")
    return int(i), int(n)


def _check(args: argparse.Namespace) -> None:
    if not args.speed > 0:
        raise BadInput(f"--speed {args.speed:g}: must be a positive number of simulated seconds per second")
    if not args.rate > 0:
        raise BadInput(f"--rate {args.rate:g}: must be a positive number of requests per second")
    if args.duration is not None and not args.duration > 0:
        raise BadInput(f"--duration {args.duration:g}: must be a positive number of seconds")
    if args.minutes is not None and not args.minutes > 0:
        raise BadInput(f"--minutes {args.minutes:g}: must be a positive number of simulated minutes")
    if args.listen is None and args.events is None:
        raise BadInput("nothing to produce: pass --listen 127.0.0.1:PORT (Prometheus /metrics), --events DIR, or both")
    if args.replicas < 1:
        raise BadInput(f"--replicas {args.replicas}: must be 1 or more")
    if args.replicas > 1 and (args.events is None or args.events.startswith("clickhouse:")):
        raise BadInput("--replicas N writes one .jsonl file per replica: pass --events DIR with it")
    if args.replicas > 1 and args.listen is not None:
        raise BadInput("--replicas N with --listen: each replica would count its own units on its own /metrics, "
                       "so no unit count would be right — use --events DIR with replicas")
    if not args.sim_flags:
        raise BadInput("--flags SPEC is required (or a --profile whose flags = \"SPEC\")")


def _events_sink(target: str, replica: int, replicas: int):
    """(sink, close, where) for --events: a .jsonl file in DIR or a ClickHouse table."""
    from console.core.simulator.event_log import JsonLinesFile

    if target.startswith("clickhouse:"):
        from adapters.metrics.clickhouse import ClickHouseWriter

        writer = ClickHouseWriter.from_spec(target)
        return writer, writer.close, writer.describe()
    directory = Path(target).expanduser()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"--events {directory}: cannot create it ({exc.strerror}) — pass a writable directory") from None
    path = directory / f"events-{replica}-of-{replicas}.jsonl"
    try:
        sink = JsonLinesFile(path)
    except OSError as exc:
        raise BadInput(f"--events {path}: cannot write it ({exc.strerror}) — pass a writable directory") from None
    return sink, sink.close, str(path)


def _run_replicas(args: argparse.Namespace, argv: list[str]) -> int:
    """Start ``--replicas`` processes of this command on the same clock, each writing its share; wait for all."""
    import subprocess

    start = _start_time(args.start)
    children = []
    for i in range(args.replicas):
        cmd = [sys.executable, "-m", "console.cli", "simulate", *argv, "--start", repr(start),
               "--replica", f"{i}/{args.replicas}"]
        children.append(subprocess.Popen(cmd))
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stop.is_set() and any(c.poll() is None for c in children):
            stop.wait(0.1)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for c in children:
            if c.poll() is None:
                c.send_signal(signal.SIGTERM)
        codes = [c.wait() for c in children]
    return max(codes)


def run(args: argparse.Namespace) -> int:
    from console.core.simulator import get_scenario
    from console.core.simulator.engine import TrafficSimulator

    _check(args)
    addr, port = parse_listen(args.listen) if args.listen is not None else (None, None)
    scenario = get_scenario(args.scenario)
    if args.replicas > 1 and args.replica is None:
        return _run_replicas(args, _child_argv(args))
    replica, replicas = _replica(args.replica)
    evaluator, stage_of, what = open_evaluator(args.sim_flags)
    closers = []
    try:
        start = _start_time(args.start)
        sim = TrafficSimulator(evaluator, None, scenario, args.seed, rate_rps=args.rate, start_time=start, keep_s=600)
        exporter = None
        where = []
        if args.events is not None:
            from console.core.simulator.event_log import EventRecorder

            sink, close, place = _events_sink(args.events, replica, replicas)
            closers.append(close)
            sim.add_listener(EventRecorder(sink, replica, replicas))
            where.append(f"events to {place}")
        stop_server = None
        if port is not None:
            from adapters.metrics.prom_exporter import RouteMetricsExporter

            exporter = RouteMetricsExporter(stage_of=stage_of)
            sim.add_listener(exporter.record)
            try:
                exporter.render()
                stop_server = exporter.serve(port, addr, prerendered=True)
            except OSError as exc:
                raise BadInput(f"--listen {args.listen!r}: cannot listen ({exc.strerror or exc})") from None
            where.append(f"metrics on http://{addr}:{port}/metrics")
        stop = threading.Event()
        previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
        part = f", replica {replica + 1} of {replicas}" if replicas > 1 else ""
        print(f"simulating {scenario.name} (seed {args.seed}, speed {args.speed:g}×{part}) on {what}; "
              + "; ".join(where), flush=True)
        real_start = time.monotonic()
        rendered = real_start
        until = start + args.minutes * 60 if args.minutes is not None else None
        try:
            while not stop.is_set():
                elapsed = time.monotonic() - real_start
                if exporter is not None and time.monotonic() - rendered >= _RENDER_EVERY_S:
                    exporter.render()
                    rendered = time.monotonic()
                if args.duration is not None and elapsed >= args.duration:
                    break
                if until is not None:
                    if sim.now >= until:
                        break
                    sim.advance_to(min(until, sim.now + _MAX_CATCH_UP_S))
                    continue
                target = start + args.speed * elapsed
                # generate in slices, so a stop signal is honoured promptly even at high speed
                sim.advance_to(min(target, sim.now + _MAX_CATCH_UP_S))
                if sim.now + 1 > target:
                    stop.wait(0.05)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            if stop_server is not None:
                stop_server()
        sys.stdout.flush()
        return 0
    finally:
        for close in closers:
            close()
        close = getattr(evaluator, "close", None)
        if close is not None:
            close()


def _child_argv(args: argparse.Namespace) -> list[str]:
    """The options a replica process runs with (the parent's, less --replicas and --start)."""
    argv = ["--flags", args.sim_flags, "--scenario", args.scenario, "--seed", str(args.seed), "--speed", repr(args.speed),
            "--rate", repr(args.rate), "--events", args.events, "--replicas", str(args.replicas)]
    if args.minutes is not None:
        argv += ["--minutes", repr(args.minutes)]
    if args.duration is not None:
        argv += ["--duration", repr(args.duration)]
    return argv
