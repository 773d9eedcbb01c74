"""lgutils.core.rl against closed forms (lgutils.core.lqr), finite differences, torch's Adam and Monte Carlo."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import scipy.stats
import torch

from lgutils.core import lqr, rl
from lgutils.core.envs import LinearQuadraticEnv

a, b, gamma, sigma_w = 1.2, 1.0, 0.9, 0.2
A, B, Q, R, W = [[a]], [[b]], [[1.0]], [[1.0]], [[sigma_w**2]]


def scalar_env(horizon: int = 50, noise: bool = True) -> LinearQuadraticEnv:
    return LinearQuadraticEnv(
        A,
        B,
        Q,
        R,
        x0_mean=[0.0],
        x0_cov=[[1.0]],
        noise_std=sigma_w if noise else None,
        horizon=horizon,
    )


def test_quadratic_features_round_trip() -> None:
    rng = np.random.default_rng(0)
    L = rng.normal(size=(3, 3))
    H, c = L @ L.T, 0.7
    theta = rl.quadratic_to_theta(H, c)
    H2, c2 = rl.theta_to_quadratic(theta, 3)
    np.testing.assert_allclose(H2, H)
    assert c2 == c
    x, u = rng.normal(size=(10, 2)), rng.normal(size=(10, 1))
    expected = lqr.quadratic_form(H, np.hstack([x, u])) + c
    np.testing.assert_allclose(rl.quadratic_features(x, u) @ theta, expected)


def test_max_q_is_the_optimal_value() -> None:
    H, c = lqr.q_matrix(A, B, Q, R, gamma, W)
    P, _ = lqr.dare(A, B, Q, R, gamma)
    x = np.array([[-1.5], [0.3], [2.0]])
    np.testing.assert_allclose(rl.max_q(H, c, x, 1), -P[0, 0] * x[:, 0] ** 2 - c, rtol=1e-12)
    for xi in x:
        best = scipy.optimize.minimize_scalar(
            lambda u, xi=xi: -lqr.q_value(H, c, xi[None], [[u]])[0]
        )
        assert -best.fun == pytest.approx(rl.max_q(H, c, xi[None], 1)[0], rel=1e-9)


def test_fitted_q_iteration_exact_on_noise_free_data() -> None:
    """Deterministic dynamics and exploring data: FQI converges to Q* (c = 0) to solver precision."""
    A2 = np.array([[1.0, 0.1], [0.0, 1.0]])
    B2 = np.array([[0.0], [0.1]])
    Q2, R2 = np.eye(2), np.array([[0.1]])
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 2))
    u = rng.normal(size=(400, 1))
    data = rl.Transitions(x, u, -(np.sum(x**2, 1) + 0.1 * u[:, 0] ** 2), x @ A2.T + u @ B2.T)
    res = rl.fitted_q_iteration(data, 0.8, 300, ridge=0.0)
    H, c = lqr.q_matrix(A2, B2, Q2, R2, 0.8)
    np.testing.assert_allclose(res.H, H, rtol=1e-8)
    assert abs(res.c) < 1e-8
    assert rl.bellman_loss(H, c, data, 0.8) < 1e-20
    assert res.H_history.shape == (301, 3, 3) and res.losses.shape == (300,)


def test_fitted_q_iteration_on_environment_samples() -> None:
    env = scalar_env()
    data = rl.collect_transitions(env, 100, [[0.4]], 1.0, seed=0)
    assert data.x.shape == (5000, 1) and data.u.shape == (5000, 1)
    # the samples obey the environment's dynamics
    w = data.x_next - a * data.x - b * data.u
    assert abs(w.std() - sigma_w) < 0.01
    res = rl.fitted_q_iteration(data, gamma, 150)
    H, _ = lqr.q_matrix(A, B, Q, R, gamma, W)
    _, K = lqr.dare(A, B, Q, R, gamma)
    assert np.linalg.norm(res.H - H) / np.linalg.norm(H) < 0.03
    assert lqr.greedy_gain(res.H, 1)[0, 0] == pytest.approx(K[0, 0], rel=0.03)


def test_discounted_returns_to_go() -> None:
    r = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]])
    G = rl.discounted_returns_to_go(r, 0.5)
    np.testing.assert_allclose(G, [[1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3], [0.25, 0.5, 1.0]])


def test_gaussian_score_by_finite_differences() -> None:
    rng = np.random.default_rng(2)
    K = rng.normal(size=(2, 3))
    x, u, s = rng.normal(size=3), rng.normal(size=2), 0.7

    def logp(Kf: np.ndarray) -> float:
        return float(np.sum(scipy.stats.norm.logpdf(u, loc=-Kf @ x, scale=s)))

    fd = np.zeros_like(K)
    for idx in np.ndindex(K.shape):
        e = np.zeros_like(K)
        e[idx] = 1e-6
        fd[idx] = (logp(K + e) - logp(K - e)) / 2e-6
    np.testing.assert_allclose(rl.gaussian_score(x, u, K, s), fd, rtol=1e-6, atol=1e-8)


def test_reinforce_gradient_is_unbiased() -> None:
    """Mean of many REINFORCE estimates vs the finite-difference gradient of the exact return."""
    env = scalar_env(horizon=20)
    K, s = np.array([[0.4]]), 0.3

    def J(k: float) -> float:
        return lqr.policy_return(A, B, Q, R, [[k]], [0.0], [[1.0]], W, gamma, 20, [[s**2]])

    exact = (J(0.4 + 1e-5) - J(0.4 - 1e-5)) / 2e-5
    rng = np.random.default_rng(3)
    estimates = []
    for batch in range(40):
        traj = env.simulate(
            lambda x: -x @ K.T + s * rng.standard_normal((len(x), 1)), 500, seed=batch
        )
        estimates.append(
            rl.reinforce_gradient(traj.states, traj.actions, traj.rewards, K, s, gamma)[0, 0]
        )
    estimates = np.array(estimates)
    se = estimates.std(ddof=1) / np.sqrt(len(estimates))
    assert abs(estimates.mean() - exact) < 4 * se
    assert se < 0.2 * abs(exact)  # the test has power


def test_reinforce_improves_and_approaches_lqr() -> None:
    env = scalar_env()
    _, K = lqr.dare(A, B, Q, R, gamma)
    res = rl.reinforce(env, [[0.2]], 0.3, gamma, 150, 64, 0.05, seed=0, progress=False)

    def J(k: np.ndarray) -> float:
        return lqr.policy_return(A, B, Q, R, k, [0.0], [[1.0]], W, gamma, env.horizon)

    assert J(res.K) > J(np.array([[0.2]]))
    assert J(res.K) > J(K) * 1.02  # within 2 % of J* (returns are negative)
    assert res.K_history.shape == (151, 1, 1) and res.episodes == 150 * 64


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="u"):
        rl.quadratic_features(np.ones((3, 1)), np.ones((4, 1)))
    with pytest.raises(ValueError, match="theta"):
        rl.theta_to_quadratic(np.ones(3), 2)
    with pytest.raises(ValueError, match="gamma"):
        rl.fitted_q_iteration(
            rl.Transitions(np.ones((2, 1)), np.ones((2, 1)), np.ones(2), np.ones((2, 1))), 1.0, 3
        )
    with pytest.raises(ValueError, match="rewards"):
        rl.reinforce_gradient(
            np.ones((1, 3, 1)), np.ones((1, 2, 1)), np.ones((1, 2)), [[1.0]], 0.1, 0.9
        )
    with pytest.raises(ValueError, match="sigma"):
        rl.gaussian_score(np.ones(1), np.ones(1), [[1.0]], 0.0)
    with pytest.raises(ValueError, match="behaviour_gain"):
        rl.collect_transitions(scalar_env(), 1, np.ones((2, 2)), 1.0, 0)


def test_evaluate_policy_matches_exact_return() -> None:
    env = scalar_env(horizon=40)
    J_mc, half = rl.evaluate_policy(env, [[0.5]], 4000, gamma, seed=0)
    J = lqr.policy_return(A, B, Q, R, [[0.5]], [0.0], [[1.0]], W, gamma, 40)
    assert abs(J_mc - J) < half * 3.3 / 1.96
    assert half < 0.05 * abs(J)
    # common random numbers: the difference of two policies, far more precise than each return
    d, half_d = rl.evaluate_policy(env, [[0.5]], 4000, gamma, seed=0, reference=[[0.8]])
    J2 = lqr.policy_return(A, B, Q, R, [[0.8]], [0.0], [[1.0]], W, gamma, 40)
    assert abs(d - (J - J2)) < half_d * 3.3 / 1.96
    assert half_d < half / 3


def test_sb3_policy_and_learning_curve_callback() -> None:
    from stable_baselines3 import SAC

    torch.set_num_threads(1)
    env = LinearQuadraticEnv(
        [[1.0]], [[1.0]], noise_std=0.1, horizon=20, action_low=-2.0, action_high=2.0
    )
    model = SAC(
        "MlpPolicy", env, learning_starts=50, batch_size=32, policy_kwargs={"net_arch": [8]}, seed=0
    )
    cb = rl.LearningCurveCallback(
        env, every=40, n_episodes=10, gamma=0.9, seed=0, total=120, reference=[[0.5]]
    )
    model.learn(120, callback=cb)
    assert cb.steps == [0, 40, 80, 120]
    assert len(cb.returns) == 4 and all(np.isfinite(cb.returns))
    # the wrapped policy is SB3's deterministic action, batch in, batch out
    x = np.array([[0.5], [-1.0], [2.0]])
    expected = model.predict(x.astype(np.float32), deterministic=True)[0]
    np.testing.assert_allclose(rl.sb3_policy(model)(x), expected, rtol=1e-6)
    J, _ = rl.evaluate_policy(env, rl.sb3_policy(model), 10, 0.9, seed=0)
    assert J == pytest.approx(cb.returns[-1])
    J_ref, _ = rl.evaluate_policy(env, [[0.5]], 10, 0.9, seed=0)
    assert cb.differences[-1] == pytest.approx(J - J_ref)
    assert len(cb.differences) == 4
    with pytest.raises(ValueError, match="model"):
        rl.sb3_policy(object())
