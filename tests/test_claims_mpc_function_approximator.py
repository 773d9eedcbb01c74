"""Claims of paper Sec. III-IV on the full-fidelity metrics of chapters 04-06.

Skipped until `make book` has written _build/metrics/0{4,5,6}_*.json.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import book_metrics

pytestmark = pytest.mark.claims


def test_mpc_with_lqr_terminal_cost_is_q_star_and_sensitivities_are_exact() -> None:
    m = book_metrics("04_mpc_function_approximator")
    assert m["mpc.qstar_identity_max_rel_error"] < 1e-6
    assert m["mpc.sensitivity_fd_max_rel_error"] < 1e-5
    gaps = m["mpc.zero_terminal_gap_by_horizon"]
    assert len(gaps) >= 5
    # without a terminal cost the gap shrinks with the horizon
    values = [gaps[k] for k in sorted(gaps, key=int)]
    assert values[-1] < 1e-2 * values[0]
    assert all(b <= a for a, b in zip(values, values[1:], strict=False))


def test_constrained_mpc_is_the_constrained_q_function() -> None:
    m = book_metrics("04_mpc_function_approximator")
    assert m["mpc.constrained_dp_max_rel_error"] < 1e-6
    assert m["mpc.constrained_horizon_change"] < 1e-6
    assert m["mpc.constrained_departure_max_rel"] > 0.05  # visibly different from Q*
    assert m["mpc.closed_loop_min_x1"] >= -1.1 - 1e-6


def test_local_plan_moves_away_and_residual_ranks_returns() -> None:
    m = book_metrics("05_local_global")
    assert m["localglobal.plan_max_distance"] > m["localglobal.plan_initial_distance"] + 0.2
    assert m["localglobal.plan_final_distance"] < 0.05
    assert m["localglobal.myopic_final_distance"] > 0.5
    assert m["localglobal.max_wall_margin"] < 1e-6
    assert m["localglobal.residual_exact_terminal"] < 1e-8
    assert m["localglobal.residual_return_spearman"] < -0.8
    returns = np.asarray(m["localglobal.policy_iteration_returns"])
    assert np.all(np.diff(returns) >= -1e-9 * np.abs(returns[:-1]))
    assert returns[-1] == pytest.approx(m["localglobal.J_lqr"], rel=1e-6)


def test_practical_measurements_are_consistent() -> None:
    m = book_metrics("06_practical_optimisation")
    its = m["practical.warm_start_median_iterations"]
    assert its["primal-dual warm"] < its["cold"]
    widths = m["practical.nn_width_median_ms"]
    widest = max(widths, key=int)
    assert widths[widest] > 2 * m["practical.no_nn_median_ms"]  # a wide network dominates
    h_its = m["practical.horizon_median_iterations"]
    assert max(h_its.values()) <= 2 * min(h_its.values())  # iterations barely depend on H
