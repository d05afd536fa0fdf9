"""The three special functions the engine needs, from the standard library (no SciPy on the console's path).

``math.lgamma`` is accurate to a few ulp; a log-Beta of large arguments loses a little to cancellation
(about 1e-9 in log space at a million units), far below what moves any verdict (thresholds are
log(1/α) ≈ 3). SciPy alone weighs more than the rest of the console's imports together.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

_lgamma = np.frompyfunc(math.lgamma, 1, 1)
_NORMAL = NormalDist()


def gammaln(x):
    """log Γ(x), for a number or an array."""
    if np.ndim(x) == 0:
        return math.lgamma(float(x))
    return _lgamma(np.asarray(x, dtype=float)).astype(float)


def betaln(a, b):
    """log B(a, b) = log Γ(a) + log Γ(b) − log Γ(a + b), for numbers or arrays."""
    return gammaln(a) + gammaln(b) - gammaln(np.add(a, b))


def norm_ppf(q: float) -> float:
    """The standard normal quantile of ``q``."""
    return _NORMAL.inv_cdf(q)
