"""lgutils.core.envs.LinearQuadraticEnv: the gymnasium and SB3 checkers, seeding, dynamics, errors."""

from __future__ import annotations

import re
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import lgutils  # noqa: F401  (registers the environments)
from lgutils.core import lqr
from lgutils.core.envs import CASE_STUDY_B, LinearQuadraticEnv
from lgutils.core.rollout import rollout

A = np.array([[1.0, 0.1], [0.0, 1.0]])
B = np.array([[0.0], [0.1]])


def test_gymnasium_checker_passes() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # infinite observation bounds are intended
        gym_check_env(LinearQuadraticEnv(A, B, noise_std=0.1))
        gym_check_env(LinearQuadraticEnv.case_study_b())
        gym_check_env(LinearQuadraticEnv(A, B, action_low=-2.0, action_high=2.0))


def test_sb3_checker_passes_with_bounds() -> None:
    sb3_check_env(LinearQuadraticEnv(A, B, noise_std=0.1, action_low=-1.0, action_high=1.0))
    sb3_check_env(LinearQuadraticEnv.case_study_b(action_low=-5.0, action_high=5.0))


def test_gymnasium_make_after_import() -> None:
    env = gym.make("lgutils/LinearQuadratic-v0", A=A, B=B, horizon=7)
    assert isinstance(env.unwrapped, LinearQuadraticEnv)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2,) and obs.dtype == np.float32
    steps = 0
    done = False
    while not done:
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        steps += 1
        done = term or trunc
    assert steps == 7
    env.close()
    default = gym.make("lgutils/LinearQuadratic-v0")
    assert default.observation_space.shape == (1,)


def test_seeded_resets_reproduce() -> None:
    def rollout(seed: int) -> np.ndarray:
        env = LinearQuadraticEnv(A, B, noise_std=0.3, horizon=5)
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for _ in range(5):
            obs, *_ = env.step(np.array([0.5], dtype=np.float32))
            out.append(obs)
        return np.array(out)

    np.testing.assert_array_equal(rollout(3), rollout(3))
    assert not np.allclose(rollout(3), rollout(4))


def test_dynamics_reward_and_clipping_deterministic() -> None:
    Q, R = np.diag([2.0, 1.0]), np.array([[0.5]])
    env = LinearQuadraticEnv(
        A, B, Q, R, x0=[1.0, -1.0], horizon=3, action_low=-1.0, action_high=1.0
    )
    obs, info = env.reset(seed=0)
    x = np.array([1.0, -1.0])
    np.testing.assert_array_equal(info["state"], x)
    # within the bounds: reward on the state before the step
    _, r, term, trunc, info = env.step(np.array([0.5]))
    assert r == pytest.approx(-(x @ Q @ x + 0.5 * 0.25))
    x = A @ x + B @ np.array([0.5])
    np.testing.assert_allclose(info["state"], x)
    assert not term and not trunc
    # beyond the bound: clipped to 1.0, and the reward charges the applied action
    _, r, _, _, info = env.step(np.array([7.0]))
    assert info["applied_action"][0] == 1.0
    assert r == pytest.approx(-(x @ Q @ x + 0.5 * 1.0))
    np.testing.assert_allclose(info["state"], A @ x + B[:, 0])
    *_, trunc, _ = env.step(np.array([0.0]))
    assert trunc
    assert info["state"].dtype == np.float64


def test_reset_options_and_initial_distribution() -> None:
    env = LinearQuadraticEnv(A, B, x0_mean=[1.0, 2.0], x0_cov=np.diag([0.25, 1.0]))
    _, info = env.reset(seed=1, options={"x0": [3.0, 4.0]})
    np.testing.assert_array_equal(info["state"], [3.0, 4.0])
    xs = np.array([env.reset(seed=s)[1]["state"] for s in range(3000)])
    assert np.all(np.abs(xs.mean(0) - [1.0, 2.0]) < 4 * np.sqrt(np.array([0.25, 1.0]) / 3000))
    np.testing.assert_allclose(xs.var(0), [0.25, 1.0], rtol=0.1)


def test_noise_covariance_by_sampling() -> None:
    W = np.array([[0.04, 0.01], [0.01, 0.09]])
    env = LinearQuadraticEnv(A, B, x0=[0.0, 0.0], noise_cov=W, horizon=1)
    traj = env.simulate(np.zeros((1, 2)), 20000, seed=0)
    np.testing.assert_allclose(np.cov(traj.states[:, 1].T), W, atol=0.004)
    steps = []
    for seed in range(4000):  # through the gymnasium API: x0 = 0 and u = 0, so x1 = w
        env.reset(seed=seed)
        steps.append(env.step([0.0])[-1]["state"])
    np.testing.assert_allclose(np.cov(np.array(steps).T), W, atol=0.008)


def test_simulate_equals_step_without_noise() -> None:
    env = LinearQuadraticEnv(A, B, x0=[1.0, 0.5], horizon=6, action_low=-0.3, action_high=0.3)
    K = np.array([[1.0, 2.0]])
    traj = env.simulate(K, 2)
    _, info = env.reset(seed=0)
    x, rewards = info["state"], []
    for t in range(6):
        u = -K @ x
        np.testing.assert_allclose(traj.actions[0, t], u)
        _, r, _, _, info = env.step(u)
        rewards.append(r)
        x = info["state"]
        np.testing.assert_allclose(traj.states[1, t + 1], x)
    np.testing.assert_allclose(traj.rewards[0], rewards)
    assert np.all(np.abs(traj.applied) <= 0.3)


def test_simulate_mean_return_matches_exact() -> None:
    env = LinearQuadraticEnv(
        A, B, x0_mean=[1.0, 0.0], x0_cov=0.1 * np.eye(2), noise_std=0.05, horizon=30
    )
    _, K = lqr.dare(A, B, env.Q, env.R)
    G = env.simulate(K, 5000, seed=2).rewards.sum(axis=1)
    J = lqr.policy_return(A, B, env.Q, env.R, K, env.x0_mean, env.x0_cov, env.noise_cov, 1.0, 30)
    assert abs(G.mean() - J) < 4 * G.std(ddof=1) / np.sqrt(len(G))


def test_case_study_b_data() -> None:
    env = LinearQuadraticEnv.case_study_b()
    np.testing.assert_array_equal(env.A, CASE_STUDY_B["A"])
    assert env.B.shape == (4, 1) and env.horizon == 10
    np.testing.assert_allclose(env.noise_cov, 1e-4 * np.eye(4))
    np.testing.assert_allclose(env.Q, 0.01 * np.eye(4))
    assert env.R[0, 0] == 0.01
    assert max(abs(np.linalg.eigvals(env.A))) == pytest.approx(1.2937, abs=1e-4)
    _, info = env.reset(seed=0)
    np.testing.assert_array_equal(info["state"], [2.0, -1.5, -2.0, 1.0])
    # overrides replace entries that would conflict
    env2 = LinearQuadraticEnv.case_study_b(noise_cov=np.zeros((4, 4)), x0_mean=np.zeros(4))
    assert env2.x0 is None and np.all(env2.noise_cov == 0)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"A": np.ones((2, 3))}, "A"),
        ({"B": np.ones((3, 1))}, "B"),
        ({"Q": np.eye(3)}, "Q"),
        ({"R": -np.eye(1)}, "R"),
        ({"x0": [1.0, 2.0, 3.0]}, "x0"),
        ({"x0_mean": [1.0]}, "x0_mean"),
        ({"noise_cov": np.eye(3)}, "noise_cov"),
        ({"noise_std": [0.1, 0.1, 0.1]}, "noise_std"),
        ({"horizon": 0}, "horizon"),
        ({"action_low": [1.0, 2.0]}, "action_low"),
        ({"action_low": 1.0, "action_high": 0.0}, "action_low"),
    ],
)
def test_bad_arguments_raise(kwargs: dict, name: str) -> None:
    args = {"A": A, "B": B, **kwargs}
    with pytest.raises(ValueError, match=name):
        LinearQuadraticEnv(**args)


def test_bad_action_raises() -> None:
    env = LinearQuadraticEnv(A, B)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(np.ones(3))
    with pytest.raises(ValueError, match="action"):
        env.step(np.array([np.nan]))


@pytest.mark.parametrize(
    ("action", "given"),
    [
        (np.array([np.nan]), "nan"),
        (np.array([np.inf]), "inf"),
        ([-np.inf], "inf"),
        (np.ones(3), r"shape \(3,\)"),
        (np.ones((1, 1)), r"shape \(1, 1\)"),
        ("abc", "str"),
    ],
    ids=["nan", "inf", "-inf list", "too long", "matrix", "text"],
)
def test_step_rejects_a_bad_action_saying_what_it_expected(action, given: str) -> None:
    env = LinearQuadraticEnv(A, B)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must be a finite number of shape \(1,\)") as err:
        env.step(action)
    assert re.search(given, str(err.value)), str(err.value)  # and what it was given
    # the environment is unchanged: a good action still steps from the reset state
    _, _, _, _, info = env.step(np.array([0.0]))
    assert info["t"] == 1


def test_step_names_both_sizes_for_two_inputs() -> None:
    env = LinearQuadraticEnv(np.eye(2), np.eye(2))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"finite numbers of shape \(2,\), got shape \(1,\)"):
        env.step(np.array([0.5]))
    with pytest.raises(ValueError, match=r"got non-finite values"):
        env.step([0.5, np.nan])


def test_reset_rejects_an_unknown_option_naming_it_and_the_known_ones() -> None:
    env = LinearQuadraticEnv(A, B)
    with pytest.raises(ValueError, match=r"options must be a dict with keys among \['x0'\]") as err:
        env.reset(seed=0, options={"x_0": [1.0, 2.0]})
    assert "['x_0']" in str(err.value)
    with pytest.raises(ValueError, match="options must be a dict"):
        env.reset(seed=0, options=[("x0", [1.0, 2.0])])
    with pytest.raises(ValueError, match=r"options\['x0'\]"):
        env.reset(seed=0, options={"x0": [1.0, 2.0, 3.0]})
    _, info = env.reset(seed=0, options={"x0": [1.0, 2.0]})  # a known option still works
    np.testing.assert_array_equal(info["state"], [1.0, 2.0])


def test_simulate_runs_the_one_rollout_loop() -> None:
    """simulate equals lgutils.core.rollout.rollout with the environment's own draws, bit for bit."""
    env = LinearQuadraticEnv(A, B, noise_std=0.1, horizon=8, action_low=-0.5, action_high=0.5)
    K = np.array([[2.0, 3.0]])
    traj = env.simulate(K, 5, seed=7)
    rng = np.random.default_rng(7)  # same generator, same order: x_0, then w_0, w_1, ...
    x0 = rng.standard_normal((5, 2)) @ np.eye(2)  # x0_cov = I

    def plant(x, u, t):
        return x @ A.T + u @ B.T + rng.standard_normal((5, 2)) @ (0.1 * np.eye(2))

    run = rollout(lambda x, t: -x @ K.T, plant, x0, 8, clip=lambda u: np.clip(u, -0.5, 0.5))
    np.testing.assert_array_equal(traj.states, run.states)
    np.testing.assert_array_equal(traj.applied, run.actions)
    np.testing.assert_array_equal(traj.actions, run.raw_actions)
    x, u = run.states[:, :8], run.actions
    np.testing.assert_allclose(traj.rewards, -(np.sum(x * x, -1) + np.sum(u * u, -1)), rtol=1e-15)


def test_simulate_names_a_wrongly_shaped_policy_and_a_diverging_loop() -> None:
    env = LinearQuadraticEnv(A, B, horizon=5)
    with pytest.raises(ValueError, match=r"policy must return shape \(4, 1\), got shape \(4,\)"):
        env.simulate(lambda x: -x[:, 0], 4, seed=0)
    blow_up = LinearQuadraticEnv([[1e200]], [[1.0]], horizon=5)
    with np.errstate(over="ignore"), pytest.raises(ValueError, match="step must return finite"):
        blow_up.simulate([[0.0]], 3, seed=0)
