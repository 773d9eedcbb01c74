"""The Bellman operator and value iteration that chapter 02 writes out agree with lgutils.core.dp.

The chapter teaches the algorithm in its own cells; ``lgutils.core.dp`` runs it on the fine grids
and in the curse-of-dimensionality sweep. Both do the same arithmetic, so they must agree to the
last bit on a small grid MDP: this test fails if either side changes.
"""

from __future__ import annotations

import numpy as np
import pytest
from _chapter_code import chapter_functions

from lgutils.core import dp

CHAPTER = chapter_functions("02_dynamic_programming", "bellman_operator", "value_iteration")


@pytest.fixture(scope="module")
def mdp() -> dp.GridMDP:
    """A small 1-D linear-quadratic grid MDP (9 states, 7 actions, noisy, gamma = 0.9)."""
    return dp.discretise_lq(
        [[1.1]],
        [[0.8]],
        [[1.0]],
        [[0.5]],
        dp.grid(-2.0, 2.0, 9),
        dp.grid(-1.5, 1.5, 7),
        [[0.09]],
        0.9,
        n_quadrature=5,
    )


def test_bellman_operator_agrees_with_dp(mdp: dp.GridMDP) -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        Q = rng.normal(scale=5.0, size=mdp.rewards.shape)
        np.testing.assert_array_equal(
            CHAPTER["bellman_operator"](mdp, Q), dp.bellman_operator(mdp, Q)
        )


def test_bellman_operator_is_the_equation_written_out(mdp: dp.GridMDP) -> None:
    """Independently of both: r + gamma * sum_s' P[(s, a), s'] max_a' Q(s', a'), entry by entry."""
    Q = np.random.default_rng(1).normal(size=mdp.rewards.shape)
    P = mdp.transition.toarray()
    S, M = mdp.rewards.shape
    by_hand = np.empty((S, M))
    for s in range(S):
        for a in range(M):
            expected = sum(P[s * M + a, j] * max(Q[j]) for j in range(S))
            by_hand[s, a] = mdp.rewards[s, a] + mdp.gamma * expected
    np.testing.assert_allclose(CHAPTER["bellman_operator"](mdp, Q), by_hand, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("tol", [0.0, 1e-6])
def test_value_iteration_agrees_with_dp(mdp: dp.GridMDP, tol: float) -> None:
    reference = dp.value_iteration(mdp, 2000, tol=1e-13).Q
    ours = CHAPTER["value_iteration"](mdp, 300, tol=tol, reference=reference)
    theirs = dp.value_iteration(mdp, 300, tol=tol, reference=reference)
    np.testing.assert_array_equal(ours.Q, theirs.Q)
    np.testing.assert_array_equal(ours.deltas, theirs.deltas)
    np.testing.assert_array_equal(ours.errors, theirs.errors)
    without = CHAPTER["value_iteration"](mdp, 25)
    np.testing.assert_array_equal(without.Q, dp.value_iteration(mdp, 25).Q)
    assert without.errors is None and without.deltas.size == 25


def test_value_iteration_reaches_the_fixed_point_at_rate_gamma(mdp: dp.GridMDP) -> None:
    run = CHAPTER["value_iteration"](mdp, 5000, tol=1e-12)
    # a fixed point of T: one more backup moves it by (at most) the tolerance
    assert np.max(np.abs(CHAPTER["bellman_operator"](mdp, run.Q) - run.Q)) <= 1e-11
    # successive steps shrink by at most gamma (the contraction), up to round-off
    steps = run.deltas[:-5]
    assert np.all(steps[1:] <= mdp.gamma * steps[:-1] * (1 + 1e-9) + 1e-12)
