"""Same seed, same numbers: short stochastic runs of lgutils, done twice in one process and
compared exactly (``assert_array_equal``, ``torch.equal``), and a different seed that changes
them (so that each test can fail).

Covers an SB3 SAC training on the book's linear-quadratic environment, REINFORCE on the MPC
model (case study B), a closed-loop MPC run with seeded process and exploration noise, joblib
runs over seeds against the serial loop, Monte-Carlo evaluations, and ``reset(seed=...)``
trajectories of ``lgutils/LinearQuadratic-v0``.
"""

from __future__ import annotations

import random

import gymnasium as gym
import numpy as np
import pytest
import torch

import lgutils  # noqa: F401  (registers lgutils/LinearQuadratic-v0)
from lgutils.core import rl, seeding
from lgutils.core.envs import LinearQuadraticEnv
from lgutils.mpc import Bounds, closed_loop, linear_quadratic_mpc
from lgutils.mpc_reinforce import reinforce

#: a double integrator, sampled at 0.1 s, with process noise and a random initial state
A2 = np.array([[1.0, 0.1], [0.0, 1.0]])
B2 = np.array([[0.005], [0.1]])
LQ = {
    "A": A2,
    "B": B2,
    "Q": np.eye(2),
    "R": 0.1 * np.eye(1),
    "noise_std": 0.05,
    "x0_mean": [1.0, 0.0],
    "x0_cov": 0.25 * np.eye(2),
}


@pytest.fixture
def one_thread():
    """One torch thread (the book's setting for reproducible training), restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def assert_same(a, b) -> None:
    """Exact equality of two results, field by field (NaN equal to NaN)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, tuple) and not isinstance(a, str):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    else:
        np.testing.assert_array_equal(a, b)


def differs(a, b) -> bool:
    """Whether two results differ anywhere."""
    try:
        assert_same(a, b)
    except AssertionError:
        return True
    return False


# ------------------------------------------------------------------------------------------
# seeding helpers
# ------------------------------------------------------------------------------------------
def test_seed_everything_reseeds_python_numpy_and_torch():
    def draws(seed):
        rng = seeding.seed_everything(seed)
        return (
            np.array([random.random()]),
            np.random.rand(3),  # noqa: NPY002  (the legacy global state that libraries use)
            torch.rand(3),
            rng.standard_normal(3),
        )

    assert_same(draws(7), draws(7))
    assert differs(draws(7), draws(8))


def test_spawned_seeds_do_not_depend_on_how_many_are_spawned():
    assert seeding.spawn_seeds(3, 5)[:2] == seeding.spawn_seeds(3, 2)
    assert len(set(seeding.spawn_seeds(3, 50))) == 50
    assert seeding.spawn_seeds(3, 4) != seeding.spawn_seeds(4, 4)


# ------------------------------------------------------------------------------------------
# the environment
# ------------------------------------------------------------------------------------------
def episode(env: gym.Env, seed: int | None, actions: np.ndarray) -> dict[str, np.ndarray]:
    obs, info = env.reset(seed=seed)
    states, observations, rewards = [info["state"]], [obs], []
    for a in actions:
        obs, r, _, _, info = env.step(a)
        states.append(info["state"])
        observations.append(obs)
        rewards.append(r)
    return {"states": np.array(states), "obs": np.array(observations), "rewards": np.array(rewards)}


def test_env_reset_with_a_seed_gives_the_same_trajectory():
    actions = np.random.default_rng(0).uniform(-1, 1, size=(15, 1))
    one = LinearQuadraticEnv(**LQ, horizon=15)
    two = gym.make("lgutils/LinearQuadratic-v0", **LQ, horizon=15)
    first = episode(one, 3, actions)
    assert_same(first, episode(one, 3, actions))  # the same instance, reseeded
    assert_same(first, episode(two, 3, actions))  # another instance, through gym.make
    # an unseeded reset continues the seeded stream: identical in both instances
    assert_same(episode(one, None, actions), episode(two, None, actions))
    assert differs(first, episode(one, 4, actions))


def test_batch_simulation_is_seeded_and_leaves_the_env_generator_alone():
    env = LinearQuadraticEnv(**LQ, horizon=20)
    K = np.array([[3.0, 2.5]])
    a, b = env.simulate(K, 16, seed=5), env.simulate(K, 16, seed=5)
    assert_same(tuple(a), tuple(b))
    assert differs(tuple(a), tuple(env.simulate(K, 16, seed=6)))
    # simulate draws from its own generator: the environment's episodes are not shifted
    actions = np.zeros((5, 1))
    env.reset(seed=1)
    reference = episode(env, None, actions)
    env.reset(seed=1)
    env.simulate(K, 16, seed=5)
    assert_same(reference, episode(env, None, actions))


def test_monte_carlo_evaluation_is_seeded():
    env = LinearQuadraticEnv(**LQ, horizon=30)
    K, K_ref = np.array([[3.0, 2.5]]), np.array([[1.0, 1.5]])
    first = rl.evaluate_policy(env, K, 64, 0.95, seed=11, reference=K_ref)
    assert first == rl.evaluate_policy(env, K, 64, 0.95, seed=11, reference=K_ref)
    assert first != rl.evaluate_policy(env, K, 64, 0.95, seed=12, reference=K_ref)
    J = rl.evaluate_policy(env, K, 64, 0.95, seed=11)
    assert J == rl.evaluate_policy(env, K, 64, 0.95, seed=11)


# ------------------------------------------------------------------------------------------
# training
# ------------------------------------------------------------------------------------------
def sac_run(seed: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], np.ndarray]:
    """A few hundred steps of SB3's SAC on lgutils/LinearQuadratic-v0: (initial, final, buffer)."""
    from stable_baselines3 import SAC

    env = gym.make("lgutils/LinearQuadratic-v0", **LQ, horizon=25, action_low=-1.0, action_high=1.0)
    model = SAC(
        "MlpPolicy",
        env,
        learning_starts=64,
        batch_size=32,
        buffer_size=1_000,
        policy_kwargs={"net_arch": [16, 16]},
        seed=seed,
        device="cpu",
        verbose=0,
    )
    initial = {k: v.detach().clone() for k, v in model.policy.state_dict().items()}
    model.learn(256)
    final = {k: v.detach().clone() for k, v in model.policy.state_dict().items()}
    return initial, final, model.replay_buffer.observations[:256].copy()


def test_sb3_sac_training_with_the_same_seed_gives_the_same_network(one_thread):
    init, final, buffer = sac_run(0)
    init2, final2, buffer2 = sac_run(0)
    assert_same(init, init2)
    assert_same(final, final2)
    assert_same(buffer, buffer2)
    assert differs(init, final)  # it did train
    _, final_other, buffer_other = sac_run(1)
    assert differs(final, final_other) and differs(buffer, buffer_other)


def test_reinforce_on_the_mpc_model_is_seeded_and_independent_of_batching():
    kwargs = {"n_updates": 3, "batch_size": 8}
    two = reinforce.run_reinforce([21, 22], **kwargs)
    assert_same(tuple(two), tuple(reinforce.run_reinforce([21, 22], **kwargs)))
    # each run's numbers come from its own seed only: alone or in company, the same
    alone = reinforce.run_reinforce([22], **kwargs)
    assert_same(tuple(f[1:] for f in two), tuple(alone))
    other = reinforce.run_reinforce([23], **kwargs)
    assert differs(alone.phi, other.phi) and differs(alone.returns, other.returns)
    assert np.all(np.isfinite(two.returns)) and differs(two.phi[:, 0], two.phi[:, -1])


def test_reinforce_of_the_foundations_is_seeded():
    env = LinearQuadraticEnv(**LQ, horizon=20)
    args = (env, np.array([[1.0, 1.0]]), 0.3, 0.95, 3, 8, 0.05)
    a = rl.reinforce(*args, seed=2, progress=False)
    assert_same(tuple(a), tuple(rl.reinforce(*args, seed=2, progress=False)))
    assert differs(a.K_history, rl.reinforce(*args, seed=3, progress=False).K_history)


def test_joblib_runs_over_seeds_equal_the_serial_loop():
    from joblib import parallel_config

    kwargs = {"n_updates": 2, "batch_size": 4}
    serial, _ = reinforce.run_experiment(5, 4, n_jobs=1, runs_per_job=4, **kwargs)
    with parallel_config(backend="loky"):
        parallel, _ = reinforce.run_experiment(5, 4, n_jobs=2, runs_per_job=1, **kwargs)
    assert_same(tuple(serial), tuple(parallel))
    assert list(serial.seeds) == seeding.spawn_seeds(5, 4)
    other, _ = reinforce.run_experiment(6, 4, n_jobs=1, runs_per_job=4, **kwargs)
    assert differs(serial.returns, other.returns)


def _monte_carlo(seed: int) -> float:
    env = LinearQuadraticEnv(**LQ, horizon=30)
    return rl.evaluate_policy(env, np.array([[3.0, 2.5]]), 32, 0.95, seed=seed)[0]


def test_joblib_monte_carlo_over_spawned_seeds_equals_the_serial_loop():
    from joblib import Parallel, delayed

    seeds = seeding.spawn_seeds(0, 4)
    serial = [_monte_carlo(s) for s in seeds]
    parallel = Parallel(n_jobs=2, backend="loky")(delayed(_monte_carlo)(s) for s in seeds)
    assert serial == parallel
    assert len(set(serial)) == len(serial)


# ------------------------------------------------------------------------------------------
# closed-loop MPC
# ------------------------------------------------------------------------------------------
PHI = {"A": A2, "B": B2, "Q": np.eye(2), "R": 0.1 * np.eye(1), "P": np.eye(2)}


def mpc_run(mpc, seed: int, steps: int = 15):
    """Closed loop with process noise and exploration noise, both drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    exploration = 0.2 * rng.standard_normal((steps, 1))

    def plant(x: np.ndarray, u: np.ndarray) -> np.ndarray:
        return A2 @ x + B2 @ u + 0.05 * rng.standard_normal(2)

    run = closed_loop(mpc, plant, [1.0, 0.5], steps, PHI, noise=exploration)
    return (
        run.states,
        run.actions,
        run.values,
        run.plans,
        run.iterations,
        run.statuses,
        run.violations,
    )


def bounded_mpc():
    return linear_quadratic_mpc(
        2, 1, 6, bounds=Bounds(u_lb=-1.0, u_ub=1.0, x_lb=[-5.0, -5.0], x_ub=[5.0, 5.0])
    )


def test_closed_loop_mpc_with_seeded_noise_is_reproducible():
    mpc = bounded_mpc()
    first = mpc_run(mpc, 0)
    # the same MPC object again: the run starts cold, so its earlier solves do not leak in
    assert_same(first, mpc_run(mpc, 0))
    assert_same(first, mpc_run(bounded_mpc(), 0))
    assert differs(first[0], mpc_run(mpc, 1)[0])
