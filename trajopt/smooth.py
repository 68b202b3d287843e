"""Hand-written smooth min / max (CasADi SX-expandable: no `ca.logsumexp`), numpy twins for checks.

Both under-approximate, so a constraint `smooth >= eps` implies the exact one (reference §3):
- lse_min(x, k) = -log(sum exp(-k (x - c))) / k + c <= min(x)
- boltzmann_max(x, k) = sum x softmax(k x) <= max(x)
`k` is a sharpness [1 / unit of x]; `c` a fixed shift for numerical range (any constant is exact).
"""

from __future__ import annotations

import casadi as ca
import numpy as np


def lse_min(values: list, k: float, shift: float = 0.0):
    """Soft-min of a list of SX scalars (or a numpy array)."""
    if isinstance(values, np.ndarray):
        z = -k * (values - shift)
        m = z.max()
        return -(m + np.log(np.exp(z - m).sum())) / k + shift
    total = sum(ca.exp(-k * (v - shift)) for v in values)
    return -ca.log(total) / k + shift


def boltzmann_max(values: list, k: float, shift: float = 0.0):
    """Boltzmann (softmax-weighted) mean of a list of SX scalars (or a numpy array)."""
    if isinstance(values, np.ndarray):
        w = np.exp(k * (values - values.max()))
        return float((w * values).sum() / w.sum())
    weights = [ca.exp(k * (v - shift)) for v in values]
    return sum(w * v for w, v in zip(weights, values, strict=True)) / sum(weights)
