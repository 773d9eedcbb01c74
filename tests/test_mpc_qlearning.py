"""lgutils.mpc_reinforce.qlearning: the closed-form Q^MPC and dQ/dphi against the CasADi MPC (Lagrangian
sensitivity) and central differences; one update against a hand computation; seeding."""

from __future__ import annotations

import numpy as np
import pytest

from lgutils.mpc_reinforce import model, qlearning, reinforce, rollout

ENV = model.case_b()


def random_case(seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    A, B = rng.uniform(-1, 1, (4, 4)), rng.uniform(-1, 1, (4, 1))
    return A, B, rng.normal(size=4), rng.normal(size=1)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_q_and_gradient_match_casadi_and_finite_differences(casadi_mpc, seed: int) -> None:
    A, B, s, a = random_case(seed)
    q, g = qlearning.mpc_q_value(s[None, None], a[None, None], A[None], B[None], ENV.Q, ENV.R)
    q, g = float(q[0, 0]), g[0, 0]
    sens = casadi_mpc.q_sensitivity(s, a, phi={"A": A, "B": B})
    assert abs(sens.result.value - q) <= 1e-6 * abs(q)
    scale = np.max(np.abs(g))
    assert np.max(np.abs(sens.d_q_d_phi - g)) <= 1e-6 * scale
    phi, h = model.join_phi(A, B), 1e-5
    fd = np.empty_like(phi)
    for p in range(phi.size):
        e = np.zeros_like(phi)
        e[p] = h
        qp = qlearning.mpc_q_value(
            s[None, None], a[None, None], *model.split_phi((phi + e)[None], 4, 1), ENV.Q, ENV.R
        )[0]
        qm = qlearning.mpc_q_value(
            s[None, None], a[None, None], *model.split_phi((phi - e)[None], 4, 1), ENV.Q, ENV.R
        )[0]
        fd[p] = (qp - qm)[0, 0] / (2 * h)
    assert np.max(np.abs(fd - g)) <= 1e-6 * scale


def test_greedy_action_gives_the_value() -> None:
    """Q^MPC(s, pi(s)) = min_a Q^MPC(s, a): a small change of a increases Q."""
    A, B, s, _ = random_case(7)
    K = model.mpc_gain(A, B, ENV.Q, ENV.R)
    a = -K @ s
    q0 = qlearning.mpc_q_value(s[None, None], a[None, None], A[None], B[None], ENV.Q, ENV.R)[0][
        0, 0
    ]
    for d in (-1e-3, 1e-3):
        q = qlearning.mpc_q_value(
            s[None, None], (a + d)[None, None], A[None], B[None], ENV.Q, ENV.R
        )
        assert q[0][0, 0] > q0


def test_one_update_equals_hand_computation() -> None:
    rng = np.random.default_rng(5)
    r, N, T = 1, 2, ENV.horizon
    phi = rng.uniform(-1, 1, (r, 20))
    eps, w = rng.normal(size=(r, N, T, 1)), rng.normal(size=(r, N, T, 4))
    out = qlearning.q_learning_update(phi, np.zeros_like(phi), np.zeros_like(phi), 1, eps, w)
    A, B = model.split_phi(phi[0], 4, 1)
    K = model.mpc_gain(A, B, ENV.Q, ENV.R)
    grad = np.zeros(20)
    for i in range(N):
        x = ENV.x0.copy()
        for t in range(T):
            a = -K @ x + 0.01 * eps[0, i, t]
            rew = -(x @ ENV.Q @ x + a @ ENV.R @ a)
            x1 = ENV.A @ x + ENV.B @ a + ENV.noise_std * w[0, i, t]
            q, g = qlearning.mpc_q_value(
                x[None, None], a[None, None], A[None], B[None], ENV.Q, ENV.R
            )
            v1 = 0.0
            if t < T - 1:
                v1 = qlearning.mpc_q_value(
                    x1[None, None], (-K @ x1)[None, None], A[None], B[None], ENV.Q, ENV.R
                )[0][0, 0]
            delta = -q[0, 0] - (rew - v1)
            grad += -delta * g[0, 0] / (N * T)
            x = x1
    np.testing.assert_allclose(out["grad"][0], grad, rtol=1e-10, atol=1e-14)
    # first Adam step after clipping: phi - lr * sign-like g / (|g| + eps) (bias-corrected)
    gc = grad * min(1.0, 10.0 / np.linalg.norm(grad))
    expected = np.clip(phi[0] - 0.1 * gc / (np.abs(gc) + 1e-8), -2, 2)
    np.testing.assert_allclose(out["phi"][0], expected, rtol=1e-10, atol=1e-12)


def test_same_seed_same_numbers_and_same_initial_models_as_reinforce() -> None:
    a, _ = qlearning.run_experiment(3, 2, n_updates=2, batch_size=4)
    b, _ = qlearning.run_experiment(3, 2, n_updates=2, batch_size=4)
    np.testing.assert_array_equal(a.phi, b.phi)
    np.testing.assert_array_equal(a.expected_returns, b.expected_returns)
    rf, _ = reinforce.run_experiment(3, 2, n_updates=0, batch_size=4)
    np.testing.assert_array_equal(a.phi[:, 0], rf.phi[:, 0])
    np.testing.assert_allclose(
        a.expected_returns[:, 0],
        rollout.expected_return(
            ENV.A,
            ENV.B,
            ENV.Q,
            ENV.R,
            model.mpc_gain(*model.split_phi(a.phi[:, 0], 4, 1), ENV.Q, ENV.R),
            ENV.x0,
            ENV.noise_std,
            0.01,
            ENV.horizon,
        ),
        rtol=1e-12,
    )


def test_input_validation() -> None:
    with pytest.raises(ValueError, match="s"):
        qlearning.mpc_q_value(
            np.zeros((1, 2, 3)),
            np.zeros((1, 2, 1)),
            np.eye(4)[None],
            np.ones((1, 4, 1)),
            ENV.Q,
            ENV.R,
        )
    with pytest.raises(ValueError, match="seeds"):
        qlearning.run_q_learning([], 1, 4)
    with pytest.raises(ValueError, match="batch"):
        qlearning.td_gradient("x", np.eye(4)[None], np.ones((1, 4, 1)))
