"""Claims of paper Sec. III.A on the full-fidelity metrics of chapter 04 (MPC as a function
approximator).

Skipped until `make book` has written _build/metrics/04_mpc_function_approximator.json.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from conftest import book_metrics

from lgutils.core.envs import CASE_STUDY_B

pytestmark = pytest.mark.claims


@pytest.fixture(scope="module")
def m() -> dict:
    return book_metrics("04_mpc_function_approximator")


def test_mpc_with_lqr_terminal_cost_is_q_star(m: dict) -> None:
    """-Q^MPC(s, a) = Q*(s, a) for every horizon: Q* from scipy's Riccati solution (gamma = 1)."""
    A, B = np.array(CASE_STUDY_B["A"]), np.array(CASE_STUDY_B["B"])
    Q, R = np.array(CASE_STUDY_B["Q"]), np.array(CASE_STUDY_B["R"])
    P = scipy.linalg.solve_discrete_are(A, B, Q, R)
    samples = m["mpc.qstar_samples"]
    S, U = np.array(samples["S"]), np.array(samples["U"])
    X1 = S @ A.T + U @ B.T
    cost = np.einsum("ni,ij,nj->n", S, Q, S) + np.einsum("ni,ij,nj->n", U, R, U)
    q_star = -(cost + np.einsum("ni,ij,nj->n", X1, P, X1))
    horizons = [k for k in samples if k.startswith("Q_MPC_H")]
    assert len(horizons) == 2 and len(q_star) == 3
    for key in horizons:
        np.testing.assert_allclose(-np.array(samples[key]), q_star, rtol=1e-6, err_msg=key)


def test_sensitivities_are_exact_and_the_gap_without_terminal_cost_closes(m: dict) -> None:
    # tighter than the notebook's 1e-4: the derivatives agree with finite differences to 1e-5
    assert m["mpc.sensitivity_fd_max_rel_error"] < 1e-5
    gaps = m["mpc.zero_terminal_gap_by_horizon"]
    assert len(gaps) >= 5
    # without a terminal cost the gap shrinks with the horizon
    values = [gaps[k] for k in sorted(gaps, key=int)]
    assert values[-1] < 1e-2 * values[0]
    assert all(b <= a for a, b in zip(values, values[1:], strict=False))


def test_constrained_mpc_is_the_constrained_q_function(m: dict) -> None:
    # doubling the horizon leaves the recoverable actions' Q unchanged ...
    assert m["mpc.constrained_horizon_change"] < 1e-6
    # ... and that constrained Q-function is visibly different from Q*
    assert m["mpc.constrained_departure_max_rel"] > 0.05
    assert m["mpc.unrecoverable_certified"] > 0  # some actions are certified Q = -inf
