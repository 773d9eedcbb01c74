"""SB3's PPO on case study B through the MPC layer, and the measures of its runs (Fig. 4).

- :func:`train_ppo` -- SB3's PPO on the MPC policy
  (:class:`lgutils.mpc_in_rl_library.sb3.MPCActorCriticPolicy`), one rollout a batch of
  complete episodes, recording the model after every rollout (:class:`PPORun`, through the
  callback :class:`PPOHistory`);
- :func:`train_ppo_runs` -- independent runs of :func:`train_ppo` (one per seed), serially or
  on several processes through :mod:`joblib`, with the same numbers either way;
- :func:`case_b_expected_returns` and :func:`case_b_mismatch` -- the exact expected return and
  the model mismatch of learned models ``phi = [vec(A_phi); vec(B_phi)]``, the measures of
  Fig. 4 (chapter 08), for any number of models at once;
- :func:`case_b_bounded_returns` -- the same return measure for the input-bounded MPC
  (:mod:`lgutils.mpc_reinforce.bounded`), which has no closed form: Monte Carlo on common
  random numbers;
- :func:`paired_comparison` -- two algorithms' final returns over the same runs: medians,
  quartiles, the median paired difference with a bootstrap interval, and a signed-rank test.

Shapes: ``n_phi = 20`` (case study B: ``A_phi`` 4x4, ``B_phi`` 4x1, row-major), ``E`` rollouts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from scipy import stats
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

from lgutils.core.envs import LinearQuadraticEnv
from lgutils.core.validate import (
    as_array,
    as_vector,
    check_in_open_interval,
    check_positive_int,
)
from lgutils.mpc_in_rl_library.sb3 import EpisodeEndIsTermination, MPCActorCriticPolicy
from lgutils.mpc_in_rl_library.solvers import check_solver
from lgutils.mpc_reinforce import bounded, model, rollout

__all__ = [
    "ACTION_LIMIT",
    "case_b_expected_returns",
    "case_b_mismatch",
    "case_b_bounded_returns",
    "paired_comparison",
    "PPORun",
    "PPOHistory",
    "train_ppo",
    "train_ppo_runs",
]


#: Input bound of case study B's environment for SB3 (input units), which requires a bounded
#: action space. The closed loops of Fig. 4 use inputs of order 1; only a blown-up model reaches it.
ACTION_LIMIT: float = 100.0


def case_b_expected_returns(phi: Any, action_std: float = 0.01) -> np.ndarray:
    """Exact expected return on case study B of the MPC policies with models ``phi``.

    The unconstrained MPC with model ``phi = [vec(A_phi); vec(B_phi)]`` is the gain
    ``K_0(phi)`` (:func:`lgutils.mpc_reinforce.model.mpc_gain`); its T-step expected return from
    ``x_0`` with Gaussian exploration ``sigma_a`` is
    :func:`lgutils.mpc_reinforce.rollout.expected_return` -- the measure of Fig. 4 in chapter 08.

    Parameters
    ----------
    phi : array_like, shape (..., 20)
        Models (any leading shape, e.g. (runs, checkpoints, 20)).
    action_std : float
        Exploration standard deviation ``sigma_a`` (input units); 0 for the deterministic policy.

    Returns
    -------
    numpy.ndarray, shape (...)
        Expected returns (reward units); ``-inf`` where the closed loop overflows.
    """
    env = model.case_b()
    n, m = env.B.shape
    phi = as_array("phi", phi)
    if phi.ndim < 1 or phi.shape[-1] != n * n + n * m:
        raise ValueError(f"phi must have shape (..., {n * n + n * m}), got shape {phi.shape}")
    lead = phi.shape[:-1]
    A, B = model.split_phi(phi.reshape(-1, phi.shape[-1]), n, m)
    K = model.mpc_gain(A, B, env.Q, env.R)
    J = rollout.expected_return(
        env.A, env.B, env.Q, env.R, K, env.x0, env.noise_std, action_std, env.horizon
    )
    return np.asarray(J, dtype=float).reshape(lead)


def case_b_mismatch(phi: Any) -> tuple[np.ndarray, np.ndarray]:
    """Model mismatch ``||A_phi - A||_F`` and ``||B_phi - B||_F`` of case study B (Fig. 4, bottom).

    Parameters
    ----------
    phi : array_like, shape (..., 20)

    Returns
    -------
    mismatch_A, mismatch_B : numpy.ndarray, shape (...)
    """
    env = model.case_b()
    n, m = env.B.shape
    phi = as_array("phi", phi)
    if phi.ndim < 1 or phi.shape[-1] != n * n + n * m:
        raise ValueError(f"phi must have shape (..., {n * n + n * m}), got shape {phi.shape}")
    A, B = model.split_phi(phi, n, m)
    return (
        np.sqrt(np.sum((A - env.A) ** 2, axis=(-2, -1))),
        np.sqrt(np.sum((B - env.B) ** 2, axis=(-2, -1))),
    )


def case_b_bounded_returns(
    phi: Any,
    u_max: float,
    n_episodes: int = 256,
    seed: int = 0,
    action_std: float = 0.01,
    horizon: int = 5,
    chunk: int = 64,
) -> np.ndarray:
    """Mean return on case study B of the input-bounded MPC policies with models ``phi``.

    The input-bounded MPC (:mod:`lgutils.mpc_reinforce.bounded`, ``|u_k| <= u_max``) is not
    linear, so its expected return has no closed form: every model plays the same
    ``n_episodes`` episodes (common random numbers: the same exploration and process noise
    for every model), with ``a = u_0* + sigma_a eps`` clipped to ``[-u_max, u_max]`` before it
    acts, as :func:`lgutils.mpc_reinforce.bounded.bounded_reference_returns` plays the
    true-model MPC (with the same ``n_episodes`` and ``seed`` the two draw the same numbers).

    Parameters
    ----------
    phi : array_like, shape (..., 20)
        Models (any leading shape).
    u_max : float
        Input bound (> 0, input units).
    n_episodes : int
        Episodes per model (>= 2).
    seed : int
        Seed of the common random numbers.
    action_std : float
        Exploration standard deviation ``sigma_a`` >= 0 (input units).
    horizon : int
        MPC horizon H >= 2.
    chunk : int
        Models simulated together (memory: about ``chunk * n_episodes`` kB).

    Returns
    -------
    numpy.ndarray, shape (...)
        Mean returns (reward units).
    """
    env = model.case_b()
    n, m = env.B.shape
    phi = as_array("phi", phi)
    if phi.ndim < 1 or phi.shape[-1] != n * n + n * m:
        raise ValueError(f"phi must have shape (..., {n * n + n * m}), got shape {phi.shape}")
    N = check_positive_int("n_episodes", n_episodes, minimum=2)
    step = check_positive_int("chunk", chunk)
    rng = np.random.default_rng(check_positive_int("seed", seed, minimum=0))
    z = rng.standard_normal((1, N, env.horizon, 1 + n))  # as bounded_reference_returns draws
    A, B = model.split_phi(phi.reshape(-1, phi.shape[-1]), n, m)
    out = np.empty(A.shape[0])
    for i in range(0, A.shape[0], step):
        r = min(step, A.shape[0] - i)
        eps = np.broadcast_to(z[..., :1], (r, *z.shape[1:3], 1))
        w = np.broadcast_to(z[..., 1:], (r, *z.shape[1:3], n))
        batch = bounded.bounded_rollout(
            A[i : i + r], B[i : i + r], u_max, eps, w, action_std, horizon
        )
        out[i : i + r] = batch.rewards.sum(axis=-1).mean(axis=-1)
    return out.reshape(phi.shape[:-1])


def paired_comparison(
    a: Any, b: Any, n_boot: int = 10_000, seed: int = 0, level: float = 0.95
) -> dict[str, float]:
    """Compare two algorithms' returns over the same runs (run ``i`` of both from one seed).

    Reports each side's median and quartiles, the median of the paired differences
    ``d_i = a_i - b_i`` with a percentile bootstrap interval (runs resampled with replacement,
    ``n_boot`` times), how many runs ``a`` won, and the two-sided Wilcoxon signed-rank test of
    ``d`` (``p_value``; 1 when every difference is 0).

    Parameters
    ----------
    a, b : array_like, shape (r,)
        Finite returns of the two algorithms, paired by run (r >= 2).
    n_boot : int
        Bootstrap resamples.
    seed : int
        Seed of the resampling.
    level : float
        Confidence level of the interval, in (0, 1).

    Returns
    -------
    dict
        ``median_a``, ``q25_a``, ``q75_a``, ``median_b``, ``q25_b``, ``q75_b``,
        ``median_difference``, ``ci_low``, ``ci_high``, ``n_a_better``, ``n``, ``p_value``.
    """
    a = as_vector("a", a)
    b = as_vector("b", b, a.size)
    r = check_positive_int("len(a)", a.size, minimum=2)
    level = check_in_open_interval("level", level, 0.0, 1.0)
    rng = np.random.default_rng(check_positive_int("seed", seed, minimum=0))
    d = a - b
    idx = rng.integers(0, r, size=(check_positive_int("n_boot", n_boot), r))
    low, high = np.quantile(np.median(d[idx], axis=1), [(1 - level) / 2, (1 + level) / 2])
    p = 1.0 if np.all(d == 0) else float(stats.wilcoxon(a, b).pvalue)
    out = {}
    for name, x in (("a", a), ("b", b)):
        out[f"median_{name}"] = float(np.median(x))
        out[f"q25_{name}"], out[f"q75_{name}"] = (float(q) for q in np.quantile(x, [0.25, 0.75]))
    return {
        **out,
        "median_difference": float(np.median(d)),
        "ci_low": float(low),
        "ci_high": float(high),
        "n_a_better": int(np.sum(d > 0)),
        "n": r,
        "p_value": p,
    }


class PPORun(NamedTuple):
    """One PPO training of the MPC policy; index ``k`` is the model after ``k`` rollouts.

    Attributes
    ----------
    phi : numpy.ndarray, shape (E + 1, n_phi)
        ``phi`` before each rollout and after the last update.
    log_std : numpy.ndarray, shape (E + 1, nu)
        The policy's ``log sigma`` at the same points.
    episodes : numpy.ndarray of int, shape (E + 1,)
        Episodes used before each point.
    sampled_returns : numpy.ndarray, shape (E,)
        Mean return of the episodes of each rollout (PPO's own exploration).
    wall_time : float
        Seconds of ``PPO.learn``.
    steps : int
        Environment steps of the training.
    """

    phi: np.ndarray
    log_std: np.ndarray
    episodes: np.ndarray
    sampled_returns: np.ndarray
    wall_time: float
    steps: int


class PPOHistory(BaseCallback):
    """SB3 callback: ``phi`` and ``log sigma`` before each rollout, the rollout's mean return.

    Parameters
    ----------
    episode_length : int
        Steps per episode (to turn a rollout's summed rewards into a mean episode return).
    n_rollouts : int, optional
        Length of the progress bar (none if omitted).
    """

    def __init__(self, episode_length: int, n_rollouts: int | None = None) -> None:
        super().__init__()
        self.episode_length = check_positive_int("episode_length", episode_length)
        self.n_rollouts = n_rollouts
        self.phi: list[np.ndarray] = []
        self.log_std: list[np.ndarray] = []
        self.steps: list[int] = []
        self.returns: list[float] = []
        self._bar = None

    def _snapshot(self) -> None:
        policy = self.model.policy
        self.phi.append(policy.mpc_layer.phi_numpy())
        self.log_std.append(policy.log_std.detach().cpu().numpy().copy())
        self.steps.append(int(self.num_timesteps))

    def _on_training_start(self) -> None:
        if self.n_rollouts is not None:
            from tqdm import tqdm

            self._bar = tqdm(total=self.n_rollouts, desc="PPO rollouts", leave=False)

    def _on_rollout_start(self) -> None:
        self._snapshot()

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        buf = self.model.rollout_buffer
        n_episodes = buf.rewards.size / self.episode_length
        self.returns.append(float(buf.rewards.sum() / n_episodes))
        if self._bar is not None:
            self._bar.update(1)

    def _on_training_end(self) -> None:
        self._snapshot()
        if self._bar is not None:
            self._bar.close()


def train_ppo(
    solver: Any,
    phi_init: Any,
    n_rollouts: int,
    *,
    seed: int = 0,
    n_envs: int = 8,
    episodes_per_env: int = 8,
    n_epochs: int = 10,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    clip_range: float = 0.2,
    gae_lambda: float = 0.95,
    gamma: float = 1.0,
    max_grad_norm: float = 0.5,
    log_std_init: float = float(np.log(0.01)),
    vf_arch: tuple[int, ...] = (64, 64),
    make_env: Callable[[], gym.Env] | None = None,
    progress: bool = False,
) -> PPORun:
    """SB3's PPO on the MPC policy (:class:`MPCActorCriticPolicy`), one rollout = a batch of episodes.

    Each rollout collects ``episodes_per_env`` complete episodes from each of ``n_envs``
    environments (a ``DummyVecEnv``), i.e. ``n_envs * episodes_per_env`` episodes -- with the
    defaults, the 64 episodes of one REINFORCE update of case study B -- then PPO takes
    ``n_epochs`` passes of minibatches of ``batch_size`` steps over them (clipped surrogate,
    GAE advantages normalised per minibatch, value loss, global gradient-norm clipping).

    Parameters
    ----------
    solver : MPCSolver or RiccatiSolver
        The actor's MPC.
    phi_init : dict or array_like
        Initial ``phi``.
    n_rollouts : int
        Rollouts (= PPO updates) E.
    seed : int
        Seed of PPO (torch, action sampling) and of the environments (``seed + i`` for env i).
    n_envs, episodes_per_env : int
        Vectorised environments and complete episodes per environment per rollout.
    n_epochs, batch_size, learning_rate, clip_range, gae_lambda, gamma, max_grad_norm
        PPO's settings (``gamma = 1``: the undiscounted return of case study B).
    log_std_init : float
        Initial ``log sigma`` (default ``log 0.01``, the exploration of Fig. 4).
    vf_arch : tuple of int
        Hidden units of the critic.
    make_env : callable, optional
        Builds one environment, whose action space must be bounded (SB3 requires it) and which
        has an attribute ``horizon`` (steps per episode); it is wrapped in
        :class:`EpisodeEndIsTermination`. Default: case study B,
        ``LinearQuadraticEnv.case_study_b(action_low=-ACTION_LIMIT, action_high=ACTION_LIMIT)``.
    progress : bool
        Show a progress bar over the rollouts.

    Returns
    -------
    PPORun
    """
    check_solver(solver)
    E = check_positive_int("n_rollouts", n_rollouts)
    n_envs = check_positive_int("n_envs", n_envs)
    per_env = check_positive_int("episodes_per_env", episodes_per_env)
    seed = check_positive_int("seed", seed, minimum=0)
    builder = make_env or (
        lambda: LinearQuadraticEnv.case_study_b(action_low=-ACTION_LIMIT, action_high=ACTION_LIMIT)
    )
    if not callable(builder):
        raise ValueError(f"make_env must be callable, got {type(builder).__name__}")
    T = check_positive_int("make_env().horizon", getattr(builder().unwrapped, "horizon", None))
    n_steps = per_env * T
    venv = make_vec_env(lambda: EpisodeEndIsTermination(builder()), n_envs=n_envs, seed=seed)
    agent = PPO(
        MPCActorCriticPolicy,
        venv,
        learning_rate=check_in_open_interval("learning_rate", learning_rate, 0.0, np.inf),
        n_steps=n_steps,
        batch_size=check_positive_int("batch_size", batch_size, minimum=2),
        n_epochs=check_positive_int("n_epochs", n_epochs),
        gamma=check_in_open_interval("gamma", gamma, 0.0, 1.0, closed_high=True),
        gae_lambda=check_in_open_interval("gae_lambda", gae_lambda, -1e-300, 1.0, closed_high=True),
        clip_range=check_in_open_interval("clip_range", clip_range, 0.0, np.inf),
        max_grad_norm=check_in_open_interval("max_grad_norm", max_grad_norm, 0.0, np.inf),
        ent_coef=0.0,
        policy_kwargs={
            "solver": solver,
            "phi_init": phi_init,
            "log_std_init": float(log_std_init),
            "vf_arch": tuple(vf_arch),
        },
        seed=seed,
        device="cpu",
        verbose=0,
    )
    history = PPOHistory(T, E if progress else None)
    t0 = time.perf_counter()
    agent.learn(total_timesteps=E * n_steps * n_envs, callback=history)
    wall = time.perf_counter() - t0
    venv.close()
    steps = np.asarray(history.steps)
    return PPORun(
        phi=np.asarray(history.phi),
        log_std=np.asarray(history.log_std),
        episodes=(steps // T).astype(int),
        sampled_returns=np.asarray(history.returns),
        wall_time=wall,
        steps=int(agent.num_timesteps),
    )


def _train_one(
    make_solver: Callable[[], Any], phi_init: np.ndarray, n_rollouts: int, seed: int, kwargs: dict
) -> PPORun:
    """One run of :func:`train_ppo` with a solver built here (in the worker process)."""
    torch.set_num_threads(1)  # one core per run: the runs are the parallelism
    return train_ppo(make_solver(), phi_init, n_rollouts, seed=seed, **kwargs)


def train_ppo_runs(
    make_solver: Callable[[], Any],
    phi_init: Any,
    seeds: list[int],
    n_rollouts: int,
    *,
    n_jobs: int = 1,
    progress: bool = False,
    **kwargs: Any,
) -> list[PPORun]:
    """Independent PPO runs, run ``i`` from ``phi_init[i]`` with ``seeds[i]``, through joblib.

    Each run is :func:`train_ppo` with its own solver (``make_solver()``, called in the process
    that runs it, so nothing of CasADi crosses processes) and one torch thread. A run's numbers
    depend only on its seed and initial model, not on ``n_jobs``: ``n_jobs=1`` runs them one
    after the other in this process, ``n_jobs > 1`` on that many processes (joblib's loky
    backend, or whatever ``joblib.parallel_config`` sets).

    Parameters
    ----------
    make_solver : callable
        ``() -> MPCSolver or RiccatiSolver`` (picklable with cloudpickle when ``n_jobs > 1``).
    phi_init : array_like, shape (r, n_phi)
        Initial models.
    seeds : list of int
        One seed per run (r of them).
    n_rollouts : int
        Rollouts per run.
    n_jobs : int
        Processes.
    progress : bool
        Show a progress bar over the runs.
    **kwargs
        Passed to :func:`train_ppo` (``n_envs``, ``make_env``, ...).

    Returns
    -------
    list of PPORun
        In the order of ``seeds``.
    """
    from joblib import Parallel, delayed

    if not callable(make_solver):
        raise ValueError(f"make_solver must be callable, got {type(make_solver).__name__}")
    phi_init = as_array("phi_init", phi_init, (len(seeds), None))
    seeds = [check_positive_int(f"seeds[{i}]", s, minimum=0) for i, s in enumerate(seeds)]
    E = check_positive_int("n_rollouts", n_rollouts)
    jobs = (
        delayed(_train_one)(make_solver, p, E, s, kwargs)
        for p, s in zip(phi_init, seeds, strict=True)
    )
    if progress:
        from tqdm import tqdm

        jobs = tqdm(jobs, total=len(seeds), desc="PPO runs")
    return list(Parallel(n_jobs=check_positive_int("n_jobs", n_jobs))(jobs))
