"""Claims of the Markov-decision-process chapter (paper Sec. II.A) on its full-fidelity metrics.

Skipped until `make book` has written _build/metrics/01_mdp.json. The exact values are
recomputed here from the scalar problem the chapter records, by the recursion of the second
moment and the scalar Riccati equation solved by hand (tests/_scalar_lq.py, no lgutils): the
chapter's Monte-Carlo estimate, its Riccati gain and what it says about the uncontrolled system
are held to them.
"""

from __future__ import annotations

import pytest
from _scalar_lq import linear_policy_return, riccati
from conftest import book_metrics

pytestmark = pytest.mark.claims


@pytest.fixture(scope="module")
def m() -> dict:
    out = book_metrics("01_mdp")
    assert out["mdp.n_episodes"] >= 4000  # full fidelity
    return out


def test_monte_carlo_return_agrees_with_the_exact_value(m: dict) -> None:
    p = m["mdp.problem"]
    J = linear_policy_return(p, m["mdp.K_eval"], m["mdp.gamma"], p["T"])
    assert m["mdp.J_exact"] == pytest.approx(J, rel=1e-10)  # the chapter's exact value
    # the Monte-Carlo estimate lies within its 99.9 % interval of this value, and the interval
    # is tight (< 5 % of |J|)
    assert abs(m["mdp.J_mc"] - J) <= m["mdp.J_mc_halfwidth95"] * 3.3 / 1.96
    assert m["mdp.J_mc_halfwidth95"] < 0.05 * abs(J)
    # stochastic policies too (each 95 % interval may miss with probability 1/20)
    assert m["mdp.stochastic_max_abs_z"] < 3.3
    assert m["mdp.stochastic_inside_95"] >= m["mdp.stochastic_cases"] - 1
    # the infinite-horizon value: the sum to 2000 steps has converged (0.9^2000 ~ 1e-92)
    J_inf = linear_policy_return(p, m["mdp.K_eval"], m["mdp.gamma"], 2000)
    assert m["mdp.J_exact_infinite"] == pytest.approx(J_inf, rel=1e-10)


def test_the_riccati_gain_is_the_scalar_closed_form_and_the_best_gain(m: dict) -> None:
    p, g = m["mdp.problem"], m["mdp.gamma"]
    _, K = riccati(p["a"], p["b"], p["q"], p["r"], g)
    assert m["mdp.K_star"] == pytest.approx(K, rel=1e-10)
    J = [linear_policy_return(p, k, g, 2000) for k in (K - 0.01, K, K + 0.01)]
    assert J[1] > max(J[0], J[2])  # no neighbouring gain does better


def test_discounting_hides_the_instability_of_the_uncontrolled_system(m: dict) -> None:
    """K = 0: the partial sums of the return settle for gamma = 0.99 / a^2 and grow without
    bound for gamma = 1.01 / a^2, as the chapter's two flags say."""
    p = m["mdp.problem"]
    limit = 1 / p["a"] ** 2
    for factor, side, finite in ((0.99, "below", True), (1.01, "above", False)):
        partial = [linear_policy_return(p, 0.0, factor * limit, n) for n in (4000, 8000)]
        assert (abs(partial[1] - partial[0]) < 1e-9 * abs(partial[0])) is finite
        assert m[f"mdp.uncontrolled_finite_{side}_limit"] is finite
