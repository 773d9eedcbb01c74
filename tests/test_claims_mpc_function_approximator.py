"""Claims of paper Sec. III.A on the full-fidelity metrics of chapter 04 (MPC as a function
approximator).

Skipped until `make book` has written _build/metrics/04_mpc_function_approximator.json.
"""

from __future__ import annotations

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
