"""Numbers for JSON: JSON has no NaN or infinity, so an undefined number (a KPI with no output
to divide by, a zero-width confidence interval, a solver without a bound) becomes ``None``
(``null``) — the one conversion every JSON document of twinopt uses."""
from __future__ import annotations

import math


def finite_or_none(x, digits: int | None = None) -> float | None:
    """``x`` as a float, or None when it is None, NaN or infinite; rounded to ``digits``
    decimals when given (twin KPIs use 12, so sums in a different order print the same)."""
    if x is None:
        return None
    x = float(x)
    if not math.isfinite(x):
        return None
    return x if digits is None else round(x, digits)
