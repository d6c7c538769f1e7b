"""Calibration of each head and the weights of the combined score, fitted on the validation period.

Negative downsampling and focal weighting leave the heads' outputs mis-scaled (NE > 1), and a
product of mis-scaled probabilities over- or under-weights one of them. Platt scaling per head
(p = sigmoid(a * logit + b), fitted by Newton's method on the validation period, which keeps the
natural class balance) makes P(send) and P(accept) probabilities again; the exponent of P(accept)
in P(send) * P(accept)^w is then chosen on the same period by NDCG@10 of connections formed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from pymk.metrics import ndcg_at_k

ACCEPT_WEIGHTS = (0.25, 0.5, 0.75, 1.0, 1.5)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """In float64, clipped only where exp would overflow: a clip at +-30 (before 2026-12-06) gave every logit
    below -30 the same probability, a tie the ranking then broke by candidate index."""
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, dtype=np.float64), -700, 700)))


@dataclass(frozen=True)
class Calibration:
    """Per-head Platt parameters (a, b) and the exponents of the combined score."""

    send: tuple[float, float] = (1.0, 0.0)
    accept: tuple[float, float] = (1.0, 0.0)
    send_weight: float = 1.0
    accept_weight: float = 1.0
    connect: tuple[float, float] = (1.0, 0.0)

    def probabilities(self, send_logits: np.ndarray, accept_logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        (sa, sb), (aa, ab) = self.send, self.accept
        return sigmoid(sa * send_logits + sb), sigmoid(aa * accept_logits + ab)

    def score(self, p_send: np.ndarray, p_accept: np.ndarray) -> np.ndarray:
        """P(send)^a * P(accept)^b; with calibrated heads and a = b = 1, the expected connection rate."""
        return np.maximum(p_send, 1e-9) ** self.send_weight * np.maximum(p_accept, 1e-9) ** self.accept_weight

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> Calibration:
        if not d:
            return cls()
        return cls(tuple(d["send"]), tuple(d["accept"]), float(d["send_weight"]), float(d["accept_weight"]),
                   tuple(d.get("connect", (1.0, 0.0))))


def fit_platt(logits: np.ndarray, y: np.ndarray, iters: int = 50, l2: float = 1e-3) -> tuple[float, float]:
    """(a, b) minimising the log loss of sigmoid(a * logit + b) against y (a little L2 keeps it finite)."""
    x = np.column_stack([np.asarray(logits, np.float64), np.ones(len(logits))])
    y = np.asarray(y, np.float64)
    if y.size == 0 or y.min() == y.max():
        return 1.0, 0.0  # nothing to fit: keep the head as it is
    w = np.array([1.0, 0.0])
    for _ in range(iters):
        p = sigmoid(x @ w)
        grad = x.T @ (p - y) + l2 * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + l2 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return float(w[0]), float(w[1])


def choose_accept_weight(group: np.ndarray, relevance: np.ndarray, p_send: np.ndarray, p_accept: np.ndarray,
                         base: Calibration) -> tuple[Calibration, dict[float, float]]:
    """The accept exponent with the best NDCG@10 of connections (ties: the one closest to 1)."""
    scores = {}
    for w in ACCEPT_WEIGHTS:
        cal = replace(base, accept_weight=w)
        scores[w] = ndcg_at_k(group, relevance, cal.score(p_send, p_accept))
    best = max(scores, key=lambda w: (round(scores[w], 6), -abs(w - 1.0)))
    return replace(base, accept_weight=best), scores
