"""Guardrail statistics: anytime-valid confidence sequences, health gates and verdicts."""
