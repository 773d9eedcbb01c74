"""Tests of lgutils.local_global against closed forms (scipy's Riccati and Lyapunov solvers)."""

from __future__ import annotations

import casadi as ca
import numpy as np
import pytest
import scipy.linalg as sla

from lgutils.local_global import (
    bellman_residuals,
    discounted_returns,
    ellipse_margin,
    fit_quadratic_value,
    mpc_policy,
    point_mass,
    waypoint_guess,
)
from lgutils.mpc import MPC, Cost, Model, SolverOptions

A = np.array([[1.1, 0.3], [0.0, 0.9]])
B = np.array([[0.0], [1.0]])
Q, R, GAMMA = np.eye(2), np.eye(1), 0.9


def one_step_mpc() -> MPC:
    return MPC(
        Model(2, 1, dynamics=lambda x, u, p: A @ x + B @ u),
        Cost(
            lambda x, u, p: ca.sumsqr(x) + ca.sumsqr(u),
            terminal=lambda x, p: ca.bilin(p["P"], x, x),
            discount=GAMMA,
        ),
        1,
        params={"P": (2, 2)},
        solver=SolverOptions(ipopt={"tol": 1e-12}),
    )


def test_bellman_residual_vanishes_for_q_star_and_not_otherwise():
    P = sla.solve_discrete_are(np.sqrt(GAMMA) * A, np.sqrt(GAMMA) * B, Q, R)
    rng = np.random.default_rng(0)
    S, U = rng.normal(size=(8, 2)), rng.normal(size=(8, 1))
    S2 = S @ A.T + U @ B.T
    r = -(np.sum(S**2, axis=1) + np.sum(U**2, axis=1))
    mpc = one_step_mpc()
    assert np.max(np.abs(bellman_residuals(mpc, S, U, r, S2, GAMMA, {"P": P}))) < 1e-8
    assert np.max(np.abs(bellman_residuals(mpc, S, U, r, S2, GAMMA, {"P": 0.5 * P}))) > 1e-2


def test_fit_quadratic_value_recovers_the_lyapunov_solution_of_a_linear_policy():
    K = np.array([[0.2, 0.8]])
    Acl = A - B @ K
    P_ref = sla.solve_discrete_lyapunov(np.sqrt(GAMMA) * Acl.T, Q + K.T @ R @ K)
    rng = np.random.default_rng(1)
    S = rng.normal(size=(20, 2))
    r = -(np.einsum("ni,ij,nj->n", S, Q + K.T @ R @ K, S))
    P = fit_quadratic_value(S, r, S @ Acl.T, GAMMA)
    np.testing.assert_allclose(P, P_ref, rtol=1e-9)
    with pytest.raises(ValueError, match="at least 3"):
        fit_quadratic_value(S[:2], r[:2], S[:2], GAMMA)


def test_greedy_mpc_policy_with_riccati_terminal_cost_is_the_lqr_gain():
    P = sla.solve_discrete_are(np.sqrt(GAMMA) * A, np.sqrt(GAMMA) * B, Q, R)
    K = GAMMA * np.linalg.solve(R + GAMMA * B.T @ P @ B, B.T @ P @ A)
    X = np.random.default_rng(2).normal(size=(5, 2))
    np.testing.assert_allclose(
        mpc_policy(one_step_mpc(), {"P": P})(X), -X @ K.T, rtol=1e-7, atol=1e-10
    )


def test_small_helpers():
    np.testing.assert_allclose(discounted_returns([[1.0, 1.0, 1.0]], 0.5), [1.75])
    Ad, Bd = point_mass(0.5, dim=1)
    x = Ad @ np.array([0.0, 1.0]) + Bd @ np.array([2.0])  # p = v t + a t^2 / 2, v = v + a t
    np.testing.assert_allclose(x, [0.5 + 0.25, 2.0])
    assert ellipse_margin(np.array([2.0, 0.0]), [2.0, 0.0], [1.0, 2.0]) == pytest.approx(1.0)
    np.testing.assert_allclose(
        ellipse_margin(np.array([[3.0, 0.0], [2.0, 4.0]]), [2.0, 0.0], [1.0, 2.0]), [0.0, -3.0]
    )
    g = waypoint_guess([0.0, 0.0, 0.0, 0.0], [[1.0, 1.0], [2.0, 0.0]], 4)
    assert g.shape == (4, 4)
    np.testing.assert_allclose(g[-1], [2.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(g[1, :2], [1.0, 1.0])
