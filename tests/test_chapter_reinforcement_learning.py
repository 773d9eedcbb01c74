"""Fitted Q-iteration and REINFORCE as chapter 03 writes them agree with lgutils.core.rl.

The chapter teaches both algorithms in its own cells; ``lgutils.core.rl`` holds the checked
versions that tests and other chapters use. They do the same arithmetic, so on a small seeded
case they must agree to the last bit (or to 1e-12 where a matrix product meets a strided view):
this test fails if either side changes.
"""

from __future__ import annotations

import numpy as np
import pytest
from _chapter_code import chapter_functions

from lgutils.core import lqr, rl
from lgutils.core.envs import LinearQuadraticEnv

CHAPTER = chapter_functions(
    "03_reinforcement_learning", "fitted_q_iteration", "reinforce_gradient", "reinforce"
)


def scalar_env(bounded: bool = True) -> LinearQuadraticEnv:
    bounds = {"action_low": -2.0, "action_high": 2.0} if bounded else {}
    return LinearQuadraticEnv(
        [[1.0]], [[1.0]], [[1.0]], [[1.0]], x0_cov=[[1.0]], noise_std=0.2, horizon=12, **bounds
    )


def two_state_env() -> LinearQuadraticEnv:
    bounds = {"action_low": -3.0, "action_high": 3.0}
    return LinearQuadraticEnv(
        [[1.0, 0.1], [0.0, 1.0]], [[0.0], [0.1]], noise_std=0.05, horizon=10, **bounds
    )


@pytest.mark.parametrize("make_env", [scalar_env, two_state_env], ids=["scalar", "two states"])
def test_fitted_q_iteration_agrees_with_rl(make_env) -> None:
    env = make_env()
    gain = 0.3 * np.ones((env.n_actions, env.n_states))
    data = rl.collect_transitions(env, 8, gain, 1.0, seed=3)
    H, c, H_history = CHAPTER["fitted_q_iteration"](data, 0.9, 25)
    library = rl.fitted_q_iteration(data, 0.9, 25)
    np.testing.assert_array_equal(H, library.H)
    assert c == library.c
    np.testing.assert_array_equal(H_history, library.H_history)


def test_fitted_q_iteration_finds_q_star_on_noise_free_data() -> None:
    """Independently of the library: deterministic data, enough iterations, Q* itself."""
    env = LinearQuadraticEnv([[0.9]], [[1.0]], x0_cov=[[1.0]], horizon=20)
    data = rl.collect_transitions(env, 20, [[0.2]], 1.0, seed=0)
    H, c, _ = CHAPTER["fitted_q_iteration"](data, 0.8, 300, ridge=0.0)
    H_star, c_star = lqr.q_matrix([[0.9]], [[1.0]], [[1.0]], [[1.0]], 0.8, [[0.0]])
    np.testing.assert_allclose(H, H_star, rtol=1e-8)
    assert abs(c - c_star) < 1e-8


@pytest.mark.parametrize("make_env", [scalar_env, two_state_env], ids=["scalar", "two states"])
def test_reinforce_gradient_agrees_with_rl(make_env) -> None:
    env = make_env()
    m, n = env.n_actions, env.n_states
    K = np.linspace(0.2, 0.6, m * n).reshape(m, n)
    noise = np.random.default_rng(1)
    traj = env.simulate(lambda x: -x @ K.T + 0.3 * noise.standard_normal((len(x), m)), 16, seed=2)
    args = (traj.states, traj.actions, traj.rewards, K, 0.3, 0.9)
    ours, theirs = CHAPTER["reinforce_gradient"](*args), rl.reinforce_gradient(*args)
    if n == 1:  # one product per entry: the same bits
        np.testing.assert_array_equal(ours, theirs)
    else:  # s @ K.T on a strided view may sum in another order
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("bounded", [True, False])
def test_reinforce_agrees_with_rl(bounded: bool) -> None:
    env = scalar_env(bounded)
    K, K_history = CHAPTER["reinforce"](env, [[0.0]], 0.3, 0.9, 15, 8, 0.05, 4)
    library = rl.reinforce(env, [[0.0]], 0.3, 0.9, 15, 8, 0.05, seed=4, progress=False)
    np.testing.assert_array_equal(K, library.K)
    np.testing.assert_array_equal(K_history, library.K_history)
    assert K_history.shape == (16, 1, 1) and K[0, 0] > 0.0  # it moved towards the LQR gain
