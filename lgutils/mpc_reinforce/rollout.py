"""Case study B's episodes: the MPC with exploration noise on the true system, many at once.

One closed loop, :func:`play_episodes`, serves both policies of the case study: the linear
feedback ``u = -K_0(phi) x`` of the unconstrained MPC (:func:`rollout`, :func:`mpc_episodes`)
and the input-bounded MPC of :mod:`lgutils.mpc_reinforce.bounded`. The dynamics and rewards are
those of :class:`lgutils.core.envs.LinearQuadraticEnv`:

    a_t = u_t + sigma_a eps_t,   x_{t+1} = A x_t + B a_t + sigma_w w_t,
    r_t = -(x_t^T Q x_t + a_t^T R a_t),

from the fixed ``x_0``, with the random numbers ``eps`` and ``w`` given as inputs (so the same
numbers give the same episodes whatever the batching). With an input bound the applied (and
charged) action is ``a_t`` clipped to ``[-u_max, u_max]``.

The loop is not :func:`lgutils.core.rollout.rollout`: that loop rejects non-finite states, while
here a closed loop that blows up is a result (its rewards are ``-inf`` and REINFORCE stops that
run), and the exploration noise of step ``t`` enters the plant, not the policy.

Shapes: ``r`` runs side by side (one model each), ``N`` episodes per run, ``T`` steps, ``n``
states, ``m`` inputs. Returns are in reward units (the negative of the quadratic cost,
dimensionless here).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from lgutils.core.validate import (
    as_array,
    as_matrix,
    as_vector,
    check_in_open_interval,
    check_positive_int,
)
from lgutils.mpc_reinforce.model import CaseB, check_weights, riccati_gains

__all__ = [
    "Batch",
    "play_episodes",
    "mpc_episodes",
    "rollout",
    "expected_return_kernel",
    "expected_return",
]


class Batch(NamedTuple):
    """Episodes of a batch, for ``r`` runs side by side (float64).

    Attributes
    ----------
    states : (r, N, T + 1, n)
        x_0, ..., x_T.
    means : (r, N, T, m)
        Policy means ``u_t`` (the MPC's action, ``-K x_t`` without constraints).
    actions : (r, N, T, m)
        Sampled actions ``a_t = u_t + sigma_a eps_t`` (before any clipping to an input bound).
    rewards : (r, N, T)
        ``r_t = -(x_t^T Q x_t + a_t^T R a_t)`` with the applied action.
    """

    states: np.ndarray
    means: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray


def play_episodes(
    policy: Callable[[np.ndarray, int], np.ndarray],
    env: CaseB,
    action_std: float,
    action_noise: np.ndarray,
    process_noise: np.ndarray,
    u_max: float | None = None,
) -> Batch:
    """The closed loop of case study B for ``r`` runs of ``N`` episodes (no input checks).

    Parameters
    ----------
    policy : callable
        ``policy(x, t) -> u``: the MPC's actions (r, N, m) at the states ``x`` (r, N, n) of
        step ``t``.
    env : CaseB
        The true system (its ``A``, ``B``, ``Q``, ``R``, ``x0``, ``noise_std``).
    action_std : float
        Exploration standard deviation sigma_a >= 0.
    action_noise : numpy.ndarray, shape (r, N, T, m)
        Standard normal numbers eps.
    process_noise : numpy.ndarray, shape (r, N, T, n)
        Standard normal numbers w.
    u_max : float, optional
        Input bound: the sampled action is clipped to ``[-u_max, u_max]`` before it acts and is
        charged (``Batch.actions`` keeps the unclipped sample).

    Returns
    -------
    Batch
        Where the closed loop blows up the states overflow to ``inf``/NaN (no warning).
    """
    r, N, T, m = action_noise.shape
    n = env.A.shape[0]
    states = np.empty((r, N, T + 1, n))
    means = np.empty((r, N, T, m))
    states[:, :, 0] = env.x0
    AT, BT = env.A.T, env.B.T
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(T):
            x = states[:, :, t]
            u = policy(x, t)
            means[:, :, t] = u
            a = u + action_std * action_noise[:, :, t]
            if u_max is not None:
                a = np.clip(a, -u_max, u_max)
            states[:, :, t + 1] = x @ AT + a @ BT + env.noise_std * process_noise[:, :, t]
        actions = means + action_std * action_noise
        applied = actions if u_max is None else np.clip(actions, -u_max, u_max)
        xs = states[:, :, :T]
        rewards = -np.sum((xs @ env.Q) * xs, axis=-1) - np.sum((applied @ env.R) * applied, axis=-1)
    return Batch(states, means, actions, rewards)


def mpc_episodes(
    env: CaseB,
    A_phi: np.ndarray,
    B_phi: np.ndarray,
    horizon: int,
    action_std: float,
    action_noise: np.ndarray,
    process_noise: np.ndarray,
) -> tuple[np.ndarray, list, Batch]:
    """The unconstrained MPC's gains for ``r`` models and the episodes they play on ``env``.

    No input checks (for the learners' loops). ``A_phi`` (r, n, n), ``B_phi`` (r, n, m); the
    noise as in :func:`play_episodes`.

    Returns
    -------
    K : numpy.ndarray, shape (r, m, n)
        The gains ``K_0(phi)``.
    tape : list
        The Riccati tape of :func:`lgutils.mpc_reinforce.model.riccati_gains` (for gradients).
    batch : Batch
        The episodes of ``a = -K x + sigma_a eps``.
    """
    K, tape = riccati_gains(A_phi, B_phi, env.Q, env.R, horizon)
    KT = -np.swapaxes(K, -1, -2)  # (r, n, m): u = x @ (-K^T)
    batch = play_episodes(lambda x, t: x @ KT, env, action_std, action_noise, process_noise)
    return K, tape, batch


def _checked_system(A, B, Q, R, x0, noise_std, action_std) -> tuple[CaseB, float]:
    """Check the system of :func:`rollout` and :func:`expected_return`.

    Returns it as a :class:`CaseB` (horizon 0: the caller sets it) and the checked
    ``action_std``.
    """
    A = as_matrix("A", A)
    n = A.shape[0]
    A = as_matrix("A", A, n, n)
    B = as_matrix("B", B, n, None)
    Qm, Rm = check_weights(Q, R, n, B.shape[1])
    x0 = as_vector("x0", x0, n)
    noise_std = check_in_open_interval("noise_std", noise_std, -1e-300, np.inf)
    action_std = check_in_open_interval("action_std", action_std, -1e-300, np.inf)
    return CaseB(A, B, Qm, Rm, x0, noise_std, 0), action_std


def rollout(
    A: np.ndarray,
    B: np.ndarray,
    Q: np.ndarray,
    R: np.ndarray,
    K: np.ndarray,
    x0: np.ndarray,
    noise_std: float,
    action_std: float,
    action_noise: np.ndarray,
    process_noise: np.ndarray,
) -> Batch:
    """Episodes of the linear-Gaussian policy ``a = -K x + sigma_a eps`` on the true system.

    The dynamics and reward are those of :class:`lgutils.core.envs.LinearQuadraticEnv`:
    ``x_{t+1} = A x_t + B a_t + sigma_w w_t``, ``r_t = -(x_t^T Q x_t + a_t^T R a_t)`` (state
    before the step, applied action), ``x_0`` fixed. The random numbers are inputs, so the
    same numbers give the same episodes whatever the batching.

    Parameters
    ----------
    A : array_like, shape (n, n)
        True state matrix.
    B : array_like, shape (n, m)
        True input matrix.
    Q, R : array_like, shapes (n, n) and (m, m)
        Reward weights.
    K : array_like, shape (r, m, n)
        One gain per run.
    x0 : array_like, shape (n,)
        Initial state of every episode.
    noise_std : float
        Process-noise standard deviation sigma_w >= 0.
    action_std : float
        Exploration standard deviation sigma_a >= 0.
    action_noise : array_like, shape (r, N, T, m)
        Standard normal numbers eps.
    process_noise : array_like, shape (r, N, T, n)
        Standard normal numbers w.

    Returns
    -------
    Batch
        Where the closed loop blows up (an unstable gain), the states overflow to ``inf``/NaN
        and the rewards are ``-inf``, as :func:`expected_return` reports it.
    """
    env, action_std = _checked_system(A, B, Q, R, x0, noise_std, action_std)
    m, n = env.R.shape[0], env.A.shape[0]
    K = as_array("K", K, (None, m, n))
    r = K.shape[0]
    action_noise = as_array("action_noise", action_noise, (r, None, None, m))
    N, T = action_noise.shape[1:3]
    process_noise = as_array("process_noise", process_noise, (r, N, T, n))
    KT = -np.swapaxes(K, -1, -2)
    batch = play_episodes(lambda x, t: x @ KT, env, action_std, action_noise, process_noise)
    batch.rewards[~np.isfinite(batch.rewards)] = -np.inf  # a blown-up closed loop, not NaN
    return batch


def expected_return_kernel(env: CaseB, K: np.ndarray, action_std: float) -> np.ndarray:
    """:func:`expected_return` on ``env`` (its ``horizon`` steps) without the checks.

    For the learners' loops: ``K`` (r, m, n) -> expected returns (r,), ``-inf`` where the
    numbers overflow.
    """
    r, m, n = K.shape
    A, B, Q, R = env.A, env.B, env.Q, env.R
    W = env.noise_std**2 * np.eye(n) + action_std**2 * B @ B.T
    Acl = A - B @ K  # (r, n, n)
    M = Q + np.swapaxes(K, -1, -2) @ R @ K
    mu = np.broadcast_to(env.x0, (r, n)).copy()
    S = np.zeros((r, n, n))
    cost = np.zeros(r)
    noise_cost = action_std**2 * float(np.trace(R))
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(env.horizon):
            cost += np.einsum("ri,rij,rj->r", mu, M, mu) + np.einsum("rij,rji->r", M, S)
            cost += noise_cost
            mu = np.einsum("rij,rj->ri", Acl, mu)
            S = Acl @ S @ np.swapaxes(Acl, -1, -2) + W
    out = -cost
    out[~np.isfinite(out)] = -np.inf
    return out


def expected_return(
    A: np.ndarray,
    B: np.ndarray,
    Q: np.ndarray,
    R: np.ndarray,
    K: np.ndarray,
    x0: np.ndarray,
    noise_std: float,
    action_std: float,
    horizon: int,
) -> np.ndarray:
    """Exact expected T-step return of ``a = -K x + sigma_a eps`` from ``x0``, for many gains.

    Propagates the state's mean and covariance (``mu_{t+1} = (A - B K) mu_t``,
    ``S_{t+1} = (A - B K) S_t (A - B K)^T + sigma_w^2 I + sigma_a^2 B B^T``) and sums
    ``-(mu^T M mu + tr(M S) + sigma_a^2 tr R)`` with ``M = Q + K^T R K``: the batched twin of
    :func:`lgutils.core.lqr.policy_return` with a finite horizon.

    Parameters
    ----------
    A, B, Q, R, x0, noise_std, action_std
        As in :func:`rollout`.
    K : array_like, shape (r, m, n) or (m, n)
        Gains.
    horizon : int
        Number of rewards T.

    Returns
    -------
    numpy.ndarray, shape (r,) (or a float for one gain)
        Expected returns (reward units); ``-inf`` where the numbers overflow.
    """
    env, action_std = _checked_system(A, B, Q, R, x0, noise_std, action_std)
    m, n = env.R.shape[0], env.A.shape[0]
    K = as_array("K", K)
    single = K.ndim == 2
    K = as_array("K", K[None] if single else K, (None, m, n))
    env = env._replace(horizon=check_positive_int("horizon", horizon))
    out = expected_return_kernel(env, K, action_std)
    return float(out[0]) if single else out
