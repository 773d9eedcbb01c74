"""Claims of the dynamic-programming chapter (paper Sec. II.B) on its full-fidelity metrics.

Skipped until `make book` has written _build/metrics/02_dynamic_programming.json.
"""

from __future__ import annotations

import numpy as np
import pytest
from _scalar_lq import riccati
from conftest import book_metrics

pytestmark = pytest.mark.claims


@pytest.fixture(scope="module")
def m() -> dict:
    return book_metrics("02_dynamic_programming")


def test_bellman_operator_contracts_and_value_iteration_converges_at_rate_gamma(m: dict) -> None:
    assert m["dp.n_contraction_pairs"] >= 1000
    # (the notebook asserts that no measured ratio exceeds gamma) the bound is attained
    assert m["dp.max_ratio_over_gamma"] > 1 - 1e-9
    assert m["dp.vi_rate"] == pytest.approx(m["dp.gamma"], abs=0.01)


def test_grid_solution_approaches_analytic_q_star(m: dict) -> None:
    # the reference gain is the scalar Riccati equation's, solved by hand
    p = m["dp.problem"]
    _, K = riccati(p["a"], p["b"], p["q"], p["r"], m["dp.gamma"])
    assert m["dp.K_star"] == pytest.approx(K, rel=1e-10)
    errors = np.asarray(m["dp.grid_rel_errors"])
    assert m["dp.grid_points"][-1] >= 161
    assert m["dp.finest_rel_error"] < 1e-3  # stated tolerance on the finest grid
    assert np.all(np.diff(errors) < 0)  # refinement always helps
    assert 1.7 < m["dp.convergence_order"] < 2.3  # second order
    assert m["dp.finest_gain_rel_error"] < 0.01  # greedy policy within 1 % of the LQR gain


def test_curse_of_dimensionality_is_exponential(m: dict) -> None:
    """The memory of P and of the Q-table against closed-form bounds of the grid's sizes.

    With N points per dimension, M actions and n Gauss-Hermite nodes per dimension, the
    transition matrix has S M rows (S = N^d states) and, per row, at least one and at most
    min(S, (2 n)^d) non-zeros (n^d nodes, each interpolated on 2^d grid corners); the Q-table
    and the rewards are two dense S x M float64 arrays. Stored as CSR (8-byte values, 4- or
    8-byte indices), the bytes lie between the two sums below, which grow like N^d.
    """
    grid = m["dp.curse_grid"]
    N, M, n = grid["points"], grid["actions"], grid["quadrature"]
    mem = np.asarray(m["dp.curse_bytes"])
    assert len(mem) >= 4, "claims need dimensions 1 to 4"
    for d, measured in enumerate(mem, start=1):
        S = N**d
        rows = S * M
        lower = 16 * rows + 12 * rows + 4 * (rows + 1)
        upper = 16 * rows + 16 * rows * min(S, (2 * n) ** d) + 8 * (rows + 1)
        assert lower <= measured <= upper, d
    assert np.all(np.diff(np.log(mem)) > np.log(5))  # each dimension costs > 5x memory
    assert m["dp.curse_memory_factor_per_dim"] > N  # at least the grid's factor per dimension
