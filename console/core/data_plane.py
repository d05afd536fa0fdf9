"""Proof at the data plane: when the traffic itself last showed a route of a flag.

A platform that stored a rollback says nothing about the application: an SDK may serve the
old rules until its next refresh, a replica may have cached them. These read the metrics
snapshot's buckets (times on the metrics source's clock).
"""

from __future__ import annotations

from .telemetry import MetricsSnapshot


def candidate_last_seen(snapshot: MetricsSnapshot, flag: str, route: str) -> float | None:
    """The end of the newest bucket in which ``route`` served a request of ``flag`` (any arm), or None."""
    for bucket in reversed(snapshot.buckets):
        if any(c.requests for k, c in bucket.counters.items() if k.flag == flag and k.route == route):
            return min(bucket.end, snapshot.as_of) if snapshot.as_of else bucket.end
    return None


def flag_last_seen(snapshot: MetricsSnapshot, flag: str) -> float | None:
    """The end of the newest bucket with any request of ``flag``: no data is not the same as no traffic."""
    for bucket in reversed(snapshot.buckets):
        if any(c.requests for k, c in bucket.counters.items() if k.flag == flag):
            return min(bucket.end, snapshot.as_of) if snapshot.as_of else bucket.end
    return None
