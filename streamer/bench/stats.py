"""Small helpers for benchmark figures."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["percentile_ms"]


def percentile_ms(latencies_s: Sequence[float], q: float) -> float:
    """The q-th percentile of latencies given in seconds, in milliseconds."""
    if not latencies_s:
        return float("nan")
    return round(float(np.percentile(np.asarray(latencies_s) * 1000, q)), 2)
