"""Case study B, value-based (beyond the paper): Q-learning of the MPC model, eq. (9).

The same MPC as :mod:`lgutils.mpc_reinforce.model` (model ``x_{k+1} = A_phi x_k + B_phi u_k``,
horizon ``H = 5``, stage cost ``x^T Q x + u^T R u``, no terminal cost or constraints) is read as
a Q-function, ``Q_phi(s, a) = -Q^MPC_phi(s, a)`` (eq. (13) with ``u_0 = a`` fixed), and its model
is fitted by semi-gradient descent on the squared temporal-difference error of eq. (9),

    delta = Q_phi(s, a) - (r + max_a' Q_phi(s', a')),   max_a' Q_phi(s', a') = -V^MPC_phi(s'),

(undiscounted, the target of the last step of an episode is ``r``), the target held fixed.

Without constraints ``Q^MPC`` is a quadratic form: with ``x_1 = A_phi s + B_phi a`` the rest of
the plan follows the gains ``K_1 .. K_{H-1}`` of the Riccati recursion of
:func:`lgutils.mpc_reinforce.model.mpc_gain`, and
``Q^MPC = s^T Q s + a^T R a + x_1^T P_1 x_1``. Its gradient is the gradient of the Lagrangian
at the solution (paper ref. [58]):
``dQ/dA_phi = sum_k mu_{k+1} x_k^T``, ``dQ/dB_phi = sum_k mu_{k+1} u_k^T`` with the multipliers
``mu_{k+1} = 2 P_{k+1} x_{k+1}`` of the dynamics along the plan (``P_H = 0``).

Everything else (environment, exploration ``sigma_a = 0.01``, 64 episodes of 10 steps per update,
Adam 0.1, clipping at 10, clamping to [-2, 2], the initial models and random numbers of each
seed) is that of :func:`lgutils.mpc_reinforce.reinforce.run_reinforce` (the loop of
:func:`lgutils.mpc_reinforce.training.train_runs`), so the two learners are compared on the same
episodes budget. Shapes: ``r`` runs, ``M`` state-action pairs per run, ``n`` states,
``m`` inputs, ``n_phi = n^2 + n m`` (row-major ``[vec(A_phi); vec(B_phi)]``). Costs are in the
environment's (dimensionless) cost units; returns are their negative.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import numpy as np

from lgutils.core.seeding import spawn_seeds
from lgutils.core.validate import as_array, check_in_open_interval, check_positive_int
from lgutils.mpc_reinforce.model import (
    case_b,
    check_finite,
    check_weights,
    riccati_gains,
    split_phi,
)
from lgutils.mpc_reinforce.rollout import Batch, mpc_episodes
from lgutils.mpc_reinforce.training import (
    ReinforceRuns,
    check_seeds,
    check_settings,
    clipped_adam_step,
    play_mpc,
    train_runs,
)

__all__ = ["mpc_q_value", "td_gradient", "q_learning_update", "run_q_learning", "run_experiment"]


def _q_and_grad(
    A: np.ndarray,
    B: np.ndarray,
    tape: list,
    Q: np.ndarray,
    R: np.ndarray,
    S: np.ndarray,
    U: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Q^MPC and dQ/dphi, batched.

    A (r, n, n), B (r, n, m), S (r, M, n), U (r, M, m) -> (r, M), (r, M, n_phi).
    """
    H = len(tape)
    AT, BT = np.swapaxes(A, -1, -2), np.swapaxes(B, -1, -2)
    x, u = S, U
    cost = np.zeros(S.shape[:2])
    gA = np.zeros((*S.shape[:2], A.shape[-1], A.shape[-1]))
    gB = np.zeros((*S.shape[:2], B.shape[-2], B.shape[-1]))
    for k in range(H):
        P_next, K_k = tape[H - 1 - k][0], tape[H - 1 - k][1]  # P_{k+1}, K_k
        if k > 0:
            u = -x @ np.swapaxes(K_k, -1, -2)
        cost += np.sum((x @ Q) * x, axis=-1) + np.sum((u @ R) * u, axis=-1)
        x_next = x @ AT + u @ BT
        mu = 2.0 * x_next @ P_next  # (r, M, n); P symmetric
        gA += mu[..., :, None] * x[..., None, :]
        gB += mu[..., :, None] * u[..., None, :]
        x = x_next
    grad = np.concatenate([gA.reshape((*S.shape[:2], -1)), gB.reshape((*S.shape[:2], -1))], -1)
    return cost, grad


def mpc_q_value(
    s: np.ndarray,
    a: np.ndarray,
    A_phi: np.ndarray,
    B_phi: np.ndarray,
    Q: np.ndarray,
    R: np.ndarray,
    horizon: int = 5,
) -> tuple[np.ndarray, np.ndarray]:
    """``Q^MPC_phi(s, a)`` (cost, u_0 = a fixed) and ``dQ^MPC / dphi`` in closed form, batched.

    Parameters
    ----------
    s : array_like, shape (r, M, n)
        States (M per model).
    a : array_like, shape (r, M, m)
        First actions.
    A_phi : array_like, shape (r, n, n)
        Model state matrices.
    B_phi : array_like, shape (r, n, m)
        Model input matrices.
    Q, R : array_like, shapes (n, n) and (m, m)
        Stage weights (Q PSD, R PD).
    horizon : int
        MPC horizon H.

    Returns
    -------
    q : numpy.ndarray, shape (r, M)
        The optimal cost of the MPC with ``u_0 = a``.
    dq_dphi : numpy.ndarray, shape (r, M, n_phi)
        Its gradient with respect to ``phi = [vec(A_phi); vec(B_phi)]``.
    """
    A = as_array("A_phi", A_phi, (None, None, None))
    n = A.shape[-1]
    A = as_array("A_phi", A, (None, n, n))
    r = A.shape[0]
    B = as_array("B_phi", B_phi, (r, n, None))
    m = B.shape[-1]
    S = as_array("s", s, (r, None, n))
    U = as_array("a", a, (r, S.shape[1], m))
    Qm, Rm = check_weights(Q, R, n, m)
    _, tape = riccati_gains(A, B, Qm, Rm, check_positive_int("horizon", horizon))
    q, g = _q_and_grad(A, B, tape, Qm, Rm, S, U)
    check_finite("Q^MPC", q, g)
    return q, g


def _td_gradient(
    batch: Batch, A: np.ndarray, B: np.ndarray, K: np.ndarray, tape: list, Q, R
) -> tuple[np.ndarray, np.ndarray]:
    """Semi-gradient of 0.5 mean(delta^2) over all (s, a, r, s') of the batch; and delta."""
    r, N, T, m = batch.actions.shape
    n = batch.states.shape[-1]
    S = batch.states[:, :, :T].reshape(r, N * T, n)
    U = batch.actions.reshape(r, N * T, m)
    q, dq = _q_and_grad(A, B, tape, Q, R, S, U)
    S1 = batch.states[:, :, 1:].reshape(r, N * T, n)
    v1, _ = _q_and_grad(A, B, tape, Q, R, S1, -S1 @ np.swapaxes(K, -1, -2))
    last = np.zeros((N, T), dtype=bool)
    last[:, -1] = True
    v1 = np.where(last.reshape(-1), 0.0, v1)  # the episode ends after T steps
    target = batch.rewards.reshape(r, N * T) - v1
    delta = -q - target
    return np.einsum("rk,rkp->rp", delta, -dq) / (N * T), delta


def td_gradient(
    batch: Batch, A_phi: np.ndarray, B_phi: np.ndarray, horizon: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """Semi-gradient of the TD loss of eq. (9) for ``Q_phi = -Q^MPC_phi``, batched over runs.

    ``L(phi) = (1 / (N T)) sum 0.5 delta^2`` with ``delta = Q_phi(s_t, a_t) - r_t
    - Q_phi(s_{t+1}, pi_phi(s_{t+1}))`` (no bootstrap at ``t = T - 1``); the target is not
    differentiated.

    Parameters
    ----------
    batch : lgutils.mpc_reinforce.rollout.Batch
        Episodes, arrays of shapes (r, N, T + 1, n), (r, N, T, m), (r, N, T, m), (r, N, T).
    A_phi, B_phi : array_like, shapes (r, n, n) and (r, n, m)
        Models.
    horizon : int
        MPC horizon H.

    Returns
    -------
    grad : numpy.ndarray, shape (r, n_phi)
    delta : numpy.ndarray, shape (r, N T)
        TD errors (reward units), episode-major.
    """
    if not isinstance(batch, Batch):
        raise ValueError(
            f"batch must be a lgutils.mpc_reinforce.rollout.Batch, got {type(batch).__name__}"
        )
    env = case_b()
    A = as_array("A_phi", A_phi, (None, *env.A.shape))
    B = as_array("B_phi", B_phi, (A.shape[0], *env.B.shape))
    K, tape = riccati_gains(A, B, env.Q, env.R, check_positive_int("horizon", horizon))
    return _td_gradient(batch, A, B, K, tape, env.Q, env.R)


def q_learning_update(
    phi: np.ndarray,
    adam_m: np.ndarray,
    adam_v: np.ndarray,
    step: int,
    action_noise: np.ndarray,
    process_noise: np.ndarray,
    *,
    lr: float = 0.1,
    max_grad_norm: float = 10.0,
    clamp: float = 2.0,
    action_std: float = 0.01,
    horizon_mpc: int = 5,
) -> dict[str, np.ndarray]:
    """One Q-learning update of the MPC model for ``r`` runs, from given random numbers.

    Rolls out the episodes exactly as :func:`lgutils.mpc_reinforce.reinforce.reinforce_update`,
    then takes the TD semi-gradient of :func:`td_gradient`, clips its global norm, takes an Adam
    step and clamps the parameters (the same optimiser settings as REINFORCE).

    Parameters
    ----------
    phi, adam_m, adam_v : array_like, shape (r, n_phi)
    step : int
        Adam's step count after this update (>= 1).
    action_noise, process_noise : array_like, shapes (r, N, T, m) and (r, N, T, n)
    lr, max_grad_norm, clamp, action_std, horizon_mpc
        As in :func:`lgutils.mpc_reinforce.reinforce.reinforce_update`.

    Returns
    -------
    dict
        ``"phi"``, ``"adam_m"``, ``"adam_v"`` (r, n_phi); ``"grad"`` (r, n_phi) before clipping;
        ``"grad_norm"`` (r,); ``"delta"`` (r, N T); ``"batch"``.
    """
    env = case_b()
    n, m_in = env.B.shape
    phi = as_array("phi", phi, (None, n * n + n * m_in))
    r = phi.shape[0]
    adam_m = as_array("adam_m", adam_m, phi.shape)
    adam_v = as_array("adam_v", adam_v, phi.shape)
    step = check_positive_int("step", step)
    action_noise = as_array("action_noise", action_noise, (r, None, None, m_in))
    process_noise = as_array("process_noise", process_noise, (r, *action_noise.shape[1:3], n))
    cfg = check_settings(
        horizon_mpc, action_noise.shape[1], lr, max_grad_norm, clamp, action_std, 0.0
    )
    A_phi, B_phi = split_phi(phi, n, m_in)
    K, tape, batch = mpc_episodes(
        env, A_phi, B_phi, cfg.horizon_mpc, cfg.action_std, action_noise, process_noise
    )
    with np.errstate(over="ignore", invalid="ignore"):
        grad, delta = _td_gradient(batch, A_phi, B_phi, K, tape, env.Q, env.R)
        new, m_new, v_new, norm = clipped_adam_step(phi, adam_m, adam_v, step, grad, cfg)
    return {
        "phi": new,
        "adam_m": m_new,
        "adam_v": v_new,
        "grad": grad,
        "grad_norm": norm,
        "delta": delta,
        "batch": batch,
    }


def run_q_learning(
    seeds: list[int],
    n_updates: int = 100,
    batch_size: int = 64,
    *,
    lr: float = 0.1,
    max_grad_norm: float = 10.0,
    clamp: float = 2.0,
    action_std: float = 0.01,
    horizon_mpc: int = 5,
    init_scale: float = 1.0,
) -> ReinforceRuns:
    """Q-learning of the MPC model for several independent runs, vectorised over the runs.

    Run ``i`` draws from ``numpy.random.default_rng(seeds[i])`` exactly what
    :func:`lgutils.mpc_reinforce.reinforce.run_reinforce` draws (the initial model, then one
    standard normal array of shape (N, T, m + n) per batch), so a seed gives both learners the same
    initial model and the same random numbers. A run whose batch has a non-finite return, or
    whose gradient is not finite, stops learning (as in REINFORCE).

    Parameters
    ----------
    seeds : list of int
    n_updates, batch_size, lr, max_grad_norm, clamp, action_std, horizon_mpc, init_scale
        As in :func:`lgutils.mpc_reinforce.reinforce.run_reinforce`.

    Returns
    -------
    lgutils.mpc_reinforce.training.ReinforceRuns
        The same record as REINFORCE's (``grad_norm``: the TD semi-gradient's norm); update
        ``k`` has used ``k * batch_size`` episodes.
    """
    seeds = check_seeds(seeds)
    E = check_positive_int("n_updates", n_updates, minimum=0)
    cfg = check_settings(horizon_mpc, batch_size, lr, max_grad_norm, clamp, action_std, 0.0)
    init_scale = check_in_open_interval("init_scale", init_scale, 0.0, np.inf)
    play = functools.partial(play_mpc, case_b(), cfg)
    return train_runs(seeds, E, cfg, init_scale, play, _q_gradient)


def _q_gradient(batch: Batch, A_phi: np.ndarray, B_phi: np.ndarray, tape: tuple) -> np.ndarray:
    """:data:`lgutils.mpc_reinforce.training.Gradient`: the TD semi-gradient."""
    env = case_b()
    return _td_gradient(batch, A_phi, B_phi, *tape, env.Q, env.R)[0]


def run_experiment(
    seed: int, n_runs: int, n_updates: int = 100, batch_size: int = 64, **kwargs: Any
) -> tuple[ReinforceRuns, float]:
    """``n_runs`` Q-learning runs with seeds ``spawn_seeds(seed, n_runs)`` (those of REINFORCE's
    first ``n_runs`` runs in :func:`lgutils.mpc_reinforce.reinforce.run_experiment`); returns the
    runs and the wall-clock seconds. ``kwargs`` go to :func:`run_q_learning`."""
    seeds = spawn_seeds(
        check_positive_int("seed", seed, minimum=0), check_positive_int("n_runs", n_runs)
    )
    t0 = time.perf_counter()
    runs = run_q_learning(seeds, n_updates, batch_size, **kwargs)
    return runs, time.perf_counter() - t0
