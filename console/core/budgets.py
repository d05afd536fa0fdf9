"""Spend against budgets: per route, per budget policy and per plan tier, projected to a month.

Budgets live in a TOML file (``--budgets FILE``; the shipped example is ``data/budgets.toml``):
``[policies.NAME]`` is keyed by the route profiles' ``budgetPolicy``, ``[plans.NAME]`` by the
plan tier of the units served. Spend is the window's ``cost_usd`` from the same counters the
dashboard shows (cost per request × requests); a month is projected at the window's rate.

The "what if the candidate served 100%" projection keeps the flag's current volume of resolved
tasks and prices each at the candidate's measured cost per resolved task.
"""

from __future__ import annotations

import calendar
import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

from .errors import BadInput
from .figures import RouteFigures
from .models import RouteFlag
from .telemetry import Arm, MetricsSnapshot, RouteKey, UnitRecord

EXAMPLE = "console/core/data/budgets.toml"
_TOP_KEYS = {"currency", "policies", "plans"}


@dataclass(frozen=True)
class BudgetConfig:
    """Monthly budgets in USD by budget policy and by plan tier."""

    policies: dict[str, float]
    plans: dict[str, float]
    source: str

    @classmethod
    def defaults(cls) -> "BudgetConfig":
        text = resources.files("console.core").joinpath("data/budgets.toml").read_text()
        return parse_budgets(text, "built-in budgets.toml")

    @classmethod
    def load(cls, path: Path | None) -> "BudgetConfig":
        """The file at ``path``, or the shipped example when ``path`` is None."""
        if path is None:
            return cls.defaults()
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise BadInput(f"--budgets {path}: no such file — copy {EXAMPLE} and edit it") from None
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or "not UTF-8 text"
            raise BadInput(f"--budgets {path}: cannot read it ({why}) — pass a readable TOML file") from None
        return parse_budgets(text, str(path))


def _line_of(text: str, section: str, name: str) -> int | None:
    pattern = re.compile(rf'^[ \t]*\[[ \t]*{section}[ \t]*\.[ \t]*"?{re.escape(name)}"?[ \t]*\]', re.MULTILINE)
    found = pattern.search(text)
    return text.count("\n", 0, found.start()) + 1 if found else None


def parse_budgets(text: str, where: str) -> BudgetConfig:
    """Budgets from TOML text; BadInput naming the file, line and field when something is wrong."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{where}: {exc} — fix the TOML syntax") from None
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise BadInput(f"{where}: unknown key {unknown[0]!r} — use [policies.NAME] and [plans.NAME] tables")
    if data.get("currency", "USD") != "USD":
        raise BadInput(f"{where}: currency {data['currency']!r}: budgets are in USD — convert them")
    out: dict[str, dict[str, float]] = {}
    for section in ("policies", "plans"):
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise BadInput(f"{where}: {section} must be a table: [{section}.NAME] monthly_usd = AMOUNT")
        out[section] = {}
        for name, entry in table.items():
            line = _line_of(text, section, name)
            at = f"{where}:{line}" if line else where
            field_name = f"{section}.{name}"
            if not isinstance(entry, dict):
                raise BadInput(f"{at}: {field_name} must be a table with monthly_usd = AMOUNT")
            extra = sorted(set(entry) - {"monthly_usd"})
            if extra:
                raise BadInput(f"{at}: {field_name}: unknown key {extra[0]!r} — the only key is monthly_usd")
            if "monthly_usd" not in entry:
                raise BadInput(f"{at}: {field_name}: missing monthly_usd (USD per month)")
            amount = entry["monthly_usd"]
            if isinstance(amount, bool) or not isinstance(amount, (int, float)):
                raise BadInput(f"{at}: {field_name}.monthly_usd: {amount!r} is not a number of USD")
            if amount <= 0:
                raise BadInput(f"{at}: {field_name}.monthly_usd: {amount} — a budget must be more than 0")
            out[section][name] = float(amount)
    return BudgetConfig(out["policies"], out["plans"], where)


def month_seconds(now: float) -> float:
    """Seconds in the calendar month (UTC) that holds ``now``."""
    moment = datetime.fromtimestamp(now, tz=timezone.utc)
    return calendar.monthrange(moment.year, moment.month)[1] * 86400.0


@dataclass
class RouteSpend:
    key: RouteKey
    policy: str | None
    spend_usd: float
    requests: int
    cost_per_resolved: float | None
    month_usd: float


@dataclass
class BudgetLine:
    """One budget (a policy or a plan tier) with its spend, projection and what-if."""

    kind: str  # "policy" or "plan"
    name: str
    budget_usd: float | None
    spend_usd: float
    month_usd: float
    routes: list[str] = field(default_factory=list)
    #: the month's projection if a flag's candidate served 100% (None when no candidate spends here)
    whatif_usd: float | None = None
    whatif_of: str | None = None

    @property
    def used(self) -> float | None:
        return self.month_usd / self.budget_usd if self.budget_usd else None

    @property
    def over(self) -> bool:
        return self.budget_usd is not None and self.month_usd > self.budget_usd

    @property
    def whatif_over(self) -> bool:
        return self.budget_usd is not None and self.whatif_usd is not None and self.whatif_usd > self.budget_usd


@dataclass
class WhatIf:
    """A flag's month if its candidate served everyone, from the candidate's cost per resolved task."""

    flag: str
    candidate: str
    policy: str | None
    resolved_per_s: float
    candidate_cost_per_resolved: float | None
    flag_month_usd: float  # the flag's month at the current split

    def month_usd(self, month_s: float) -> float | None:
        if self.candidate_cost_per_resolved is None:
            return None
        return self.resolved_per_s * self.candidate_cost_per_resolved * month_s


@dataclass
class BudgetReport:
    window_s: float
    month_s: float
    routes: list[RouteSpend]
    policies: list[BudgetLine]
    plans: list[BudgetLine]
    whatifs: list[WhatIf]
    alerts: list[str]
    gaps: list[str]


def policy_of(flags: dict[str, RouteFlag], key: RouteKey) -> str | None:
    """The budgetPolicy of the variation serving ``key``'s route (None when unknown)."""
    flag = flags.get(key.flag)
    if flag is None:
        return None
    for profile in flag.variations.values():
        if profile.route == key.route:
            return profile.budget_policy
    return None


def budget_report(snapshot: MetricsSnapshot, figures: list[RouteFigures], flags: dict[str, RouteFlag],
                  config: BudgetConfig, units: list[UnitRecord] | None = None) -> BudgetReport:
    """Spend per route, policy and plan for the snapshot's window, projected to the month of its end.

    ``figures`` are the dashboard's (``route_figures(snapshot)``); ``units`` (from ``read_units``
    over the same window, every flag) give spend per plan — without them the plans are a gap."""
    window = max(1e-9, snapshot.end - snapshot.start)
    month = month_seconds(snapshot.end)
    scale = month / window
    gaps: list[str] = []
    routes: list[RouteSpend] = []
    for fig in figures:
        c = snapshot.totals.get(fig.key)
        if fig.requests == 0 or c is None:
            continue
        spend = c.cost_usd
        routes.append(RouteSpend(fig.key, policy_of(flags, fig.key), spend, fig.requests,
                                 fig.values.get("cost_per_resolved_case"), spend * scale))
    routes.sort(key=lambda r: -r.spend_usd)

    by_policy: dict[str, BudgetLine] = {}
    for r in routes:
        name = r.policy or "(no budgetPolicy)"
        line = by_policy.setdefault(name, BudgetLine("policy", name, config.policies.get(name), 0.0, 0.0))
        line.spend_usd += r.spend_usd
        line.month_usd += r.month_usd
        line.routes.append(r.key.route)
    for name in config.policies:
        by_policy.setdefault(name, BudgetLine("policy", name, config.policies[name], 0.0, 0.0))
    for name, line in by_policy.items():
        if line.budget_usd is None and line.spend_usd:
            what = "routes without a budgetPolicy" if name.startswith("(") else f"budget policy {name}"
            gaps.append(f"{what} spent ${line.spend_usd:.2f} in the window but has no budget in {config.source}")

    whatifs = _whatifs(snapshot, figures, flags, window)
    for w in whatifs:
        if w.candidate_cost_per_resolved is None:
            gaps.append(f"what-if for {w.flag}: no cost per resolved task measured for {w.candidate} yet")
            continue
        month_candidate = w.month_usd(month)
        # the flag's routes stop spending where they spend now; the candidate's policy takes it all
        changes: dict[str | None, float] = {w.policy: month_candidate}
        for r in routes:
            if r.key.flag == w.flag:
                changes[r.policy] = changes.get(r.policy, 0.0) - r.month_usd
        for policy, delta in changes.items():
            line = by_policy.get(policy or "(no budgetPolicy)")
            if line is None:
                continue
            base = line.whatif_usd if line.whatif_usd is not None else line.month_usd
            line.whatif_usd = base + delta
            line.whatif_of = f"{w.candidate} on 100% of {w.flag}"

    plans: list[BudgetLine] = []
    if units is None:
        if config.plans:
            gaps.append("spend per plan needs per-unit data, which this metrics source does not give")
    else:
        spend: dict[str, float] = {}
        for u in units:
            plan = u.segment.get("plan", "(no plan)")
            spend[plan] = spend.get(plan, 0.0) + u.cost_usd
        for name in sorted(set(spend) | set(config.plans)):
            s = spend.get(name, 0.0)
            plans.append(BudgetLine("plan", name, config.plans.get(name), s, s * scale))
            if name not in config.plans and s:
                gaps.append(f"plan {name} spent ${s:.2f} in the window but has no budget in {config.source}")

    policies = sorted(by_policy.values(), key=lambda b: (b.budget_usd is None, -(b.used or 0.0), b.name))
    alerts = []
    for line in policies + plans:
        if line.over:
            alerts.append(f"{line.kind} {line.name}: a month at the current rate is ${line.month_usd:,.0f}, "
                          f"over its ${line.budget_usd:,.0f} budget")
        if line.whatif_over and not line.over:
            alerts.append(f"what-if: with {line.whatif_of}, policy {line.name} would reach "
                          f"${line.whatif_usd:,.0f} a month, over its ${line.budget_usd:,.0f} budget")
    return BudgetReport(window, month, routes, policies, plans, whatifs, alerts, gaps)


def _whatifs(snapshot: MetricsSnapshot, figures: list[RouteFigures], flags: dict[str, RouteFlag],
             window: float) -> list[WhatIf]:
    out = []
    for key in sorted(flags):
        flag = flags[key]
        if flag.candidate is None:
            continue
        candidate_route = flag.variations[flag.candidate].route
        fig = next((f for f in figures if f.key.flag == key and f.key.arm is Arm.CANDIDATE
                    and f.key.route == candidate_route), None)
        resolved = sum(c.resolved for k, c in snapshot.totals.items() if k.flag == key)
        spend = sum(c.cost_usd for k, c in snapshot.totals.items() if k.flag == key)
        out.append(WhatIf(
            flag=key, candidate=candidate_route, policy=flag.variations[flag.candidate].budget_policy,
            resolved_per_s=resolved / window,
            candidate_cost_per_resolved=fig.values.get("cost_per_resolved_case") if fig else None,
            flag_month_usd=spend / window * month_seconds(snapshot.end),
        ))
    return out
