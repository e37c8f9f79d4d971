"""Bradley–Terry with ties (Davidson 1970), fit by penalised maximum likelihood with Newton's method.

Why this model and not online Elo: Elo's ratings depend on the order the games are played in; the
arena's judgments have no order, so we fit all of them at once. Why Davidson: the judge may say
"tie", and a tie is evidence that two models are close, not a missing game.

For models i, j with strengths θ (π = e^θ) and tie parameter ν = e^η:

    P(i beats j) = π_i / D,   P(j beats i) = π_j / D,   P(tie) = ν √(π_i π_j) / D,
    D = π_i + π_j + ν √(π_i π_j).

Each outcome's probability is exp(f·x) / D with f = (1, 0, 0), (0, 1, 0) or (½, ½, 1) on (θ_i, θ_j, η),
so the log-likelihood is an exponential family in x: concave, its gradient is counts·f − n·E[f] and
its negative Hessian n·Cov(f). Newton with step halving converges in a handful of steps.

Strengths are only defined up to a shift: the first model is the reference, fixed at θ = 0. A small
ridge penalty (``ridge``/2 · Σ (θ − mean θ)² + ``ridge``/2 · η²) keeps the fit finite when a model
wins (or ties) every comparison — common in bootstrap resamples of a few cases; it does not depend
on which model is the reference and is negligible next to many comparisons.

Confidence intervals: percentile bootstrap over *cases* (all pairs' judgments of one case move
together, as they share the case's difficulty).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Outcome features on (θ_i, θ_j, η) for: i wins, j wins, tie.
_F = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 1.0]])


@dataclass
class Fit:
    strength: np.ndarray  # θ per model, the reference (index 0) at 0; natural-log odds scale
    tie: float  # ν: the tie propensity (ν = 0: no ties; P(tie) between equals = ν / (2 + ν))
    converged: bool


def _pair_index(m: int) -> tuple[np.ndarray, np.ndarray]:
    i, j = np.triu_indices(m, k=1)
    return i, j


def fit_davidson(counts: np.ndarray, *, ridge: float = 0.01, max_iter: int = 100, tol: float = 1e-9) -> Fit:
    """Fit strengths from ``counts[i, j, k]``: for i < j, k = 0 i won, 1 j won, 2 tie (entries with
    i >= j are ignored). Returns θ with θ_0 = 0 and the tie parameter ν."""
    m = counts.shape[0]
    pi, pj = _pair_index(m)
    c = counts[pi, pj].astype(float)  # (pairs, 3)
    n = c.sum(axis=1)
    # Map from the free parameters x = (θ_1..θ_{m-1}, η) to (θ_i, θ_j, η) per pair (θ_0 = 0 is fixed).
    rows = np.arange(len(pi))
    full = np.zeros((len(pi), 3, m + 1))
    full[rows, 0, pi] = 1.0
    full[rows, 1, pj] = 1.0
    full[:, 2, m] = 1.0
    full = full[:, :, 1:]
    center = np.eye(m) - 1.0 / m  # ridge on θ − mean θ
    penalty = np.zeros((m + 1, m + 1))
    penalty[:m, :m] = ridge * center
    penalty[m, m] = ridge
    penalty = penalty[1:, 1:]  # drop the reference θ_0 (fixed at 0)

    def local(x: np.ndarray) -> np.ndarray:  # (pairs, 3): θ_i, θ_j, η
        return full @ x

    def objective(x: np.ndarray) -> float:
        logits = local(x) @ _F.T  # (pairs, 3) log-numerators of the three outcomes
        logd = np.logaddexp.reduce(logits, axis=1)
        return -float((c * logits).sum() - (n * logd).sum()) + 0.5 * x @ penalty @ x

    def grad_hess(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits = local(x) @ _F.T
        p = np.exp(logits - np.logaddexp.reduce(logits, axis=1, keepdims=True))
        mu = p @ _F  # E[f], (pairs, 3)
        g_local = (c @ _F) - n[:, None] * mu
        cov = np.einsum("pk,ka,kb->pab", p, _F, _F) - mu[:, :, None] * mu[:, None, :]
        h_local = n[:, None, None] * cov
        g = -np.einsum("pa,paf->f", g_local, full) + penalty @ x
        h = np.einsum("paf,pab,pbg->fg", full, h_local, full) + penalty
        return g, h

    x = np.zeros(m)  # θ_1..θ_{m-1} = 0, η = 0 (ν = 1)
    f = objective(x)
    converged = False
    for _ in range(max_iter):
        g, h = grad_hess(x)
        if np.max(np.abs(g)) < tol:
            converged = True
            break
        step = np.linalg.lstsq(h + 1e-12 * np.eye(len(x)), g, rcond=None)[0]
        t = 1.0
        while t > 1e-10:
            x_new = x - t * step
            f_new = objective(x_new)
            if f_new <= f + 1e-12:
                break
            t /= 2
        else:
            break
        done = abs(f - f_new) < tol * max(1.0, abs(f))
        x, f = x_new, f_new
        if done:
            converged = np.max(np.abs(grad_hess(x)[0])) < 1e-5 * max(1.0, n.sum())
            break
    return Fit(strength=np.concatenate([[0.0], x[:-1]]), tie=float(np.exp(x[-1])), converged=bool(converged))


def bootstrap_strengths(
    case_counts: np.ndarray, *, n_boot: int, seed: int, ridge: float = 0.01
) -> np.ndarray:
    """θ refitted on ``n_boot`` resamples of the cases. ``case_counts[c]`` is case c's (m, m, 3)
    counts; returns (n_boot, m)."""
    rng = np.random.default_rng(seed)
    n_cases, m = case_counts.shape[0], case_counts.shape[1]
    flat = case_counts.reshape(n_cases, -1)
    out = np.empty((n_boot, m))
    for b in range(n_boot):
        w = rng.multinomial(n_cases, np.full(n_cases, 1.0 / n_cases))
        out[b] = fit_davidson((w @ flat).reshape(case_counts.shape[1:]), ridge=ridge).strength
    return out


def davidson_probs(theta_i: float, theta_j: float, nu: float) -> np.ndarray:
    """(P(i wins), P(j wins), P(tie)) under Davidson's model."""
    a, b, t = np.exp(theta_i), np.exp(theta_j), nu * np.exp((theta_i + theta_j) / 2)
    return np.array([a, b, t]) / (a + b + t)


def simulate_davidson(theta: np.ndarray, nu: float, n_cases: int, seed: int) -> np.ndarray:
    """Per-case counts (n_cases, m, m, 3): one judged outcome per pair per case, drawn from the model.
    For checking the fit against a known truth (tests, power calculations)."""
    rng = np.random.default_rng(seed)
    m = len(theta)
    out = np.zeros((n_cases, m, m, 3), dtype=np.int64)
    for i, j in zip(*_pair_index(m), strict=True):
        k = rng.choice(3, size=n_cases, p=davidson_probs(theta[i], theta[j], nu))
        out[np.arange(n_cases), i, j, k] = 1
    return out
