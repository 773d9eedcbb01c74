"""Claims of paper Sec. II on the full-fidelity metrics of chapters 01-03.

Skipped until `make book` has written _build/metrics/0{1,2,3}_*.json.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import book_metrics

pytestmark = pytest.mark.claims


def test_monte_carlo_return_agrees_with_the_exact_value() -> None:
    m = book_metrics("01_mdp")
    assert m["mdp.n_episodes"] >= 4000  # full fidelity
    # within the 99.9 % interval, and the interval is tight (< 5 % of |J|)
    assert abs(m["mdp.z_score"]) < 3.3
    assert abs(m["mdp.J_mc"] - m["mdp.J_exact"]) <= m["mdp.J_mc_halfwidth95"] * 3.3 / 1.96
    assert m["mdp.J_mc_halfwidth95"] < 0.05 * abs(m["mdp.J_exact"])
    # stochastic policies too (each 95 % interval may miss with probability 1/20)
    assert m["mdp.stochastic_max_abs_z"] < 3.3
    assert m["mdp.stochastic_inside_95"] >= m["mdp.stochastic_cases"] - 1
    # the best gain of the sweep is the Riccati gain (grid spacing 0.005)
    assert m["mdp.argmax_gain_error"] <= 0.005
    # discounting below 1/a^2 hides the instability of K = 0: finite value below, infinite above
    assert m["mdp.gamma_limit_uncontrolled"] == pytest.approx(1 / 1.2**2)
    assert m["mdp.uncontrolled_finite_below_limit"] is True
    assert m["mdp.uncontrolled_finite_above_limit"] is False


def test_bellman_operator_contracts_and_value_iteration_converges_at_rate_gamma() -> None:
    m = book_metrics("02_dynamic_programming")
    assert m["dp.n_contraction_pairs"] >= 1000
    assert m["dp.max_ratio_over_gamma"] <= 1 + 1e-12  # no measured ratio exceeds gamma
    assert m["dp.max_ratio_over_gamma"] > 1 - 1e-9  # and the bound is attained
    assert m["dp.vi_bound_holds"] is True
    assert m["dp.vi_rate"] == pytest.approx(m["dp.gamma"], abs=0.01)


def test_grid_solution_approaches_analytic_q_star() -> None:
    m = book_metrics("02_dynamic_programming")
    errors = np.asarray(m["dp.grid_rel_errors"])
    assert m["dp.grid_points"][-1] >= 161
    assert m["dp.finest_rel_error"] < 1e-3  # stated tolerance on the finest grid
    assert np.all(np.diff(errors) < 0)  # refinement always helps
    assert 1.7 < m["dp.convergence_order"] < 2.3  # second order
    assert m["dp.finest_gain_rel_error"] < 0.01  # greedy policy within 1 % of the LQR gain


def test_curse_of_dimensionality_is_exponential() -> None:
    m = book_metrics("02_dynamic_programming")
    assert m["dp.curse_dims"] == [1, 2, 3, 4]
    mem = np.asarray(m["dp.curse_bytes"])
    assert np.all(np.diff(np.log(mem)) > np.log(5))  # each dimension costs > 5x memory
    assert m["dp.curse_memory_factor_per_dim"] > 9  # at least the 9 grid points per dimension


def test_fitted_q_iteration_learns_q_star() -> None:
    m = book_metrics("03_reinforcement_learning")
    assert m["rl.fqi_H_rel_error"] < 0.03  # stated: learned H within 3 % of H*
    assert m["rl.fqi_q_rel_rmse"] < 0.05
    assert m["rl.fqi_gain"] == pytest.approx(m["rl.K_star"], rel=0.03)
    assert m["rl.fqi_gap"] < 1e-3


def test_reinforce_and_sac_improve_and_approach_j_star() -> None:
    m = book_metrics("03_reinforcement_learning")
    # REINFORCE: better than its initial policy, within 1 % of J*
    assert m["rl.reinforce_J"] > m["rl.reinforce_J0"]
    assert m["rl.reinforce_gap"] < 0.01
    # SAC (full fidelity: >= 8000 steps): better than untrained, within 5 % of J*
    assert m["rl.sac_samples"] >= 8000
    assert m["rl.sac_J"] > m["rl.sac_J0"]
    assert m["rl.sac_gap"] < 0.05
    assert m["rl.sac_J_halfwidth95"] < 0.01 * abs(m["rl.J_star"])  # the gap is resolved
