"""Calibration shared by the coder kinds: softmax and temperature scaling fitted on held-out texts."""

from __future__ import annotations

import math

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def fit_temperature(scores: np.ndarray, y: np.ndarray, *, low: float = 1e-3, high: float = 100.0) -> float:
    """The temperature T minimising the log-loss of softmax(scores / T) on held-out data (golden-section on log T)."""
    def nll(log_t: float) -> float:
        probs = softmax(scores / math.exp(log_t))
        return -float(np.log(np.maximum(probs[np.arange(len(y)), y], 1e-30)).mean())

    a, b = math.log(low), math.log(high)
    ratio = (math.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = nll(c), nll(d)
    for _ in range(40):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = nll(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = nll(d)
    return math.exp((a + b) / 2)
