"""lgutils.core.dp: quadrature and interpolation exactness, the contraction, and value iteration vs LQR."""

from __future__ import annotations

import numpy as np
import pytest

from lgutils.core import dp, lqr

# a 1-D linear-quadratic problem with a known Q* (lgutils.core.lqr)
a, b, q, r, gamma, sigma = 1.2, 1.0, 1.0, 1.0, 0.9, 0.2
A, B, Q, R, W = [[a]], [[b]], [[q]], [[r]], [[sigma**2]]
X_MAX = U_MAX = 4.0


def lq_mdp(n_points: int) -> dp.GridMDP:
    return dp.discretise_lq(
        A, B, Q, R, dp.grid(-X_MAX, X_MAX, n_points), dp.grid(-U_MAX, U_MAX, n_points), W, gamma, 7
    )


def test_gauss_hermite_moments() -> None:
    cov = np.array([[0.5, 0.2], [0.2, 0.3]])
    nodes, w = dp.gauss_hermite(cov, 3)
    assert nodes.shape == (9, 2) and np.all(w > 0)
    assert w.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(w @ nodes, 0.0, atol=1e-14)
    np.testing.assert_allclose(nodes.T @ (w[:, None] * nodes), cov, rtol=1e-12)
    nodes1, w1 = dp.gauss_hermite([[0.25]], 3)
    assert w1 @ nodes1[:, 0] ** 4 == pytest.approx(3 * 0.25**2)  # E[w^4] = 3 sigma^4
    nodes0, w0 = dp.gauss_hermite(np.zeros((2, 2)), 5)
    np.testing.assert_array_equal(nodes0, np.zeros((1, 2)))
    np.testing.assert_array_equal(w0, [1.0])


def test_interpolation_is_exact_for_multilinear_functions_and_clamps() -> None:
    grids = dp.grid([-1.0, 0.0], [1.0, 2.0], [5, 7])
    nodes = dp.tensor_points(grids)
    assert nodes.shape == (35, 2)

    def f(p: np.ndarray) -> np.ndarray:
        return 1.0 + 2.0 * p[:, 0] - p[:, 1] + 0.5 * p[:, 0] * p[:, 1]

    rng = np.random.default_rng(0)
    pts = rng.uniform([-1.0, 0.0], [1.0, 2.0], size=(200, 2))
    M = dp.interpolation_matrix(grids, pts)
    np.testing.assert_allclose(M @ f(nodes), f(pts), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(M.sum(axis=1)).ravel(), 1.0)
    assert M.min() >= 0.0
    outside = np.array([[5.0, -3.0]])
    clamped = np.array([[1.0, 0.0]])
    np.testing.assert_allclose(dp.interpolation_matrix(grids, outside) @ f(nodes), f(clamped))


def test_transition_rows_follow_the_state_action_layout() -> None:
    """x' = x + 0 u without noise: row s*M + a of P puts all mass on state s."""
    mdp = dp.discretise_lq(
        [[1.0]], [[0.0]], [[1.0]], [[1.0]], dp.grid(-1, 1, 4), dp.grid(-1, 1, 3), None, 0.5
    )
    S, M = mdp.rewards.shape
    assert (S, M) == (4, 3)
    dense = mdp.transition.toarray()
    np.testing.assert_allclose(dense, np.repeat(np.eye(4), 3, axis=0))
    np.testing.assert_allclose(mdp.rewards, -(mdp.states**2 + mdp.actions[:, 0] ** 2))
    x, u = dp.state_action_pairs(mdp)
    np.testing.assert_allclose(mdp.rewards.ravel(), -(x[:, 0] ** 2 + u[:, 0] ** 2))


def test_bellman_operator_on_a_hand_computed_case() -> None:
    """Constant reward -1, no noise: T applied to zero gives -1; the fixed point is -1/(1-gamma)."""
    mdp = dp.discretise(
        lambda x, u: 0.5 * x + 0.1 * u,
        lambda x, u: -np.ones(len(x)),
        dp.grid(-1, 1, 5),
        dp.grid(-1, 1, 3),
        None,
        0.8,
    )
    np.testing.assert_allclose(dp.bellman_operator(mdp, np.zeros((5, 3))), -1.0)
    res = dp.value_iteration(mdp, 500, tol=1e-13)
    np.testing.assert_allclose(res.Q, -1.0 / (1 - 0.8), rtol=1e-10)


@pytest.mark.parametrize("g", [0.3, 0.9, 0.99])
def test_contraction_in_sup_norm(g: float) -> None:
    mdp = lq_mdp(21)._replace(gamma=g)
    rng = np.random.default_rng(1)
    for _ in range(50):
        Q1 = rng.normal(scale=10, size=mdp.rewards.shape)
        Q2 = Q1 + rng.normal(scale=rng.uniform(0.01, 10), size=Q1.shape)
        ratio = dp.sup_norm(
            dp.bellman_operator(mdp, Q1) - dp.bellman_operator(mdp, Q2)
        ) / dp.sup_norm(Q1 - Q2)
        assert ratio <= g * (1 + 1e-12)
    # the bound is attained by a constant shift
    Q1 = rng.normal(size=mdp.rewards.shape)
    ratio = dp.sup_norm(dp.bellman_operator(mdp, Q1) - dp.bellman_operator(mdp, Q1 + 3.0)) / 3.0
    assert ratio == pytest.approx(g, rel=1e-12)


def test_value_iteration_error_bound_gamma_to_the_k() -> None:
    mdp = lq_mdp(21)
    fixed = dp.value_iteration(mdp, 2000, tol=1e-12).Q
    res = dp.value_iteration(mdp, 60, reference=fixed)
    k = np.arange(len(res.errors))
    assert np.all(res.errors <= gamma**k * res.errors[0] * (1 + 1e-9) + 1e-9)
    assert res.errors[-1] < 1e-2 * res.errors[0]


def test_value_iteration_approaches_analytic_q_star() -> None:
    """Finest grid (161 points): max relative error below 1e-3 of Q* where the next state stays inside."""
    H, c = lqr.q_matrix(A, B, Q, R, gamma, W)
    _, K = lqr.dare(A, B, Q, R, gamma)
    errors = []
    for n_points in (41, 161):
        mdp = lq_mdp(n_points)
        res = dp.value_iteration(mdp, 1000, tol=1e-10)
        S, M = mdp.rewards.shape
        x, u = dp.state_action_pairs(mdp)
        q_star = lqr.q_value(H, c, x, u).reshape(S, M)
        inside = (
            (np.abs(x[:, 0]) <= X_MAX / 2) & (np.abs(a * x[:, 0] + b * u[:, 0]) <= X_MAX / 2)
        ).reshape(S, M)
        errors.append(np.max(np.abs(res.Q - q_star)[inside]) / np.max(np.abs(q_star[inside])))
        xs = mdp.states[:, 0]
        central = np.abs(xs) <= X_MAX / 2
        pol = dp.greedy_policy(mdp, res.Q)[central, 0]
        k_fit = -np.sum(pol * xs[central]) / np.sum(xs[central] ** 2)
    assert errors[1] < 1e-3
    assert errors[1] < errors[0] / 8  # second-order convergence: 4x finer grid, ~16x smaller error
    assert k_fit == pytest.approx(K[0, 0], rel=0.01)


def test_greedy_policy_off_grid_states() -> None:
    mdp = lq_mdp(41)
    res = dp.value_iteration(mdp, 1000, tol=1e-8)
    on_grid = dp.greedy_policy(mdp, res.Q)
    np.testing.assert_array_equal(dp.greedy_policy(mdp, res.Q, mdp.states), on_grid)
    assert dp.greedy_policy(mdp, res.Q, np.array([[0.05], [1.3]])).shape == (2, 1)


def test_backup_cost_sizes() -> None:
    out = dp.backup_cost(2, 5, 3, n_quadrature=2)
    assert out["n_states"] == 25
    assert out["n_entries"] <= 25 * 3 * 4 * 4  # 4 quadrature nodes x 4 interpolation corners
    assert out["bytes"] > 0 and out["backup_s"] >= 0


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="n_points"):
        dp.grid(0.0, 1.0, 1)
    with pytest.raises(ValueError, match="low"):
        dp.grid(1.0, 0.0, 3)
    with pytest.raises(ValueError, match="points"):
        dp.interpolation_matrix(dp.grid(0, 1, 3), np.ones((4, 2)))
    with pytest.raises(ValueError, match="gamma"):
        dp.discretise_lq(A, B, Q, R, dp.grid(-1, 1, 3), dp.grid(-1, 1, 3), W, 1.0)
    with pytest.raises(ValueError, match="state_grids"):
        dp.discretise_lq(A, B, Q, R, dp.grid([-1, -1], [1, 1], 3), dp.grid(-1, 1, 3), W, 0.9)
    mdp = lq_mdp(11)
    with pytest.raises(ValueError, match="Q"):
        dp.bellman_operator(mdp, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="cov"):
        dp.gauss_hermite(-np.eye(1), 3)
