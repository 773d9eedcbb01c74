"""lgutils.core.lqr against scipy, brute-force optimisation and Monte-Carlo rollouts of the environment."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.optimize

from lgutils.core import lqr
from lgutils.core.envs import LinearQuadraticEnv

A2 = np.array([[1.0, 0.1], [0.0, 1.05]])
B2 = np.array([[0.0], [0.1]])
Q2 = np.diag([1.0, 0.5])
R2 = np.array([[0.2]])


def random_system(rng: np.random.Generator, n: int, m: int) -> tuple[np.ndarray, ...]:
    A = rng.normal(size=(n, n)) / np.sqrt(n) * 1.2
    B = rng.normal(size=(n, m))
    L = rng.normal(size=(n, n))
    Q = L @ L.T + 0.1 * np.eye(n)
    M = rng.normal(size=(m, m))
    R = M @ M.T + 0.5 * np.eye(m)
    return A, B, Q, R


@pytest.mark.parametrize(("n", "m", "seed"), [(1, 1, 0), (2, 1, 1), (3, 2, 2), (4, 1, 3)])
def test_dare_undiscounted_matches_scipy(n: int, m: int, seed: int) -> None:
    A, B, Q, R = random_system(np.random.default_rng(seed), n, m)
    P, K = lqr.dare(A, B, Q, R)
    P_ref = scipy.linalg.solve_discrete_are(A, B, Q, R)
    np.testing.assert_allclose(P, P_ref, rtol=1e-9, atol=1e-10)
    K_ref = np.linalg.solve(R + B.T @ P_ref @ B, B.T @ P_ref @ A)
    np.testing.assert_allclose(K, K_ref, rtol=1e-9, atol=1e-10)
    assert np.max(np.abs(np.linalg.eigvals(A - B @ K))) < 1.0


@pytest.mark.parametrize("gamma", [0.5, 0.9, 0.99])
def test_dare_discounted_solves_discounted_riccati_equation(gamma: float) -> None:
    P, K = lqr.dare(A2, B2, Q2, R2, gamma)
    # the discounted DARE written out, independent of the scaling trick
    G = R2 + gamma * B2.T @ P @ B2
    rhs = Q2 + gamma * A2.T @ P @ A2 - gamma**2 * A2.T @ P @ B2 @ np.linalg.solve(G, B2.T @ P @ A2)
    np.testing.assert_allclose(P, rhs, rtol=1e-9, atol=1e-10)
    # against scipy's generalised form: s A, s B
    s = np.sqrt(gamma)
    np.testing.assert_allclose(
        P, scipy.linalg.solve_discrete_are(s * A2, s * B2, Q2, R2), rtol=1e-9
    )
    # the value of the optimal gain equals -x^T P x (deterministic, infinite horizon)
    x = np.array([0.7, -1.3])
    J = lqr.policy_return(A2, B2, Q2, R2, K, x, None, None, gamma=gamma)
    assert J == pytest.approx(-x @ P @ x, rel=1e-9)


def test_dare_gain_is_the_best_linear_gain() -> None:
    """No perturbed gain does better than K (brute force over random perturbations)."""
    gamma, x0_cov = 0.95, np.eye(2)
    _, K = lqr.dare(A2, B2, Q2, R2, gamma)
    best = lqr.policy_return(A2, B2, Q2, R2, K, np.zeros(2), x0_cov, None, gamma)
    res = scipy.optimize.minimize(
        lambda k: (
            -lqr.policy_return(A2, B2, Q2, R2, k.reshape(1, 2), np.zeros(2), x0_cov, None, gamma)
        ),
        np.array([[1.0, 2.0]]).ravel(),
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 4000},
    )
    np.testing.assert_allclose(res.x, K.ravel(), atol=1e-4)
    assert -res.fun <= best + 1e-9


def test_q_matrix_satisfies_bellman_equation_and_greedy_is_lqr() -> None:
    gamma, W = 0.9, np.diag([0.01, 0.04])
    H, c = lqr.q_matrix(A2, B2, Q2, R2, gamma, W)
    P, K = lqr.dare(A2, B2, Q2, R2, gamma)
    assert c == pytest.approx(gamma / (1 - gamma) * np.trace(P @ W))
    np.testing.assert_allclose(lqr.greedy_gain(H, 2), K, rtol=1e-9)
    rng = np.random.default_rng(0)
    for _ in range(5):
        x, u = rng.normal(size=2), rng.normal(size=1)
        q = lqr.q_value(H, c, x[None], u[None])[0]
        # max over u' by numerical optimisation at the mean next state, plus the exact noise term
        xn = A2 @ x + B2 @ u
        vmax = -scipy.optimize.minimize_scalar(
            lambda a, xn=xn: -lqr.q_value(H, c, xn[None], [[a]])[0]
        ).fun
        # E[max_u' Q*(x', u')] = -E[x'^T P x'] - c = -(xn^T P xn + tr(P W)) - c
        assert vmax == pytest.approx(-xn @ P @ xn - c, rel=1e-7)
        expected = -(x @ Q2 @ x + u @ R2 @ u) + gamma * (vmax - np.trace(P @ W))
        assert q == pytest.approx(expected, rel=1e-9)


def test_q_matrix_by_monte_carlo() -> None:
    """Q*(x, u): take u at x, then follow the LQR gain; average discounted returns."""
    gamma, W = 0.8, 0.05**2 * np.eye(2)
    H, c = lqr.q_matrix(A2, B2, Q2, R2, gamma, W)
    _, K = lqr.dare(A2, B2, Q2, R2, gamma)
    x0, u0 = np.array([1.0, -0.5]), np.array([0.3])
    rng = np.random.default_rng(1)
    N, T = 20000, 120
    x = np.tile(x0, (N, 1))
    u = np.tile(u0, (N, 1))
    G = np.zeros(N)
    for t in range(T):
        G += gamma**t * -(np.einsum("ni,ij,nj->n", x, Q2, x) + np.einsum("ni,ij,nj->n", u, R2, u))
        x = x @ A2.T + u @ B2.T + rng.normal(size=(N, 2)) @ np.sqrt(W)
        u = -x @ K.T
    se = G.std(ddof=1) / np.sqrt(N)
    q = lqr.q_value(H, c, x0[None], u0[None])[0]
    assert abs(G.mean() - q) < 4 * se + 1e-9


def test_riccati_recursion_long_horizon_converges_to_dare() -> None:
    K, P = lqr.riccati_recursion(A2, B2, Q2, R2, 400, gamma=0.97)
    P_inf, K_inf = lqr.dare(A2, B2, Q2, R2, 0.97)
    assert K.shape == (400, 1, 2) and P.shape == (401, 2, 2)
    np.testing.assert_allclose(P[0], P_inf, rtol=1e-8)
    np.testing.assert_allclose(K[0], K_inf, rtol=1e-8)
    np.testing.assert_array_equal(P[-1], np.zeros((2, 2)))


def test_riccati_recursion_matches_brute_force_optimisation() -> None:
    """Finite horizon, deterministic: minimise the cost over the input sequence directly."""
    H, x0, S = 4, np.array([1.0, -2.0]), np.diag([2.0, 1.0])
    K, P = lqr.riccati_recursion(A2, B2, Q2, R2, H, terminal=S)

    def cost(us: np.ndarray) -> float:
        x, total = x0, 0.0
        for u in us:
            total += x @ Q2 @ x + R2[0, 0] * u**2
            x = A2 @ x + B2[:, 0] * u
        return total + x @ S @ x

    res = scipy.optimize.minimize(cost, np.zeros(H), method="BFGS", options={"gtol": 1e-10})
    assert res.fun == pytest.approx(x0 @ P[0] @ x0, rel=1e-8)
    x = x0
    for t in range(H):
        assert -(K[t] @ x)[0] == pytest.approx(res.x[t], abs=1e-5)
        x = A2 @ x - B2 @ K[t] @ x


def test_finite_horizon_optimal_cost_formula() -> None:
    """E[J] of the time-varying Riccati gains = -(mu^T P0 mu + tr(P0 S0) + sum_t tr(P_{t+1} W))."""
    H, mu, S0, W = 15, np.array([0.5, 1.0]), 0.3 * np.eye(2), np.diag([0.02, 0.01])
    K, P = lqr.riccati_recursion(A2, B2, Q2, R2, H)
    J = lqr.policy_return(A2, B2, Q2, R2, K, mu, S0, W, horizon=H)
    expected = -(
        mu @ P[0] @ mu + np.trace(P[0] @ S0) + sum(np.trace(P[t + 1] @ W) for t in range(H))
    )
    assert J == pytest.approx(expected, rel=1e-10)
    # the stationary LQR gain is (slightly) worse on a finite horizon
    _, K_inf = lqr.dare(A2, B2, Q2, R2)
    assert lqr.policy_return(A2, B2, Q2, R2, K_inf, mu, S0, W, horizon=H) <= J + 1e-12


@pytest.mark.parametrize("gamma", [0.7, 0.95])
def test_infinite_horizon_return_by_monte_carlo(gamma: float) -> None:
    env = LinearQuadraticEnv(
        A2,
        B2,
        Q2,
        R2,
        x0_mean=[1.0, 0.0],
        x0_cov=0.25 * np.eye(2),
        noise_std=[0.1, 0.2],
        horizon=400,
    )
    K = np.array([[2.0, 3.0]])
    E = np.array([[0.04]])
    J = lqr.policy_return(A2, B2, Q2, R2, K, env.x0_mean, env.x0_cov, env.noise_cov, gamma, None, E)
    rng = np.random.default_rng(5)
    traj = env.simulate(lambda x: -x @ K.T + 0.2 * rng.standard_normal((len(x), 1)), 4000, seed=3)
    G = traj.rewards @ gamma ** np.arange(env.horizon)
    se = G.std(ddof=1) / np.sqrt(len(G))
    assert abs(G.mean() - J) < 4 * se
    # the finite-horizon sum with a long horizon agrees with the Lyapunov solution
    J_T = lqr.policy_return(
        A2, B2, Q2, R2, K, env.x0_mean, env.x0_cov, env.noise_cov, gamma, 2000, E
    )
    assert J_T == pytest.approx(J, rel=1e-9)


def test_case_study_b_return_by_env_steps() -> None:
    """Finite horizon, undiscounted, action noise, rollouts through the gymnasium API."""
    env = LinearQuadraticEnv.case_study_b()
    _, K = lqr.dare(env.A, env.B, env.Q, env.R)
    sigma = 0.01
    J = lqr.policy_return(
        env.A,
        env.B,
        env.Q,
        env.R,
        K,
        env.x0,
        None,
        env.noise_cov,
        1.0,
        env.horizon,
        sigma**2 * np.eye(1),
    )
    rng = np.random.default_rng(0)
    returns = []
    for episode in range(1500):
        obs, info = env.reset(seed=episode)
        x, G, done = info["state"], 0.0, False
        while not done:
            u = -K @ x + sigma * rng.standard_normal(1)
            _, r, term, trunc, info = env.step(u)
            x, G, done = info["state"], G + r, term or trunc
        returns.append(G)
    returns = np.array(returns)
    se = returns.std(ddof=1) / np.sqrt(len(returns))
    assert abs(returns.mean() - J) < 4 * se
    # the action noise costs exactly T * R * sigma^2 more than no action noise... plus its effect on x
    J0 = lqr.policy_return(
        env.A, env.B, env.Q, env.R, K, env.x0, None, env.noise_cov, 1.0, env.horizon
    )
    assert J < J0


def test_unstable_policy_returns_minus_infinity_and_gamma_one_with_noise_raises() -> None:
    K0 = np.zeros((1, 2))
    assert lqr.closed_loop_radius(A2, B2, K0) == pytest.approx(1.05)
    assert lqr.policy_return(A2, B2, Q2, R2, K0, np.ones(2), None, None, gamma=0.99) == -np.inf
    assert np.isfinite(lqr.policy_return(A2, B2, Q2, R2, K0, np.ones(2), None, None, gamma=0.9))
    with pytest.raises(ValueError, match="gamma"):
        lqr.policy_return(
            A2, B2, Q2, R2, [[1.0, 1.0]], np.ones(2), None, 0.1 * np.eye(2), gamma=1.0
        )
    with pytest.raises(ValueError, match="gamma"):
        lqr.q_matrix(A2, B2, Q2, R2, 1.0, 0.1 * np.eye(2))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"A": np.ones((2, 3))}, "A"),
        ({"B": np.ones((3, 1))}, "B"),
        ({"Q": -np.eye(2)}, "Q"),
        ({"R": np.zeros((1, 1))}, "R"),
        ({"gamma": 1.5}, "gamma"),
    ],
)
def test_dare_rejects_bad_arguments(kwargs: dict, name: str) -> None:
    args = {"A": A2, "B": B2, "Q": Q2, "R": R2, **kwargs}
    with pytest.raises(ValueError, match=name):
        lqr.dare(**args)


def test_other_functions_reject_bad_arguments() -> None:
    with pytest.raises(ValueError, match="K"):
        lqr.policy_return(A2, B2, Q2, R2, np.ones((2, 2)), np.zeros(2), None, None, 0.9)
    with pytest.raises(ValueError, match="x0_mean"):
        lqr.policy_return(A2, B2, Q2, R2, np.ones((1, 2)), np.zeros(3), None, None, 0.9)
    with pytest.raises(ValueError, match="action_noise_cov"):
        lqr.policy_return(
            A2, B2, Q2, R2, np.ones((1, 2)), np.zeros(2), None, None, 0.9, 5, np.eye(2)
        )
    with pytest.raises(ValueError, match="horizon"):
        lqr.riccati_recursion(A2, B2, Q2, R2, 0)
    with pytest.raises(ValueError, match="terminal"):
        lqr.riccati_recursion(A2, B2, Q2, R2, 3, terminal=np.eye(3))
    with pytest.raises(ValueError, match="H"):
        lqr.greedy_gain(-np.eye(3), 2)
    with pytest.raises(ValueError, match="z"):
        lqr.quadratic_form(np.eye(2), np.ones(3))


def test_q_matrix_names_a_bad_noise_cov_even_when_the_riccati_equation_has_no_solution() -> None:
    """noise_cov is checked before the solve: a NaN in it is named, not a failed Riccati solve."""
    A, B = [[1.5]], [[0.0]]  # not stabilisable: dare itself would fail
    with pytest.raises(ValueError, match="no stabilising solution"):
        lqr.q_matrix(A, B, [[1.0]], [[1.0]], 0.9)
    with pytest.raises(ValueError, match="noise_cov must be finite"):
        lqr.q_matrix(A, B, [[1.0]], [[1.0]], 0.9, [[np.nan]])
