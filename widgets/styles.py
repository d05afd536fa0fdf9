"""The console's colours for verdicts, guardrail readouts and gates — defined once, used by every view."""

from __future__ import annotations

VERDICT_STYLE = {"ADVANCE": "bold green", "HOLD": "bold yellow", "ROLLBACK": "bold red"}
METRIC_STYLE = {"harm": "bold red", "non-inferior": "green", "superior": "bold green", "inconclusive": "yellow",
                "no data": "bold yellow", "tripped": "bold red"}
GATE_STYLE = {"pass": "green", "fail": "bold red", "wait": "yellow", "no data": "bold yellow"}
#: what fires when a readout trips: rollback, hold, warn (signal metrics never block)
ACTION_STYLE = {"rollback": "bold red", "hold": "yellow", "warn": "cyan", "signal": "dim"}
#: text from outside routedeck (flag keys, route names, reasons) is drawn in these styles, never parsed
FAILING = "bold red"
STALE = "bold yellow"


def eta_style(decision) -> str:
    """The ADVANCE estimate: a forecast (cyan), too little data to forecast (plain), none expected (yellow)."""
    if decision.eta_s is not None:
        return "cyan"
    return "" if decision.eta_early else "yellow"
