"""Reinforcement learning on the linear-quadratic environment, where the answer is known.

Two small, transparent algorithms of the paper's Sec. II.C:

- **value-based**: fitted Q-iteration with a quadratic ``Q_phi(x, u) = -([x; u]^T H [x; u] + c)``,
  which contains the true Q* (:func:`lgutils.core.lqr.q_matrix`); every iteration solves the
  least-squares problem of eq. (9) with the target held fixed;
- **policy-based**: REINFORCE (eqs. 10-11) for the linear Gaussian policy
  ``u ~ N(-K x, sigma^2 I)``, with a leave-one-out baseline and Adam steps.

and helpers to evaluate any policy by Monte Carlo and to follow a Stable-Baselines3 agent's
learning curve (:class:`LearningCurveCallback`).

Batches of episodes come from :meth:`lgutils.core.envs.LinearQuadraticEnv.simulate` (vectorised) or,
for fitted Q-iteration, from the gymnasium API (:func:`collect_transitions`).

Shapes: ``n`` states, ``m`` inputs, ``d = n + m``; batches of ``N`` samples or episodes of
``T`` steps. Returns and Q-values are in reward units.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from tqdm import tqdm

from lgutils.core.envs import LinearQuadraticEnv
from lgutils.core.optim import adam_step
from lgutils.core.rollout import rollout
from lgutils.core.validate import (
    as_array,
    as_matrix,
    check_in_open_interval,
    check_positive_int,
)

__all__ = [
    "Transitions",
    "FQIResult",
    "ReinforceResult",
    "quadratic_features",
    "theta_to_quadratic",
    "quadratic_to_theta",
    "max_q",
    "floored_schur",
    "bellman_loss",
    "collect_transitions",
    "fitted_q_iteration",
    "discounted_returns_to_go",
    "gaussian_score",
    "reinforce_gradient",
    "reinforce",
    "evaluate_policy",
    "sb3_policy",
    "LearningCurveCallback",
]


class Transitions(NamedTuple):
    """One-step samples ``(x, u, r, x')`` (float64): shapes (N, n), (N, m), (N,), (N, n)."""

    x: np.ndarray
    u: np.ndarray
    r: np.ndarray
    x_next: np.ndarray


class FQIResult(NamedTuple):
    """Output of :func:`fitted_q_iteration`.

    Attributes
    ----------
    H : numpy.ndarray, shape (d, d)
        Final quadratic form.
    c : float
        Final constant.
    H_history : numpy.ndarray, shape (k + 1, d, d)
        H after each iteration (index 0: the start, zero).
    c_history : numpy.ndarray, shape (k + 1,)
    losses : numpy.ndarray, shape (k,)
        Eq. (9) on the data, with the target of that iteration, after its fit.
    """

    H: np.ndarray
    c: float
    H_history: np.ndarray
    c_history: np.ndarray
    losses: np.ndarray


class ReinforceResult(NamedTuple):
    """Output of :func:`reinforce`.

    Attributes
    ----------
    K : numpy.ndarray, shape (m, n)
        Final gain (the mean of the Gaussian policy is ``-K x``).
    K_history : numpy.ndarray, shape (k + 1, m, n)
        Gains before each update and after the last one.
    batch_returns : numpy.ndarray, shape (k,)
        Mean discounted return of each update's batch (stochastic policy).
    episodes : int
        Episodes used in total.
    """

    K: np.ndarray
    K_history: np.ndarray
    batch_returns: np.ndarray
    episodes: int


# ---------------------------------------------------------------------------- quadratic Q
def _pairs(d: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(d)


def quadratic_features(x: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Features with ``z^T H z + c = features @ theta``, ``z = [x; u]``.

    Parameters
    ----------
    x : array_like, shape (N, n)
    u : array_like, shape (N, m)

    Returns
    -------
    numpy.ndarray, shape (N, d (d + 1) / 2 + 1)
        The monomials ``z_i z_j`` (``i <= j``, row-major upper triangle) and a final 1.
    """
    x = as_array("x", x, (None, None))
    u = as_array("u", u, (x.shape[0], None))
    z = np.hstack([x, u])
    i, j = _pairs(z.shape[1])
    return np.hstack([z[:, i] * z[:, j], np.ones((z.shape[0], 1))])


def theta_to_quadratic(theta: np.ndarray, d: int) -> tuple[np.ndarray, float]:
    """Map feature weights to ``(H, c)`` (off-diagonal weights are split over H_ij and H_ji)."""
    d = check_positive_int("d", d, 2)
    theta = as_array("theta", theta, (d * (d + 1) // 2 + 1,))
    i, j = _pairs(d)
    H = np.zeros((d, d))
    H[i, j] = theta[:-1]
    H = 0.5 * (H + H.T)
    H[np.diag_indices(d)] = theta[:-1][i == j]
    return H, float(theta[-1])


def quadratic_to_theta(H: np.ndarray, c: float) -> np.ndarray:
    """Inverse of :func:`theta_to_quadratic` for a symmetric ``H``."""
    H = as_matrix("H", H)
    d = H.shape[0]
    if H.shape != (d, d):
        raise ValueError(f"H must be square, got shape {H.shape}")
    i, j = _pairs(d)
    w = np.where(i == j, 1.0, 2.0)
    return np.append(w * 0.5 * (H + H.T)[i, j], float(c))


def max_q(H: np.ndarray, c: float, x: np.ndarray, n: int) -> np.ndarray:
    """``max_u Q(x, u)`` for ``Q = -(z^T H z + c)``: ``-(x^T (H_xx - H_xu H_uu^-1 H_ux) x + c)``.

    The input block must be positive definite; if it is not (early in learning), its eigenvalues
    are floored at ``1e-6`` times its largest magnitude (a maximum must exist for eq. 8).

    Parameters
    ----------
    H : array_like, shape (n + m, n + m)
    c : float
    x : array_like, shape (N, n)
    n : int

    Returns
    -------
    numpy.ndarray, shape (N,)
    """
    H = as_matrix("H", H)
    x = as_array("x", x, (None, n))
    S = floored_schur(H, n)
    return -(np.einsum("ni,ij,nj->n", x, S, x) + float(c))


def floored_schur(H: np.ndarray, n: int) -> np.ndarray:
    """``H_xx - H_xu H_uu^{-1} H_ux`` with H_uu's eigenvalues floored as documented in :func:`max_q`.

    The quadratic ``max_u`` of a Q-function ``[x; u]^T H [x; u]`` (shape (n, n)); no checks (a
    kernel for :func:`max_q` and the exploration chapter's value weights).
    """
    Huu = 0.5 * (H[n:, n:] + H[n:, n:].T)
    lam, V = np.linalg.eigh(Huu)
    floor = 1e-6 * max(1.0, float(np.max(np.abs(lam))))
    Huu = (V * np.maximum(lam, floor)) @ V.T
    return H[:n, :n] - H[:n, n:] @ np.linalg.solve(Huu, H[n:, :n])


def bellman_loss(
    H: np.ndarray,
    c: float,
    data: Transitions,
    gamma: float,
    H_target: np.ndarray | None = None,
    c_target=None,
) -> float:
    """Empirical eq. (9): mean of ``(Q(x, u) - (r + gamma max_u' Q_target(x', u')))^2``.

    The target uses ``(H_target, c_target)`` (default: ``(H, c)`` itself).
    """
    gamma = check_in_open_interval("gamma", gamma, 0.0, 1.0)
    n = data.x.shape[1]
    Ht, ct = (H, c) if H_target is None else (H_target, c_target)
    q = -(quadratic_features(data.x, data.u) @ quadratic_to_theta(H, c))
    target = data.r + gamma * max_q(Ht, ct, data.x_next, n)
    return float(np.mean((q - target) ** 2))


def collect_transitions(
    env: LinearQuadraticEnv,
    n_episodes: int,
    behaviour_gain: np.ndarray,
    behaviour_std: float,
    seed: int,
) -> Transitions:
    """Run episodes through the gymnasium API with ``u = -K_b x + behaviour_std * N(0, I)``.

    Each episode is one :func:`lgutils.core.rollout.rollout` whose plant is ``env.step``: the
    behaviour policy draws its noise, then the environment its own, at every step.

    Parameters
    ----------
    env : LinearQuadraticEnv
        The environment (its ``step`` and ``reset`` are used; nothing else is read but the
        sizes).
    n_episodes : int
        Number of episodes (each of ``env.horizon`` steps).
    behaviour_gain : array_like, shape (m, n)
        Gain of the exploring behaviour policy.
    behaviour_std : float
        Standard deviation of its exploration noise (action units), > 0.
    seed : int
        Seeds the resets (``seed + episode``) and the exploration noise.

    Returns
    -------
    Transitions
        ``n_episodes * env.horizon`` samples; ``u`` is the applied action.
    """
    n_episodes = check_positive_int("n_episodes", n_episodes)
    Kb = as_matrix("behaviour_gain", behaviour_gain, env.n_actions, env.n_states)
    std = check_in_open_interval("behaviour_std", behaviour_std, 0.0, np.inf)
    seed = check_positive_int("seed", seed, 0)
    rng = np.random.default_rng(seed)

    def behaviour(x: np.ndarray, t: int) -> np.ndarray:
        return -Kb @ x + std * rng.standard_normal(env.n_actions)

    xs, us, rs, xns = [], [], [], []
    for episode in range(n_episodes):
        _, info = env.reset(seed=seed + episode)
        rewards: list[float] = []

        def plant(x: np.ndarray, u: np.ndarray, t: int, rewards: list = rewards) -> np.ndarray:
            _, r, _, _, out = env.step(u)  # the environment never terminates: T steps
            rewards.append(r)
            return out["state"]

        run = rollout(behaviour, plant, info["state"], env.horizon, clip=env.clip_action)
        xs.extend(run.states[:-1])
        us.extend(run.actions)
        rs.extend(rewards)
        xns.extend(run.states[1:])
    return Transitions(np.array(xs), np.array(us), np.array(rs), np.array(xns))


def fitted_q_iteration(
    data: Transitions, gamma: float, n_iterations: int, ridge: float = 1e-8, progress: bool = False
) -> FQIResult:
    """Fitted Q-iteration with a quadratic Q_phi: repeat the least-squares fit of eq. (9).

    Iteration k fixes the target ``y = r + gamma max_u' Q_k(x', u')`` and solves
    ``min_theta ||features @ theta + y||^2 + ridge ||theta||^2`` (the features give the *cost*
    ``-Q``), starting from ``Q_0 = 0``.

    Parameters
    ----------
    data : Transitions
        Samples (from :func:`collect_transitions`).
    gamma : float
        Discount factor in (0, 1).
    n_iterations : int
        Number of fits.
    ridge : float, default 1e-8
        Tikhonov weight (relative to the mean squared feature).
    progress : bool, default False
        Show a progress bar.

    Returns
    -------
    FQIResult
    """
    gamma = check_in_open_interval("gamma", gamma, 0.0, 1.0)
    n_iterations = check_positive_int("n_iterations", n_iterations)
    n, m = data.x.shape[1], data.u.shape[1]
    d = n + m
    Phi = quadratic_features(data.x, data.u)
    scale = np.sqrt(np.mean(Phi**2, axis=0))
    Phis = Phi / scale
    G = Phis.T @ Phis + ridge * len(Phis) * np.eye(Phis.shape[1])
    H, c = np.zeros((d, d)), 0.0
    Hs, cs, losses = [H], [c], []
    for _ in tqdm(range(n_iterations), desc="fitted Q-iteration", disable=not progress):
        target = data.r + gamma * max_q(H, c, data.x_next, n)
        theta = np.linalg.solve(G, Phis.T @ (-target)) / scale
        H, c = theta_to_quadratic(theta, d)
        losses.append(float(np.mean((-(Phi @ theta) - target) ** 2)))
        Hs.append(H)
        cs.append(c)
    return FQIResult(H, c, np.array(Hs), np.array(cs), np.array(losses))


# ---------------------------------------------------------------------------- REINFORCE
def discounted_returns_to_go(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """``G_t = sum_{t' >= t} gamma^(t' - t) r_t'`` for rewards of shape ``(N, T)``."""
    rewards = as_array("rewards", rewards, (None, None))
    gamma = check_in_open_interval("gamma", gamma, 0.0, 1.0, closed_high=True)
    G = np.zeros_like(rewards)
    running = np.zeros(rewards.shape[0])
    for t in range(rewards.shape[1] - 1, -1, -1):
        running = rewards[:, t] + gamma * running
        G[:, t] = running
    return G


def gaussian_score(x: np.ndarray, u: np.ndarray, K: np.ndarray, sigma: float) -> np.ndarray:
    """``grad_K log pi(u | x)`` for ``pi = N(-K x, sigma^2 I)``: ``-(u + K x) x^T / sigma^2``.

    Parameters
    ----------
    x : array_like, shape (..., n)
    u : array_like, shape (..., m)
    K : array_like, shape (m, n)
    sigma : float

    Returns
    -------
    numpy.ndarray, shape (..., m, n)
    """
    K = as_matrix("K", K)
    x = as_array("x", x)
    u = as_array("u", u)
    if x.shape[-1] != K.shape[1] or u.shape[-1] != K.shape[0] or x.shape[:-1] != u.shape[:-1]:
        raise ValueError(
            f"x and u must have shapes (..., {K.shape[1]}) and (..., {K.shape[0]}), got {x.shape} and {u.shape}"
        )
    sigma = check_in_open_interval("sigma", sigma, 0.0, np.inf)
    resid = u + x @ K.T
    return -resid[..., :, None] * x[..., None, :] / sigma**2


def reinforce_gradient(
    states: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    K: np.ndarray,
    sigma: float,
    gamma: float,
) -> np.ndarray:
    """REINFORCE estimate of ``grad_K J`` (policy-gradient theorem) from a batch of episodes.

    ``grad J ~ (1/N) sum_i sum_t grad log pi(u_t^i | x_t^i) (gamma^t G_t^i - b_t^i)`` with the
    leave-one-out baseline ``b_t^i`` = mean of ``gamma^t G_t^j`` over the other episodes
    (unbiased, as ``b_t^i`` does not depend on episode i).

    Parameters
    ----------
    states : array_like, shape (N, T + 1, n) or (N, T, n)
    actions : array_like, shape (N, T, m)
        The sampled (unclipped) actions.
    rewards : array_like, shape (N, T)
    K : array_like, shape (m, n)
    sigma : float
    gamma : float

    Returns
    -------
    numpy.ndarray, shape (m, n)
    """
    rewards = as_array("rewards", rewards, (None, None))
    N, T = rewards.shape
    if N < 2:
        raise ValueError(f"rewards must hold at least 2 episodes for the baseline, got {N}")
    states = as_array("states", states)[:, :T]
    actions = as_array("actions", actions, (N, T, None))
    gamma = check_in_open_interval("gamma", gamma, 0.0, 1.0, closed_high=True)
    weighted = gamma ** np.arange(T) * discounted_returns_to_go(rewards, gamma)  # (N, T)
    baseline = (weighted.sum(axis=0, keepdims=True) - weighted) / (N - 1)
    score = gaussian_score(states, actions, K, sigma)  # (N, T, m, n)
    return np.einsum("ntij,nt->ij", score, weighted - baseline) / N


def reinforce(
    env: LinearQuadraticEnv,
    K0: np.ndarray,
    sigma: float,
    gamma: float,
    n_iterations: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    progress: bool = True,
) -> ReinforceResult:
    """REINFORCE (eqs. 10-11) for the linear Gaussian policy ``u ~ N(-K x, sigma^2 I)``.

    Each iteration simulates ``batch_size`` episodes (:meth:`LinearQuadraticEnv.simulate`),
    estimates ``grad J`` with :func:`reinforce_gradient` and takes an Adam ascent step.

    Parameters
    ----------
    env : LinearQuadraticEnv
    K0 : array_like, shape (m, n)
        Initial gain.
    sigma : float
        Exploration standard deviation (action units), fixed.
    gamma : float
        Discount factor of the objective.
    n_iterations, batch_size : int
        Updates, and episodes per update (>= 2).
    learning_rate : float
        Adam step size (gain units).
    seed : int
        Seed of the whole run.
    progress : bool, default True
        Show a progress bar.

    Returns
    -------
    ReinforceResult
    """
    K = as_matrix("K0", K0, env.n_actions, env.n_states).copy()
    sigma = check_in_open_interval("sigma", sigma, 0.0, np.inf)
    n_iterations = check_positive_int("n_iterations", n_iterations)
    batch_size = check_positive_int("batch_size", batch_size, 2)
    seed = check_positive_int("seed", seed, 0)
    rng = np.random.default_rng(seed)
    m, v = np.zeros_like(K), np.zeros_like(K)
    Ks, returns = [K.copy()], []
    for _ in tqdm(range(n_iterations), desc="REINFORCE", disable=not progress):
        gain = K.copy()

        def policy(x: np.ndarray, gain: np.ndarray = gain) -> np.ndarray:
            return -x @ gain.T + sigma * rng.standard_normal((x.shape[0], gain.shape[0]))

        traj = env.simulate(policy, batch_size, seed=int(rng.integers(2**32)))
        grad = reinforce_gradient(traj.states, traj.actions, traj.rewards, K, sigma, gamma)
        returns.append(float(np.mean(traj.rewards @ gamma ** np.arange(traj.rewards.shape[1]))))
        K, m, v = adam_step(K, -grad, m, v, len(Ks), learning_rate)  # ascent on J
        Ks.append(K.copy())
    return ReinforceResult(K, np.array(Ks), np.array(returns), n_iterations * batch_size)


# ---------------------------------------------------------------------------- evaluation, SB3
def evaluate_policy(
    env: LinearQuadraticEnv,
    policy: Callable[[np.ndarray], np.ndarray] | np.ndarray,
    n_episodes: int,
    gamma: float,
    seed: int,
    reference: Callable[[np.ndarray], np.ndarray] | np.ndarray | None = None,
) -> tuple[float, float]:
    """Monte-Carlo estimate of ``J`` (discounted return over ``env.horizon`` steps).

    With ``reference``, estimate the difference ``J(policy) - J(reference)`` instead, from the
    *same* episodes (same initial states and noise: common random numbers), whose interval is
    much narrower than that of either return.

    Parameters
    ----------
    env : LinearQuadraticEnv
    policy : callable or array_like of shape (m, n)
        As in :meth:`LinearQuadraticEnv.simulate` (a matrix K means ``u = -K x``).
    n_episodes : int
        Episodes (>= 2).
    gamma : float
        Discount factor in (0, 1].
    seed : int
        Seed of the episodes' initial states and noise.
    reference : callable or array_like of shape (m, n), optional
        A second policy run on the same episodes.

    Returns
    -------
    mean : float
        Sample mean of the discounted returns, or of their differences (reward units).
    halfwidth : float
        Half-width of the normal 95 % confidence interval, ``1.96 s / sqrt(N)``.
    """
    n_episodes = check_positive_int("n_episodes", n_episodes, 2)
    gamma = check_in_open_interval("gamma", gamma, 0.0, 1.0, closed_high=True)

    def returns(pol: Callable[[np.ndarray], np.ndarray] | np.ndarray) -> np.ndarray:
        traj = env.simulate(pol, n_episodes, seed=seed)
        return traj.rewards @ gamma ** np.arange(traj.rewards.shape[1])

    G = returns(policy)
    if reference is not None:
        G = G - returns(reference)
    return float(G.mean()), float(1.96 * G.std(ddof=1) / np.sqrt(n_episodes))


def sb3_policy(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """Wrap a Stable-Baselines3 model as a batch policy ``x (N, n) -> u (N, m)`` (deterministic)."""
    if not hasattr(model, "predict"):
        raise ValueError(
            f"model must be a Stable-Baselines3 model with .predict, got {type(model).__name__}"
        )

    def policy(x: np.ndarray) -> np.ndarray:
        action, _ = model.predict(np.asarray(x, dtype=np.float32), deterministic=True)
        return np.asarray(action, dtype=float).reshape(len(x), -1)

    return policy


class LearningCurveCallback(BaseCallback):
    """SB3 callback: a progress bar, and ``J`` of the deterministic policy every ``every`` steps.

    Parameters
    ----------
    eval_env : LinearQuadraticEnv
        Environment used for the evaluations (:func:`evaluate_policy`).
    every : int
        Evaluation period (environment steps).
    n_episodes : int
        Episodes per evaluation.
    gamma : float
        Discount factor of the evaluated return.
    seed : int
        Seed of every evaluation (the same episodes each time: common random numbers).
    total : int, optional
        Length of the progress bar (training steps).
    reference : callable or array_like of shape (m, n), optional
        If given, also record ``J(agent) - J(reference)`` on the same episodes.

    Attributes
    ----------
    steps, returns, differences : list
        Evaluation points (environment steps), estimated ``J``, and estimated differences to
        the reference (empty without one).
    """

    def __init__(
        self,
        eval_env: LinearQuadraticEnv,
        every: int,
        n_episodes: int,
        gamma: float,
        seed: int,
        total: int | None = None,
        reference: Callable[[np.ndarray], np.ndarray] | np.ndarray | None = None,
    ) -> None:
        super().__init__()
        self.eval_env = eval_env
        self.every = check_positive_int("every", every)
        self.n_episodes = check_positive_int("n_episodes", n_episodes, 2)
        self.gamma = check_in_open_interval("gamma", gamma, 0.0, 1.0, closed_high=True)
        self.seed = check_positive_int("seed", seed, 0)
        self.total = total
        self.reference = reference
        self.steps: list[int] = []
        self.returns: list[float] = []
        self.differences: list[float] = []
        self._bar = None

    def _evaluate(self) -> None:
        policy = sb3_policy(self.model)
        J, _ = evaluate_policy(self.eval_env, policy, self.n_episodes, self.gamma, self.seed)
        self.steps.append(int(self.num_timesteps))
        self.returns.append(J)
        if self.reference is not None:
            d, _ = evaluate_policy(
                self.eval_env,
                policy,
                self.n_episodes,
                self.gamma,
                self.seed,
                reference=self.reference,
            )
            self.differences.append(d)

    def _on_training_start(self) -> None:
        self._bar = tqdm(total=self.total, desc="SB3 training", unit="step")
        self._evaluate()

    def _on_step(self) -> bool:
        self._bar.update(1)
        if self.num_timesteps % self.every == 0:
            self._evaluate()
        return True

    def _on_training_end(self) -> None:
        # off-policy agents take their last gradient steps after the last env step: re-evaluate
        if self.steps and self.steps[-1] == self.num_timesteps:
            self.steps.pop()
            self.returns.pop()
            if self.differences:
                self.differences.pop()
        self._evaluate()
        self._bar.close()
