"""lgutils.mpc_reinforce.bounded against the CasADi MPC with input bounds, scipy's bounded least
squares, finite differences, direct simulation and the environment with action bounds."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import scipy.linalg
import scipy.optimize

from lgutils.core.envs import LinearQuadraticEnv
from lgutils.core.seeding import spawn_seeds
from lgutils.mpc_reinforce import bounded, model, reinforce

ENV = model.case_b()
U_MAX = 0.5


def random_models(seed: int, r: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (r, 4, 4)), rng.uniform(-1, 1, (r, 4, 1))


def test_condensed_cost_equals_simulated_cost() -> None:
    A, B = random_models(0, 1)
    Hq, Gq = bounded.condense(A[0], B[0], ENV.Q, ENV.R, horizon=5)
    rng = np.random.default_rng(1)
    s = rng.normal(size=4)
    const = 0.0
    x = s.copy()
    for _ in range(5):
        const += x @ ENV.Q @ x
        x = A[0] @ x
    for _ in range(3):
        U = rng.normal(size=4)
        x, cost = s.copy(), 0.0
        for k in range(5):
            u = U[k] if k < 4 else 0.0
            cost += x @ ENV.Q @ x + ENV.R[0, 0] * u**2
            x = A[0] @ x + B[0][:, 0] * u
        assert U @ Hq @ U + 2 * U @ Gq @ s + const == pytest.approx(cost, rel=1e-12)


def test_condense_jacobian_matches_finite_differences() -> None:
    A, B = random_models(2, 2)
    _, _, dH, dG = bounded.condense_jacobian(A, B, ENV.Q, ENV.R)
    phi = model.join_phi(A, B)
    h = 1e-6
    for p in (0, 7, 15, 16, 19):
        e = np.zeros(20)
        e[p] = h
        Hp, Gp = bounded.condense(*model.split_phi(phi + e, 4, 1), ENV.Q, ENV.R)
        Hm, Gm = bounded.condense(*model.split_phi(phi - e, 4, 1), ENV.Q, ENV.R)
        np.testing.assert_allclose(dH[:, p], (Hp - Hm) / (2 * h), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(dG[:, p], (Gp - Gm) / (2 * h), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("u_max", [0.05, 0.5, 2.0])
def test_box_qp_matches_scipy_bounded_least_squares(u_max: float) -> None:
    A, B = random_models(3, 3)
    X = np.random.default_rng(4).normal(size=(3, 20, 4)) * 2
    sol = bounded.solve_box_qp(A, B, ENV.Q, ENV.R, X, u_max)
    Hq, Gq = bounded.condense(A, B, ENV.Q, ENV.R)
    n_active = 0
    for i in range(3):
        L = scipy.linalg.cholesky(Hq[i], lower=True)  # Hq = L L^T
        for j in range(20):
            f = Gq[i] @ X[i, j]
            # U^T Hq U + 2 f^T U = ||L^T U + L^{-1} f||^2 + const
            res = scipy.optimize.lsq_linear(
                L.T,
                -scipy.linalg.solve_triangular(L, f, lower=True),
                bounds=(-u_max, u_max),
                method="bvls",
                tol=1e-14,
            )
            np.testing.assert_allclose(sol.U[i, j], res.x, atol=1e-9)
            n_active += int(np.sum(np.abs(res.x) >= u_max - 1e-12))
    assert sol.kkt_violation.max() < 1e-9
    if u_max < 1.0:
        assert n_active > 0  # the bounds were exercised


@pytest.fixture(scope="module")
def casadi_bounded():
    from lgutils.mpc import MPC, Bounds, Cost, Model, SolverOptions

    Q, R = ENV.Q, ENV.R
    return MPC(
        Model(4, 1, dynamics=lambda x, u, p: p["A"] @ x + p["B"] @ u),
        Cost(lambda x, u, p: x.T @ Q @ x + u.T @ R @ u),
        5,
        params={"A": (4, 4), "B": (4, 1)},
        bounds=Bounds(u_lb=-U_MAX, u_ub=U_MAX),
        solver=SolverOptions(ipopt={"tol": 1e-12}),
    )


def test_active_set_sensitivity_agrees_with_casadi_and_finite_differences(casadi_bounded) -> None:
    """Three derivatives of u_0* at states where some planned input sits at its bound."""
    rng = np.random.default_rng(5)
    checked_free, checked_saturated = 0, 0
    for _ in range(40):
        A, B = rng.uniform(-1, 1, (4, 4)), rng.uniform(-1, 1, (4, 1))
        s = rng.normal(size=4) * 2
        u, du, active = bounded.bounded_action_jacobian(s, A, B, ENV.Q, ENV.R, U_MAX)
        sol = bounded.solve_box_qp(A, B, ENV.Q, ENV.R, s[None], U_MAX)
        U = sol.U[0, 0]
        free = active == 0
        # skip weakly active points (a free entry at the bound): no derivative there
        if np.any(np.abs(np.abs(U[free]) - U_MAX) < 1e-4):
            continue
        if not np.any(active != 0):
            continue
        sens = casadi_bounded.policy_sensitivity(s, phi={"A": A, "B": B})
        np.testing.assert_allclose(sens.result.action, u, atol=1e-7)
        phi = model.join_phi(A, B)
        h = 1e-6
        fd = np.empty(20)
        for p in range(20):
            e = np.zeros(20)
            e[p] = h
            up = bounded.solve_box_qp(*model.split_phi(phi + e, 4, 1), ENV.Q, ENV.R, s[None], U_MAX)
            um = bounded.solve_box_qp(*model.split_phi(phi - e, 4, 1), ENV.Q, ENV.R, s[None], U_MAX)
            fd[p] = (up.U[0, 0, 0] - um.U[0, 0, 0]) / (2 * h)
        helper = bounded.finite_difference_bounded_action_jacobian(s, A, B, ENV.Q, ENV.R, U_MAX)
        np.testing.assert_allclose(helper[0], fd, rtol=1e-6, atol=1e-8)
        if active[0] == 0:
            scale = np.abs(du).max()
            assert np.abs(du[0] - fd).max() <= 1e-6 * scale
            assert np.abs(sens.d_action_d_phi - du).max() <= 1e-6 * scale
            checked_free += 1
        else:  # u_0 at its bound: the action does not move
            np.testing.assert_array_equal(du, 0.0)
            np.testing.assert_array_equal(fd, 0.0)
            assert np.abs(sens.d_action_d_phi).max() < 1e-8
            checked_saturated += 1
    assert checked_free >= 3 and checked_saturated >= 3


def test_wide_bound_recovers_the_linear_mpc() -> None:
    A, B = random_models(6, 1)
    s = np.array([0.3, -0.2, 0.1, 0.4])
    u, du, active = bounded.bounded_action_jacobian(s, A[0], B[0], ENV.Q, ENV.R, 1e6)
    u_lin, du_lin = model.mpc_action_jacobian(s, A[0], B[0], ENV.Q, ENV.R)
    assert np.all(active == 0)
    np.testing.assert_allclose(u, u_lin, rtol=1e-9)
    np.testing.assert_allclose(du, du_lin, rtol=1e-7, atol=1e-9)


def test_bounded_rollout_equals_environment_with_action_bounds() -> None:
    A, B = random_models(7, 1)
    env = LinearQuadraticEnv.case_study_b(action_low=-U_MAX, action_high=U_MAX)
    _, info0 = env.reset(seed=3)
    gen = copy.deepcopy(env.np_random)
    eps = np.random.default_rng(8).standard_normal((ENV.horizon, 1)) * 30  # large: clipping
    states, rewards, w = [info0["state"]], [], []
    for t in range(ENV.horizon):
        w.append(gen.standard_normal(4))
        sol = bounded.solve_box_qp(A, B, ENV.Q, ENV.R, states[-1][None, None], U_MAX)
        _, rew, _, _, info = env.step(sol.U[0, 0, :1] + 0.01 * eps[t])
        states.append(info["state"])
        rewards.append(rew)
    batch = bounded.bounded_rollout(A, B, U_MAX, eps[None, None], np.asarray(w)[None, None])
    np.testing.assert_allclose(batch.states[0, 0], states, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(batch.rewards[0, 0], rewards, rtol=1e-12)
    assert np.any(np.abs(batch.actions) > U_MAX)  # some actions were clipped


def test_bounded_surrogate_gradient_matches_finite_differences() -> None:
    """d/dphi of -(1/N) sum_i G_i sum_t log pi(a_it | s_it), data fixed, by central differences."""
    A, B = random_models(9, 1)
    rng = np.random.default_rng(10)
    N, T = 6, ENV.horizon
    eps, w = rng.standard_normal((1, N, T, 1)), rng.standard_normal((1, N, T, 4))
    batch, tape = bounded.bounded_episodes(A, B, ENV, U_MAX, 5, 0.01, eps, w, True)
    Gn = reinforce.normalise_returns(batch.rewards.sum(-1))
    grad = bounded.bounded_gradient(batch, Gn, tape, 0.01)[0]
    S = batch.states[0, :, :T].reshape(-1, 4)
    a = batch.actions[0].reshape(-1)
    weight = np.repeat(Gn[0], T)

    def loss(phi: np.ndarray) -> float:
        sol = bounded.solve_box_qp(*model.split_phi(phi, 4, 1), ENV.Q, ENV.R, S, U_MAX)
        mean = sol.U[0, :, 0]
        return float(np.sum(weight * 0.5 * ((a - mean) / 0.01) ** 2) / N)

    phi = model.join_phi(A[0], B[0])
    h = 1e-7
    fd = np.array([(loss(phi + h * e) - loss(phi - h * e)) / (2 * h) for e in np.eye(20)])
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-6 * np.abs(fd).max())


def test_reference_returns_and_bounded_runs() -> None:
    wide = bounded.bounded_reference_returns(1e6, n_episodes=2000, seed=0)
    ref = reinforce.reference_returns()
    # without an active bound both references are the linear policies of lgutils.mpc_reinforce.reinforce
    assert abs(wide["J_clipped_lqr"] - ref["J_star"]) < 5 * wide["stderr"] + 1e-12
    assert abs(wide["J_true_model_mpc"] - ref["J_true_model_mpc"]) < 5 * wide["stderr"] + 1e-12
    tight = bounded.bounded_reference_returns(U_MAX, n_episodes=500, seed=0)
    assert tight["J_clipped_lqr"] < ref["J_star"]
    runs = reinforce.run_reinforce(spawn_seeds(2, 3), n_updates=2, batch_size=8, u_max=U_MAX)
    assert np.all(np.isnan(runs.expected_returns)) and np.all(np.isfinite(runs.returns))
    assert not runs.diverged.any()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="u_max"):
        bounded.solve_box_qp(ENV.A, ENV.B, ENV.Q, ENV.R, np.zeros((2, 4)), 0.0)
    with pytest.raises(ValueError, match="horizon"):
        bounded.condense(ENV.A, ENV.B, ENV.Q, ENV.R, horizon=1)
    with pytest.raises(ValueError, match="X"):
        bounded.solve_box_qp(ENV.A, ENV.B, ENV.Q, ENV.R, np.zeros((2, 3)), 1.0)
    with pytest.raises(ValueError, match="u_max"):
        reinforce.run_reinforce([1], 1, u_max=-1.0)
