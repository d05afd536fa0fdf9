"""Decision rules: YAML written before traffic moves, loaded into a ``DecisionSpec`` and a stage plan.

The seed form (flag_key, candidate/baseline routes, first_audience, eligible_scope, primary_metric,
guardrails, expand_when, rollback_when) loads as it is; everything it leaves out takes the
defaults documented in docs/rules.md. Free-text ``expand_when`` / ``rollback_when`` lines that
name something routedeck can measure become structured checks; the rest become a checklist that
must be acknowledged before advancing. Errors name the file, the line and the field.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import yaml

from . import rule_defaults
from .blind import ACTIONS as BLIND_ACTIONS
from .blind import BlindAfter
from .errors import BadInput
from .models import FULL_SHARE_BP, default_audience_predicate, default_scope_predicate
from .registry import Direction, MetricKind, find_in_text, lookup
from .stats.spec import (
    AlphaScope,
    DecisionSpec,
    Trigger,
    GateAction,
    GuardrailSpec,
    HealthGateSpec,
    MarginKind,
    PrimarySpec,
    PrimaryTest,
    StageSpec,
)
from .telemetry import DEFAULT_SLO_MS, UnitRecord

if TYPE_CHECKING:
    from .evaluation import EvaluationRequirement

TOP_KEY = "llm_route_decision"
DEFAULT_LATENCY_TARGET_MS = 4000.0
DEFAULT_STAGES = (
    StageSpec("internal", 0, internal=True, min_units=20, min_dwell_s=300),
    StageSpec("5%", 500, internal=True, min_units=300, min_dwell_s=1200),
    StageSpec("20%", 2000, internal=True, min_units=1000, min_dwell_s=900),
    StageSpec("full", FULL_SHARE_BP - 500, internal=True, min_units=2000, min_dwell_s=900),
)

RESERVED_STAGE_NAMES = {"baseline", "promoted", "rolled_back"}
ALLOWED = {
    "flag_key", "candidate_route", "baseline_route", "first_audience", "eligible_scope", "primary_metric",
    "primary", "guardrails", "expand_when", "rollback_when", "alpha", "auto_rollback", "latency_slo_ms",
    "latency_target_ms", "tuning_units", "audiences", "scopes", "stages", "gates", "segments", "holdback",
    "segment_harm", "signals", "alpha_scope", "evaluation", "tags", "blind_after",
}
#: what harm flagged in one segment leads to (see docs/rules.md)
SEGMENT_HARM = ("report", "exclude", "rollback")
#: attributes the route itself changes or that exist only after exposure: never a segment
POST_EXPOSURE = {"arm", "route", "variant", "served_route", "provider", "model", "fallback", "status", "outcome"}
GUARDRAIL_KEYS = {"metric", "margin", "margin_kind", "severity", "min_events", "absolute_limit", "on_harm"}
ON_HARM = ("rollback", "hold", "warn")
PRIMARY_KEYS = {"metric", "test", "margin", "margin_kind"}
STAGE_KEYS = {"name", "share", "internal", "min_units", "min_dwell"}
GATE_KEYS = {
    "join_coverage": {"floor", "max_gap", "maturation", "on_fail"},
    "srm": {"alpha", "on_fail"},
    "crossover": {"max", "on_fail"},
    "no_traffic": {"on_fail"},
}


@dataclass(frozen=True)
class TextMapping:
    """What one free-text expand_when / rollback_when line became."""

    source: str  # "expand_when[0]"
    text: str
    became: str  # in words
    checklist: bool = False


@dataclass
class DecisionRule:
    path: str
    flag_key: str
    candidate_route: str
    baseline_route: str
    first_audience: str | None
    eligible_scope: str | None
    audience_predicate: dict[str, Any] | None
    scope_predicate: dict[str, Any] | None
    spec: DecisionSpec
    stages: tuple[StageSpec, ...]
    mappings: list[TextMapping]
    checklist: list[str]
    segments: tuple[str, ...]
    rule_hash: str
    #: harm flagged in a segment: only reported, excludes that segment from the candidate, or rolls back
    segment_harm: str = "report"
    text: str = ""
    explicit_predicates: bool = False
    defaults_used: list[str] = field(default_factory=list)
    #: the offline evaluation evidence ``baseline → internal`` requires (None: no such gate)
    evaluation: "EvaluationRequirement | None" = None
    tags: tuple[str, ...] = ()
    #: guarded metric → where its guardrail came from ("FILE:LINE" of the rule, or the config's rule_defaults)
    guard_origins: dict[str, str] = field(default_factory=dict)

    def inherited_guards(self) -> dict[str, str]:
        """The guardrails the config's rule_defaults gave this rule, with where each came from."""
        return {m: w for m, w in self.guard_origins.items() if "rule_defaults" in w}
    #: how long the candidate may serve while its metrics cannot be read, and what then (None: hold)
    blind_after: BlindAfter | None = None

    def stage(self, name: str) -> StageSpec:
        for s in self.stages:
            if s.name == name:
                return s
        raise BadInput(f"{self.path}: stage {name!r} is not in the rule's stage plan ({', '.join(s.name for s in self.stages)})")

    def comparable(self) -> Callable[[UnitRecord], bool]:
        """Units that may be compared: inside the eligible scope and outside the internal audience."""
        from json_logic import jsonLogic

        scope = self.scope_predicate
        audience = self.audience_predicate

        def check(unit: UnitRecord) -> bool:
            data = dict(unit.segment)
            if scope is not None and not jsonLogic(scope, data):
                return False
            return not (audience is not None and jsonLogic(audience, data))

        return check


class _NoAliases(yaml.SafeLoader):
    """A loader that refuses aliases: a few hundred bytes of nested aliases expand to gigabytes (a
    "YAML bomb"), and a decision rule never needs one — each value is written out where it applies."""

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _AliasRefused(event.start_mark)
        return super().compose_node(parent, index)


class _AliasRefused(Exception):
    def __init__(self, mark) -> None:  # noqa: ANN001
        super().__init__("alias")
        self.mark = mark


class _Located:
    """YAML data plus the line of every node, so errors can say where."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        try:
            node = yaml.compose(text, Loader=_NoAliases)
        except _AliasRefused as exc:
            raise BadInput(f"{path}:{exc.mark.line + 1}:{exc.mark.column + 1}: YAML aliases (*name) are not accepted "
                           "in a decision rule — write the value out where it is used") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise BadInput(f"{where}: invalid YAML ({problem}) — fix the syntax") from None
        except RecursionError:
            raise BadInput(f"{path}: nested too deeply to read — a decision rule is a few levels deep") from None
        self.lines: dict[tuple, int] = {}
        try:
            self.data = self._convert(node, ()) if node is not None else None
        except RecursionError:
            raise BadInput(f"{path}: nested too deeply to read — a decision rule is a few levels deep") from None

    def _convert(self, node: Any, at: tuple) -> Any:
        self.lines[at] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            out = {}
            for k, v in node.value:
                key = k.value
                out[key] = self._convert(v, at + (key,))
                self.lines.setdefault(at + (key,), k.start_mark.line + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._convert(v, at + (i,)) for i, v in enumerate(node.value)]
        if node.tag == "tag:yaml.org,2002:str":
            return node.value
        value = yaml.safe_load(yaml.serialize(node))
        if isinstance(value, float) and not math.isfinite(value):
            # .nan or .inf would switch a margin or a limit off without a word: refused where it is written
            raise BadInput(f"{self.path}:{node.start_mark.line + 1}: {_field(at)}: {node.value!r} is not a finite "
                           "number — write a number")
        return value

    def error(self, at: tuple, message: str) -> BadInput:
        field_name = _field(at)  # the field asked about, even when only its parent has a line (a missing key)
        line = self.lines.get(at)
        while line is None and at:
            at = at[:-1]
            line = self.lines.get(at)
        return BadInput(f"{self.path}:{line or 1}: {field_name}: {message}")


def _field(at: tuple) -> str:
    out = ""
    for part in at[1:] if at and at[0] == TOP_KEY else at:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or TOP_KEY


def load_rule(path: Path | str) -> DecisionRule:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise BadInput(f"{path}: no such rule file — pass --rule with the path of a decision rule (YAML)") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read the rule file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise BadInput(f"{path}: not UTF-8 text — a decision rule is a YAML file") from None
    return parse_rule(text, str(path))


def parse_rule(text: str, source: str = "rule.yaml") -> DecisionRule:
    doc = _Located(source, text)
    if not isinstance(doc.data, dict) or TOP_KEY not in doc.data:
        raise BadInput(f"{source}:1: a decision rule starts with a top-level '{TOP_KEY}:' mapping")
    extra = set(doc.data) - {TOP_KEY}
    if extra:
        raise doc.error((sorted(extra)[0],), f"unknown top-level key — only '{TOP_KEY}' is allowed")
    raw = doc.data[TOP_KEY]
    root = (TOP_KEY,)
    if not isinstance(raw, dict):
        raise doc.error(root, "must be a mapping of rule fields")
    for key in raw:
        if key not in ALLOWED:
            raise doc.error(root + (key,), f"unknown key — allowed keys: {', '.join(sorted(ALLOWED))}")
    defaults: list[str] = []

    def req_str(key: str) -> str:
        value = raw.get(key)
        if not isinstance(value, str) or not value.strip():
            raise doc.error(root + (key,), "required: a non-empty string")
        return value.strip()

    def opt_str(key: str) -> str | None:
        value = raw.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise doc.error(root + (key,), "must be a non-empty string")
        return value.strip()

    flag_key = req_str("flag_key")
    candidate = req_str("candidate_route")
    baseline = req_str("baseline_route")
    if candidate == baseline:
        raise doc.error(root + ("candidate_route",), "the candidate must differ from the baseline route")
    audience = opt_str("first_audience")
    scope = opt_str("eligible_scope")
    audiences = _mapping(doc, raw, "audiences")
    scopes = _mapping(doc, raw, "scopes")
    explicit = bool(audiences or scopes)
    aud_pred = (audiences.get(audience) if audience in audiences else default_audience_predicate(audience)) if audience else None
    scope_pred = (scopes.get(scope) if scope in scopes else default_scope_predicate(scope)) if scope else None
    for name, pred in list(audiences.items()) + list(scopes.items()):
        if not isinstance(pred, dict):
            raise doc.error(root + ("audiences" if name in audiences else "scopes", name), "must be a JsonLogic object")
    if audience and audience not in audiences:
        defaults.append(f"first_audience {audience!r} matches context attribute audience == {audience!r}")
    if scope and scope not in scopes:
        defaults.append(f"eligible_scope {scope!r} matches context attribute scope == {scope!r}")

    alpha = _number(doc, raw, "alpha", 0.05, lo=1e-6, hi=0.5)
    latency_target = _number(doc, raw, "latency_target_ms", DEFAULT_LATENCY_TARGET_MS, lo=1)
    slo_ms = _number(doc, raw, "latency_slo_ms", DEFAULT_SLO_MS, lo=1)
    tuning = int(_number(doc, raw, "tuning_units", 2000, lo=10))
    auto_rollback = raw.get("auto_rollback", True)
    if not isinstance(auto_rollback, bool):
        raise doc.error(root + ("auto_rollback",), "must be true or false")

    guardrails: dict[str, GuardrailSpec] = {}
    tripwire: float | None = None
    raw_guardrails = raw.get("guardrails") or []
    if not isinstance(raw_guardrails, list):
        raise doc.error(root + ("guardrails",), "must be a list of metric names or mappings")
    tags = raw.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) and t.strip() for t in tags):
        raise doc.error(root + ("tags",), "must be a list of tag names")
    tags = tuple(t.strip() for t in tags)
    origins: dict[str, str] = {}
    own = {_guard_key(item) for item in raw_guardrails}
    inherited: list[tuple[Any, str]] = []
    for default in rule_defaults.matching(flag_key, tags):
        for item in default.guardrails:
            if _guard_key(item) not in own and _guard_key(item) not in {_guard_key(x) for x, _ in inherited}:
                inherited.append((item, f"{default.where} (rule_defaults for {default.scope()})"))
    if inherited:  # the defaults a rule got are part of what it is: its hash covers them
        raw = {**raw, "guardrails": list(raw_guardrails) + [item for item, _ in inherited]}
    for i, item in enumerate(list(raw_guardrails) + [item for item, _ in inherited]):
        at = root + ("guardrails", i)
        if i < len(raw_guardrails):
            g = _guardrail(doc, at, item)
            origins.setdefault(g.metric, f"{source}:{doc.lines[at]}" if at in doc.lines else source)
        else:
            where = inherited[i - len(raw_guardrails)][1]
            try:
                g = _guardrail(doc, at, item)
            except BadInput as exc:
                raise BadInput(f"{where}: guardrail {item!r}: {str(exc).split(': ', 2)[-1]}") from None
            origins.setdefault(g.metric, where)
        metric = lookup(g.metric)
        if metric.kind is MetricKind.QUANTILE:
            if metric.histogram == "latency_hist":
                tripwire = g.absolute_limit or latency_target
            # the quantile is judged from its buckets; the SLO-attainment share rides along (a proportion,
            # and the faster detector of a slower candidate)
            guardrails.setdefault("slo_attainment", default_guardrail(lookup("slo_attainment")))
        guardrails[g.metric] = g
    signals: list[GuardrailSpec] = []
    raw_signals = raw.get("signals") or []
    if not isinstance(raw_signals, list):
        raise doc.error(root + ("signals",), "must be a list of metric names or mappings")
    for i, item in enumerate(raw_signals):
        g = _guardrail(doc, root + ("signals", i), item)
        signals.append(replace(g, on_harm=Trigger.WARN, critical=False))
    alpha_scope = raw.get("alpha_scope", "stage")
    if alpha_scope not in ("stage", "rollout"):
        raise doc.error(root + ("alpha_scope",), f"must be stage or rollout (got {alpha_scope!r})")

    primary_raw = raw.get("primary")
    primary_name = raw.get("primary_metric")
    if primary_raw is not None:
        primary = _primary(doc, root + ("primary",), primary_raw)
    elif primary_name is not None:
        if not isinstance(primary_name, str):
            raise doc.error(root + ("primary_metric",), "must be a metric name")
        m = _metric(doc, root + ("primary_metric",), primary_name)
        _not_quantile(doc, root + ("primary_metric",), m)
        primary = PrimarySpec(m.name, PrimaryTest.NON_INFERIOR, m.default_margin or 0.02,
                              MarginKind(m.default_margin_kind), m.stage_margins)
        defaults.append(f"primary {m.name}: non-inferior within {primary.margin:g}")
    else:
        raise doc.error(root, "needs primary_metric (or an extended primary: mapping)")

    gates = _gates(doc, root, raw.get("gates"))
    mappings: list[TextMapping] = []
    checklist: list[str] = []
    for section in ("expand_when", "rollback_when"):
        lines = raw.get(section) or []
        if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
            raise doc.error(root + (section,), "must be a list of sentences")
        for i, line in enumerate(lines):
            mapped, primary, gates, tripwire = _map_line(section, i, line, guardrails, primary, gates, tripwire,
                                                         latency_target)
            mappings.append(mapped)
            if mapped.checklist:
                checklist.append(line.strip())

    stages = _stages(doc, root, raw.get("stages"), raw.get("holdback"))
    segments = raw.get("segments") or ["plan", "region"]
    if not isinstance(segments, list) or not all(isinstance(s, str) for s in segments):
        raise doc.error(root + ("segments",), "must be a list of pre-exposure attribute names")
    for i, name in enumerate(segments):
        if name in POST_EXPOSURE:
            raise doc.error(root + ("segments", i), f"{name!r} is set by the route or after exposure — segments must be "
                                                    "attributes fixed before exposure (plan, region, workflow…)")
    segment_harm = raw.get("segment_harm", "report")
    if segment_harm not in SEGMENT_HARM:
        raise doc.error(root + ("segment_harm",), f"must be one of {', '.join(SEGMENT_HARM)} (got {segment_harm!r})")

    evaluation = None
    if raw.get("evaluation") is not None:
        from .evaluation import parse_requirement

        evaluation = parse_requirement(
            raw["evaluation"], Path(source).parent,
            lambda key, message: doc.error(root + (("evaluation", key) if key else ("evaluation",)), message))
    blind_after = _blind_after(doc, root + ("blind_after",), raw.get("blind_after"))

    spec = DecisionSpec(
        alpha=alpha, guardrails=tuple(guardrails.values()), primary=primary, gates=gates,
        latency_slo_ms=slo_ms, p95_tripwire_ms=tripwire, auto_rollback=auto_rollback, tuning_units=tuning,
        signals=tuple(g for g in signals if g.metric not in guardrails), alpha_scope=AlphaScope(alpha_scope),
        stages=len(stages),
    )
    canonical = json.dumps(raw, sort_keys=True, default=str)
    return DecisionRule(
        path=source, flag_key=flag_key, candidate_route=candidate, baseline_route=baseline,
        first_audience=audience, eligible_scope=scope, audience_predicate=aud_pred, scope_predicate=scope_pred,
        spec=spec, stages=stages, mappings=mappings, checklist=checklist, segments=tuple(segments),
        rule_hash=hashlib.sha256(canonical.encode()).hexdigest()[:16], text=text, explicit_predicates=explicit,
        defaults_used=defaults, segment_harm=segment_harm, evaluation=evaluation, tags=tags,
        guard_origins=origins, blind_after=blind_after,
    )


def _guard_key(item: Any) -> str | None:
    metric = lookup(rule_defaults.guard_metric(item) or "")
    return metric.name if metric is not None else rule_defaults.guard_metric(item)


def _blind_after(doc: _Located, at: tuple, value: Any) -> BlindAfter | None:
    """``15m`` (rolls back), ``15m hold`` / ``15m rollback``, or ``{after: 15m, action: hold}``."""
    if value is None:
        return None
    after, action = value, "rollback"
    if isinstance(value, dict):
        for key in value:
            if key not in ("after", "action"):
                raise doc.error(at + (key,), "unknown key — allowed: action, after")
        after, action = value.get("after"), value.get("action", "rollback")
    elif isinstance(value, str) and len(value.split()) == 2:
        after, action = value.split()
    if action not in BLIND_ACTIONS:
        raise doc.error(at, f"the action must be {' or '.join(BLIND_ACTIONS)} (got {action!r})")
    seconds = parse_duration(after)
    if seconds is None or seconds <= 0 or seconds != seconds or seconds == float("inf"):
        raise doc.error(at, f"must be a duration like '15m' (optionally followed by hold or rollback), got {after!r}")
    return BlindAfter(seconds, action)


def _mapping(doc: _Located, raw: dict, key: str) -> dict[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        raise doc.error((TOP_KEY, key), "must be a mapping of name → JsonLogic predicate")
    return value


def _number(doc: _Located, raw: dict, key: str, default: float, lo: float | None = None, hi: float | None = None) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise doc.error((TOP_KEY, key), f"must be a number (got {value!r})")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise doc.error((TOP_KEY, key), f"must be between {lo} and {hi}")
    return float(value)


def _metric(doc: _Located, at: tuple, name: Any):
    if not isinstance(name, str):
        raise doc.error(at, "must be a metric name")
    metric = lookup(name)
    if metric is None:
        from .registry import METRICS

        raise doc.error(at, f"unknown metric {name!r} — known metrics: {', '.join(m.name for m in METRICS)}")
    return metric


def parse_share(value: Any) -> float | None:
    """'5%' → 0.05, 0.05 → 0.05, '10' → None (ambiguous without a %)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*%\s*", value):
        return float(value.strip().rstrip("%")) / 100
    return None


def parse_duration(value: Any) -> float | None:
    """'10m' → 600, '90s' → 90, '1h' → 3600, 30 → 30 seconds."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h)\s*", str(value))
    if not match:
        return None
    return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]


def default_guardrail(metric, critical: bool | None = None) -> GuardrailSpec:
    """A guardrail on ``metric`` with every shipped default (registry margins, per-stage margins, trigger)."""
    trigger = Trigger(metric.default_trigger)
    return GuardrailSpec(metric.name, metric.default_margin if metric.default_margin is not None else 0.02,
                         MarginKind(metric.default_margin_kind),
                         trigger is Trigger.ROLLBACK if critical is None else critical,
                         absolute_limit=metric.internal_limit, min_events=metric.min_events,
                         stage_margins=metric.stage_margins)


def _margin(doc, at, item, metric) -> tuple[float, MarginKind]:
    kind_raw = item.get("margin_kind")
    margin = item.get("margin")
    if margin is None:
        return (metric.default_margin if metric.default_margin is not None else 0.02,
                MarginKind(metric.default_margin_kind))
    share = parse_share(margin)
    if share is None:
        raise doc.error(at + ("margin",), f"must be a number or a percentage like '10%' (got {margin!r})")
    if kind_raw is None:
        kind = MarginKind.RELATIVE if isinstance(margin, str) and metric.unit != "share" else MarginKind.ABSOLUTE
    elif kind_raw in ("absolute", "relative"):
        kind = MarginKind(kind_raw)
    else:
        raise doc.error(at + ("margin_kind",), "must be absolute or relative")
    if share < 0:
        raise doc.error(at + ("margin",), "must not be negative")
    return share, kind


def _guardrail(doc: _Located, at: tuple, item: Any) -> GuardrailSpec:
    if isinstance(item, str):
        return default_guardrail(_metric(doc, at, item))
    if not isinstance(item, dict):
        raise doc.error(at, "must be a metric name or a mapping with metric:")
    for key in item:
        if key not in GUARDRAIL_KEYS:
            raise doc.error(at + (key,), f"unknown key — allowed: {', '.join(sorted(GUARDRAIL_KEYS))}")
    metric = _metric(doc, at + ("metric",), item.get("metric"))
    margin, kind = _margin(doc, at, item, metric)
    severity = item.get("severity", "critical" if metric.default_trigger == "rollback" else "normal")
    if severity not in ("critical", "normal"):
        raise doc.error(at + ("severity",), "must be critical or normal")
    on_harm = item.get("on_harm")
    if on_harm is not None and on_harm not in ON_HARM:
        raise doc.error(at + ("on_harm",), f"must be one of {', '.join(ON_HARM)} (got {on_harm!r})")
    min_events = item.get("min_events", metric.min_events)
    if not isinstance(min_events, int) or isinstance(min_events, bool) or min_events < 0:
        raise doc.error(at + ("min_events",), "must be a whole number ≥ 0")
    limit = item.get("absolute_limit", metric.internal_limit)
    if limit is not None:
        limit = parse_share(limit)
        if limit is None:
            raise doc.error(at + ("absolute_limit",), "must be a number or a percentage")
    critical = severity == "critical" if on_harm is None else on_harm == "rollback"
    # a margin written in the rule holds at every stage; the registry's per-stage margins only with its default
    stages = metric.stage_margins if item.get("margin") is None else ()
    return GuardrailSpec(metric.name, margin, kind, critical, limit, min_events,
                         Trigger(on_harm) if on_harm is not None else None, stages)


def _primary(doc: _Located, at: tuple, item: Any) -> PrimarySpec:
    if not isinstance(item, dict):
        raise doc.error(at, "must be a mapping with metric, test and margin")
    for key in item:
        if key not in PRIMARY_KEYS:
            raise doc.error(at + (key,), f"unknown key — allowed: {', '.join(sorted(PRIMARY_KEYS))}")
    metric = _metric(doc, at + ("metric",), item.get("metric"))
    _not_quantile(doc, at + ("metric",), metric)
    test = item.get("test", "non_inferior")
    if test not in ("non_inferior", "superior"):
        raise doc.error(at + ("test",), "must be non_inferior or superior")
    margin, kind = _margin(doc, at, item, metric)
    return PrimarySpec(metric.name, PrimaryTest(test), margin, kind)


def _not_quantile(doc: _Located, at: tuple, metric: Any) -> None:
    # a quantile's bounds move in whole histogram buckets: a guardrail, not the metric a rollout is for
    if metric.kind is MetricKind.QUANTILE:
        raise doc.error(at, f"{metric.name} is a quantile: list it under guardrails, and use a share such as "
                            "slo_attainment (requests inside the latency SLO) as the primary metric")


def _action(doc, at, value) -> GateAction:
    if value not in ("hold", "rollback"):
        raise doc.error(at, "must be hold or rollback")
    return GateAction(value)


def _gates(doc: _Located, root: tuple, raw: Any) -> HealthGateSpec:
    spec = HealthGateSpec()
    if raw is None:
        return spec
    if not isinstance(raw, dict):
        raise doc.error(root + ("gates",), "must be a mapping")
    updates: dict[str, Any] = {}
    for name, body in raw.items():
        at = root + ("gates", name)
        if name not in GATE_KEYS:
            raise doc.error(at, f"unknown gate — gates: {', '.join(GATE_KEYS)}")
        if not isinstance(body, dict):
            raise doc.error(at, "must be a mapping")
        for key, value in body.items():
            if key not in GATE_KEYS[name]:
                raise doc.error(at + (key,), f"unknown key — allowed: {', '.join(sorted(GATE_KEYS[name]))}")
            kat = at + (key,)
            if key == "on_fail":
                prefix = {"join_coverage": "join", "srm": "srm", "crossover": "crossover", "no_traffic": "no_traffic"}[name]
                updates[f"{prefix}_action"] = _action(doc, kat, value)
            elif key == "maturation":
                seconds = parse_duration(value)
                if seconds is None:
                    raise doc.error(kat, "must be a duration like '2m' or '90s'")
                updates["maturation_s"] = seconds
            else:
                share = parse_share(value)
                if share is None:
                    raise doc.error(kat, "must be a number or a percentage")
                updates[{"floor": "join_floor", "max_gap": "join_max_gap", "alpha": "srm_alpha",
                         "max": "crossover_max"}[key]] = share
    from dataclasses import replace

    return replace(spec, **updates)


def _stages(doc: _Located, root: tuple, raw: Any, holdback: Any) -> tuple[StageSpec, ...]:
    stages = DEFAULT_STAGES
    if holdback is not None:
        share = parse_share(holdback)
        if share is None or not 0 <= share < 1:
            raise doc.error(root + ("holdback",), "must be a percentage like '5%'")
        from dataclasses import replace

        stages = tuple(replace(s, candidate_bp=round(FULL_SHARE_BP * (1 - share))) if s.name == "full" else s for s in stages)
    if raw is None:
        return stages
    if holdback is not None:
        raise doc.error(root + ("holdback",), "applies to the default stage plan only — with stages:, set the "
                                              "last stage's share instead (e.g. '95%')")
    if not isinstance(raw, list) or not raw:
        raise doc.error(root + ("stages",), "must be a non-empty list of stages")
    out = []
    last_bp = -1
    for i, item in enumerate(raw):
        at = root + ("stages", i)
        if not isinstance(item, dict):
            raise doc.error(at, "must be a mapping with name and share")
        for key in item:
            if key not in STAGE_KEYS:
                raise doc.error(at + (key,), f"unknown key — allowed: {', '.join(sorted(STAGE_KEYS))}")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise doc.error(at + ("name",), "required: a stage name")
        if name in RESERVED_STAGE_NAMES or name in {s.name for s in out}:
            # the stage machine finds the current stage by name, so names must be unique and not its own states
            raise doc.error(at + ("name",), f"stage {name!r} is reserved or used twice — give each stage its own "
                                            f"name (not {', '.join(sorted(RESERVED_STAGE_NAMES))})")
        share = parse_share(item.get("share", 0))
        if share is None or not 0 <= share <= 1:
            raise doc.error(at + ("share",), "must be a percentage like '20%'")
        bp = round(share * FULL_SHARE_BP)
        if bp < last_bp:
            raise doc.error(at + ("share",), "stages must not shrink the candidate's share (cohorts stay nested)")
        last_bp = bp
        dwell = parse_duration(item.get("min_dwell", 600))
        if dwell is None or dwell < 0:
            raise doc.error(at + ("min_dwell",), "must be a duration like '10m'")
        units = item.get("min_units", 200)
        if not isinstance(units, int) or isinstance(units, bool) or units < 0:
            raise doc.error(at + ("min_units",), "must be a whole number")
        internal = item.get("internal", True)
        if not isinstance(internal, bool):
            raise doc.error(at + ("internal",), "must be true or false")
        out.append(StageSpec(name, bp, internal, units, dwell))
    return tuple(out)


def _map_line(section: str, i: int, line: str, guardrails: dict, primary: PrimarySpec, gates: HealthGateSpec,
              tripwire: float | None, latency_target: float):
    """Map one free-text line to structured checks, or to a checklist item. Returns the updated pieces."""
    from dataclasses import replace

    source = f"{section}[{i}]"
    low = line.lower()
    if "join" in low or "telemetry" in low:
        gates = replace(gates, join_action=GateAction.ROLLBACK)
        return TextMapping(source, line, "exposure→outcome join gate, rolls back on failure"), primary, gates, tripwire
    if "primary_metric" in low or "primary metric" in low:
        if "improve" in low:
            primary = replace(primary, test=PrimaryTest.SUPERIOR)
            return TextMapping(source, line, f"primary {primary.metric} must be superior to baseline"), primary, gates, tripwire
        return TextMapping(source, line, f"primary {primary.metric} must be non-inferior"), primary, gates, tripwire
    if "provider error" in low or ("fallback" in low and section == "rollback_when"):
        names = []
        for name in ("error_rate", "fallback_rate"):
            if name == "error_rate" and "error" not in low:
                continue
            metric = lookup(name)
            existing = guardrails.get(name)
            guardrails[name] = replace(existing, critical=True, on_harm=None) if existing else default_guardrail(
                metric, critical=True)
            names.append(name)
        return TextMapping(source, line, f"critical guardrails: {', '.join(names)}"), primary, gates, tripwire
    if "quality" in low and section == "rollback_when":
        names = []
        for name in ("resolved_without_escalation", "correction_rate", "complaint_rate"):
            metric = lookup(name)
            existing = guardrails.get(name)
            guardrails[name] = replace(existing, critical=True, on_harm=None) if existing else default_guardrail(
                metric, critical=True)
            names.append(name)
        return TextMapping(source, line, f"critical quality guardrails: {', '.join(names)}"), primary, gates, tripwire
    metric = find_in_text(line)
    if metric is not None:
        if metric.kind is MetricKind.QUANTILE:
            if metric.histogram == "latency_hist":
                tripwire = tripwire or latency_target
            guardrails.setdefault(metric.name, default_guardrail(metric))
            guardrails.setdefault("slo_attainment", default_guardrail(lookup("slo_attainment")))
            return TextMapping(source, line, f"guardrail {metric.name} (limit {tripwire or metric.internal_limit:.0f} ms "
                                             "at the internal stage) and the SLO-attainment guardrail"), primary, gates, tripwire
        if metric.name not in guardrails and metric.name != primary.metric:
            guardrails[metric.name] = default_guardrail(metric)
        direction = "must not get worse than its margin" if metric.direction is Direction.LOWER_IS_BETTER else "must hold"
        return TextMapping(source, line, f"guardrail {metric.name} {direction}"), primary, gates, tripwire
    return TextMapping(source, line, "manual checklist item: acknowledge before advancing", checklist=True), primary, gates, tripwire
