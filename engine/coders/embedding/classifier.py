"""Classifiers over sentence embeddings: multinomial logistic regression (L-BFGS, numpy) and nearest neighbour per code.

The regression minimises the same objective as scikit-learn's `LogisticRegression(C=...)` with the
multinomial loss (sum of log-losses + ||W||^2 / 2C, intercept unpenalised), so C means the same thing.
A short numpy L-BFGS does the job for a few hundred classes; scikit-learn (and scipy under it) would add
~60 MB to the installer for one optimiser.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.coders.calibration import fit_temperature, softmax  # noqa: F401  (re-exported)
from engine.jobs import CancelToken


@dataclass
class LinearModel:
    weights: np.ndarray      # (dim, classes) float32
    bias: np.ndarray         # (classes,) float32
    iterations: int = 0
    converged: bool = False

    def logits(self, x: np.ndarray) -> np.ndarray:
        return x @ self.weights + self.bias


def _loss_grad(theta: np.ndarray, x: np.ndarray, y: np.ndarray, n_classes: int, l2: float,
               soft: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    dim = x.shape[1]
    w = theta[: dim * n_classes].reshape(dim, n_classes).astype(np.float32)
    b = theta[dim * n_classes:].astype(np.float32)
    probs = softmax(x @ w + b)
    rows = np.arange(len(y))
    if soft is None:
        loss = -float(np.log(np.maximum(probs[rows, y], 1e-30)).astype(np.float64).sum())
        probs[rows, y] -= 1.0
    else:  # cross-entropy against target distributions (hierarchy-aware label smoothing)
        loss = -float((soft * np.log(np.maximum(probs, 1e-30))).astype(np.float64).sum())
        probs -= soft
    grad_w = (x.T @ probs).astype(np.float64) + l2 * w.astype(np.float64)
    grad_b = probs.sum(axis=0, dtype=np.float64)
    loss += 0.5 * l2 * float(np.dot(theta[: dim * n_classes], theta[: dim * n_classes]))
    n = len(y)
    return loss / n, np.concatenate([grad_w.ravel(), grad_b]) / n


def fit_logistic(x: np.ndarray, y: np.ndarray, n_classes: int, *, c: float = 100.0, max_iter: int = 300,
                 tol: float = 1e-5, init: LinearModel | None = None, memory: int = 10,
                 cancel: CancelToken | None = None, soft: np.ndarray | None = None) -> LinearModel:
    """Multinomial logistic regression by L-BFGS with a backtracking (Armijo) line search. Deterministic.

    `soft`: optional (n, classes) target distributions replacing the one-hot targets of `y`.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    dim = x.shape[1]
    theta = (np.concatenate([init.weights.ravel(), init.bias]).astype(np.float64) if init is not None
             else np.zeros(dim * n_classes + n_classes))
    l2 = 1.0 / c
    soft = None if soft is None else np.ascontiguousarray(soft, dtype=np.float32)
    f, g = _loss_grad(theta, x, y, n_classes, l2, soft)
    s_hist: list[np.ndarray] = []
    y_hist: list[np.ndarray] = []
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        if cancel is not None:
            cancel.check()
        if np.abs(g).max() < tol:
            converged = True
            break
        q = g.copy()
        alphas = []
        for s, yv in zip(reversed(s_hist), reversed(y_hist)):
            rho = 1.0 / float(yv @ s)
            a = rho * float(s @ q)
            alphas.append((rho, a))
            q -= a * yv
        if s_hist:
            q *= float(s_hist[-1] @ y_hist[-1]) / float(y_hist[-1] @ y_hist[-1])
        else:
            q /= max(1.0, float(np.linalg.norm(g)))
        for (s, yv), (rho, a) in zip(zip(s_hist, y_hist), reversed(alphas)):
            q += s * (a - rho * float(yv @ q))
        direction = -q
        slope = float(g @ direction)
        if slope >= 0:  # not a descent direction: restart from steepest descent
            s_hist.clear()
            y_hist.clear()
            direction, slope = -g, -float(g @ g)
        step = 1.0
        while True:
            new_theta = theta + step * direction
            new_f, new_g = _loss_grad(new_theta, x, y, n_classes, l2, soft)
            if new_f <= f + 1e-4 * step * slope or step < 1e-10:
                break
            step *= 0.5
        s_vec, y_vec = new_theta - theta, new_g - g
        if float(s_vec @ y_vec) > 1e-12:
            s_hist.append(s_vec)
            y_hist.append(y_vec)
            if len(s_hist) > memory:
                s_hist.pop(0)
                y_hist.pop(0)
        converged = abs(f - new_f) <= tol * max(1.0, abs(f)) * 1e-2
        theta, f, g = new_theta, new_f, new_g
        if converged:
            break
    return LinearModel(theta[: dim * n_classes].reshape(dim, n_classes).astype(np.float32),
                       theta[dim * n_classes:].astype(np.float32), iterations=it, converged=converged)


class NearestIndex:
    """Reference vectors grouped by code once, so that each query pays only its similarities (sorting and
    copying every reference on every call was half of a suggestion's time on all of NACE)."""

    def __init__(self, refs: np.ndarray, ref_labels: np.ndarray, n_classes: int):
        order = np.argsort(ref_labels, kind="stable")
        self.refs = np.ascontiguousarray(refs[order], dtype=np.float32)
        self.present, self.starts = np.unique(ref_labels[order], return_index=True)
        self.n_classes = n_classes

    def scores(self, queries: np.ndarray, chunk: int = 512) -> np.ndarray:
        """For each query and code, the cosine similarity of the nearest reference vector of that code
        (-1 if none)."""
        out = np.full((len(queries), self.n_classes), -1.0, dtype=np.float32)
        for start in range(0, len(queries), chunk):
            sims = queries[start:start + chunk] @ self.refs.T
            out[start:start + chunk, self.present] = np.maximum.reduceat(sims, self.starts, axis=1)
        return out


def top_k(probs: np.ndarray, codes: list[str], k: int) -> list[list[tuple[str, float]]]:
    k = min(k, probs.shape[1])
    idx = np.argpartition(-probs, k - 1, axis=1)[:, :k]
    out = []
    for row, cand in zip(probs, idx):
        ranked = cand[np.argsort(-row[cand], kind="stable")]
        out.append([(codes[j], float(row[j])) for j in ranked])
    return out


def accuracy(probs: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Top-1 and top-5 accuracy of probability rows against class indices."""
    if len(y) == 0:
        return 0.0, 0.0
    k = min(5, probs.shape[1])
    top = np.argpartition(-probs, k - 1, axis=1)[:, :k]
    top1 = float((probs.argmax(axis=1) == y).mean())
    top5 = float((top == y[:, None]).any(axis=1).mean())
    return top1, top5
