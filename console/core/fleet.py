"""Which bucketing rule the services evaluating routedeck's flagd files use, and that rule itself.

flagd's ``fractional`` operator puts a unit in a bucket by murmur3 of a hash key, but the official
evaluators disagree on the key (docs/backends.md, "flagd across languages"):

* ``cbor`` — the CBOR encoding of ``[flagKey, targetingKey]`` (Python ``openfeature-flagd-core`` 2.x);
* ``concat`` — the string ``flagKey + targetingKey`` (JavaScript ``@openfeature/flagd-core`` 4.0.1,
  used by ``@openfeature/flagd-provider`` 0.16.1).

Both give the same *shares*, but different *units*: in a fleet whose services use both, one user can
be on the candidate in one service and on the baseline in another. No flag file can make them agree
(the Python evaluator encodes even an explicit bucketing value), so the operator declares the fleet's
rule in the profile (``fleet_bucketing``): the simulator, the interop tests and the cohort figures
follow it, ``mixed`` is warned about, and the crossover gate names it as the likely cause.
"""

from __future__ import annotations

import cbor2
import mmh3

RULES = ("cbor", "concat", "mixed")
DEFAULT = "cbor"

#: what each rule means, in words (shown in warnings, `profiles` and the docs)
DESCRIBED = {
    "cbor": "murmur3 of CBOR [flag key, targeting key] (Python openfeature-flagd-core 2.x)",
    "concat": "murmur3 of flag key + targeting key (JavaScript @openfeature/flagd-core 4.0.1)",
    "mixed": "services with both rules: a unit can get different routes in different services",
}

MIXED_WARNING = ("the fleet is declared mixed (fleet_bucketing = \"mixed\"): services evaluating the flagd file "
                 "with different bucketing rules put different units in the cohort, so one user can get both "
                 "routes — pin every service to one evaluator (docs/backends.md, \"flagd across languages\")")

_current = DEFAULT


def use_fleet(rule: str | None) -> None:
    """Declare the active profile's fleet rule (None: the default)."""
    global _current
    _current = rule or DEFAULT


def fleet_rule() -> str:
    return _current


def hash_key(rule: str, flag_key: str, targeting_key: str) -> int:
    """The unsigned 32-bit murmur3 hash a service of ``rule`` computes for a unit (ASCII keys)."""
    if rule == "cbor":
        data = cbor2.dumps([flag_key, targeting_key], canonical=True)
    elif rule == "concat":
        data = (flag_key + targeting_key).encode("utf-8")
    else:
        raise ValueError(f"bucketing rule {rule!r}: one of cbor, concat")
    return mmh3.hash(data, signed=False)


def fractional_variant(rule: str, flag_key: str, targeting_key: str, weights: list[tuple[str, int]]) -> str | None:
    """The variant ``fractional`` serves under ``rule``: ``bucket = hash × total >> 32``, variants taking
    consecutive ranges in the order listed."""
    total = sum(max(0, w) for _, w in weights)
    if total <= 0:
        return None
    bucket = (hash_key(rule, flag_key, targeting_key) * total) >> 32
    end = 0
    for variant, weight in weights:
        end += max(0, weight)
        if bucket < end:
            return variant
    return None


def rules_of_service(rule: str, service: int) -> str:
    """The rule service number ``service`` uses in a fleet declared ``rule`` (a mixed fleet alternates)."""
    if rule != "mixed":
        return rule
    return "cbor" if service % 2 == 0 else "concat"
