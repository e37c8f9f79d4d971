"""Bootstrap 95 % confidence intervals: resample cases with replacement, recompute the statistic.

Why a plain percentile bootstrap: every metric here is either a mean over cases, a ratio of pooled
counts or a corpus score (BLEU, METEOR, mAP); resampling whole cases and recomputing the
statistic treats all three alike. Corpus scores are recomputed on each resample, not averaged.
Each (task, slice, value) draws from its own generator, derived from the seed and its name, so a
number does not change when other metrics or slices are added.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class Stat:
    """A group of metrics computed together from the same cases (e.g. BLEU-1..4 in one pass).

    ``fn(idx)`` gets row positions (repeats allowed) and returns one value per name. ``corpus``
    marks statistics that are expensive to recompute (they use the smaller resample count)."""

    names: Sequence[str]
    fn: Callable[[np.ndarray], Sequence[float]]
    corpus: bool = False


def generator(seed: int, *key: str) -> np.random.Generator:
    words = [zlib.crc32("\0".join(key).encode())]
    return np.random.default_rng([seed, *words])


def estimate(
    stat: Stat, positions: np.ndarray, n_boot: int, rng: np.random.Generator
) -> list[tuple[float, float, float]]:
    """(value, ci_low, ci_high) per name of ``stat`` on the cases at ``positions``.

    With fewer than two cases, or ``n_boot`` 0, the interval is NaN (there is nothing to resample)."""
    positions = np.asarray(positions, dtype=np.int64)
    point = np.asarray(stat.fn(positions), dtype=float)
    if len(positions) < 2 or n_boot <= 0:
        return [(float(v), float("nan"), float("nan")) for v in point]
    draws = rng.integers(0, len(positions), size=(n_boot, len(positions)))
    samples = np.array([np.asarray(stat.fn(positions[d]), dtype=float) for d in draws])
    with np.errstate(all="ignore"):
        low, high = np.nanpercentile(samples, [2.5, 97.5], axis=0)
    return [(float(v), float(lo), float(hi)) for v, lo, hi in zip(point, low, high, strict=True)]


def mean_stat(name: str, values: np.ndarray) -> Stat:
    """A per-case score averaged over cases (accuracy, ROUGE-L, format rate, …)."""
    values = np.asarray(values, dtype=float)
    return Stat([name], lambda idx: [values[idx].mean() if len(idx) else float("nan")])


def ratio_stat(name: str, num: np.ndarray, den: np.ndarray) -> Stat:
    """Pooled counts: sum(num) / sum(den) over cases (precision and recall of boxes)."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)

    def fn(idx: np.ndarray) -> list[float]:
        d = den[idx].sum()
        return [num[idx].sum() / d if d else float("nan")]

    return Stat([name], fn)
