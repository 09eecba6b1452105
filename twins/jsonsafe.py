"""Numbers for JSON: JSON has no NaN or infinity, so an undefined number (a KPI with no output
to divide by, a zero-width confidence interval, a solver without a bound) becomes ``None``
(``null``) — the one conversion every JSON document of twinopt uses."""
from __future__ import annotations

import math
from typing import SupportsFloat


def finite_or_none(x: SupportsFloat | str | None, digits: int | None = None) -> float | None:
    """``x`` as a float, or None when it is None, NaN or infinite; rounded to ``digits``
    decimals when given (twin KPIs use 12, so sums in a different order print the same).
    A string is parsed as by ``float`` (``"inf"`` is None; ValueError when it is no number)."""
    if x is None:
        return None
    value = float(x)
    if not math.isfinite(value):
        return None
    return value if digits is None else round(value, digits)
