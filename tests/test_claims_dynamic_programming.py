"""Claims of the dynamic-programming chapter (paper Sec. II.B) on its full-fidelity metrics.

Skipped until `make book` has written _build/metrics/02_dynamic_programming.json.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import book_metrics

pytestmark = pytest.mark.claims


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
