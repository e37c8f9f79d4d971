"""Bradley–Terry with ties (Davidson) against data drawn from the model itself with known strengths."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.arena.bradley_terry import bootstrap_strengths, davidson_probs, fit_davidson, simulate_davidson

TRUTH = np.array([0.0, 0.8, -0.5, 1.5])  # reference first, at 0
NU = 0.7  # ties between equals: ν / (2 + ν) ≈ 26 %


def test_probabilities_sum_to_one_and_equals_tie_at_nu_over_two_plus_nu():
    p = davidson_probs(0.3, 0.3, NU)
    assert p.sum() == pytest.approx(1) and p[2] == pytest.approx(NU / (2 + NU)) and p[0] == p[1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fit_recovers_ranking_strengths_and_tie_parameter(seed):
    counts = simulate_davidson(TRUTH, NU, n_cases=3000, seed=seed)
    assert counts[..., 2].sum() > 0.15 * counts.sum(), "the simulation has ties"
    fit = fit_davidson(counts.sum(axis=0))
    assert fit.converged
    assert list(np.argsort(fit.strength)) == list(np.argsort(TRUTH))
    assert fit.strength[0] == 0.0
    np.testing.assert_allclose(fit.strength, TRUTH, atol=0.12)
    assert fit.tie == pytest.approx(NU, abs=0.1)


def test_ties_are_not_ignored_a_pair_with_only_ties_is_equal():
    counts = np.zeros((2, 2, 3))
    counts[0, 1] = [0, 0, 40]
    fit = fit_davidson(counts)
    assert fit.strength[1] == pytest.approx(0, abs=1e-6) and fit.tie > 5


def test_a_model_that_never_loses_gets_a_finite_larger_strength():
    counts = np.zeros((3, 3, 3))
    counts[0, 1] = [0, 10, 2]  # model 1 beats the reference
    counts[1, 2] = [10, 0, 1]  # and model 2
    counts[0, 2] = [5, 5, 3]
    fit = fit_davidson(counts)
    assert np.isfinite(fit.strength).all() and fit.strength[1] == fit.strength.max() > 1


def test_bootstrap_ci_covers_truth_and_shrinks_with_more_cases():
    cases = simulate_davidson(TRUTH, NU, n_cases=1600, seed=5)
    widths = []
    for n in (100, 1600):
        boot = bootstrap_strengths(cases[:n], n_boot=300, seed=0)
        low, high = np.percentile(boot, [2.5, 97.5], axis=0)
        assert (low <= TRUTH + 1e-9).all() and (TRUTH - 1e-9 <= high).all(), (n, low, high)
        assert low[0] == high[0] == 0.0, "the reference stays at 0"
        widths.append(high[1:] - low[1:])
    assert (widths[1] < widths[0] / 2.5).all(), widths  # ~1/sqrt(16) = 1/4 in theory


def test_bootstrap_is_seeded():
    cases = simulate_davidson(TRUTH, NU, n_cases=50, seed=1)
    a = bootstrap_strengths(cases, n_boot=20, seed=3)
    assert np.array_equal(a, bootstrap_strengths(cases, n_boot=20, seed=3))
    assert not np.array_equal(a, bootstrap_strengths(cases, n_boot=20, seed=4))


@pytest.mark.parametrize("w, lo, t", [(30, 10, 20), (5, 40, 3), (12, 12, 1)])
def test_two_models_match_the_closed_form(w, lo, t):
    """With two models the model is saturated: θ = log(losses/wins of the reference), ν = t / √(w·l)."""
    counts = np.zeros((2, 2, 3))
    counts[0, 1] = [w, lo, t]
    fit = fit_davidson(counts, ridge=0.0)
    assert fit.converged
    assert fit.strength[1] == pytest.approx(np.log(lo / w), abs=1e-6)
    assert fit.tie == pytest.approx(t / np.sqrt(w * lo), rel=1e-6)
